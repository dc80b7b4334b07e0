# covers: examples/*.py (the documented full runs)
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


def test_lenet_reaches_91_percent_on_fashion_mnist(in_tmp):
    # conv.conf's LeNet with dropout 0.5 after the dense layer and the lr annealed 0.01 -> 0.001 ->
    # 0.0001 (the README's run: 91.4%); conv.conf's own inverse schedule gave 90.3-90.8%.
    acc = final_test_accuracy("mnist_cnn.py", ["--steps", "15000", "--dropout", "0.5", "--lr-type", "manual",
                                               "--step", "0", "10000", "13000", "--step-lr", "0.01", "0.001", "0.0001",
                                               "--test-freq", "5000", "--test-steps", "100"], in_tmp)
    assert acc >= 0.91


def test_downpour_and_hogwild_within_a_point_of_synchronous_training(in_tmp):
    # the same 768,000 samples (12,000 steps of one worker, or 6,000 steps of each of 2 groups), the
    # same settings (SGD momentum 0.9, rate 0.02 falling 5x at 1/2 and 3/4); benchmarks/README.md
    import json
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_async.py"), "--steps", "6000",
                        "--lr", "0.02"], cwd=in_tmp, capture_output=True, text=True,
                       timeout=3600, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr + r.stdout
    runs = {d["mode"]: d for d in map(json.loads, re.findall(r"^(\{.*\})$", r.stdout, re.M))}
    sync = runs["sync"]["test"]["acc"]
    assert sync >= 0.885
    for mode in ("downpour", "hogwild"):
        assert runs[mode]["samples"] == runs["sync"]["samples"]
        assert abs(runs[mode]["test"]["acc"] - sync) <= 0.01, (mode, runs[mode]["test"]["acc"], sync)
        assert "12000 updates applied for 12000 pushes" in runs[mode]["servers"]
