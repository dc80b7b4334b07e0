"""kGRU and the built-in kEmbedding (SINGA-V0-REST.md 2 and 3.5).

kGRU, SINGA's linear-before-reset GRU. Sources: ``[x]`` (h_prev = 0, the first time step) or
``[x, h_prev]`` (the previous step's GRU copy, which the unroller appends last). With the
params in SINGA's order W_zx, W_rx, W_cx (H, V), W_zh, W_rh, W_ch (H, H) and, when there are 9
params, b_z, b_r, b_c (H):

    z  = sigmoid(x W_zx^T + b_z + h W_zh^T)
    r  = sigmoid(x W_rx^T + b_r + h W_rh^T)
    c  = tanh(r * (h W_ch^T) + x W_cx^T + b_c)       # r applied after the hh product
    h' = (h - c) * z + c

Backward is SINGA's with its dh bug FIXED: dh gets ``g * z``, not ``z`` (2.3). Gate values live
in one (B, 3H) buffer [z | r | c] and their gradients in another [dz | dr | dc], so the sigmoid
runs once over z and r, and dx is three GEMMs accumulating into one output. The params keep SINGA's names and shapes
(checkpoints), but on NumPy each triple (W_zx, W_rx, W_cx), (W_zh, W_rh, W_ch) and (b_z, b_r, b_c), values
and gradients, is made of consecutive row blocks of one (3H, n) array: while they still are (a
share or a replica reads the owner's views), each triple is one GEMM of 3H rows, forward and
backward, instead of three (about 20% faster at H 512); otherwise three GEMMs into column
blocks of one buffer.

Param gradients go through the params' sinks (singa.updaters.fused): overwritten by default,
summed over the unrolled copies when the worker installs ``Accumulate`` sinks (BPTT).
"""
import math

import numpy

from singa.backends import blas, device_kernels
from singa.errors import ConfigError, Stated, invalid
from singa.layers.base import Layer, register, scratch, wants_gradient
from singa.layers.charrnn import check_indices, unrolled_blob
from singa.param import check_alloc
from singa.proto import job_pb2
from singa.updaters.fused import sum_into


def _sigmoid(xp, a):
    # 1/(1+exp(-a)) as 0.5*tanh(0.5a)+0.5: equal, and no overflow warning for very negative a
    xp.multiply(a, 0.5, out=a)
    xp.tanh(a, out=a)
    xp.multiply(a, 0.5, out=a)
    xp.add(a, 0.5, out=a)


def _stacked(arrays):
    """The (k*H, ...) NumPy array whose consecutive row blocks ``arrays`` are (each (H, ...)), else None."""
    a0 = arrays[0]
    base = getattr(a0, "base", None)
    if type(a0) is not numpy.ndarray or type(base) is not numpy.ndarray or base.ndim != a0.ndim:
        return None
    rows = a0.shape[0]
    if base.shape != (rows * len(arrays),) + a0.shape[1:] or not base.flags.c_contiguous:
        return None
    step = a0.nbytes
    for k, a in enumerate(arrays):
        if a.base is not base or a.shape != a0.shape or a.ctypes.data != base.ctypes.data + k * step:
            return None
    return base


def _write_grads(params, d, b):
    """The three params' gradients d[:, block k]^T b into their sinks, one GEMM when the sinks are
    stacked blocks with one alpha and beta; b None means zero gradients."""
    sinks = [p.grad_sink() for p in params]
    H = params[0].shape[0]
    block = _stacked([s[0] for s in sinks])
    if b is not None and block is not None and len({(s[1], s[2]) for s in sinks}) == 1:
        blas.gemm(d.T, b, block, sinks[0][1], sinks[0][2])
        for s in sinks:
            s[3]()
        return
    for k, (target, alpha, beta, done) in enumerate(sinks):
        if b is not None:
            blas.gemm(d[:, k * H:(k + 1) * H].T, b, target, alpha, beta)
        elif beta == 0.0:
            target[...] = 0
        elif beta != 1.0:
            target *= beta
        done()


def _sum_biases(xp, params, d):
    """The three biases' gradients, d's column sums per block, into their sinks (one sum when stacked)."""
    sinks = [p.grad_sink() for p in params]
    block = _stacked([s[0] for s in sinks])
    if block is not None and len({(s[1], s[2]) for s in sinks}) == 1:
        sum_into(xp, d, 0, (block, sinks[0][1], sinks[0][2], lambda: [s[3]() for s in sinks]))
        return
    H = params[0].shape[0]
    for k, sink in enumerate(sinks):
        sum_into(xp, d[:, k * H:(k + 1) * H], 0, sink)


def _project(a, w, out, H):
    """out[:, block k] = a w[k]^T for the three (H, n) arrays w: one GEMM when they are stacked."""
    block = _stacked(w)
    if block is not None:
        blas.gemm(a, block.T, out)
        return
    for k in range(3):
        blas.gemm(a, w[k].T, out[:, k * H:(k + 1) * H])


def _back_project(d, w, out, H, beta):
    """out = d[:, block 0] w[0] + d[:, block 1] w[1] + d[:, block 2] w[2] + beta * out."""
    block = _stacked(w)
    if block is not None:
        blas.gemm(d, block, out, 1.0, beta)
        return
    for k in range(3):
        blas.gemm(d[:, k * H:(k + 1) * H], w[k], out, 1.0, beta if k == 0 else 1.0)


@register(job_pb2.kGRU)
class GRULayer(Layer):
    def _where(self):
        return "layer '%s' (kGRU)" % self.name

    def setup(self, src_shapes):
        if len(src_shapes) not in (1, 2):
            raise invalid("srclayers of %s" % self._where(), "1 source (x) or 2 (x, then the previous step's GRU)",
                          len(src_shapes), hint="the unroller appends the previous copy; list only the input")
        shape = tuple(int(s) for s in src_shapes[0])
        if len(shape) < 1:
            raise invalid("source shape of %s" % self._where(), "a batch-first shape, (batch, features...)", shape,
                          hint="the source must give a batch of feature vectors")
        H = int(self.conf.gru_conf.dim_hidden)
        if H <= 0:
            raise invalid("gru_conf.dim_hidden of %s" % self._where(), "a positive number of hidden units", H,
                          hint="e.g. `gru_conf { dim_hidden: 512 }`")
        nparam = len(self.conf.param)
        if nparam not in (6, 9):
            # SINGA read a missing param (undefined behaviour) for 7 or 8
            raise invalid("param of %s" % self._where(), "6 params (W_zx, W_rx, W_cx, W_zh, W_rh, W_ch) or 9 "
                          "(the same, then the biases b_z, b_r, b_c)", Stated("%d param entries" % nparam),
                          hint="list the params in SINGA's order: z_hx, r_hx, c_hx, z_hh, r_hh, c_hh[, z_b, r_b, c_b]")
        B, V = shape[0], math.prod(shape[1:])
        if len(src_shapes) == 2:
            self._check_context(tuple(src_shapes[1]), B, H, "set up from")
        check_alloc(self._where(), {"gru_conf.dim_hidden": H},
                    [("input weights", (3 * H, V)), ("hidden weights", (3 * H, H)), ("gates", (B, 6 * H))],
                    self.dtype, "use fewer hidden units")
        self.batchsize, self.in_dim, self.hdim = B, V, H
        shapes = [(H, V)] * 3 + [(H, H)] * 3 + [(H,)] * (3 if nparam == 9 else 0)
        for i, s in enumerate(shapes):
            self.make_param(i, s, "bias" if i >= 6 else "weight")
        if self.xp is numpy:
            for first, rest in ((0, (V,)), (3, (H,)), (6, ()))[:3 if nparam == 9 else 2]:
                vals, grads = numpy.zeros((3 * H,) + rest, self.dtype), numpy.zeros((3 * H,) + rest, self.dtype)
                for k in range(3):
                    p = self.params[first + k]
                    p.data, p.grad = vals[k * H:(k + 1) * H], grads[k * H:(k + 1) * H]
        self.out_shape = (B, H)
        return self.out_shape

    def _check_context(self, shape, B, H, how):
        if len(shape) != 2 or shape[1] != H or shape[0] != B:
            raise invalid("srclayers[1] (the context) of %s" % self._where(),
                          "the previous step's hidden state, shape (%d, %d): gru_conf.dim_hidden %d" % (B, H, H),
                          Stated("a source %s shape %s" % (how, shape)),
                          hint="the second source is the previous time step's copy of this GRU (the unroller adds "
                               "it); give both the same dim_hidden")

    @property
    def has_bias(self):
        return len(self.params) == 9

    def _x2d(self, src):
        x = src.data
        if x.ndim < 1 or x.size != x.shape[0] * self.in_dim:
            raise ConfigError("Invalid input of %s. Expected %d features per sample. Received: an array of shape "
                              "%s from '%s'\nhelp: the source's shape must not change after setup" % (
                                  self._where(), self.in_dim, tuple(x.shape), getattr(src, "name", "?")))
        return x.reshape(x.shape[0], self.in_dim)

    def _context(self, srcs, B):
        if len(srcs) < 2:
            return None
        h = srcs[1].data
        self._check_context(tuple(h.shape), B, self.hdim, "'%s' of" % getattr(srcs[1], "name", "?"))
        return h

    def forward(self, flag, srcs):
        xp, H = self.xp, self.hdim
        x = self._x2d(srcs[0])
        B = x.shape[0]
        h = self._context(srcs, B)
        w = [p.data for p in self.params]     # read every step: sharing may have replaced the arrays
        gates = scratch(self, "gates", (B, 3 * H))    # [z | r | c]
        _project(x, w[0:3], gates, H)
        if self.has_bias:
            bias = _stacked(w[6:9])
            if bias is not None:
                xp.add(gates, bias, out=gates)
            else:
                for k in range(3):
                    xp.add(gates[:, k * H:(k + 1) * H], w[6 + k], out=gates[:, k * H:(k + 1) * H])
        hh = scratch(self, "hh", (B, 3 * H))          # [h W_zh^T | h W_rh^T | h W_ch^T]
        if h is not None:
            _project(h, w[3:6], hh, H)
        y = scratch(self, "y", (B, H))
        if self.on_device:       # one pass for every element-wise step (the NumPy code's operations)
            device_kernels.GRU_FORWARD(xp, hh, self._zeros(B) if h is None else h, H, int(h is not None), gates, y)
        else:
            self._gates_cpu(gates, hh if h is not None else None, h, y)
        self.data = y
        return y

    def _zeros(self, B):
        z = scratch(self, "zeros", (B, self.hdim))
        z[...] = 0
        return z

    def _gates_cpu(self, gates, hh, h, y):
        """z, r, c in place in ``gates`` (the x products and biases on entry) and h' into y."""
        xp, H = self.xp, self.hdim
        zr, c = gates[:, :2 * H], gates[:, 2 * H:]
        if hh is not None:
            xp.add(zr, hh[:, :2 * H], out=zr)
        _sigmoid(xp, zr)
        z, r = gates[:, :H], gates[:, H:2 * H]
        if hh is not None:
            t = scratch(self, "t", y.shape)
            xp.multiply(r, hh[:, 2 * H:], out=t)
            xp.add(c, t, out=c)
        xp.tanh(c, out=c)
        if h is None:
            xp.multiply(z, c, out=y)      # (0 - c) * z + c
            xp.subtract(c, y, out=y)
        else:
            xp.subtract(h, c, out=y)
            xp.multiply(y, z, out=y)
            xp.add(y, c, out=y)

    def _grads_cpu(self, g, gates, hh, h, d, dh3, dh):
        """[dz | dr | dc] into d, [dz | dr | dc r] into dh3 and g z into dh (with a context h)."""
        xp, H = self.xp, self.hdim
        z, r, c = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
        dz, dr, dc = d[:, :H], d[:, H:2 * H], d[:, 2 * H:]
        t = scratch(self, "t", g.shape)
        # dz = g (h - c) z (1 - z)
        if h is None:
            xp.negative(c, out=dz)
        else:
            xp.subtract(h, c, out=dz)
        xp.multiply(dz, g, out=dz)
        xp.subtract(1, z, out=t)
        xp.multiply(t, z, out=dc)         # dc as scratch: z (1 - z)
        xp.multiply(dz, dc, out=dz)
        # dc = g (1 - z) (1 - c^2)
        xp.multiply(g, t, out=dc)
        xp.multiply(c, c, out=t)
        xp.subtract(1, t, out=t)
        xp.multiply(dc, t, out=dc)
        xp.multiply(dc, r, out=dh3[:, 2 * H:])
        # dr = dc (h W_ch^T) r (1 - r); zero without a context
        if h is None:
            dr[...] = 0
        else:
            xp.subtract(1, r, out=t)
            xp.multiply(t, r, out=t)
            xp.multiply(dc, hh[:, 2 * H:], out=dr)
            xp.multiply(dr, t, out=dr)
            xp.multiply(g, z, out=dh)             # FIX: SINGA added z itself here
        dh3[:, :2 * H] = d[:, :2 * H]

    def backward(self, flag, srcs, grad):
        xp, H = self.xp, self.hdim
        x = self._x2d(srcs[0])
        B = x.shape[0]
        h = srcs[1].data if len(srcs) > 1 else None
        gates, hh = scratch(self, "gates", (B, 3 * H)), scratch(self, "hh", (B, 3 * H))
        d = scratch(self, "dgates", (B, 3 * H))     # [dz | dr | dc]
        dh3 = scratch(self, "dh3", (B, 3 * H))      # [dz | dr | dc r]: the hh products' gradients
        dh = scratch(self, "dh", (B, H))
        if self.on_device:
            device_kernels.GRU_BACKWARD(xp, grad, gates, hh, self._zeros(B) if h is None else h, H,
                                        int(h is not None), d, dh3, dh)
        else:
            self._grads_cpu(grad, gates, hh, h, d, dh3, dh)
        p = self.params
        _write_grads(p[0:3], d, x)
        _write_grads(p[3:6], dh3, h)
        if self.has_bias:
            _sum_biases(xp, p[6:9], d)
        out = [None]
        if wants_gradient(srcs[0]):
            dx = scratch(self, "dx", (B, self.in_dim))
            _back_project(d, [q.data for q in p[0:3]], dx, H, 0.0)
            out[0] = dx.reshape(srcs[0].data.shape)
        if h is not None:
            _back_project(dh3, [q.data for q in p[3:6]], dh, H, 1.0)
            out.append(dh)
        return out


@register(job_pb2.kEmbedding)
class EmbeddingLayer(Layer):
    """kEmbedding (built-in): ``out[i] = W[idx[i]]`` with W (vocab_size, feature_dim), idx the
    source's blob ``unroll_index`` (kCharRNN's datavec, or a single-blob source's data). Indices
    outside the vocab are a DataError (SINGA read out of bounds). Backward: dW = onehot(idx)^T g,
    one GEMM into the param's sink (SINGA's memset of the first B rows is FIXED away, so the
    unrolled copies' sums survive); no gradient to the source (indices have none)."""

    def _where(self):
        return "layer '%s' (kEmbedding)" % self.name

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        ec = self.conf.embedding_conf
        for field, v in (("vocab_size", ec.vocab_size), ("feature_dim", ec.feature_dim)):
            if v <= 0:
                raise invalid("embedding_conf.%s of %s" % (field, self._where()), "a positive integer", v,
                              hint="e.g. `embedding_conf { vocab_size: 101 feature_dim: 100 }`")
        shape = tuple(int(s) for s in src_shapes[0])
        if len(shape) < 1:
            raise invalid("source shape of %s" % self._where(), "a batch of indices, shape (batch,)", shape,
                          hint="its source is a data layer giving character or word indices")
        self.vocab_size, self.feature_dim = int(ec.vocab_size), int(ec.feature_dim)
        check_alloc(self._where(), {"embedding_conf.vocab_size": self.vocab_size,
                                    "embedding_conf.feature_dim": self.feature_dim},
                    [("table", (self.vocab_size, self.feature_dim))] * 2, self.dtype,
                    "use a smaller vocabulary or feature_dim")
        self.weight = self.make_param(0, (self.vocab_size, self.feature_dim), "embedding table")
        self.out_shape = (shape[0], self.feature_dim)
        return self.out_shape

    def forward(self, flag, srcs):
        idx = check_indices(self, unrolled_blob(self, srcs[0], self.conf.unroll_index), self.vocab_size,
                            "embedding_conf.vocab_size")
        self._idx = idx
        y = scratch(self, "y", (idx.shape[0], self.feature_dim))
        y[...] = self.weight.data[idx]
        self.data = y
        return y

    def backward(self, flag, srcs, grad):
        idx = self._idx
        B = idx.shape[0]
        # the rows' one-hot matrix: the scatter-add becomes a GEMM, which writes the sink's
        # alpha/beta form directly and adds duplicates in a fixed order (no atomics on a GPU)
        oh = scratch(self, "onehot", (B, self.vocab_size))
        oh[...] = 0
        oh[self.xp.arange(B), idx] = 1
        target, alpha, beta, done = self.weight.grad_sink()
        blas.gemm(oh.T, grad.reshape(B, self.feature_dim), target, alpha, beta)
        done()
        return [None]
