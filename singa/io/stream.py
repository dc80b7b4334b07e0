"""Record files larger than memory (issue 18): batches read from disk and decoded ahead on a thread.

kRecordInput loads a store into memory when it fits a budget (``SINGA_STORE_MB``, default a quarter
of the machine's memory, at most 4 GiB). Above it the layer streams, as SINGA's KVFile reader did,
sequentially: ``StreamingStore`` keeps only the byte offset of every record (8 bytes each, found by
one pass over the record headers), and a reader thread fills a queue of ``PREFETCH`` decoded batches
ahead of the step, so memory stays flat in the file's size and the step waits on disk only when the
disk is slower than training. A batch is the same records in the same order as the in-memory path
gives for the same position, rows and stride (wrapping at the end of the file), so a run streams or
not with the same numbers.
"""
import os
import queue
import threading

import numpy

from singa.errors import DataError
from singa.io.kvfile import _LEN, FIX_HINT

PREFETCH = 4                # decoded batches kept ready
_CHUNK = 1 << 24            # bytes read at a time while scanning headers


def memory_budget():
    """Bytes a store may take in memory before kRecordInput streams it."""
    from singa import switches
    mb = switches.integer("SINGA_STORE_MB", hint="a size in MiB, e.g. SINGA_STORE_MB=1024")
    if mb is not None:
        return mb << 20
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    return min(total // 4, 4 << 30)


def scan_offsets(path):
    """(offsets int64 (n + 1,), value spans) of a kvfile's records: offsets[i] is where record i
    starts, offsets[n] the end of the last one. Raises DataError on a cut or corrupt record."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(16)
        if len(head) < 16:
            raise DataError("kvfile %s holds no complete record (%d bytes).\nhelp: %s" % (path, size, FIX_HINT))
        klen = _LEN.unpack_from(head, 0)[0]
        f.seek(8 + klen)
        vlen = _LEN.unpack(f.read(8))[0]
        rec = 16 + klen + vlen
        if rec <= size and size % rec == 0 and _fixed(f, size, rec, klen, vlen):
            return numpy.arange(0, size + 1, rec, dtype=numpy.int64)
        offsets, pos, i = [0], 0, 0
        while pos < size:
            f.seek(pos)
            h = f.read(8)
            if len(h) < 8:
                raise _bad(path, "a key length cut short", i, pos, size)
            k = _LEN.unpack(h)[0]
            if pos + 16 + k > size:
                raise _bad(path, "key length %d exceeds the bytes left" % k, i, pos, size)
            f.seek(pos + 8 + k)
            v = _LEN.unpack(f.read(8))[0]
            end = pos + 16 + k + v
            if end > size:
                raise _bad(path, "value length %d exceeds the bytes left" % v, i, pos, size)
            pos = end
            offsets.append(pos)
            i += 1
    return numpy.asarray(offsets, dtype=numpy.int64)


def _fixed(f, size, rec, klen, vlen):
    """Whether every record of the file has the first one's key and value lengths (checked on the
    headers, chunk by chunk)."""
    per = max(1, _CHUNK // rec)
    for start in range(0, size, per * rec):
        f.seek(start)
        buf = f.read(min(per * rec, size - start))
        m = numpy.frombuffer(buf, dtype=numpy.uint8).reshape(-1, rec)
        k = m[:, :8].copy().view("<u8").ravel()
        v = m[:, 8 + klen:16 + klen].copy().view("<u8").ravel()
        if (k != klen).any() or (v != vlen).any():
            return False
    return True


def _bad(path, what, index, offset, size):
    return DataError("kvfile %s is truncated or corrupt: %s (record #%d at byte offset %d; file size %d bytes).\n"
                     "help: %s" % (path, what, index, offset, size, FIX_HINT))


class StreamingStore:
    """A record file read batch by batch: ``len()`` records; ``start(pos, lo, hi, stride)`` begins
    reading at record ``pos``, each batch rows [lo, hi) of the ``stride`` records from there (the
    reader's part, see RecordInputLayer.read_part); ``next()`` gives (values (hi - lo, count) uint8
    or float32, labels int32) in order, forever (wrapping). Values and labels are as decode_records
    makes them."""

    def __init__(self, path, count):
        self.path, self.count = path, int(count)
        self.offsets = scan_offsets(path)
        self.n = len(self.offsets) - 1
        if self.n == 0:
            raise DataError("store %s holds no records.\nhelp: re-create it" % path)
        self._thread = None
        self._queue = None
        self._stop = None

    def __len__(self):
        return self.n

    def start(self, pos, lo, hi, stride):
        self.close()
        self._queue = queue.Queue(PREFETCH)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(int(pos) % self.n, int(lo), int(hi), int(stride),
                                                                 self._queue, self._stop),
                                        name="singa-stream %s" % os.path.basename(self.path), daemon=True)
        self._thread.start()

    def next(self):
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self):
        if self._thread is not None:
            self._stop.set()
            try:                # unblock a reader waiting on a full queue
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=10)
            self._thread = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _spans(self, first, rows):
        """(record index, count) runs covering ``rows`` records from ``first``, wrapping."""
        out, i, left = [], first % self.n, rows
        while left:
            take = min(left, self.n - i)
            out.append((i, take))
            left -= take
            i = 0
        return out

    def _read(self, pos, lo, hi, stride, q, stop):
        from singa.io.record import decode_records
        try:
            with open(self.path, "rb") as f:
                while not stop.is_set():
                    values = []
                    for i, take in self._spans(pos + lo, hi - lo):
                        a, b = self.offsets[i], self.offsets[i + take]
                        f.seek(a)
                        buf = f.read(b - a)
                        if len(buf) != b - a:
                            raise DataError("kvfile %s changed while it was read (short read at byte %d).\nhelp: "
                                            "do not rewrite a store a job is training on" % (self.path, a))
                        base = int(a)
                        for j in range(i, i + take):
                            s = int(self.offsets[j]) - base
                            k = _LEN.unpack_from(buf, s)[0]
                            v0 = s + 16 + k
                            values.append(buf[v0:int(self.offsets[j + 1]) - base])
                    if len({len(v) for v in values}) == 1:      # one layout: the vectorised decoder
                        values = numpy.frombuffer(b"".join(values), dtype=numpy.uint8).reshape(len(values), -1)
                    vals, labels = decode_records(values, self.count, self.path)
                    pos = (pos + stride) % self.n
                    while not stop.is_set():
                        try:
                            q.put((numpy.ascontiguousarray(vals), labels), timeout=0.2)
                            break
                        except queue.Full:
                            continue
        except BaseException as e:        # handed to the step that asks for the next batch
            while not stop.is_set():
                try:
                    q.put(e, timeout=0.2)
                    break
                except queue.Full:
                    continue
