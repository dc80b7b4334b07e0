"""Fuzz the plain idx reader (singa.io.idx.read_idx, as read_mnist_images/labels use it).

Seeds: MNIST-like image and label files and other dtypes, written with write_idx.
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy  # noqa: E402

from singa.io.idx import read_idx, write_idx  # noqa: E402

_DIR = tempfile.mkdtemp(prefix="singa-fuzz-idx-raw-")
_PATH = os.path.join(_DIR, "input-idx")


def one_input(data: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(data)
    read_idx(_PATH)


def _written(array, name="seed"):
    path = write_idx(os.path.join(_DIR, name), array)
    with open(path, "rb") as f:
        return f.read()


def seeds():
    return [
        _written(numpy.arange(2 * 4 * 4, dtype=numpy.uint8).reshape(2, 4, 4)),
        _written(numpy.array([3, 1, 4, 1, 5], dtype=numpy.uint8)),
        _written(numpy.array([[-1.5, 2.0], [0.25, 1e9]], dtype=numpy.float32)),
        _written(numpy.array([-7, 1 << 20], dtype=numpy.int32)),
        _written(numpy.zeros((1, 1, 1, 2), dtype=numpy.int16)),
    ]


if __name__ == "__main__":
    from _runner import main
    main(one_input, seeds)
