"""Restricted Boltzmann machine layers for contrastive divergence (SINGA-V0.md 6.8): kRBMVis and
kRBMHid, trained by ``singa.worker.CDWorker`` (alg kCD), not by back-propagation.

The pair shares one weight W (hdim, vdim): kRBMVis owns it (params [W, b_vis (vdim)]), kRBMHid
lists a share of it (params [W' share_from W, c_hid (hdim)]). kRBMVis's sources are the layer
below (the data, or the sigmoid codes of the RBMs below) and, as a back edge, kRBMHid; kRBMHid's
source is kRBMVis.

    positive:  v0 = input;  h0 = sigmoid(v0 W^T + c)  (gaussian: v0 W^T + c);  hs ~ h0
    negative:  v = sigmoid(hs W + b)  (probabilities, not sampled: Hinton's Science paper);
               h = sigmoid(v W^T + c)  (gaussian: linear);  hs ~ h    (cd_k times)
    gradients: dW = (h_k^T v_k - h0^T v0) / B,  db = mean(v_k - v0),  dc = mean(h_k - h0)

Sampling: hs = [u < h] with u uniform (Bernoulli), or hs = h + N(0, 1) for gaussian hidden
units. kRBMHid contributes a zero gradient to the shared weight, and the updater averages an
owner's gradient over its shares, so the weight step is half the formula's, as in SINGA. The
reported metric is SINGA's "Squared Error" ('se'): sum((v0 - v1)^2) / B, v1 the first
reconstruction of the batch.
"""
import math

import numpy

from singa.backends import blas
from singa.errors import ConfigError
from singa.layers.base import Layer, register, scratch, type_name
from singa.param import check_alloc
from singa.proto import job_pb2
from singa.random import normal, uniform


def _affine(xp, x, w, bias, out, transpose, sigmoid):
    """out = x w^T + bias (``transpose``) or x w + bias, then sigmoid if asked.

    For the sigmoid the product is written negated, onto the negated bias, by one GEMM
    (alpha = -1, beta = 1), so 1 / (1 + exp(-a)) needs three more passes (exp, +1, reciprocal)
    instead of five (+bias, negate, exp, +1, reciprocal)."""
    sign = -1.0 if sigmoid else 1.0
    if sigmoid:
        xp.negative(xp.broadcast_to(bias, out.shape), out=out)
    else:
        xp.copyto(out, xp.broadcast_to(bias, out.shape))
    blas.gemm(x, w.T if transpose else w, out, sign, 1.0)
    if sigmoid:
        # exp(-a) overflows to inf for a < -88 (float32): 1 / (1 + inf) is the right 0, so NumPy's
        # overflow warning is noise the user must not see
        with numpy.errstate(over="ignore"):
            xp.exp(out, out=out)
        xp.add(out, 1.0, out=out)
        xp.reciprocal(out, out=out)
    return out


class _RBMLayer(Layer):
    trains_with_cd = True

    def _half(self, which, batch, dim):
        """The negative ([:B]) or positive ([B:]) half of one (2B, dim) buffer: the CD weight
        gradient h_k^T v_k - h0^T v0 is then one product of the stacked halves."""
        buf = scratch(self, "both", (2 * batch, dim))
        return buf[:batch] if which == "neg" else buf[batch:]

    def _hdim(self):
        if not self.conf.HasField("rbm_conf"):
            raise ConfigError("layer '%s' (%s) has no `rbm_conf`.\nhelp: add `rbm_conf { hdim: 1000 }` (the number of "
                              "hidden units)" % (self.name, type_name(self.conf.type)))
        h = int(self.conf.rbm_conf.hdim)
        if h <= 0:
            raise ConfigError("Invalid value for `rbm_conf.hdim` of layer '%s' (%s). Expected a positive number of "
                              "hidden units. Received: %d" % (self.name, type_name(self.conf.type), h))
        return h

    def _dims(self, shape):
        """(hdim, vdim) for a source of ``shape``, refused when the weight would not fit in memory."""
        h = self._hdim()
        v = math.prod(int(d) for d in shape[1:])      # Python ints: no int64 wrap-around
        check_alloc("layer '%s' (%s)" % (self.name, type_name(self.conf.type)), {"rbm_conf.hdim": h},
                    [("weight", (h, v)), ("weight gradient", (h, v)), ("both phases", (2 * shape[0], max(h, v)))],
                    self.dtype, "the weight is hdim x %d (the visible units); use fewer hidden units, e.g. "
                    "`rbm_conf { hdim: 1000 }`" % v)
        return h, v

    def forward(self, flag, srcs):
        raise ConfigError("layer '%s' (%s) trains with contrastive divergence.\nhelp: use `train_one_batch { alg: kCD "
                          "}` (fit(alg='cd')); back-propagation (kBP) cannot train RBM layers"
                          % (self.name, type_name(self.conf.type)))

    def backward(self, flag, srcs, grad):
        self.forward(flag, srcs)


@register(job_pb2.kRBMVis)
class RBMVisLayer(_RBMLayer):
    """The visible side: holds v0 (the input) and the reconstructions v."""
    has_metrics = True

    def setup(self, src_shapes):
        if len(src_shapes) != 1:
            raise ConfigError("Invalid value for `srclayers` of layer '%s' (kRBMVis). Expected the input layer and the "
                              "paired kRBMHid layer. Received: %d input layer(s) besides kRBMHid.\nhelp: "
                              "`srclayers: \"data\" srclayers: \"RBMHid\"`" % (self.name, len(src_shapes)))
        shape = tuple(int(s) for s in src_shapes[0])
        self.hdim, self.vdim = self._dims(shape)
        self.batch = shape[0]
        self.weight = self.make_param(0, (self.hdim, self.vdim), "weight")
        self.bias = self.make_param(1, (self.vdim,), "visible bias")
        self.hid = None          # the paired RBMHid, set by NeuralNet
        self.pos = self.neg = None
        self._se = None
        self.out_shape = (self.batch, self.vdim)
        return self.out_shape

    def positive(self, srcs):
        x = srcs[0].data
        self.pos = self._half("pos", x.shape[0], self.vdim)
        self.xp.copyto(self.pos, x.reshape(x.shape[0], self.vdim))
        self.data = self.pos
        self.first = True
        return self.pos

    def negative(self, flag):
        """v = sigmoid(hs W + b) from the hidden layer's latest sample; with kTest on the first
        reconstruction of the batch, the squared error against v0."""
        xp = self.xp
        hs = self.hid.sample
        v = _affine(xp, hs, self.weight.data, self.bias.data, self._half("neg", hs.shape[0], self.vdim),
                    transpose=False, sigmoid=True)
        self.neg = self.data = v
        if flag & job_pb2.kTest and self.first:
            d = scratch(self, "diff", v.shape)
            xp.subtract(self.pos, v, out=d)
            flat = d.reshape(-1)
            self._se = xp.vdot(flat, flat) / v.shape[0]
            self.first = False
        return v

    def cd_gradients(self):
        """dW = (h_k^T v_k - h0^T v0) / B and db = mean(v_k - v0) into the params' grads.

        The weight's gradient goes to its sink (``Param.grad_sink``): with SGD the worker has
        the update applied inside the product instead (see CDWorker)."""
        xp = self.xp
        h = self.hid
        B = self.pos.shape[0]
        target, alpha, beta, done = self.weight.grad_sink()
        xp.subtract(self.neg.sum(axis=0), self.pos.sum(axis=0), out=self.bias.grad)
        self.bias.grad *= 1.0 / B
        # h_k^T v_k - h0^T v0 = [h_k; -h0]^T [v_k; v0]: one product over the stacked halves (the
        # output is written once), h0 negated for it and restored
        hb, vb = h._scratch["both"], self._scratch["both"]
        xp.negative(h.pos, out=h.pos)
        blas.gemm(hb.T, vb, target, alpha / B, beta)
        xp.negative(h.pos, out=h.pos)
        done()

    def metrics(self):
        if self._se is None:
            return {}
        return {"se": float(self._se)}


@register(job_pb2.kRBMHid)
class RBMHidLayer(_RBMLayer):
    """The hidden side: probabilities h0 (positive) and h (negative), and the sample hs."""

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        shape = tuple(int(s) for s in src_shapes[0])
        self.hdim, self.vdim = self._dims(shape)
        self.gaussian = bool(self.conf.rbm_conf.gaussian)
        self.weight = self.make_param(0, (self.hdim, self.vdim), "weight")
        self.bias = self.make_param(1, (self.hdim,), "hidden bias")
        self.pos = self.neg = self.sample = None
        self.vis = None          # the paired RBMVis (this layer's source), set below
        self.out_shape = (shape[0], self.hdim)
        return self.out_shape

    def _hidden(self, v, key):
        return _affine(self.xp, v, self.weight.data, self.bias.data, self._half(key, v.shape[0], self.hdim),
                       transpose=True, sigmoid=not self.gaussian)

    def _sample(self, h):
        # Noise drawn on the layer's device (singa.random): the same numbers on NumPy and CuPy.
        if self.rng is None:
            raise ConfigError("layer '%s' (kRBMHid) has no random stream: NeuralNet sets one from the job's seed"
                              % self.name)
        s = scratch(self, "sample", h.shape)
        if self.gaussian:
            self.xp.add(h, normal(self.xp, self.rng, h.shape, self.dtype), out=s)
        else:
            self.xp.less(uniform(self.xp, self.rng, h.shape, self.dtype), h, out=s, casting="unsafe")
        self.sample = s
        return s

    def positive(self, srcs):
        vis = srcs[0]
        self.pos = self._hidden(vis.pos, "pos")
        self.data = self.pos
        self._sample(self.pos)
        return self.pos

    def negative(self, flag):
        self.neg = self._hidden(self.vis.neg, "neg")
        self.data = self.neg
        self._sample(self.neg)
        return self.neg

    def cd_gradients(self):
        """dc = mean(h_k - h0); the shared weight gets zero from this side (SINGA's RBMHid)."""
        xp = self.xp
        B = self.pos.shape[0]
        xp.subtract(self.neg.sum(axis=0), self.pos.sum(axis=0), out=self.bias.grad)
        self.bias.grad *= 1.0 / B
        if not getattr(self, "_zero_grad", False):    # nothing else writes it: zero it once
            self.weight.grad[...] = 0
            self._zero_grad = True


__all__ = ["RBMVisLayer", "RBMHidLayer"]
