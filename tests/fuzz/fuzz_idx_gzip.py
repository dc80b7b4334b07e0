"""Fuzz the gzip-compressed idx reader (singa.io.idx.read_idx, as read_mnist_images/labels use it).

An input that starts with the gzip magic is the file itself (mutations hit the gzip/deflate
layer); any other input is compressed here first, so mutations also reach the idx header and
body behind a valid gzip stream.

Seeds: MNIST-like image and label files and other dtypes, written with write_idx (gzip, as .gz
names make it), and the same files uncompressed.
"""
import gzip
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy  # noqa: E402

from singa.io.idx import read_idx, write_idx  # noqa: E402

_DIR = tempfile.mkdtemp(prefix="singa-fuzz-idx-gzip-")
_PATH = os.path.join(_DIR, "input-idx.gz")


def one_input(data: bytes) -> None:
    if data[:2] != b"\x1f\x8b":
        data = gzip.compress(data, compresslevel=1, mtime=0)
    with open(_PATH, "wb") as f:
        f.write(data)
    read_idx(_PATH)


def _written(array, name="seed.gz"):
    path = write_idx(os.path.join(_DIR, name), array)
    with open(path, "rb") as f:
        return f.read()


def seeds():
    gz = _gz_seeds()
    return gz + [gzip.decompress(s) for s in gz[:3]]


def _gz_seeds():
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
