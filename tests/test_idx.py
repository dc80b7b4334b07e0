# covers: singa/io/idx.py
"""MNIST idx files: header layout, gzip detection, round trips and every kind of bad file."""
import gzip
import struct

import numpy
import pytest

from singa.errors import DataError
from singa.io.idx import read_idx, read_mnist, read_mnist_images, read_mnist_labels, write_idx


def test_header_bytes(tmp_path):
    imgs = numpy.arange(2 * 3 * 4, dtype=numpy.uint8).reshape(2, 3, 4)
    p = write_idx(tmp_path / "i", imgs)
    raw = open(p, "rb").read()
    assert raw[:16] == struct.pack(">IIII", 2051, 2, 3, 4)
    assert raw[16:] == imgs.tobytes()
    lab = write_idx(tmp_path / "l", numpy.array([3, 1], numpy.uint8))
    assert open(lab, "rb").read() == struct.pack(">II", 2049, 2) + b"\x03\x01"


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
def test_round_trip_dtypes(tmp_path, dtype):
    a = (numpy.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    for name in ("a.idx", "a.idx.gz"):
        b = read_idx(write_idx(tmp_path / name, a))
        assert b.dtype == numpy.dtype(dtype) and b.shape == a.shape and numpy.array_equal(a, b)


def test_gzip_detected_by_content(tmp_path):
    imgs = numpy.ones((3, 2, 2), numpy.uint8)
    write_idx(tmp_path / "x.gz", imgs)
    (tmp_path / "x-no-suffix").write_bytes((tmp_path / "x.gz").read_bytes())
    assert numpy.array_equal(read_mnist_images(tmp_path / "x-no-suffix"), imgs)


def test_read_mnist_pairs(tmp_path):
    imgs = numpy.zeros((5, 28, 28), numpy.uint8)
    lab = numpy.arange(5, dtype=numpy.uint8)
    i, l = read_mnist(write_idx(tmp_path / "i.gz", imgs), write_idx(tmp_path / "l", lab))
    assert i.shape == (5, 28, 28) and l.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(DataError, match=r"(?s)holds 5 images but .*l4 holds 4 labels.*train-\*"):
        read_mnist(tmp_path / "i.gz", write_idx(tmp_path / "l4", lab[:4]))


def test_bad_magic_swapped_files(tmp_path):
    write_idx(tmp_path / "i", numpy.zeros((2, 2, 2), numpy.uint8))
    write_idx(tmp_path / "l", numpy.zeros(2, numpy.uint8))
    with pytest.raises(DataError, match=r"(?s)magic number of idx file .*l\. Expected magic 2051 \(MNIST images\)\. "
                                        r"Received: 2049.*swapped"):
        read_mnist_images(tmp_path / "l")
    with pytest.raises(DataError, match="Expected magic 2049"):
        read_mnist_labels(tmp_path / "i")
    (tmp_path / "junk").write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(DataError, match="magic number"):
        read_idx(tmp_path / "junk")


def test_truncated_and_extra(tmp_path):
    p = tmp_path / "i"
    write_idx(p, numpy.zeros((3, 4, 4), numpy.uint8))
    raw = p.read_bytes()
    p.write_bytes(raw[:-5])
    with pytest.raises(DataError, match=r"(?s)truncated: its header promises 3x4x4 items \(48 bytes of data\), it "
                                        r"holds 43 bytes.*download"):
        read_mnist_images(p)
    p.write_bytes(raw + b"!")
    with pytest.raises(DataError, match="extra bytes"):
        read_mnist_images(p)
    p.write_bytes(raw[:10])
    with pytest.raises(DataError, match="truncated inside its header"):
        read_mnist_images(p)
    p.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short"):
        read_idx(p)
    g = tmp_path / "g.gz"
    g.write_bytes(gzip.compress(raw)[:-12])
    with pytest.raises(DataError, match="damaged gzip"):
        read_idx(g)


def test_missing(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope")


def test_write_rejects_unsupported(tmp_path):
    with pytest.raises(DataError, match="dtype"):
        write_idx(tmp_path / "x", numpy.zeros(3, numpy.complex64))
    with pytest.raises(DataError, match="dimensions"):
        write_idx(tmp_path / "x", numpy.uint8(3))
