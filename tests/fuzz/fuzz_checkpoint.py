"""Fuzz the SINGA checkpoint reader (singa.io.checkpoint): decode_checkpoint on the raw bytes and
read_checkpoint on them as a file, plus the shape check the driver applies on load.

Seeds: BlobProtos written with write_checkpoint (several params with/without the 0# prefix, a
1-D and a 4-D blob).
"""
import os
import sys
import tempfile

import numpy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from singa.io import checkpoint as ckpt  # noqa: E402

_DIR = tempfile.mkdtemp(prefix="singa-fuzz-checkpoint-")
_PATH = ckpt.checkpoint_file(_DIR, 1)
os.makedirs(os.path.dirname(_PATH), exist_ok=True)


def one_input(data: bytes) -> None:
    params = ckpt.decode_checkpoint(data, "<fuzz>")
    for name, arr, version in params:
        assert isinstance(name, str) and arr.dtype == numpy.float32 and isinstance(version, int)
        ckpt.shapes_conflict(arr.shape, (arr.size,))
    with open(_PATH, "wb") as f:
        f.write(data)
    assert len(ckpt.read_checkpoint(_PATH, strip=bool(data and data[-1] & 1))) == len(params)


def _written(params, prefix=True):
    return b"".join(ckpt.encode_checkpoint(params, prefix))


def seeds():
    r = numpy.random.RandomState(0)
    return [
        _written([("w1", r.rand(3, 2), 5), ("b1", r.rand(2), 5)]),
        _written([("conv1_weight", r.rand(2, 1, 2, 2), 0)], prefix=False),
        _written([("b", numpy.zeros(1), 1)]),
    ]


if __name__ == "__main__":
    from _runner import main
    main(one_input, seeds)
