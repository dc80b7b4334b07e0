# covers: examples/cifar10_cnn.py, examples/mnist_cnn.py, singa/layers/conv.py, singa/layers/pooling.py,
#         singa/layers/lrn.py
"""The convolutional configurations and examples run end to end (few steps)."""
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import CONF_DIR, FASHION_DIR, ROOT
from tests.test_cifar10_data import write_batches
from tests.test_cli import BIN, run, singa_run
from tests.test_datasets import needs_fashion


def losses_and_tests(out):
    losses = [float(x) for x in re.findall(r"Train @ step \d+: loss = ([\d.]+)", out)]
    tests = [float(x) for x in re.findall(r"Test @ step \d+: loss = [\d.]+, accuracy = ([\d.]+)", out)]
    return losses, tests


def test_cifar10_job_conf_runs(in_tmp):
    write_batches(in_tmp / "raw", n=40)
    r = run([os.path.join(BIN, "singa-create-data"), "cifar10", str(in_tmp / "raw"), "examples/cifar10"], in_tmp)
    assert r.returncode == 0, r.stderr
    text = open(os.path.join(CONF_DIR, "cifar10-job.conf")).read()
    text = re.sub(r"train_steps: *\d+", "train_steps: 4", text)
    text = re.sub(r"test_steps: *\d+", "test_steps: 1", text)
    text = re.sub(r"test_freq: *\d+", "test_freq: 2", text)
    text = re.sub(r"disp_freq: *\d+", "disp_freq: 1", text)
    (in_tmp / "job.conf").write_text(text)
    r = singa_run("-conf", "job.conf", cwd=in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    losses, tests = losses_and_tests(r.stdout)
    assert len(losses) == 4 and len(tests) == 3
    assert os.path.isfile(in_tmp / "examples/cifar10/checkpoint/step4-worker0")


def test_cifar10_cnn_example(in_tmp):
    write_batches(in_tmp / "raw", n=40)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "cifar10_cnn.py"), "--data-dir",
                        str(in_tmp / "raw"), "--steps", "3", "--test-steps", "1", "--test-freq", "2",
                        "--test-batch", "20"], cwd=in_tmp, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr + r.stdout
    assert "Final test metrics" in r.stdout and len(losses_and_tests(r.stdout)[1]) == 3


@needs_fashion
def test_mnist_conv_conf_learns(in_tmp):
    os.makedirs("examples/mnist")
    for split, out in (("train", "train_data.bin"), ("t10k", "test_data.bin")):
        r = run([os.path.join(BIN, "singa-create-data"), "mnist",
                 os.path.join(FASHION_DIR, "%s-images-idx3-ubyte.gz" % split),
                 os.path.join(FASHION_DIR, "%s-labels-idx1-ubyte.gz" % split), "examples/mnist/" + out], in_tmp)
        assert r.returncode == 0, r.stderr
    text = open(os.path.join(CONF_DIR, "mnist-conv.conf")).read()
    text = re.sub(r"train_steps: *\d+", "train_steps: 60", text)
    text = re.sub(r"test_steps: *\d+", "test_steps: 5", text)
    text = re.sub(r"test_freq: *\d+", "test_freq: 30", text)
    text = re.sub(r"disp_freq: *\d+", "disp_freq: 10", text)
    (in_tmp / "job.conf").write_text(text)
    r = singa_run("-conf", "job.conf", cwd=in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    losses, tests = losses_and_tests(r.stdout)
    assert losses[-1] < 0.7 * losses[0] and tests[-1] > 0.5


@needs_fashion
def test_mnist_cnn_example(in_tmp):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "mnist_cnn.py"), "--dataset", "fashion_mnist",
                        "--steps", "30", "--test-steps", "3", "--test-freq", "15"], cwd=in_tmp, capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr + r.stdout
    assert len(losses_and_tests(r.stdout)[1]) == 3
