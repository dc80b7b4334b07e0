"""Element-wise neuron layers (SINGA-V0.md 6.1, 6.7): kSTanh, kReLU, kSigmoid, kActivation,
kSoftmax and kDropout.

Memory traffic matters more than flops here, so:

* outputs go into a buffer allocated once per shape (``scratch``) and reused every step;
* ``backward`` writes dx into the incoming gradient array and returns it. The gradient of a
  layer's output is consumed by that layer only, so overwriting it is safe and saves a buffer
  and a pass;
* with ``inplace`` (set from ``share_src_blobs``, which SINGA honoured for kActivation only)
  forward overwrites the source's data. That is only correct when nothing else reads the
  source's output and the source's backward does not read its own output; as in SINGA, the
  conf's author vouches for that.
"""
import numpy

from singa.backends import blas, device_kernels, parallel
from singa.backends.device_kernels import STANH_A, STANH_B
from singa.errors import ConfigError, invalid
from singa.layers.base import Layer, flat2d, register, scratch
from singa.proto import enum_name, job_pb2
from singa.random import draw_key, uniform


def softmax_rows(xp, x2, out, col):
    """Row-wise softmax of the 2-D ``x2`` into ``out``; ``col`` is a (rows, 1) scratch buffer."""
    xp.max(x2, axis=1, keepdims=True, out=col)     # subtract the row max: exp never overflows
    xp.subtract(x2, col, out=out)
    xp.exp(out, out=out)
    xp.sum(out, axis=1, keepdims=True, out=col)
    xp.reciprocal(col, out=col)
    xp.multiply(out, col, out=out)
    return out


# -- activation functions on NumPy: forward(x, y) writes y; backward(y, g) turns g into dx in place;
# their device kernels are singa.backends.device_kernels.ACTIVATIONS

def relu_forward(layer, x, y):
    layer.xp.maximum(x, 0, out=y)


def relu_backward(layer, y, g, key="tmp"):
    xp = layer.xp
    m = scratch(layer, key + "mask", y.shape, numpy.bool_)
    xp.greater(y, 0, out=m)
    xp.multiply(g, m, out=g)


def sigmoid_forward(layer, x, y):
    # 1/(1+exp(-x)) == 0.5*tanh(0.5x) + 0.5, which never overflows for very negative x.
    xp = layer.xp
    xp.multiply(x, 0.5, out=y)
    xp.tanh(y, out=y)
    xp.multiply(y, 0.5, out=y)
    xp.add(y, 0.5, out=y)


def sigmoid_backward(layer, y, g, key="tmp"):
    xp = layer.xp
    t = scratch(layer, key, y.shape)
    xp.multiply(y, y, out=t)
    xp.subtract(y, t, out=t)       # y(1-y)
    xp.multiply(g, t, out=g)


def tanh_forward(layer, x, y):
    layer.xp.tanh(x, out=y)


def tanh_backward(layer, y, g, key="tmp"):
    xp = layer.xp
    t = scratch(layer, key, y.shape)
    xp.multiply(y, y, out=t)
    xp.subtract(1, t, out=t)
    xp.multiply(g, t, out=g)


def stanh_forward(layer, x, y):
    xp = layer.xp
    xp.multiply(x, STANH_B, out=y)
    xp.tanh(y, out=y)
    xp.multiply(y, STANH_A, out=y)


def stanh_backward(layer, y, g, key="tmp"):
    # dy/dx = A*B*(1 - tanh^2) = A*B - (B/A)*y^2
    xp = layer.xp
    t = scratch(layer, key, y.shape)
    xp.multiply(y, y, out=t)
    xp.multiply(t, -(STANH_B / STANH_A), out=t)
    xp.add(t, STANH_A * STANH_B, out=t)
    xp.multiply(g, t, out=g)


class NeuronLayer(Layer):
    """One source, output of the source's shape, y = f(x) element-wise.

    ``fns`` is the (forward, backward) pair on NumPy; ``kernels`` the pair on a device, as names in
    device_kernels.ACTIVATIONS, where None means the NumPy function (one xp call) serves as it is."""
    fns = None
    kernels = (None, None)

    def __init__(self, conf, backend, dtype=numpy.float32):
        super().__init__(conf, backend, dtype)
        # SINGA honoured share_src_blobs for kActivation only.
        self.inplace = bool(conf.share_src_blobs) and conf.type == job_pb2.kActivation

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        self.out_shape = tuple(src_shapes[0])
        return self.out_shape

    def _parts(self, *arrays):
        # NumPy's ufuncs run on one core but release the GIL: big arrays may be split by rows.
        # Only with blas.split_products(): next to OpenBLAS's own threads (which spin a while
        # after each call) an extra thread of ours was slower than one (benchmarks/README.md).
        a = arrays[0]
        if (not blas.split_products() or a.ndim < 1 or
                not all(type(b) is numpy.ndarray and b.flags.c_contiguous for b in arrays)):
            return 1
        return parallel.parts("ufunc", a.size, blas.num_threads(), most=a.shape[0])

    def forward_cpu(self, flag, srcs):
        x = srcs[0].data
        y = x if self.inplace else scratch(self, "y", x.shape)
        fwd = self.fns[0]
        n = self._parts(x, y)
        if n == 1:
            fwd(self, x, y)
        else:
            x2, y2 = flat2d(x), flat2d(y)

            def part(k, n):
                r = blas.part(x2.shape[0], k, n)
                fwd(self, x2[r], y2[r])
            blas.parallel(part, n)
        self.data = y
        return y

    def backward_cpu(self, flag, srcs, grad):
        if grad is None:
            return [None]
        y, bwd = self.data, self.fns[1]
        n = self._parts(y, grad)
        if n == 1:
            bwd(self, y, grad)
        else:
            y2, g2 = flat2d(y), flat2d(grad)

            def part(k, n):        # each part its own scratch
                r = blas.part(y2.shape[0], k, n)
                bwd(self, y2[r], g2[r], "tmp%d" % k)
            blas.parallel(part, n)
        return [grad]

    def forward_device(self, flag, srcs):
        x = srcs[0].data
        y = x if self.inplace else scratch(self, "y", x.shape)
        self._on_device(0, x, y)
        self.data = y
        return y

    def backward_device(self, flag, srcs, grad):
        if grad is None:
            return [None]
        self._on_device(1, self.data, grad)
        return [grad]

    def _on_device(self, i, a, b):
        name = self.kernels[i]
        if name is None:
            self.fns[i](self, a, b)
        else:
            device_kernels.ACTIVATIONS[name](self.xp, a, b)


@register(job_pb2.kReLU)
class ReLULayer(NeuronLayer):
    """y = max(x, 0). Like SINGA, relu_conf.negative_slope is ignored."""
    fns = (relu_forward, relu_backward)
    kernels = (None, "relu_backward")


@register(job_pb2.kSigmoid)
class SigmoidLayer(NeuronLayer):
    fns = (sigmoid_forward, sigmoid_backward)
    kernels = ("sigmoid_forward", "sigmoid_backward")


@register(job_pb2.kSTanh)
class STanhLayer(NeuronLayer):
    """y = 1.7159047 * tanh(0.66666667 * x)."""
    fns = (stanh_forward, stanh_backward)
    kernels = ("stanh_forward", "stanh_backward")


# activation_conf.type -> (fns, kernels) of kActivation
ACTIVATIONS = {
    job_pb2.RELU: (ReLULayer.fns, ReLULayer.kernels),
    job_pb2.SIGMOID: (SigmoidLayer.fns, SigmoidLayer.kernels),
    job_pb2.TANH: ((tanh_forward, tanh_backward), (None, "tanh_backward")),
}


@register(job_pb2.kActivation, job_pb2.kCudnnActivation)  # cuDNN types run the same code
class ActivationLayer(NeuronLayer):
    """activation_conf.type RELU, SIGMOID or TANH (SINGA's CPU code had no STANH here)."""

    def __init__(self, conf, backend, dtype=numpy.float32):
        super().__init__(conf, backend, dtype)
        t = conf.activation_conf.type
        pair = ACTIVATIONS.get(t)
        if pair is None:
            raise invalid("activation_conf.type of layer '%s' (kActivation)" % self.name,
                          "one of RELU, SIGMOID, TANH", enum_name(job_pb2.ActivationType, t),
                          hint="SINGA v0.3's kActivation had no STANH (\"Unknow activation type\"); "
                               "use a layer of `type: kSTanh` for the scaled tanh")
        self.fns, self.kernels = pair


@register(job_pb2.kSoftmax, job_pb2.kCudnnSoftmax)
class SoftmaxLayer(Layer):
    """Softmax over the flattened non-batch dims of each instance, or, with
    ``softmax_conf.num_softmax_per_instance: n``, over each of its n equal consecutive parts (SINGA's
    count_per_softmax). No backward, as in SINGA."""

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        self.out_shape = tuple(src_shapes[0])
        n = int(self.conf.softmax_conf.num_softmax_per_instance)
        dim = int(numpy.prod(self.out_shape[1:]))
        if n < 1 or dim % n:
            raise invalid("softmax_conf.num_softmax_per_instance of layer '%s'" % self.name,
                          "a positive divisor of the %d values per instance" % dim, n,
                          hint="e.g. 2 for two softmaxes over %d values each" % (dim // 2) if dim % 2 == 0 else
                          "leave it out (1: one softmax per instance)")
        self.parts = n
        return self.out_shape

    def forward(self, flag, srcs):
        x = srcs[0].data
        y = scratch(self, "y", x.shape)
        rows = x.shape[0] * self.parts
        col = scratch(self, "col", (rows, 1))
        softmax_rows(self.xp, x.reshape(rows, -1), y.reshape(rows, -1), col)
        self.data = y
        return y

    def backward(self, flag, srcs, grad):
        if grad is None:     # nothing above needs a gradient: nothing to refuse
            return [None]
        raise ConfigError(
            "layer '%s' (kSoftmax) cannot back-propagate: SINGA v0.3's softmax layer has no gradient "
            "(it aborted with \"not implemented\").\nhelp: train with a `kSoftmaxLoss` layer on the scores "
            "(it applies the softmax itself), and use kSoftmax only where no gradient flows, e.g. a layer "
            "with `include: kTest` feeding kAccuracy" % self.name)


@register(job_pb2.kDropout)
class DropoutLayer(Layer):
    """Inverted dropout: in training y = x * [u < 1-p] / (1-p); identity otherwise."""

    def __init__(self, conf, backend, dtype=numpy.float32):
        super().__init__(conf, backend, dtype)
        p = conf.dropout_conf.dropout_ratio
        if not 0 <= p < 1:
            raise invalid("dropout_conf.dropout_ratio of layer '%s' (kDropout)" % self.name,
                          "a drop probability in [0, 1)", p,
                          hint="e.g. `dropout_conf { dropout_ratio: 0.5 }`")
        self.ratio = float(p)
        self.mask = None     # bool keep-mask of the last training forward, on the backend

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        self.out_shape = tuple(src_shapes[0])
        return self.out_shape

    def _buffers(self, flag, x):
        """(mask, y) for a training forward, None otherwise (the output is x and there is no mask)."""
        if not flag & job_pb2.kTrain:
            self.mask = None
            self.data = x
            return None
        if self.rng is None:
            raise ConfigError("layer '%s' (kDropout) has no random stream: set `layer.rng` to a numpy "
                              "Generator (NeuralNet does this from the job's seed) before training" % self.name)
        self.mask = scratch(self, "keep", x.shape, numpy.bool_)
        self.data = scratch(self, "y", x.shape)
        return self.mask, self.data

    # the mask is drawn on the layer's device, the same on NumPy and CuPy (singa.random.uniform)
    def forward_cpu(self, flag, srcs):
        x = srcs[0].data
        bufs = self._buffers(flag, x)
        if bufs is None:
            return x
        (m, y), keep, xp = bufs, 1.0 - self.ratio, self.xp
        xp.less(uniform(xp, self.rng, x.shape), numpy.float32(keep), out=m)
        xp.multiply(x, m, out=y)
        xp.multiply(y, 1.0 / keep, out=y)
        return y

    def forward_device(self, flag, srcs):
        x = srcs[0].data
        bufs = self._buffers(flag, x)
        if bufs is None:
            return x
        (m, y), keep = bufs, 1.0 - self.ratio
        # one kernel: random bits, mask and scaled output (the mask bit-identical to NumPy's)
        device_kernels.DROPOUT_FORWARD(self.xp, x, draw_key(self.rng), numpy.float32(keep),
                                       x.dtype.type(1.0 / keep), m, y)
        return y

    def backward_cpu(self, flag, srcs, grad):
        if grad is not None and self.mask is not None:     # no mask: the last forward was the identity
            self.xp.multiply(grad, self.mask, out=grad)
            self.xp.multiply(grad, 1.0 / (1.0 - self.ratio), out=grad)
        return [grad]

    def backward_device(self, flag, srcs, grad):
        if grad is not None and self.mask is not None:
            device_kernels.DROPOUT_BACKWARD(self.xp, self.mask, grad.dtype.type(1.0 / (1.0 - self.ratio)), grad)
        return [grad]


__all__ = ["NeuronLayer", "ReLULayer", "SigmoidLayer", "STanhLayer", "ActivationLayer", "SoftmaxLayer",
           "DropoutLayer", "scratch", "softmax_rows", "flat2d", "STANH_A", "STANH_B"]
