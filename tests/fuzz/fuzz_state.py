"""Fuzz the training-state reader (singa.io.checkpoint.read_state) and the checkpoint CRC check
(verify_checkpoint) on arbitrary bytes as ``<checkpoint>.state.npz``.

Seeds: state files written by write_checkpoint_and_state (updater arrays and resume metadata as
the driver writes them; an empty state).
"""
import os
import sys
import tempfile

import numpy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from singa.io import checkpoint as ckpt  # noqa: E402

_DIR = tempfile.mkdtemp(prefix="singa-fuzz-state-")
_CKPT = ckpt.checkpoint_file(_DIR, 2)
ckpt.write_checkpoint(_CKPT, [("w", numpy.ones((2, 2), "f4"), 1)])


def one_input(data: bytes) -> None:
    with open(ckpt.state_file(_CKPT), "wb") as f:
        f.write(data)
    ckpt.verify_checkpoint(_CKPT)
    arrays, meta = ckpt.read_state(_CKPT)
    assert isinstance(arrays, dict) and isinstance(meta, dict)


def _written(arrays, meta):
    path = ckpt.checkpoint_file(_DIR, 1)
    ckpt.write_checkpoint_and_state(path, [("w", numpy.ones((2, 2), "f4"), 1)], arrays, meta)
    with open(ckpt.state_file(path), "rb") as f:
        return f.read()


def seeds():
    return [
        _written({"updater/w/history": numpy.zeros((2, 2), "f4")},
                 {"step": 2, "seed": 0, "rng": {"init/w": [1, 2]}, "data_positions": {"0/data": 16}}),
        _written({}, {}),
    ]


if __name__ == "__main__":
    from _runner import main
    main(one_input, seeds)
