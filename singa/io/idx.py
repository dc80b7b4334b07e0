"""The idx format of the MNIST files (and Fashion-MNIST), plain or gzip-compressed.

Header: two zero bytes, a type byte (0x08 ubyte, 0x09 sbyte, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64), the number of dimensions, then one big-endian uint32 per
dimension; the data follow big-endian, row-major. As a big-endian int the first four bytes
are the "magic": 2051 for MNIST images (ubyte, 3 dims), 2049 for labels (ubyte, 1 dim).
"""
import gzip
import math
import os
import struct
import sys
import zlib

import numpy

from singa.errors import DataError
from singa.io.atomic import write_bytes_atomic

MAGIC_IMAGES = 2051
MAGIC_LABELS = 2049

_TYPES = {0x08: numpy.dtype("u1"), 0x09: numpy.dtype("i1"), 0x0B: numpy.dtype(">i2"),
          0x0C: numpy.dtype(">i4"), 0x0D: numpy.dtype(">f4"), 0x0E: numpy.dtype(">f8")}
_CODES = {numpy.dtype(v).newbyteorder("=").str[1:]: k for k, v in _TYPES.items()}

_HINT = ("use the original files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-...; .gz or "
         "gunzipped) and download them again if they are damaged")


_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20            # compressed bytes fed to the inflater at a time
# Deflate cannot inflate more than 1032:1 (one 258-byte match per two 1-bit codes), so a gzip
# file of C bytes holds at most 1032 * C bytes: a header promising more is lying about itself.
_DEFLATE_MAX_RATIO = 1032
_MAX_DIMS = 64              # numpy's limit on dimensions (MNIST files have 1 or 3)


def _gzip_error(path, what):
    return DataError("idx file %s is a damaged gzip file: %s.\nhelp: %s; delete the cached or downloaded copy so "
                     "that it is fetched again" % (path, what, _HINT))


class _Gunzip:
    """Inflate a gzip file a piece at a time: ``read(n)`` never holds more than ``n`` bytes of
    output, so a decompression bomb costs only what the caller asked for."""

    def __init__(self, f, path):
        self.f, self.path = f, path
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.pending = b""       # compressed bytes read from the file but not yet fed
        self.done = False        # every member ended and the rest of the file was checked

    def _feed(self):
        data = self.d.unconsumed_tail or self.pending or self.f.read(_CHUNK)
        self.pending = b""
        return data

    def _next_member(self):
        """After a member's end: start the next member, accept zero padding, or reject garbage
        (what gzip(1) and Python's gzip module do)."""
        rest = self.d.unused_data
        while len(rest) < 2:
            more = self.f.read(_CHUNK)
            if not more:
                break
            rest += more
        if not rest:
            self.done = True
        elif rest[:2] == _GZIP_MAGIC:
            self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self.pending = rest
        else:
            while rest:
                if rest.count(0) != len(rest):
                    raise _gzip_error(self.path, "bytes that are neither gzip data nor zero padding follow the "
                                                 "compressed stream")
                rest = self.f.read(_CHUNK)
            self.done = True

    def read(self, n):
        out = bytearray()
        while len(out) < n and not self.done:
            if self.d.eof:
                self._next_member()
                continue
            data = self._feed()
            try:
                got = self.d.decompress(data, n - len(out))
            except zlib.error as e:
                raise _gzip_error(self.path, "the compressed stream is corrupt (zlib: %s)" % e) from None
            if not data and not got and not self.d.eof:
                raise _gzip_error(self.path, "the compressed stream is truncated (the file ends before the gzip "
                                             "end marker)")
            out += got
        return out      # a bytearray: numpy views it without a copy


class _Plain:
    def __init__(self, f):
        self.f = f

    def read(self, n):
        return self.f.read(n)


def _open(path):
    if not os.path.isfile(path):
        raise DataError("idx file %s does not exist.\nhelp: %s" % (path, _HINT))
    try:
        return open(path, "rb")
    except OSError as e:
        raise DataError("idx file %s cannot be opened (%s).\nhelp: check its permissions; %s"
                        % (path, e.strerror or e, _HINT)) from None


def read_idx(path, expect_magic=None):
    """The array stored in an idx file (dtype as stored, in native byte order).

    The header is checked against the file before anything is allocated; a gzip file is
    inflated only up to the size its header declares."""
    path = os.fspath(path)
    with _open(path) as f:
        try:
            return _read_idx(f, path, expect_magic)
        except OSError as e:
            if isinstance(e, DataError):
                raise
            raise DataError("idx file %s cannot be read (%s).\nhelp: %s" % (path, e.strerror or e, _HINT)) from None


def _read_idx(f, path, expect_magic):
    size = os.fstat(f.fileno()).st_size
    gz = f.read(2) == _GZIP_MAGIC       # gzip, whatever the file is called
    f.seek(0)
    stream = _Gunzip(f, path) if gz else _Plain(f)
    first = stream.read(4)
    if len(first) < 4:
        raise DataError("idx file %s is too short (%d bytes) to hold an idx header.\nhelp: %s"
                        % (path, len(first), _HINT))
    magic = struct.unpack(">I", first)[0]
    zero, code, ndim = first[0:2], first[2], first[3]
    if zero != b"\0\0" or code not in _TYPES or ndim == 0 or (expect_magic is not None and magic != expect_magic):
        want = ("magic %d (%s)" % (expect_magic, {MAGIC_IMAGES: "MNIST images", MAGIC_LABELS: "MNIST labels"}
                                   .get(expect_magic, "idx")) if expect_magic is not None
                else "an idx magic number (0x0000TTNN)")
        raise DataError("Invalid value for the magic number of idx file %s. Expected %s. Received: %d (0x%08x)."
                        "\nhelp: %s; check that images and labels were not swapped" % (path, want, magic, magic, _HINT))
    if ndim > _MAX_DIMS:
        raise DataError("Invalid value for the number of dimensions of idx file %s. Expected 1 to %d. Received: %d."
                        "\nhelp: the header is damaged; %s" % (path, _MAX_DIMS, ndim, _HINT))
    head = 4 + 4 * ndim
    raw_dims = stream.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError("idx file %s is truncated inside its header (%d of %d bytes).\nhelp: %s"
                        % (path, 4 + len(raw_dims), head, _HINT))
    dims = struct.unpack(">%dI" % ndim, raw_dims)
    dt = _TYPES[code]
    need = math.prod(dims) * dt.itemsize      # Python ints: no wrap-around, however large
    shown = "x".join(map(str, dims))
    if math.prod(d for d in dims if d) * dt.itemsize > sys.maxsize:
        # numpy refuses such a shape even when a 0 dim makes it empty
        raise DataError("Invalid value for the dimensions of idx file %s. Expected a shape numpy can hold (at most "
                        "%d bytes). Received: %s.\nhelp: the header is damaged; %s" % (path, sys.maxsize, shown, _HINT))
    if not gz:
        have = size - head
        if have != need:
            raise DataError("idx file %s is %s: its header promises %s items (%d bytes of data), it holds %d bytes."
                            "\nhelp: %s" % (path, "truncated" if have < need else "corrupt (extra bytes at the end)",
                                            shown, need, have, _HINT))
    elif head + need > _DEFLATE_MAX_RATIO * size:
        raise DataError("idx file %s is damaged: its header promises %s items (%d bytes of data), more than a gzip "
                        "file of %d bytes can hold (deflate inflates at most %d:1).\nhelp: %s"
                        % (path, shown, need, size, _DEFLATE_MAX_RATIO, _HINT))
    body = stream.read(need)
    if len(body) < need:
        raise DataError("idx file %s is truncated: its header promises %s items (%d bytes of data), it holds %d bytes."
                        "\nhelp: %s" % (path, shown, need, len(body), _HINT))
    if gz and stream.read(1):
        # the idx format has no room for anything after the data (plain files are held to the same)
        raise DataError("idx file %s is corrupt (extra bytes at the end): its gzip stream inflates to more than the "
                        "%d bytes its header declares (%s items); a damaged file or a decompression bomb.\nhelp: %s"
                        % (path, head + need, shown, _HINT))
    arr = numpy.frombuffer(body, dtype=dt).reshape(dims)
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
    write_bytes_atomic(path, body)
    return path
