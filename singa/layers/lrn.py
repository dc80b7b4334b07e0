"""Local response normalisation across channels (SINGA-V0.md 6.6): kLRN and kCudnnLRN.

With n = local_size (odd) and the centred channel window clipped to [0, C):

    s[c]  = sum_{c' in window(c)} x[c']^2
    norm  = knorm + (alpha / n) * s
    y     = x * norm^(-beta)
    dx    = g * norm^(-beta) - (2*beta*alpha/n) * x * window_sum(g * y / norm)

(g * y / norm = g * x * norm^(-beta-1)). Source (B, C, ...): channels on axis 1, the rest
flattened. The window sums are n-1 shifted whole-batch adds (exact, unlike differences of a
cumulative sum); forward keeps norm and norm^(-beta) for backward, which reads this layer's
output and writes dx into the gradient it is given. On a device, forward is one kernel and
backward two (device_kernels.LRN_FORWARD, LRN_BACKWARD_T, LRN_BACKWARD), with the window sums
in the order of ``window_sum`` (so the stand-in gives NumPy's numbers).
"""
import math

import numpy

from singa.backends import blas, device_kernels, parallel
from singa.errors import invalid
from singa.layers.base import Layer, register, scratch, type_name
from singa.proto import job_pb2


def window_sum(xp, a, out, half):
    """out[:, c] = sum of a[:, c-half .. c+half] over channels (axis 1), clipped to [0, C)."""
    xp.copyto(out, a)
    C = a.shape[1]
    for d in range(1, min(half, C - 1) + 1):
        xp.add(out[:, d:], a[:, :-d], out=out[:, d:])
        xp.add(out[:, :-d], a[:, d:], out=out[:, :-d])
    return out


def neg_power(xp, base, beta, out):
    """out = base ** -beta; beta 0.75 (the default) and 0.5 by square roots, cheaper than pow."""
    if beta == 0.75:
        xp.sqrt(base, out=out)
        xp.sqrt(out, out=out)                # b^(1/4)
        xp.divide(out, base, out=out)        # b^(1/4 - 1)
    elif beta == 0.5:
        xp.sqrt(base, out=out)
        xp.reciprocal(out, out=out)
    else:
        xp.power(base, -beta, out=out)
    return out


@register(job_pb2.kLRN, job_pb2.kCudnnLRN)
class LRNLayer(Layer):
    def __init__(self, conf, backend, dtype=numpy.float32):
        super().__init__(conf, backend, dtype)
        c = conf.lrn_conf
        self.local_size = int(c.local_size)
        self.alpha = float(c.alpha)
        self.beta = float(c.beta)
        self.knorm = float(c.knorm)
        self.norm = self.scale = None     # kept from forward for backward

    def _field(self, field, expected, value, hint):
        return invalid("lrn_conf.%s of layer '%s' (%s)" % (field, self.name, type_name(self.conf.type)),
                       expected, value, hint=hint)

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        shape = tuple(int(s) for s in src_shapes[0])
        if len(shape) < 2:
            raise invalid("source shape of layer '%s' (%s)" % (self.name, type_name(self.conf.type)),
                          "a (batch, channels, ...) shape with at least 2 dimensions", shape,
                          hint="LRN normalises across channels: put it after a convolution or pooling layer")
        n, C = self.local_size, shape[1]
        if n <= 0 or n % 2 == 0:
            raise self._field("local_size", "a positive odd number of channels", n,
                              "the window is centred on each channel, e.g. `lrn_conf { local_size: 3 }`")
        if n > C:
            raise self._field("local_size", "at most the number of channels of the source (%d)" % C, n,
                              "use `local_size` <= %d" % C)
        # norm = knorm + alpha/n * sum(x^2) is raised to -beta: knorm <= 0 gives inf or NaN
        # (0^-beta, or a negative base), and NaN/inf values poison every output
        for field, value, ok, expected in (
                ("knorm", self.knorm, self.knorm > 0, "a positive finite number"),
                ("alpha", self.alpha, self.alpha >= 0, "a finite number >= 0"),
                ("beta", self.beta, True, "a finite number")):
            if not (math.isfinite(value) and ok):
                raise self._field(field, expected, value, "the defaults are `lrn_conf { alpha: 1 beta: 0.75 knorm: 1 }`"
                                  " (CIFAR-10's net: `alpha: 5e-05 beta: 0.75`)")
        self.half = n // 2
        self.elems = int(numpy.prod(shape[1:]))
        self.out_shape = shape
        return shape

    def _shape_args(self, x3):
        return numpy.int32(x3.shape[1]), numpy.int32(x3.shape[2]), numpy.int32(self.half)

    def _3d(self, a):
        return a.reshape(a.shape[0], a.shape[1], -1)

    def _split(self, fn, B):
        """fn(samples) over disjoint blocks of the batch (NumPy): blocks of big batches go to
        blas.num_threads() threads (the ufuncs release the GIL)."""
        n = parallel.parts("lrn", B * self.elems, blas.num_threads(), most=B)
        if n <= 1:
            fn(slice(None))
            return
        blas.parallel(lambda k, n: fn(blas.part(B, k, n)), n)

    def _buffers(self, x):
        """x as (B, C, S), and its output, norm and scale buffers (kept for backward)."""
        x3 = self._3d(x)
        y = scratch(self, "y", x.shape)
        self.norm = scratch(self, "norm", x3.shape)
        self.scale = scratch(self, "scale", x3.shape)
        self.data = y
        return x3, y

    def forward_cpu(self, flag, srcs):
        xp = self.xp
        x3, y = self._buffers(srcs[0].data)
        y3, norm, scale = self._3d(y), self.norm, self.scale
        sq = scratch(self, "sq", x3.shape)

        def block(b):
            xp.multiply(x3[b], x3[b], out=sq[b])
            window_sum(xp, sq[b], norm[b], self.half)
            xp.multiply(norm[b], self.alpha / self.local_size, out=norm[b])
            xp.add(norm[b], self.knorm, out=norm[b])
            neg_power(xp, norm[b], self.beta, scale[b])
            xp.multiply(x3[b], scale[b], out=y3[b])
        self._split(block, x3.shape[0])
        return y

    def forward_device(self, flag, srcs):
        xp, t = self.xp, self.dtype.type
        x3, y = self._buffers(srcs[0].data)
        mode = 0 if self.beta == 0.75 else 1 if self.beta == 0.5 else 2
        device_kernels.LRN_FORWARD(xp, xp.ascontiguousarray(x3), *self._shape_args(x3),
                                   t(self.alpha / self.local_size), t(self.knorm), t(self.beta), numpy.int32(mode),
                                   self._3d(y), self.norm, self.scale)
        return y

    def backward_cpu(self, flag, srcs, grad):
        if grad is None:
            return [None]
        xp = self.xp
        x3, g3, y3 = self._3d(srcs[0].data), self._3d(grad), self._3d(self.data)
        t = scratch(self, "sq", x3.shape)       # x^2 is no longer needed
        ws = scratch(self, "ws", x3.shape)
        c = 2.0 * self.beta * self.alpha / self.local_size

        def block(b):
            xp.multiply(g3[b], y3[b], out=t[b])
            xp.divide(t[b], self.norm[b], out=t[b])           # g * x * norm^(-beta-1)
            window_sum(xp, t[b], ws[b], self.half)
            xp.multiply(ws[b], x3[b], out=ws[b])
            xp.multiply(ws[b], c, out=ws[b])
            xp.multiply(g3[b], self.scale[b], out=g3[b])
            xp.subtract(g3[b], ws[b], out=g3[b])
        self._split(block, x3.shape[0])
        return [g3.reshape(grad.shape)]

    def backward_device(self, flag, srcs, grad):
        if grad is None:
            return [None]
        xp = self.xp
        x3, g3, y3 = self._3d(srcs[0].data), self._3d(grad), self._3d(self.data)
        t = scratch(self, "t", x3.shape)
        c = 2.0 * self.beta * self.alpha / self.local_size
        device_kernels.LRN_BACKWARD_T(xp, g3, y3, self.norm, t)
        device_kernels.LRN_BACKWARD(xp, t, x3, self.scale, *self._shape_args(x3), self.dtype.type(c), g3)
        return [g3.reshape(grad.shape)]

__all__ = ["LRNLayer", "window_sum", "neg_power"]
