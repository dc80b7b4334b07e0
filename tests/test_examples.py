# covers: examples/mnist_mlp.py, examples/train_mnist.py, examples/train_cifar10.py
"""Every example runs (few steps) on real data."""
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.test_datasets import needs_fashion
from tests.test_text_data import needs_fortunes


@needs_fashion
def test_mnist_mlp_example_few_steps(in_tmp):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "mnist_mlp.py"), "--dataset", "fashion_mnist",
                        "--steps", "20", "--lr", "0.01", "--momentum", "0.9", "--test-freq", "10",
                        "--test-steps", "3", "--history", "hist"], cwd=in_tmp, capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr + r.stdout
    assert "Dataset: fashion_mnist" in r.stdout
    # m.history: every step, the display steps and the tests, as CSV and as a picture
    rows = (in_tmp / "hist.csv").read_text().splitlines()
    assert rows[0] == "phase,step,acc,loss" and sum(r.startswith("step,") for r in rows) == 20
    assert sum(r.startswith("test,") for r in rows) == 3
    assert (in_tmp / "hist.png").read_bytes()[:4] == b"\x89PNG"
    acc = [float(a) for a in re.findall(r"Test @ step \d+: loss = [\d.]+, accuracy = ([\d.]+)", r.stdout)]
    assert len(acc) == 3 and acc[-1] > 0.3
    assert "Final test metrics" in r.stdout
    assert os.path.isfile(in_tmp / "examples/fashion_mnist/checkpoint/step20-worker0")


@needs_fashion
def test_interactive_train_mnist_example(in_tmp):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "train_mnist.py"), "--dataset", "fashion_mnist",
                        "--steps", "60", "--hidden", "128", "--lr", "0.01"], cwd=in_tmp, capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr + r.stdout
    losses = [float(v) for v in re.findall(r"Step +\d+: Loss = ([\d.]+)", r.stdout)]
    assert len(losses) == 6 and losses[-1] < losses[0]
    acc = float(re.search(r"Test accuracy: ([\d.]+) \(10000 test images\)", r.stdout).group(1))
    assert acc > 0.5
    assert os.path.isfile(in_tmp / "examples/mnist_interactive/checkpoint/step60-worker0")


def test_interactive_train_cifar10_example(in_tmp):
    from tests.test_cifar10_data import write_batches
    write_batches(in_tmp / "raw", n=100)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "train_cifar10.py"), "--data-dir",
                        str(in_tmp / "raw"), "--steps", "10", "--test-images", "100"], cwd=in_tmp, capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT,
                                                       SINGA_CIFAR10_DIR=str(in_tmp / "cache")))
    assert r.returncode == 0, r.stderr + r.stdout
    assert re.search(r"Step  10: Loss = [\d.]+, accuracy = [\d.]+", r.stdout)
    assert re.search(r"Test accuracy: [\d.]+ \(100 test images\)", r.stdout)


@needs_fortunes
def test_char_rnn_example_trains_and_samples(in_tmp):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "char_rnn.py"), "--steps", "12", "--hidden",
                        "32", "--lr", "0.01", "--length", "60"], cwd=in_tmp, capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr + r.stdout
    assert "data has" in r.stdout and "101 in vocab.txt" in r.stdout        # made the fortunes text on the first run
    assert re.search(r"Train @ step 11: loss = [\d.]+", r.stdout)
    sample = r.stdout.split("Sample (temperature 1, from examples/char-rnn/checkpoint/step12-worker0):\n")[1]
    assert sample.startswith("T") and len(sample) >= 50
    g = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "char_rnn.py"), "--steps", "2", "--hidden",
                        "32", "--greedy", "--length", "20"], cwd=in_tmp, capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert g.returncode == 0, g.stderr + g.stdout
    assert "data has" not in g.stdout and "Sample (greedy (argmax)" in g.stdout    # the text is reused


@needs_fortunes
def test_rnnlm_example_prints_loss_and_ppl(in_tmp):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "rnnlm.py"), "--steps", "20",
                        "--validate-steps", "3"], cwd=in_tmp, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr + r.stdout
    assert re.search(r"rnnlm: \d+ words in 100 classes", r.stdout)
    assert re.search(r"Final training metrics: .*loss = [\d.]+.*ppl = [\d.]+", r.stdout)
    assert re.search(r"Final validation metrics: .*ppl = [\d.]+", r.stdout)


@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist") or
                    not os.path.isfile("/usr/share/games/fortunes/computers"),
                    reason="Debian's dataset-fashion-mnist and fortunes are needed")
def test_conf_table_runs_a_conf(tmp_path):
    """benchmarks/conf_table.py makes its data and runs one conf (every conf: docs/singa-v0.md)."""
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "conf_table.py"), "--workdir",
                        str(tmp_path), "--cifar-images", "500", "--only", "v0.1/mnist-conv"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    row = [l for l in r.stdout.splitlines() if l.startswith("| v0.1/mnist-conv.conf")]
    assert len(row) == 1 and "FAILED" not in row[0] and "NOT FALLING" not in row[0], r.stdout
