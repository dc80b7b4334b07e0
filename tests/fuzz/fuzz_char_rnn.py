"""Fuzz the kCharRNN data layer's files (singa/layers/charrnn.py): ``read_vocab`` and the text
read at the first batch, then a few batches (blobs checked against the text), the read position
saved and restored, kOneHot on the blobs and kCharRNNOutput decoding them through vocab.txt.

The input: byte 0 picks the layer (batchsize 1 + bits 0-1, unroll_len 1 + bits 2-4, batches
1 + bits 5-7), byte 1 is vocab.txt's length n, the next n bytes are vocab.txt, the rest the text.
Seeds: vocabularies made from their texts (ASCII prose, UTF-8, every byte value).
"""
import io
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy  # noqa: E402

from singa.proto import job_pb2  # noqa: E402
from singa.testing import build_layer  # noqa: E402

_DIR = tempfile.mkdtemp(prefix="singa-fuzz-char-rnn-")
_TEXT = os.path.join(_DIR, "text.txt")
_VOCAB = os.path.join(_DIR, "vocab.txt")


def split(data):
    """(batchsize, unroll_len, batches, vocab bytes, text bytes) of one input."""
    h = data[0] if data else 0
    n = data[1] if len(data) > 1 else 0
    return 1 + (h & 3), 1 + ((h >> 2) & 7), 1 + (h >> 5), data[2:2 + n], data[2 + n:]


def one_input(data: bytes) -> None:
    B, U, batches, vocab, text = split(data)
    with open(_VOCAB, "wb") as f:
        f.write(vocab)
    with open(_TEXT, "wb") as f:
        f.write(text)
    conf = ('name: "data" type: kCharRNN char_rnn_conf { path: "%s" vocab_path: "%s" batchsize: %d unroll_len: %d }'
            % (_TEXT, _VOCAB, B, U))
    layer = build_layer(conf, [])
    assert layer.out_shape == (B,)
    layer.next_batch()                      # the files are read here (load), as in SINGA
    D = layer.vocab_size
    assert D == len(vocab)
    idx = {c: i for i, c in enumerate(vocab)}
    onehot = build_layer('name: "onehot" type: kOneHot onehot_conf { vocab_size: %d }' % D, [(B,)])
    out = build_layer('name: "out" type: kCharRNNOutput char_rnn_conf { vocab_path: "%s" }' % _VOCAB, [(B,)])
    out.stream = io.StringIO()
    layer.offset = 0
    for step in range(batches):
        if step == 1:
            saved = layer.pos
        offset = layer.offset
        layer.next_batch()
        assert len(layer.datavec) == U + 1
        for l, blob in enumerate(layer.datavec):
            want = [idx[text[r * layer.segment + offset + l]] for r in range(B)]
            numpy.testing.assert_array_equal(blob, want)
        y = onehot.forward(job_pb2.kTrain, [layer])
        assert y.shape == (B, D) and (y.sum(axis=1) == 1).all()
        out.forward(job_pb2.kTest, [layer])
    if batches > 1:
        again = layer.datavec[0].copy()
        layer.pos = saved
        for _ in range(batches - 1):
            layer.next_batch()
        numpy.testing.assert_array_equal(layer.datavec[0], again)


def _input(text, B=2, U=3, batches=4, vocab=None):
    vocab = bytes(sorted(set(text))) if vocab is None else vocab
    return bytes([(B - 1) | (U - 1) << 2 | (batches - 1) << 5, len(vocab)]) + vocab + text


def seeds():
    prose = b"The quick brown fox jumps over the lazy dog.\nA second line, with a tab\there.\n"
    utf8 = "caf\xe9 na\xefve \u2014 \u00bfqu\xe9? \U0001f600\n".encode("utf-8") * 3
    every = bytes(range(255)) * 2                       # every byte but 0xff (vocab.txt holds at most 255 here)
    return [_input(prose), _input(prose, B=4, U=8, batches=8, vocab=bytes(sorted(set(prose)))[::-1]),
            _input(utf8, B=1, U=5, batches=3), _input(every, B=3, U=2, batches=2)]


if __name__ == "__main__":
    from _runner import main
    main(one_input, seeds)
