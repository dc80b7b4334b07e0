"""The idx format of the MNIST files (and Fashion-MNIST), plain or gzip-compressed.

Header: two zero bytes, a type byte (0x08 ubyte, 0x09 sbyte, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64), the number of dimensions, then one big-endian uint32 per
dimension; the data follow big-endian, row-major. As a big-endian int the first four bytes
are the "magic": 2051 for MNIST images (ubyte, 3 dims), 2049 for labels (ubyte, 1 dim).
"""
import gzip
import os
import struct

import numpy

from singa.errors import DataError

MAGIC_IMAGES = 2051
MAGIC_LABELS = 2049

_TYPES = {0x08: numpy.dtype("u1"), 0x09: numpy.dtype("i1"), 0x0B: numpy.dtype(">i2"),
          0x0C: numpy.dtype(">i4"), 0x0D: numpy.dtype(">f4"), 0x0E: numpy.dtype(">f8")}
_CODES = {numpy.dtype(v).newbyteorder("=").str[1:]: k for k, v in _TYPES.items()}

_HINT = ("use the original files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-...; .gz or "
         "gunzipped) and download them again if they are damaged")


def _read_bytes(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError("idx file %s does not exist.\nhelp: %s" % (path, _HINT))
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":  # gzip, whatever the file is called
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError("idx file %s is a damaged gzip file (%s).\nhelp: %s" % (path, e, _HINT)) from None
    return raw


def read_idx(path, expect_magic=None):
    """The array stored in an idx file (dtype as stored, in native byte order)."""
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError("idx file %s is too short (%d bytes) to hold an idx header.\nhelp: %s"
                        % (path, len(raw), _HINT))
    magic = struct.unpack(">I", raw[:4])[0]
    zero, code, ndim = raw[0:2], raw[2], raw[3]
    if zero != b"\0\0" or code not in _TYPES or ndim == 0 or (expect_magic is not None and magic != expect_magic):
        want = ("magic %d (%s)" % (expect_magic, {MAGIC_IMAGES: "MNIST images", MAGIC_LABELS: "MNIST labels"}
                                   .get(expect_magic, "idx")) if expect_magic is not None
                else "an idx magic number (0x0000TTNN)")
        raise DataError("Invalid value for the magic number of idx file %s. Expected %s. Received: %d (0x%08x)."
                        "\nhelp: %s; check that images and labels were not swapped" % (path, want, magic, magic, _HINT))
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DataError("idx file %s is truncated inside its header (%d of %d bytes).\nhelp: %s"
                        % (path, len(raw), head, _HINT))
    dims = struct.unpack(">%dI" % ndim, raw[4:head])
    dt = _TYPES[code]
    need = int(numpy.prod(dims, dtype=numpy.int64)) * dt.itemsize
    have = len(raw) - head
    if have != need:
        raise DataError("idx file %s is %s: its header promises %s items (%d bytes of data), it holds %d bytes."
                        "\nhelp: %s" % (path, "truncated" if have < need else "corrupt (extra bytes at the end)",
                                        "x".join(map(str, dims)), need, have, _HINT))
    arr = numpy.frombuffer(raw, dtype=dt, offset=head).reshape(dims)
    return arr.astype(dt.newbyteorder("="), copy=False) if dt.itemsize > 1 else arr


def read_mnist_images(path):
    """(N, rows, cols) uint8 from an idx3 image file (magic 2051)."""
    return read_idx(path, MAGIC_IMAGES)


def read_mnist_labels(path):
    """(N,) uint8 from an idx1 label file (magic 2049)."""
    return read_idx(path, MAGIC_LABELS)


def read_mnist(images_path, labels_path):
    """(images (N, rows, cols) uint8, labels (N,) uint8); DataError if the counts differ."""
    images = read_mnist_images(images_path)
    labels = read_mnist_labels(labels_path)
    if images.shape[0] != labels.shape[0]:
        raise DataError("MNIST files do not match: %s holds %d images but %s holds %d labels.\nhelp: pair the "
                        "training images with the training labels (train-*) and the test images with the test "
                        "labels (t10k-*)" % (images_path, images.shape[0], labels_path, labels.shape[0]))
    return images, labels


def write_idx(path, array):
    """Write ``array`` as an idx file (gzip-compressed when ``path`` ends with .gz), atomically."""
    arr = numpy.asarray(array)
    key = arr.dtype.newbyteorder("=").str[1:]
    if key not in _CODES:
        raise DataError("Invalid value for `array` dtype. Expected one of uint8, int8, int16, int32, float32, "
                        "float64. Received: %s" % arr.dtype)
    code = _CODES[key]
    if arr.ndim == 0 or arr.ndim > 255:
        raise DataError("Invalid value for `array` ndim. Expected 1..255 dimensions. Received: %d" % arr.ndim)
    body = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(">%dI" % arr.ndim, *arr.shape)
    body += numpy.ascontiguousarray(arr, dtype=_TYPES[code]).tobytes()
    path = os.fspath(path)
    if path.endswith(".gz"):
        body = gzip.compress(body, mtime=0)
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "wb") as f:
        f.write(body)
    os.replace(tmp, path)
    return path
