# covers: benchmarks/torch_charrnn.py, benchmarks/torch_rnnlm.py (the PyTorch sides of bench_rnn.py)
"""The PyTorch char-rnn reference cuts batches as kCharRNN does, and its two cells (SINGA's formulas
written out, and torch.nn.GRU with zero hidden-side biases) are the same function; the PyTorch
rnnlm cuts kData's windows and trains to the same losses as rnnlm-job.conf's net on singa."""
import os
import sys

import numpy
import pytest

from tests.conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import torch_charrnn as ref  # noqa: E402


def test_batches_cut_segments_overlap_by_one_and_wrap_inside_the_segment():
    ids = numpy.arange(100)
    b = ref.Batches(ids, batch=4, unroll=6)          # segments of 25: [0, 25), [25, 50), ...
    w1, w2, w3, w4, w5 = (next(b) for _ in range(5))
    assert w1.shape == (7, 4)
    numpy.testing.assert_array_equal(w1[:, 1], numpy.arange(25, 32))
    numpy.testing.assert_array_equal(w2[0], w1[-1])              # consecutive windows share one char
    numpy.testing.assert_array_equal(w3[:, 0], numpy.arange(12, 19))
    numpy.testing.assert_array_equal(w4[:, 0], numpy.arange(18, 25))     # up to the segment's last char
    # offset 24: 24 + 6 would read past the segment, so it wraps to the start
    numpy.testing.assert_array_equal(w5, w1)
    with pytest.raises(ValueError, match="too short"):
        ref.Batches(numpy.arange(20), batch=4, unroll=6)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        ref.encode("abcx", "abc")


def test_nn_gru_with_zero_hidden_biases_is_singas_gru():
    torch = pytest.importorskip("torch")
    vocab = "abcdef\n"
    window = numpy.random.default_rng(0).integers(0, len(vocab), size=(6, 3))
    singa_loss, ps = ref.make_model(len(vocab), "singa", hidden=5, seed=1)
    torch_loss, pt = ref.make_model(len(vocab), "nn.GRU", hidden=5, seed=2)
    zx, rx, cx, zh, rh, ch, bz, br, bc, ow, ob = ps
    with torch.no_grad():               # torch's gate order is (r, z, n)
        for dst, parts in zip(pt, [(rx, zx, cx), (rh, zh, ch), (br, bz, bc), (ow,), (ob,)]):
            dst.copy_(torch.cat(parts))
    a, b = singa_loss(window), torch_loss(window)
    assert abs(a.item() - b.item()) < 1e-5 * abs(a.item())


def test_torch_rnnlm_trains_as_rnnlm_job_conf_does_on_singa(tmp_path):
    """rnnlm-job.conf's net (BPWorker, kSGD lr 0.1) and torch_rnnlm from singa's initial params, on
    the same generated WordRecord file: the same windows and the same loss, step after step."""
    pytest.importorskip("torch")
    import torch_rnnlm as tr
    from benchmarks.bench_rnn import rnnlm_singa
    from singa.io.rnnlm_data import read_word_records
    path = str(tmp_path / "words.bin")
    vocab, n = tr.write_word_records(path, n=20000, seed=3)
    rows, _ = read_word_records(path)
    assert vocab == 3720 and n == len(rows) and len(set(rows[:, 1].tolist())) == 100
    sizes = rows[:, 3] - rows[:, 2]
    assert sizes.min() == 1 and sizes.max() > 100          # Zipf classes: single words up to hundreds
    sstep, net = rnnlm_singa(path)
    tstep, _ = tr.train_step_fn(rows, [numpy.array(p.data) for p in net.owner_params])
    windows = tr.windows(rows)
    data = net.data_layers[0]
    for _ in range(8):
        (a, na), (b, nb) = sstep(), tstep()
        numpy.testing.assert_array_equal(next(windows), data.rows[:data.window + 1])
        assert na == nb and 1 <= na <= 10
        assert abs(a - b) <= 1e-4 * abs(a)
