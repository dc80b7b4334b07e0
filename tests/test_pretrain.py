# covers: singa/layers/rbm.py, singa/worker.py (CDWorker), examples/mnist_rbm*.py,
#         examples/mnist_ae.py, examples/ae_codes.py
"""Pre-training as a chain of jobs: SINGA's rbm1..rbm4 and autoencoder confs through singa-run,
the seed's Python scripts (examples/mnist_rbm1-4.py, mnist_ae.py), the checkpoint order rule
(SINGA-107), and a run killed with SIGKILL and resumed ending bit-identical to one left alone."""
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from singa.driver import CheckpointOrderWarning, Driver
from singa.errors import DataError
from singa.io import checkpoint as ckpt
from singa.io.kvfile import KVFileWriter
from singa.io.record import encode_record
from singa.proto import parse_job_conf
from tests.conftest import ROOT
from tests.test_datasets import needs_fashion

CONFS = os.path.join(ROOT, "examples", "singa-v0")


def write_mnist_like(path, n, seed):
    """n 28x28 records as SINGA's create_data wrote MNIST: blurry strokes from 3 prototypes."""
    rng = np.random.default_rng(seed)
    protos = (rng.random((3, 28, 28)) < 0.2).astype(float)
    with KVFileWriter(path) as w:
        for i in range(n):
            img = np.clip(protos[i % 3] * 255 * (0.7 + 0.3 * rng.random((28, 28))), 0, 255).astype(np.uint8)
            w.insert("%08d" % i, encode_record(label=i % 3, pixel=img.tobytes(), shape=[28, 28]))


def shortened(name, steps, test_steps=2, test_freq=None):
    text = open(os.path.join(CONFS, name + ".conf")).read()
    text = re.sub(r"train_steps: *\d+", "train_steps: %d" % steps, text)
    text = re.sub(r"test_steps: *\d+", "test_steps: %d" % test_steps, text)
    text = re.sub(r"test_freq: *\d+", "test_freq: %d" % (test_freq or steps), text)
    return text.replace("step6000-worker0", "step%d-worker0" % steps)


def run_cli(args, cwd, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "singa"] + args, cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT, **(env or {})), **kw)


# Tiny products: OpenBLAS's threads only spin on them (and crawl on a busy machine).
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1"}


def test_singa_confs_run_as_a_chain(in_tmp):
    os.makedirs("examples/mnist")
    write_mnist_like("examples/mnist/train_data.bin", 400, 1)
    write_mnist_like("examples/mnist/test_data.bin", 200, 2)
    first_last = {}
    for name in ("rbm1", "rbm2", "rbm3", "rbm4", "autoencoder"):
        with open(name + ".conf", "w") as f:
            f.write(shortened(name, 40, test_freq=20))
        r = run_cli(["-conf", name + ".conf"], in_tmp, timeout=300)
        assert r.returncode == 0, name + ": " + r.stderr + r.stdout
        metric = "Squared Error" if name.startswith("rbm") else "loss"
        vals = [float(v) for v in re.findall(r"Test @ step \d+: %s = ([\d.]+)" % metric, r.stdout)]
        assert len(vals) == 3, r.stdout
        first_last[name] = (vals[0], vals[-1])
        ws = "examples/rbm/%s/checkpoint/step40-worker0" % name
        assert os.path.isfile(ws), r.stdout
    for name, (a, b) in first_last.items():
        assert b < a, (name, a, b)       # every stage's reconstruction error falls
    # each stage carried the lower stages' weights unchanged and trained its own
    params = {n: dict((k, v) for k, v, _ in ckpt.read_checkpoint("examples/rbm/%s/checkpoint/step40-worker0" % n))
              for n in ("rbm1", "rbm2", "rbm3", "rbm4")}
    np.testing.assert_array_equal(params["rbm2"]["w1"], params["rbm1"]["w1"])
    np.testing.assert_array_equal(params["rbm4"]["w3"], params["rbm3"]["w3"])
    assert params["rbm2"]["w2"].shape == (500, 1000) and params["rbm4"]["w4"].shape == (30, 250)


def test_checkpoint_order_warning_and_missing_file(in_tmp):
    os.makedirs("examples/mnist")
    write_mnist_like("examples/mnist/train_data.bin", 200, 1)
    write_mnist_like("examples/mnist/test_data.bin", 100, 2)
    for name in ("rbm1", "rbm2"):
        Driver(verbose=False).train(parse_job_conf(shortened(name, 4)))
    text = shortened("rbm3", 4)
    assert text.index("rbm2/checkpoint") < text.index("rbm1/checkpoint")     # SINGA's order: no warning
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointOrderWarning)
        Driver(verbose=False).train(parse_job_conf(text))
    swapped = text.replace("rbm2/checkpoint", "TMP").replace("rbm1/checkpoint", "rbm2/checkpoint").replace(
        "TMP", "rbm1/checkpoint")
    with pytest.warns(CheckpointOrderWarning) as record:
        Driver(verbose=False).train(parse_job_conf(swapped))
    messages = [str(w.message) for w in record]
    assert sorted(re.search(r"param '(\w+)'", m).group(1) for m in messages) == ["b12", "w1"]
    assert all("version 0" in m and "SINGA-107" in m and "newest stage's checkpoint first" in m for m in messages)
    with pytest.raises(DataError, match="checkpoint_path.*rbm9.*does not exist"):
        Driver(verbose=False).train(parse_job_conf(text.replace("rbm2/checkpoint", "rbm9/checkpoint")))


def test_sigkill_then_resume_is_bit_identical(in_tmp):
    os.makedirs("examples/mnist")
    write_mnist_like("examples/mnist/train_data.bin", 300, 1)
    write_mnist_like("examples/mnist/test_data.bin", 100, 2)
    text = shortened("rbm1", 1500, test_freq=500).replace("hdim: 1000", "hdim: 64")
    text += "\ncheckpoint_freq: 100\n"
    for ws in ("alone", "killed"):
        with open(ws + ".conf", "w") as f:
            f.write(text.replace('workspace: "examples/rbm/rbm1/"', 'workspace: "%s"' % ws))
    r = run_cli(["-conf", "alone.conf"], in_tmp, env=ONE_THREAD, timeout=600)
    assert r.returncode == 0, r.stderr
    proc = subprocess.Popen([sys.executable, "-m", "singa", "-conf", "killed.conf"], cwd=in_tmp,
                            env=dict(os.environ, PYTHONPATH=ROOT, **ONE_THREAD), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not os.path.isfile("killed/checkpoint/step300-worker0") and time.time() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not os.path.isfile("killed/checkpoint/step1500-worker0"), "the run ended before it was killed"
    r = run_cli(["-conf", "killed.conf", "-resume"], in_tmp, env=ONE_THREAD, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "Resuming from" in r.stdout
    a = {n: v for n, v, _ in ckpt.read_checkpoint("alone/checkpoint/step1500-worker0")}
    b = {n: v for n, v, _ in ckpt.read_checkpoint("killed/checkpoint/step1500-worker0")}
    assert a.keys() == b.keys() == {"w1", "b11", "b12"}
    for n in a:
        np.testing.assert_array_equal(a[n], b[n], err_msg=n)


@needs_fashion
def test_python_examples_chain(in_tmp):
    out = {}
    for stage in ("rbm1", "rbm2", "rbm3", "rbm4", "ae"):
        r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "mnist_%s.py" % stage), "--dataset",
                            "fashion_mnist", "--steps", "20", "--rbm-steps", "20", "--test-steps", "2",
                            "--test-freq", "10"], cwd=in_tmp, capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, PYTHONPATH=ROOT))
        assert r.returncode == 0, stage + ": " + r.stderr + r.stdout
        out[stage] = r.stdout
        ws = "examples/rbm/%s/checkpoint/step20-worker0" % ("autoencoder" if stage == "ae" else stage)
        assert os.path.isfile(ws)
    for stage in ("rbm1", "rbm2", "rbm3", "rbm4"):
        se = [float(v) for v in re.findall(r"Test @ step \d+: Squared Error = ([\d.]+)", out[stage])]
        assert len(se) == 3 and se[-1] < se[0], (stage, se)
    assert "Final test metrics: {'loss'" in out["ae"]
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "ae_codes.py"), "--dataset", "fashion_mnist",
                        "--checkpoint", "examples/rbm/autoencoder/checkpoint/step20-worker0", "--steps", "30"],
                       cwd=in_tmp, capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr + r.stdout
    acc = float(re.search(r"test accuracy ([\d.]+)", r.stdout).group(1))
    assert 0.2 < acc <= 1.0          # 10 classes: the codes of 20 fine-tuning steps carry some of the labels
