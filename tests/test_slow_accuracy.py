"""The documented full runs (long; `pytest -m slow`). Each takes several minutes on 2 cores."""
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.test_datasets import needs_fashion

pytestmark = [pytest.mark.slow, needs_fashion]


def final_test_accuracy(script, args, cwd):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script), "--dataset", "fashion_mnist"] + args,
                       cwd=cwd, capture_output=True, text=True, timeout=3600, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr + r.stdout
    return [float(a) for a in re.findall(r"Test @ step \d+: loss = [\d.]+, accuracy = ([\d.]+)", r.stdout)][-1]


def test_seed_mlp_reaches_88_percent_on_fashion_mnist(in_tmp):
    acc = final_test_accuracy("mnist_mlp.py", ["--steps", "12000", "--lr", "0.01", "--momentum", "0.9",
                                               "--lr-type", "manual", "--step", "0", "6000", "9000",
                                               "--step-lr", "0.01", "0.003", "0.001",
                                               "--test-freq", "3000", "--test-steps", "100"], in_tmp)
    assert acc >= 0.88


@pytest.mark.xfail(strict=False, reason="issue 3: conv.conf's LeNet reaches 90.27% (10,000 steps) and 90.77% "
                                        "(20,000 steps) on Fashion-MNIST, short of 91%")
def test_lenet_reaches_91_percent_on_fashion_mnist(in_tmp):
    acc = final_test_accuracy("mnist_cnn.py", ["--steps", "10000", "--test-freq", "5000", "--test-steps", "100"],
                              in_tmp)
    assert acc >= 0.91
