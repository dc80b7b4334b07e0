"""Fuzz the CIFAR-10 binary batch reader (singa.io.create_data._read_cifar_file) and, for small
inputs, the whole conversion (convert_cifar10) with the input as every batch file.

Seeds: batches in CIFAR-10's binary format (a label byte, then 3072 CHW pixel bytes per image).
The reader handles only the binary version; it never unpickles anything.
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy  # noqa: E402

from singa.io.create_data import CIFAR_TEST, CIFAR_TRAIN, _read_cifar_file, convert_cifar10  # noqa: E402

_DIR = tempfile.mkdtemp(prefix="singa-fuzz-cifar-batch-")
_SRC = os.path.join(_DIR, "batches")
_OUT = os.path.join(_DIR, "out")
os.makedirs(_SRC, exist_ok=True)


def one_input(data: bytes) -> None:
    path = os.path.join(_SRC, CIFAR_TEST)
    with open(path, "wb") as f:
        f.write(data)
    _read_cifar_file(path)
    if data and data[-1] & 1 and len(data) <= 4 * 3073:
        for name in CIFAR_TRAIN:
            with open(os.path.join(_SRC, name), "wb") as f:
                f.write(data)
        convert_cifar10(_SRC, _OUT)


def batch(n, seed=0):
    rng = numpy.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n, dtype=numpy.uint8)
    pixels = rng.integers(0, 256, size=(n, 3072), dtype=numpy.uint8)
    return numpy.concatenate([labels[:, None], pixels], axis=1).tobytes()


def seeds():
    return [batch(1), batch(2, seed=1), bytes([9]) + bytes(3072)]


if __name__ == "__main__":
    from _runner import main
    main(one_input, seeds)
