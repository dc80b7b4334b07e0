"""Loss and metric layers (SINGA-V0.md 6.2): kSoftmaxLoss, kEuclideanLoss, kAccuracy.

Loss layers start back-propagation: ``backward(flag, srcs, grad=None)`` returns the gradient for
their first source and None for the second (the data layer). Metrics of the last batch are kept
as backend scalars and turned into Python floats only when ``metrics()`` is asked, so a GPU run
does not wait for the device after every batch.
"""
import numpy

from singa.errors import ConfigError, DataError, invalid
from singa.layers.base import flat2d, Layer, register, scratch, type_name
from singa.layers.neuron import softmax_rows
from singa.proto import job_pb2

FLT_MIN = float(numpy.finfo(numpy.float32).tiny)    # SINGA clamps probabilities at FLT_MIN before log


def _per_sample(shape):
    return int(numpy.prod(shape[1:])) if len(shape) > 1 else 1


class _TwoSourceLayer(Layer):
    """Common checks of layers whose sources are [prediction, data layer]."""

    def src_name(self, i, srcs=None):
        if srcs is not None and getattr(srcs[i], "name", None):
            return srcs[i].name
        if i < len(self.conf.srclayers):
            return self.conf.srclayers[i]
        return "source #%d" % i

    def shape_error(self, what, shape0, shape1, srcs=None):
        return ConfigError(
            "Invalid sources of layer '%s' (%s): %s. Received: '%s' of shape %s and '%s' of shape %s\n"
            "help: the first source must produce one row per sample of the data layer given second, "
            "e.g. an innerproduct layer with num_output equal to the number of classes"
            % (self.name, type_name(self.conf.type), what, self.src_name(0, srcs), tuple(shape0),
               self.src_name(1, srcs), tuple(shape1)))

    def setup_pair(self, src_shapes):
        self.expect_srcs(src_shapes, 2)
        s0, s1 = tuple(src_shapes[0]), tuple(src_shapes[1])
        if len(s0) < 1 or len(s1) < 1 or s0[0] != s1[0]:
            raise self.shape_error("expected both sources to have the same batch size", s0, s1)
        self.batchsize = s0[0]
        self.dim = _per_sample(s0)
        self.out_shape = s0
        return s0, s1

    def check_topk(self, k, field):
        if not 1 <= k <= self.dim:
            raise invalid("%s of layer '%s' (%s)" % (field, self.name, type_name(self.conf.type)),
                          "an integer in [1, %d] (the number of outputs of '%s')" % (self.dim, self.src_name(0)),
                          k)
        return k

    def scores2d(self, srcs):
        x = srcs[0].data
        if x.ndim < 1 or x.size != x.shape[0] * self.dim:
            raise self.shape_error("expected %d values per sample in the first source" % self.dim,
                                   x.shape, getattr(srcs[1].data, "shape", ()), srcs)
        return flat2d(x)

    def labels(self, srcs, batch):
        """The labels of the data source as an int array on the backend, validated."""
        src = srcs[1]
        lab = src.aux
        if lab is None:
            raise ConfigError(
                "Invalid value for the second source of layer '%s' (%s). Expected a data layer that provides "
                "labels. Received: '%s', which has none\nhelp: list the data layer second in `srclayers`, "
                "e.g. `srclayers: \"fc2\" srclayers: \"data\"`" % (self.name, type_name(self.conf.type),
                                                                self.src_name(1, srcs)))
        if lab.ndim != 1:
            lab = lab.reshape(-1)
        if lab.shape[0] != batch:
            raise self.shape_error("expected one label per row of the first source",
                                   srcs[0].data.shape, ("labels",) + tuple(lab.shape), srcs)
        mod = numpy if isinstance(lab, numpy.ndarray) else self.xp
        if lab.dtype.kind not in "iu":
            if lab.dtype.kind != "f" or bool((mod.floor(lab) != lab).any()):
                bad = self.backend.to_host(lab)
                raise invalid("labels of data layer '%s' (read by '%s')" % (self.src_name(1, srcs), self.name),
                              "integer class indices", bad[:8], cls=DataError)
            lab = lab.astype(numpy.int64)
        lo, hi = int(lab.min()), int(lab.max())
        if lo < 0 or hi >= self.dim:
            host = self.backend.to_host(lab)
            row = int(numpy.flatnonzero((host < 0) | (host >= self.dim))[0])
            raise DataError(
                "Invalid label for layer '%s' (%s). Expected labels in [0, %d) because '%s' has %d outputs. "
                "Received: label %d (row %d of the batch from '%s')\nhelp: set num_output of '%s' to the "
                "number of classes, or fix the labels of the data" % (
                    self.name, type_name(self.conf.type), self.dim, self.src_name(0, srcs), self.dim,
                    int(host[row]), row, self.src_name(1, srcs), self.src_name(0, srcs)))
        return self.backend.asarray(lab, dtype=lab.dtype)


def topk_hits(xp, p, labels, k):
    """Number of rows whose label is among the k largest entries; ties rank the larger index first."""
    if k == 1:
        # argmax takes the first of equal maxima; on reversed columns that is the largest index.
        pred = p.shape[1] - 1 - xp.argmax(p[:, ::-1], axis=1)
        return xp.count_nonzero(pred == labels)
    rows = xp.arange(p.shape[0])
    pl = p[rows, labels][:, None]
    ahead = xp.sum(p > pl, axis=1)
    later = xp.arange(p.shape[1])[None, :] > labels[:, None]
    ahead += xp.sum(later & (p == pl), axis=1)
    return xp.count_nonzero(ahead < k)


@register(job_pb2.kSoftmaxLoss, job_pb2.kCudnnSoftmaxLoss)  # cuDNN type runs the same code
class SoftmaxLossLayer(_TwoSourceLayer):
    """Softmax of the scores, cross-entropy with the labels of the data layer; data = probabilities."""
    is_loss = True
    has_metrics = True

    def setup(self, src_shapes):
        self.setup_pair(src_shapes)
        c = self.conf.softmaxloss_conf
        self.topk = self.check_topk(c.topk, "softmaxloss_conf.topk")
        self.scale = float(c.scale)
        self._loss = self._acc = None
        return self.out_shape

    def forward(self, flag, srcs):
        xp = self.xp
        x = self.scores2d(srcs)
        b = x.shape[0]
        lab = self.labels(srcs, b)
        p = scratch(self, "p", x.shape)
        softmax_rows(xp, x, p, scratch(self, "col", (b, 1)))
        pl = p[xp.arange(b), lab]          # a fresh (B,) array
        xp.maximum(pl, FLT_MIN, out=pl)
        xp.log(pl, out=pl)
        self._loss = pl.sum() * (-self.scale / b)
        self._acc = topk_hits(xp, p, lab, self.topk) * (self.scale / b)
        self._lab = lab
        self.data = p.reshape(srcs[0].data.shape)
        return self.data

    def backward(self, flag, srcs, grad=None):
        xp = self.xp
        p = flat2d(self.data)
        b = p.shape[0]
        c = self.scale / b
        g = scratch(self, "grad", p.shape)
        xp.multiply(p, c, out=g)
        g[xp.arange(b), self._lab] -= c
        return [g.reshape(srcs[0].data.shape), None]

    def metrics(self):
        if self._loss is None:
            return {}
        return {"loss": float(self._loss), "acc": float(self._acc)}


@register(job_pb2.kEuclideanLoss)
class EuclideanLossLayer(_TwoSourceLayer):
    """loss = sum((x - r)^2) / B; gradient (r - x) / B (half the loss's derivative, as in SINGA)."""
    is_loss = True
    has_metrics = True

    def setup(self, src_shapes):
        s0, s1 = self.setup_pair(src_shapes)
        if _per_sample(s1) != self.dim:
            raise self.shape_error("expected the reconstruction and the input to have the same number of "
                                   "values per sample", s0, s1)
        self._loss = None
        return self.out_shape

    def forward(self, flag, srcs):
        xp = self.xp
        r = self.scores2d(srcs)
        x = srcs[1].data
        if x.shape[0] != r.shape[0] or x.size != r.size:
            raise self.shape_error("expected the reconstruction and the input to have the same shape",
                                   srcs[0].data.shape, x.shape, srcs)
        d = scratch(self, "diff", r.shape)
        xp.subtract(r, x.reshape(r.shape), out=d)
        flat = d.reshape(-1)
        self._loss = xp.vdot(flat, flat) / r.shape[0]
        self.data = srcs[0].data
        return self.data

    def backward(self, flag, srcs, grad=None):
        d = self._scratch["diff"]
        g = scratch(self, "grad", d.shape)
        self.xp.multiply(d, 1.0 / d.shape[0], out=g)
        return [g.reshape(srcs[0].data.shape), None]

    def metrics(self):
        if self._loss is None:
            return {}
        return {"loss": float(self._loss)}


@register(job_pb2.kAccuracy)
class AccuracyLayer(_TwoSourceLayer):
    """Top-k accuracy (argsort_conf.topk) of the first source against the labels; data passes through."""
    has_metrics = True

    def setup(self, src_shapes):
        self.setup_pair(src_shapes)
        self.topk = self.check_topk(self.conf.argsort_conf.topk, "argsort_conf.topk")
        self._acc = None
        return self.out_shape

    def forward(self, flag, srcs):
        p = self.scores2d(srcs)
        lab = self.labels(srcs, p.shape[0])
        self._acc = topk_hits(self.xp, p, lab, self.topk) / p.shape[0]
        self.data = srcs[0].data
        return self.data

    def backward(self, flag, srcs, grad=None):
        return [None, None]

    def metrics(self):
        if self._acc is None:
            return {}
        return {"acc": float(self._acc)}
