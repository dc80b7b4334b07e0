# covers: benchmarks/torch_charrnn.py (the PyTorch side of the char-rnn comparisons)
"""The PyTorch char-rnn reference cuts batches as kCharRNN does, and its two cells (SINGA's formulas
written out, and torch.nn.GRU with zero hidden-side biases) are the same function."""
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
