"""SINGA's "kvfile" store (a.k.a. DataShard), SINGA-V0.md 5.1.

A file is nothing but records back to back, with no header, magic, index or checksum::

    [key_len: 8 bytes LE][key bytes][val_len: 8 bytes LE][val bytes]  ...

The reader checks what SINGA did not: a missing or empty file, a record cut short at the
end and lengths that point past the end of the file raise DataError (file, byte offset,
record index and how to fix it). ``strict=False`` reads like SINGA: a truncated tail just
ends the iteration.
"""
import os
import struct

import numpy

from singa.errors import ConfigError, DataError
from singa.io.atomic import PublishOnClose

_LEN = struct.Struct("<Q")
BUFSIZE = 10485760  # SINGA's write buffer (10 MiB)

FIX_HINT = ("re-create the file (e.g. `singa-create-data mnist IMAGES_IDX LABELS_IDX OUT.bin`), or "
            "check that the path names a SINGA kvfile")


def _as_bytes(key):
    if isinstance(key, str):
        return key.encode("utf-8")
    return bytes(key)


def resolve_path(path):
    """``path`` itself when it is a file, else ``<path>/shard.dat`` (v0.1 DataShard folders)."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return path
    shard = os.path.join(path, "shard.dat")
    if os.path.isdir(path) and os.path.isfile(shard):
        return shard
    if os.path.isdir(path):
        raise DataError("kvfile %s is a folder without a shard.dat file.\nhelp: pass the record file itself, "
                        "or %s" % (path, FIX_HINT))
    raise DataError("kvfile %s does not exist (the path is relative to the working directory %s).\nhelp: %s"
                    % (path, os.getcwd(), FIX_HINT))


class KVFileWriter(PublishOnClose):
    """Write a kvfile. ``insert`` returns False for a duplicate key or an empty value, as SINGA did.

    ``mode='create'`` writes to a temporary file in the same folder and renames it over ``path``
    on ``close`` (an exception inside ``with`` discards it), so the real name never holds half a
    file. ``mode='append'`` continues an existing file in place after dropping a partial record
    at its end; its keys count as already inserted.
    """

    def __init__(self, path, mode="create", bufsize=BUFSIZE):
        if mode not in ("create", "append"):
            raise ConfigError("Invalid value for `mode`. Expected 'create' or 'append'. Received: %r" % (mode,))
        self.path = os.fspath(path)
        self.mode = mode
        self.bufsize = int(bufsize)
        self._keys = set()
        self._buf = []
        self._buffered = 0
        self.count = 0
        self.closed = False
        if mode == "append" and os.path.isdir(self.path):
            self.path = os.path.join(self.path, "shard.dat")
        folder = os.path.dirname(os.path.abspath(self.path))
        if mode == "create":
            self._f = self._open_temporary("wb")
        else:
            self._tmp = None
            if os.path.exists(self.path):
                end = 0
                with KVFileReader(self.path, strict=False, allow_empty=True) as r:
                    for key, _ in r:
                        self._keys.add(key)
                    end = r.valid_end
                    self.count = len(self._keys)
                self._f = open(self.path, "r+b")
                self._f.truncate(end)
                self._f.seek(end)
            else:
                os.makedirs(folder, exist_ok=True)
                self._f = open(self.path, "wb")

    def insert(self, key, value):
        if self.closed:
            raise DataError("kvfile %s is closed; cannot insert" % self.path)
        key = _as_bytes(key)
        if not isinstance(value, bytes):
            value = bytes(value)
        if not value or key in self._keys:
            return False
        self._keys.add(key)
        rec = b"".join((_LEN.pack(len(key)), key, _LEN.pack(len(value)), value))
        self._buf.append(rec)
        self._buffered += len(rec)
        self.count += 1
        if self._buffered >= self.bufsize:
            self.flush()
        return True

    def flush(self):
        if self._buf:
            self._f.write(b"".join(self._buf))
            self._buf.clear()
            self._buffered = 0
        self._f.flush()

    def close(self):
        if self.closed:
            return
        self.flush()
        self._finish()

    def abort(self):
        """Stop without publishing: a 'create' file is removed (append keeps what was flushed)."""
        if self.closed:
            return
        self._buf.clear()
        self._discard()

    def __del__(self):
        # never publish a half-written file from the garbage collector
        try:
            if not self.closed:
                self.abort()
        except Exception:
            pass


class KVFileReader:
    """Sequential reader: iterate ``(key bytes, value bytes)``; also ``count()``, ``seek_to_first()``,
    ``read()`` (the next record or None), ``read_all()`` and ``fixed_value_matrix()``.

    The whole file is read into memory once (record files are what a job trains on anyway),
    which makes iteration and the vectorised fixed-size path cheap.
    """

    def __init__(self, path, strict=True, allow_empty=False):
        self.path = resolve_path(path)
        self.strict = strict
        try:
            with open(self.path, "rb") as f:
                self._buf = f.read()
        except OSError as e:
            raise DataError("kvfile %s cannot be read (%s).\nhelp: check its permissions; %s"
                            % (self.path, e.strerror or e, FIX_HINT)) from None
        if not self._buf and not allow_empty:
            raise DataError("kvfile %s is empty (0 bytes): it holds no records.\nhelp: %s" % (self.path, FIX_HINT))
        self._pos = 0
        self._index = 0
        self.valid_end = 0   # end of the last complete record read so far
        self._count = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._buf = b""

    def seek_to_first(self):
        self._pos = 0
        self._index = 0

    def _bad(self, what, offset, index):
        return DataError(
            "kvfile %s is truncated or corrupt: %s (record #%d at byte offset %d; file size %d bytes).\n"
            "help: %s; or read it with strict=False to stop at the last complete record, as SINGA did"
            % (self.path, what, index, offset, len(self._buf), FIX_HINT))

    def _next_span(self):
        """(key_start, key_end, val_start, val_end) of the record at the cursor, or None at the end."""
        buf, pos, n = self._buf, self._pos, len(self._buf)
        if pos >= n:
            return None
        start = pos
        if n - pos < 8:
            if self.strict:
                raise self._bad("%d stray byte(s) where a key length (8 bytes) should start" % (n - pos),
                                start, self._index)
            return None
        klen = _LEN.unpack_from(buf, pos)[0]
        pos += 8
        if klen > n - pos - 8:
            if self.strict:
                raise self._bad("key length %d exceeds the %d bytes left" % (klen, n - pos), start, self._index)
            return None
        kend = pos + klen
        vlen = _LEN.unpack_from(buf, kend)[0]
        vstart = kend + 8
        if vlen > n - vstart:
            if self.strict:
                raise self._bad("value length %d exceeds the %d bytes left" % (vlen, n - vstart),
                                start, self._index)
            return None
        return pos, kend, vstart, vstart + vlen

    def read(self):
        """The next (key, value), or None at the end of the file."""
        span = self._next_span()
        if span is None:
            return None
        ks, ke, vs, ve = span
        self._pos = ve
        self._index += 1
        self.valid_end = max(self.valid_end, ve)
        return self._buf[ks:ke], self._buf[vs:ve]

    def __iter__(self):
        self.seek_to_first()
        while True:
            rec = self.read()
            if rec is None:
                return
            yield rec

    def count(self):
        """Number of (complete) records; walks the file once."""
        if self._count is None:
            fixed = self._fixed_layout()
            if fixed is not None:
                self._count = fixed[0]
                return self._count
            saved = self._pos, self._index
            self.seek_to_first()
            while True:
                span = self._next_span()
                if span is None:
                    break
                self._pos = span[3]
                self._index += 1
            self._count = self._index
            self.valid_end = max(self.valid_end, self._pos)
            self._pos, self._index = saved
        return self._count

    def read_all(self):
        """(keys, values): two lists with every record, in file order."""
        fixed = self._fixed_layout()
        if fixed is not None:
            n, rec, klen, vlen = fixed
            buf = self._buf
            keys = [buf[i + 8:i + 8 + klen] for i in range(0, n * rec, rec)]
            vals = [buf[i + 16 + klen:i + rec] for i in range(0, n * rec, rec)]
            return keys, vals
        keys, vals = [], []
        for k, v in self:
            keys.append(k)
            vals.append(v)
        return keys, vals

    def _fixed_layout(self):
        """(n, record size, key len, value len) when every record has the same sizes, else None."""
        buf, n = self._buf, len(self._buf)
        if n < 16:
            return None
        klen = _LEN.unpack_from(buf, 0)[0]
        if klen > n - 16:
            return None
        vlen = _LEN.unpack_from(buf, 8 + klen)[0]
        rec = 16 + klen + vlen
        if vlen > n - 16 - klen or n % rec:
            return None
        count = n // rec
        arr = numpy.frombuffer(buf, dtype=numpy.uint8)
        klens = numpy.ndarray((count,), dtype="<u8", buffer=arr, offset=0, strides=(rec,))
        vlens = numpy.ndarray((count,), dtype="<u8", buffer=arr, offset=8 + klen, strides=(rec,))
        if not ((klens == klen).all() and (vlens == vlen).all()):
            return None
        return count, rec, klen, vlen

    def fixed_value_matrix(self):
        """A read-only (N, value_len) uint8 view of all values when every record has the same key and
        value sizes (as create_data writes MNIST and CIFAR-10), else None. No per-record Python work."""
        fixed = self._fixed_layout()
        if fixed is None:
            return None
        n, rec, klen, vlen = fixed
        arr = numpy.frombuffer(self._buf, dtype=numpy.uint8)
        return numpy.ndarray((n, vlen), dtype=numpy.uint8, buffer=arr, offset=16 + klen, strides=(rec, 1))


def read_kvfile(path, strict=True):
    """All records of a kvfile as a list of (key, value)."""
    with KVFileReader(path, strict=strict) as r:
        return list(r)


def write_kvfile(path, records):
    """Write ``(key, value)`` pairs to a new kvfile atomically; returns the number written.
    A duplicate key or an empty value is a DataError (the writer itself just skips them)."""
    with KVFileWriter(path) as w:
        for i, (k, v) in enumerate(records):
            if not w.insert(k, v):
                raise DataError("cannot write record #%d (key %r) to %s: %s.\nhelp: give every record a "
                                "distinct key and a non-empty value" % (
                                    i, k, path, "empty value" if not v else "duplicate key"))
        return w.count
