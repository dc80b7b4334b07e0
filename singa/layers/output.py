"""SINGA v0.3's output layers and kDummy (SINGA-V0-REST.md 8).

kCSVOutput and kRecordOutput write what their source computes, one instance (row) at a time, each
time they run (training or test), to ``store_conf.path``. The file is created (truncated) at the
first batch and flushed after every batch, so it grows as the job runs, as SINGA's did:

* kCSVOutput (textfile): per instance a line ``label,v1,...,vn`` (``label,`` only when the source
  carries labels, a data layer), each value ``%f`` (6 decimals, C++'s std::to_string) and the
  label an integer. FIX: v0.3 died on any ``store_conf.backend`` (it took the presence flag for the
  name); here an unset backend and "textfile" both work, anything else is refused.
* kRecordOutput (kvfile, ``backend`` required as in v0.3): per instance a RecordProto with the
  ``label`` (when the source carries labels) and ``data`` (the instance's values as float32; no
  ``shape``, as v0.3), under the keys "0", "1", ... counting on across batches and phases.

Both write one file, so a net that holds them runs without replicas and unsplit (a copy per thread
or partition would each write the same path): those combinations are refused.

kDummy (``dummy_conf``): ``input: true``: no sources, an output of ``shape`` filled with U[0, 1)
at each forward. Otherwise one source, copied. ``output: true``: its backward sends U[0, 1) as the
gradient (a stand-in for a loss, as SINGA's tests used it); otherwise the gradient passes through.
The numbers come from the layer's named random stream.
"""
import os

import numpy

from singa.errors import ConfigError, invalid
from singa.layers.base import Layer, register, scratch, type_name
from singa.proto import job_pb2
from singa.random import uniform


def _where(layer):
    return "layer '%s' (%s)" % (layer.name, type_name(layer.conf.type))


class _OutputLayer(Layer):
    grad_free = True
    writes_files = True         # one file per layer: no replicas, no partitions (see the module)
    BACKENDS = ()

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        store = self.conf.store_conf
        if not store.path:
            raise invalid("store_conf.path of %s" % _where(self), "the file to write", store.path or "",
                          hint='store_conf { path: "examples/cifar10/out.csv" }')
        backend = self._backend(store)
        if backend not in self.BACKENDS:
            raise invalid("store_conf.backend of %s" % _where(self), " or ".join(repr(b) for b in self.BACKENDS),
                          store.backend, hint="store_conf { backend: %r }" % self.BACKENDS[0])
        if self.conf.num_partitions > 1:
            raise ConfigError("%s cannot be split among a group's workers: every copy would write %s.\nhelp: give "
                              "it `partition_dim: -1` and its source's partitions are joined first, or use one "
                              "worker per group" % (_where(self), store.path))
        self.path = store.path
        self.writer = None
        shape = tuple(int(s) for s in src_shapes[0])
        self.out_shape = shape
        return shape

    def _backend(self, store):
        return store.backend

    def _open(self):
        """The writer, created at the first batch (truncating an existing file, as SINGA's kCreate)."""
        if self.writer is None:
            if os.path.exists(self.path) and not os.path.isdir(self.path):
                os.remove(self.path)
            self.writer = self._writer(self.path)
        return self.writer

    def forward(self, flag, srcs):
        src = srcs[0]
        x = numpy.asarray(self.backend.to_host(src.data), dtype=numpy.float64)
        B = x.shape[0]
        rows = x.reshape(B, -1)
        labels = getattr(src, "aux", None)
        if labels is not None:
            labels = numpy.asarray(self.backend.to_host(labels)).reshape(-1)
            if labels.shape[0] != B:
                raise ConfigError("%s: source '%s' has %d labels for %d instances" % (
                    _where(self), src.name, labels.shape[0], B))
        w = self._open()
        for i in range(B):
            self._write(w, rows[i], None if labels is None else int(labels[i]))
        w.flush()
        self.data = None
        return None

    def backward(self, flag, srcs, grad):
        return [None]


@register(job_pb2.kCSVOutput)
class CSVOutputLayer(_OutputLayer):
    BACKENDS = ("textfile",)

    def _backend(self, store):
        return store.backend or "textfile"

    def _writer(self, path):
        from singa.io.textfile import TextFileWriter
        return TextFileWriter(path, mode="append")

    def _write(self, w, values, label):
        line = ",".join("%f" % v for v in values)
        w.insert("", line if label is None else "%d,%s" % (label, line))


@register(job_pb2.kRecordOutput)
class RecordOutputLayer(_OutputLayer):
    BACKENDS = ("kvfile",)

    def setup(self, src_shapes):
        out = super().setup(src_shapes)
        self.count = 0              # the next key; never reset, as v0.3's inst_
        return out

    def _writer(self, path):
        from singa.io.kvfile import KVFileWriter
        return KVFileWriter(path, mode="append")

    def _write(self, w, values, label):
        from singa.io.record import encode_record
        w.insert(str(self.count), encode_record(label=label, data=values.astype(numpy.float32)))
        self.count += 1


@register(job_pb2.kDummy)
class DummyLayer(Layer):
    def setup(self, src_shapes):
        conf = self.conf.dummy_conf
        self.input, self.output = bool(conf.input), bool(conf.output)
        if self.input:
            self.expect_srcs(src_shapes, 0)
            shape = tuple(int(s) for s in conf.shape)
            if not shape or any(s < 1 for s in shape):
                raise invalid("dummy_conf.shape of %s" % _where(self), "positive sizes, batch first", list(shape),
                              hint="dummy_conf { input: true shape: 16 shape: 10 }")
        else:
            self.expect_srcs(src_shapes, 1)
            shape = tuple(int(s) for s in src_shapes[0])
        self.pulls_gradient = self.output
        self.out_shape = shape
        return shape

    def _draw(self, shape):
        if self.rng is None:
            raise ConfigError("%s has no random stream: set `layer.rng` to a numpy Generator (NeuralNet does this "
                              "from the job's seed)" % _where(self))
        return uniform(self.xp, self.rng, shape, dtype=self.dtype)

    def forward(self, flag, srcs):
        y = scratch(self, "y", self.out_shape)
        if self.input:
            y[...] = self._draw(self.out_shape)
        else:
            y[...] = srcs[0].data.reshape(self.out_shape)
        self.data = y
        return y

    def backward(self, flag, srcs, grad):
        if self.input:
            return []
        if self.output:
            grad = self._draw(self.out_shape)
        if grad is None:
            return [None]
        return [grad.reshape(srcs[0].data.shape)]
