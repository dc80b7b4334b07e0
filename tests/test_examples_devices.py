# covers: examples/*.py with --device, singa/backends/__init__.py (the device path end to end)
"""Every example trains on the GPU with NumPy's numbers: 20 steps of each, once on the CPU and once
with ``--device 0``, on the CuPy stand-in (SINGA_GPU_STANDIN=1) and, where a GPU is, on CuPy: the
printed losses and test metrics equal to float32 rounding (see ``same``)."""
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import DEVICE_KINDS, ROOT
from tests.test_datasets import needs_fashion

METRIC = re.compile(r"^(Train|Test) @ step (\d+): (.*?)(?: \(.*\))?$", re.M)


def run(script, args, cwd, device):
    """The example's output on the CPU (device None), the stand-in or CuPy."""
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1", SINGA_REPLICAS="1")
    env.pop("SINGA_GPU_STANDIN", None)
    if device is not None:
        if device == "standin":
            env["SINGA_GPU_STANDIN"] = "1"
        args = args + ["--device", "0"]
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script)] + args, cwd=cwd, capture_output=True,
                       text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    return r.stdout


def metrics(out):
    got = {}
    for phase, step, text in METRIC.findall(out):
        for name, value in re.findall(r"([A-Za-z ]+?) = ([\d.]+)", text):
            got[(phase, int(step), name.strip(", "))] = float(value)
    return got


def same(cpu_out, dev_out, at_least, device="standin"):
    """The device run's printed metrics equal the CPU run's: to float32 rounding for the first 10
    steps; after that, to 1% (float32 rounding differences, e.g. tanh's last bit in C and in NumPy,
    grow in a chaotic net: in mnist_ae.py without pretraining, AdaGrad on a deep sigmoid net, they
    grew 2.5x every 2 steps from step 8, to 4e-3 of the test loss at step 20)."""
    a, b = metrics(cpu_out), metrics(dev_out)
    assert len(a) >= at_least and a.keys() == b.keys(), (sorted(a), sorted(b))
    early = dict(rel=2e-5, abs=2e-6) if device == "standin" else dict(rel=1e-3, abs=1e-5)
    for k in a:
        assert b[k] == pytest.approx(a[k], **(early if k[1] <= 10 else dict(rel=1e-2, abs=1e-5))), k
    return a


@needs_fashion
@pytest.mark.parametrize("script,args", [
    ("mnist_mlp.py", ["--steps", "20", "--test-freq", "10", "--test-steps", "2"]),
    ("mnist_cnn.py", ["--steps", "20", "--test-freq", "10", "--test-steps", "2", "--dropout", "0.5"]),
    ("mnist_rbm1.py", ["--steps", "20", "--test-freq", "10", "--test-steps", "2"]),
    ("mnist_ae.py", ["--steps", "20", "--test-freq", "10", "--test-steps", "2", "--no-pretrain"]),
])
@pytest.mark.parametrize("device", DEVICE_KINDS)
def test_mnist_examples_on_the_device(in_tmp, script, args, device):
    args = ["--dataset", "fashion_mnist"] + args
    (in_tmp / "cpu").mkdir()
    (in_tmp / "dev").mkdir()
    m = same(run(script, args, in_tmp / "cpu", None), run(script, args, in_tmp / "dev", device), at_least=6,
             device=device)
    assert ("Test", 20, next(n for _, s, n in m if s == 20)) in m


@pytest.mark.parametrize("device", DEVICE_KINDS)
def test_the_seed_cnn_on_the_device(in_tmp, device):
    from tests.test_cifar10_data import write_batches
    write_batches(in_tmp / "raw", n=100)
    args = ["--data-dir", str(in_tmp / "raw"), "--steps", "20", "--test-freq", "10", "--test-steps", "1",
            "--test-batch", "50"]
    (in_tmp / "cpu").mkdir()
    (in_tmp / "dev").mkdir()
    same(run("cifar10_cnn.py", args, in_tmp / "cpu", None), run("cifar10_cnn.py", args, in_tmp / "dev", device),
         at_least=6, device=device)
