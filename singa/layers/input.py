"""Data layers: kRecordInput (RecordProto values in a kvfile) and kCSVInput (CSV lines in a
textfile), SINGA's StoreInputLayer family (SINGA-V0.md 1.7, 5.1-5.3).

``store_conf`` semantics, as in SINGA v0.3:

* ``path`` is relative to the working directory; ``backend`` "kvfile" (kRecordInput) or
  "textfile"/"kvfile" (kCSVInput); empty means that default.
* ``batchsize``: v0.3 made it repeated (one value per partition). There is one partition
  here, so the first value is the batch size and any further values are ignored.
* ``shape`` (required): the per-instance shape; each record must hold prod(shape) values.
* Records are read in order and reading wraps around at the end of the store (SINGA's
  implicit epochs). ``random_skip: R`` starts at a uniform record in [0, R] drawn from the
  layer's random stream when the store is opened.
* ``x = (x - mean) / std`` with the first record of ``mean_file``/``std_file`` (a kvfile of
  RecordProto float ``data``, count = instance size), else ``mean_value``/``std_value``
  when set. Unset means no shift / no scaling.
* ``prefetching`` and ``encoded`` are accepted and need no action: the whole store is
  loaded into memory once (and, on a GPU, copied to the device once if it fits), and each
  batch is a slice of it normalised into a buffer reused across steps.

Pixel stores stay uint8 in memory and are normalised batch by batch (subtract, divide into the
output buffer). Measured for 64 x 784 batches: about 25 us per batch against 13 us for copying
rows of a pre-normalised float32 copy; the difference is lost in any training step, while uint8
takes a quarter of the memory (and of the host-to-GPU traffic) and loads faster.
Loaded stores are shared by every layer that reads the same file (train and test nets on
one file load it once) as long as the file is unchanged.
"""
import collections
import math
import os
import weakref

import numpy

from singa.errors import ConfigError, DataError, invalid
from singa.io import kvfile as kv
from singa.io.record import first_record_values, load_record_file
from singa.io.textfile import decode_text_store, parse_csv_records, read_csv_file
from singa.layers.base import DataLayer, register, type_name
from singa.param import check_alloc
from singa.proto import job_pb2


class StoreData:
    """A store loaded into memory: ``values`` (N, count) uint8 or float32, ``labels`` int32 (N,) or None."""

    def __init__(self, path, values, labels):
        self.path = path
        self.values = values
        self.labels = labels
        values.flags.writeable = False     # shared between layers: nobody may change it in place
        if labels is not None:
            labels.flags.writeable = False

    def __len__(self):
        return self.values.shape[0]


_LIVE = weakref.WeakValueDictionary()      # every store some layer still uses
_RECENT = collections.OrderedDict()        # plus the last two, so a rebuilt net does not reload
_RECENT_MAX = 2


def clear_store_cache():
    _LIVE.clear()
    _RECENT.clear()


# In-memory stores: NumPy arrays given to fit/evaluate/predict, read by kRecordInput layers whose
# store_conf path is "mem:<name>". The registry holds them weakly; the Model that made them keeps
# them alive.
MEMORY_PREFIX = "mem:"
_ARRAYS = weakref.WeakValueDictionary()
_ARRAY_COUNT = [0]


def array_store(values, labels=None, name=None):
    """Register ``values`` (N, ...) and integer ``labels`` (N,) as an in-memory store; returns
    (path, StoreData): the path goes in store_conf, the caller keeps the StoreData alive."""
    values = numpy.asarray(values)
    if values.ndim < 1 or values.shape[0] == 0 or values.size == 0:
        raise DataError("Invalid value for `x`. Expected an array of samples, shape (N, ...) with N >= 1. Received: "
                        "an array of shape %s" % (values.shape,))
    if values.dtype.kind not in "biuf":
        raise DataError("Invalid value for `x`. Expected numbers. Received: an array of dtype %s" % values.dtype)
    # a copy: the store is made read-only, the caller's arrays must stay theirs
    values = numpy.array(values, dtype=numpy.uint8 if values.dtype == numpy.uint8 else numpy.float32, copy=True)
    bad = 0 if values.dtype == numpy.uint8 else int((~numpy.isfinite(values)).sum())
    if bad:
        raise DataError("Invalid value for `x`. Expected finite numbers. Received: an array with %d NaN or infinite "
                        "value(s)" % bad)
    values = values.reshape(values.shape[0], -1)
    if labels is not None:
        lab = numpy.asarray(labels)
        if lab.ndim == 2 and lab.shape[1] == 1:
            lab = lab[:, 0]
        if lab.ndim != 1 or lab.shape[0] != values.shape[0]:
            hint = ("\nhelp: pass class indices, not one-hot rows (y.argmax(axis=1))"
                    if lab.ndim == 2 and lab.shape[0] == values.shape[0] else "")
            raise DataError("Invalid value for `y`. Expected %d integer labels (one per sample of x), shape (%d,). "
                            "Received: an array of shape %s%s" % (values.shape[0], values.shape[0], lab.shape, hint))
        if lab.size and (not numpy.all(numpy.equal(numpy.mod(lab, 1), 0)) or lab.min() < 0):
            raise DataError("Invalid value for `y`. Expected class indices (integers >= 0). Received: values such as "
                            "%s\nhelp: pass class indices, not one-hot rows (y.argmax(axis=1))" % lab[:5].tolist())
        labels = numpy.array(lab, dtype=numpy.int32, copy=True)
    _ARRAY_COUNT[0] += 1
    path = "%s%s" % (MEMORY_PREFIX, name or "arrays%d" % _ARRAY_COUNT[0])
    data = StoreData(path, values, labels)
    _ARRAYS[path] = data
    return path, data


def load_store(path, backend, count, kind="record", separator=",", has_label=True):
    """The StoreData of a store file, from the cache when the same file (path, mtime, size) was loaded."""
    if str(path).startswith(MEMORY_PREFIX):
        data = _ARRAYS.get(str(path))
        if data is None:
            raise DataError("the in-memory store %s is gone: it lives as long as the model that was given the "
                            "arrays.\nhelp: pass the arrays again (fit/evaluate/predict), or write them to a record "
                            "file (singa.io.create_data) for a job.conf" % path)
        if data.values.shape[1] != count:
            raise DataError("the in-memory store %s has %d values per sample but the layer expects %d (store_conf "
                            "shape)" % (path, data.values.shape[1], count))
        return data
    if backend == "kvfile":
        real = kv.resolve_path(path)
    else:
        real = os.fspath(path)
        if not os.path.isfile(real):
            raise DataError("textfile %s does not exist (the path is relative to the working directory %s).\n"
                            "help: check `path` in store_conf" % (path, os.getcwd()))
    st = os.stat(real)
    key = (os.path.realpath(real), st.st_mtime_ns, st.st_size, backend, kind, count, separator, bool(has_label))
    data = _LIVE.get(key)
    if data is None:
        data = _load(real, backend, count, kind, separator, has_label)
        _LIVE[key] = data
    _RECENT[key] = data
    _RECENT.move_to_end(key)
    while len(_RECENT) > _RECENT_MAX:
        _RECENT.popitem(last=False)
    return data


def _load(path, backend, count, kind, separator, has_label):
    if kind == "record":
        values, labels = load_record_file(path, count)
    elif kind == "shard":
        from singa.io.record import load_shard_file
        values, labels = load_shard_file(path, count)
    elif backend == "textfile":
        values, labels = read_csv_file(path, count, has_label, separator)
    else:   # CSV lines stored as kvfile values
        with kv.KVFileReader(path) as r:
            _, vals = r.read_all()
        lines = [decode_text_store(v, "%s record %d" % (path, i)) for i, v in enumerate(vals)]
        values, labels = parse_csv_records(lines, count, has_label, separator, source=path)
    if values.shape[0] == 0:
        raise DataError("store %s holds no records.\nhelp: re-create it (e.g. with singa-create-data) or point "
                        "`path` in store_conf at a non-empty store" % path)
    return StoreData(path, values, labels)


@register(job_pb2.kRecordInput)
class RecordInputLayer(DataLayer):
    """kRecordInput: RecordProto records (``data`` floats, else ``pixel`` bytes) from a kvfile."""
    kind = "record"
    backends = ("kvfile",)
    device_limit = 1 << 30     # copy a store to the GPU once if it takes at most this many bytes

    # -- configuration --------------------------------------------------------------
    def _field(self, name):
        return "store_conf.%s of layer '%s' (%s)" % (name, self.name, type_name(self.conf.type))

    def _read_conf(self):
        if not self.conf.HasField("store_conf"):
            raise ConfigError("layer '%s' (%s) has no `store_conf`.\nhelp: add e.g. `store_conf { backend: \"%s\" "
                              "path: \"examples/mnist/train_data.bin\" batchsize: 64 shape: 784 }`"
                              % (self.name, type_name(self.conf.type), self.backends[0]))
        sc = self.conf.store_conf
        backend = sc.backend or self.backends[0]
        if backend not in self.backends:
            raise invalid(self._field("backend"), " or ".join(repr(b) for b in self.backends), sc.backend,
                          hint="lmdb, imagefolder and hdfsfile stores are not supported; convert the data with "
                               "singa-create-data")
        if not sc.path:
            raise invalid(self._field("path"), "the path of the store file (relative to the working directory)",
                          sc.path)
        if not len(sc.batchsize):
            raise invalid(self._field("batchsize"), "a positive batch size", "unset",
                          hint="add `batchsize: 64` to store_conf (Store(batchsize=64), not batch_size)")
        bs = int(sc.batchsize[0])
        if bs <= 0:
            raise invalid(self._field("batchsize"), "a positive batch size", bs)
        if not len(sc.shape):
            raise invalid(self._field("shape"), "the per-instance shape, e.g. `shape: 784` or "
                          "`shape: 3 shape: 32 shape: 32`", "unset")
        shape = tuple(int(s) for s in sc.shape)
        if any(s <= 0 for s in shape):
            raise invalid(self._field("shape"), "positive dimensions", shape)
        if sc.random_skip < 0:
            raise invalid(self._field("random_skip"), "a number of records >= 0", sc.random_skip)
        return sc, backend, bs, shape

    def _norm_vector(self, path, what, count):
        try:
            v = first_record_values(path, what)
        except DataError as e:
            raise DataError("layer '%s', %s: %s" % (self.name, what, e)) from None
        if v.size != count:
            raise DataError("%s %s holds %d values but the instances of layer '%s' have %d (store_conf.shape %s)."
                            "\nhelp: use the %s made for this data set (e.g. by singa-create-data cifar10)"
                            % (what, path, v.size, self.name, count, tuple(self.conf.store_conf.shape), what))
        return v

    def setup(self, src_shapes):
        if src_shapes:
            raise ConfigError("Invalid value for `srclayers` of layer '%s' (%s). Expected none: a data layer reads "
                              "its store. Received: %d source layer(s)" % (self.name, type_name(self.conf.type),
                                                                          len(src_shapes)))
        sc, backend, bs, shape = self._read_conf()
        # Python ints: numpy.prod of a hostile shape wraps around in int64
        count = math.prod(shape)
        check_alloc("layer '%s' (%s)" % (self.name, type_name(self.conf.type)),
                    {"store_conf.batchsize": bs, "store_conf.shape": shape},
                    [("batch", (bs,) + shape), ("labels", (bs,))], self.dtype,
                    "a batch of %d instances of %d values each cannot be held; use a smaller `batchsize` "
                    "(e.g. 64) and check `shape` (one instance, without the batch)" % (bs, count))
        self.batchsize, self.shape, self.count = bs, shape, count
        self._stream = self._streams(sc, backend)
        if self._stream:
            from singa.io.stream import StreamingStore
            self.store = StreamingStore(kv.resolve_path(sc.path), count)
        else:
            self.store = load_store(sc.path, backend, count, self.kind, sc.separator, sc.has_label)
        n = len(self.store)

        dt = self.dtype
        mean = std = None
        if sc.mean_file:
            mean = self._norm_vector(sc.mean_file, "mean_file", count).astype(dt)
        elif sc.HasField("mean_value"):
            if not math.isfinite(sc.mean_value):     # every input value would become NaN
                raise invalid(self._field("mean_value"), "a finite number", sc.mean_value,
                              hint="e.g. mean_value: 127.5 with std_value: 127.5 maps pixels to [-1, 1]")
            mean = dt.type(sc.mean_value)
        if sc.std_file:
            std = self._norm_vector(sc.std_file, "std_file", count).astype(dt)
            if not std.all():
                raise DataError("std_file %s has %d zero value(s): dividing by them gives inf.\nhelp: re-create "
                                "it, or use std_value" % (sc.std_file, int((std == 0).sum())))
        elif sc.HasField("std_value"):
            if sc.std_value == 0 or not math.isfinite(sc.std_value):
                raise invalid(self._field("std_value"), "a finite, non-zero divisor", sc.std_value,
                              hint="e.g. std_value: 127.5 with mean_value: 127.5 maps pixels to [-1, 1]")
            std = dt.type(sc.std_value)

        # where batches are cut from: the device when the store fits there, else the host (a
        # streamed store: each batch as it is read)
        values, labels = (None, None) if self._stream else (self.store.values, self.store.labels)
        on_device = self.xp is not numpy and values is not None and values.nbytes <= self.device_limit
        if on_device:
            values = self.backend.asarray(values, dtype=values.dtype)
            labels = None if labels is None else self.backend.asarray(labels, dtype=numpy.int32)
        if self.xp is not numpy:
            mean = self.backend.asarray(mean, dtype=dt) if isinstance(mean, numpy.ndarray) else mean
            std = self.backend.asarray(std, dtype=dt) if isinstance(std, numpy.ndarray) else std
        self._values, self._labels, self._on_device = values, labels, on_device
        self._mean, self._std = mean, std

        skip = 0
        if sc.random_skip > 0:
            if self.rng is None:
                raise ConfigError("layer '%s' has random_skip %d but no random stream.\nhelp: build it through "
                                  "NeuralNet, or set layer.rng = RandomStreams(seed).stream(name) before setup"
                                  % (self.name, sc.random_skip))
            skip = int(self.rng.integers(0, sc.random_skip, endpoint=True))
        self.skipped = skip
        self._pos = skip % n
        self.part, self.stride = None, bs
        self.read_part(0, bs, bs)
        return self.out_shape

    def _streams(self, sc, backend):
        """Whether the store is read from disk batch by batch (a record file over the memory budget)."""
        if self.kind != "record" or backend != "kvfile" or str(sc.path).startswith(MEMORY_PREFIX):
            return False
        from singa.io.stream import memory_budget
        return os.path.getsize(kv.resolve_path(sc.path)) > memory_budget()

    @property
    def pos(self):
        """The first record of the next whole batch (checkpointed for an exact resume)."""
        return self._pos

    @pos.setter
    def pos(self, value):
        self._pos = int(value) % len(self.store)
        if self._stream and self.part is not None:
            self.store.start(self._pos, self.part[0], self.part[1], self.stride)

    def read_part(self, lo, hi, stride):
        """Read only rows [lo, hi) of each batch, and step ``stride`` records from one batch to
        the next: a worker's own part of the data (a worker of a synchronous group reads its rows
        of the group's batch; worker group g of G asynchronous groups reads every G-th batch,
        with ``stride`` = G * batchsize after skipping g batches). ``pos`` stays the first record
        of the next whole batch. The default is (0, batchsize, batchsize): every row, in order."""
        bs = self.batchsize
        if not (0 <= lo < hi <= bs) or stride < 1:
            raise ValueError("read_part(%r, %r, %r): expected 0 <= lo < hi <= batchsize (%d) and stride >= 1"
                             % (lo, hi, stride, bs))
        self.part, self.stride = (int(lo), int(hi)), int(stride)
        if self._stream:
            self.store.start(self._pos, lo, hi, stride)
        rows = hi - lo
        self.out_shape = (rows,) + self.shape
        self.data = self.xp.empty(self.out_shape, dtype=self.dtype)
        self._out2d = self.data.reshape(rows, self.count)
        self.aux = None if self._labels is None and not self._stream else self.xp.empty((rows,), dtype=numpy.int32)

    # -- running --------------------------------------------------------------------
    def _fill(self, dst, src):
        xp = self.xp
        if not self._on_device and xp is not numpy:
            src = xp.asarray(src)   # only the raw (usually uint8) rows cross to the GPU
        if self._mean is not None:
            xp.subtract(src, self._mean, out=dst, dtype=self.dtype)
        else:
            dst[...] = src
        if self._std is not None:
            xp.divide(dst, self._std, out=dst)

    def forward(self, flag, srcs):
        n = len(self.store)
        out, lab = self._out2d, self.aux
        if self._stream:        # the reader thread's next batch (the same rows the in-memory path cuts)
            vals, labels = self.store.next()
            self._fill(out, vals)
            if lab is not None:
                lab[...] = labels if self.xp is numpy else self.xp.asarray(labels)
            self._pos = (self._pos + self.stride) % n
            return self.data
        rows = out.shape[0]
        pos, filled = (self.pos + self.part[0]) % n, 0
        while filled < rows:    # wraps to the first record as often as needed (SINGA's SeekToFirst)
            take = min(rows - filled, n - pos)
            self._fill(out[filled:filled + take], self._values[pos:pos + take])
            if lab is not None:
                part = self._labels[pos:pos + take]
                lab[filled:filled + take] = part if self._on_device or self.xp is numpy else self.xp.asarray(part)
            filled += take
            pos += take
            if pos == n:
                pos = 0
        self._pos = (self._pos + self.stride) % n
        return self.data


@register(job_pb2.kCSVInput)
class CSVInputLayer(RecordInputLayer):
    """kCSVInput: lines ``[label<sep>]v1<sep>v2...`` from a textfile (or CSV strings in a kvfile)."""
    kind = "csv"
    backends = ("textfile", "kvfile")
