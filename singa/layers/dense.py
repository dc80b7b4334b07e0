"""kInnerProduct, the fully connected layer (SINGA-V0.md 6.3).

The source is flattened to (B, in_dim). The weight is (num_output, in_dim), y = x W^T + b,
or with ``innerproduct_conf.transpose`` (in_dim, num_output), y = x W + b (tied decoder
weights share the encoder's matrix that way). All products write into buffers kept across
steps and into ``param.grad`` itself, which may be a view into a flat gradient buffer.
"""
import numpy

from singa.errors import ConfigError, invalid
from singa.layers.base import Layer, register
from singa.layers.neuron import scratch
from singa.proto import job_pb2


@register(job_pb2.kInnerProduct)
class InnerProductLayer(Layer):
    backward_reads_output = False

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        shape = tuple(src_shapes[0])
        if len(shape) < 1:
            raise invalid("source shape of layer '%s' (kInnerProduct)" % self.name,
                          "a batch-first shape, (batch, features...)", shape)
        n = self.conf.innerproduct_conf.num_output
        if n <= 0:
            raise invalid("innerproduct_conf.num_output of layer '%s' (kInnerProduct)" % self.name,
                          "a positive number of output units", n,
                          hint="e.g. `innerproduct_conf { num_output: 10 }`")
        self.batchsize = shape[0]
        self.in_dim = int(numpy.prod(shape[1:]))
        self.num_output = n
        self.transpose = bool(self.conf.innerproduct_conf.transpose)
        wshape = (self.in_dim, n) if self.transpose else (n, self.in_dim)
        self.weight = self.make_param(0, wshape, "weight")
        self.bias = self.make_param(1, (n,), "bias")
        self.out_shape = (self.batchsize, n)
        return self.out_shape

    def _src2d(self, src):
        x = src.data
        if x.ndim < 1 or x.size != x.shape[0] * self.in_dim:
            raise ConfigError(
                "Invalid input of layer '%s' (kInnerProduct). Expected a batch of %d features per sample "
                "(set up from shape (%d, ...)). Received: an array of shape %s from '%s'"
                % (self.name, self.in_dim, self.batchsize, tuple(x.shape), getattr(src, "name", "?")))
        return x.reshape(x.shape[0], self.in_dim)

    def forward(self, flag, srcs):
        xp = self.xp
        x = self._src2d(srcs[0])
        y = scratch(self, "y", (x.shape[0], self.num_output))
        w = self.weight.data          # read every step: sharing may have replaced the array
        xp.matmul(x, w if self.transpose else w.T, out=y)
        xp.add(y, self.bias.data, out=y)
        self.data = y
        return y

    def backward(self, flag, srcs, grad):
        xp = self.xp
        src = srcs[0]
        x = self._src2d(src)
        g = grad
        w = self.weight.data
        acc = bool(flag & job_pb2.kAggGrad)    # BPTT: sum over unrolled steps
        dw = scratch(self, "dw", self.weight.shape) if acc else self.weight.grad
        if self.transpose:
            xp.matmul(x.T, g, out=dw)
        else:
            xp.matmul(g.T, x, out=dw)
        db = scratch(self, "db", self.bias.shape) if acc else self.bias.grad
        xp.sum(g, axis=0, out=db)
        if acc:
            xp.add(self.weight.grad, dw, out=self.weight.grad)
            xp.add(self.bias.grad, db, out=self.bias.grad)
        if getattr(src, "is_data", False):    # nobody below wants it: skip the largest GEMM
            return [None]
        dx = scratch(self, "dx", x.shape)
        xp.matmul(g, w.T if self.transpose else w, out=dx)
        return [dx.reshape(src.data.shape)]
