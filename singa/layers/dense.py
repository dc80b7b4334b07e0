"""kInnerProduct, the fully connected layer (SINGA-V0.md 6.3).

The source is flattened to (B, in_dim). The weight is (num_output, in_dim), y = x W^T + b,
or with ``innerproduct_conf.transpose`` (in_dim, num_output), y = x W + b (tied decoder
weights share the encoder's matrix that way). All products write into buffers kept across
steps and into ``param.grad`` itself, which may be a view into a flat gradient buffer.

Products go through singa.backends.blas: on NumPy one BLAS call each. The gradients go to the
params' sinks (``Param.grad_sink``, singa.updaters.fused), so the worker can fold an SGD update
into the weight-gradient product (W = beta*W + alpha*g^T x, with dx = g W computed first from
the old W) instead of writing ``param.grad``.
"""
import math

from singa.backends import blas, parallel
from singa.errors import ConfigError, invalid
from singa.layers.base import Layer, register, scratch, wants_gradient
from singa.param import check_alloc
from singa.proto import job_pb2
from singa.updaters.fused import sum_into


@register(job_pb2.kInnerProduct)
class InnerProductLayer(Layer):
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
        n = self.feature_part(n)          # this copy's outputs when split by features
        self.batchsize = shape[0]
        self.in_dim = math.prod(int(d) for d in shape[1:])    # Python ints: no int64 wrap-around
        self.num_output = n
        self.transpose = bool(self.conf.innerproduct_conf.transpose)
        wshape = (self.in_dim, n) if self.transpose else (n, self.in_dim)
        # checked before numpy allocates: a huge num_output gave a bare MemoryError
        check_alloc("layer '%s' (kInnerProduct)" % self.name, {"innerproduct_conf.num_output": n},
                    [("weight", wshape), ("weight gradient", wshape), ("output", (self.batchsize, n)),
                     ("output gradient", (self.batchsize, n))], self.dtype,
                    "the weight is num_output x %d (the source's features); use fewer output units, "
                    "e.g. `innerproduct_conf { num_output: 1000 }`" % self.in_dim)
        self.weight = self.make_param(0, wshape, "weight")
        self.bias = self.make_param(1, (n,), "bias")
        self.out_shape = (self.batchsize, n)
        return self.out_shape

    def partition_axis(self, param):
        """The outputs axis: rows of the weight (its columns when transposed) and the bias."""
        return 1 if param is self.weight and self.transpose else 0

    def _src2d(self, src):
        x = src.data
        if x.ndim < 1 or x.size != x.shape[0] * self.in_dim:
            raise ConfigError(
                "Invalid input of layer '%s' (kInnerProduct). Expected a batch of %d features per sample "
                "(set up from shape (%d, ...)). Received: an array of shape %s from '%s'"
                % (self.name, self.in_dim, self.batchsize, tuple(x.shape), getattr(src, "name", "?")))
        return x.reshape(x.shape[0], self.in_dim)

    def fusable_params(self):
        """Params whose update this layer can apply inside its weight-gradient GEMM (see backward)."""
        w = self.weight.data
        return [self.weight] if blas.usable(w) else []

    def _parts(self, madds, *arrays):
        """How many threads share this layer's products (1 unless direct BLAS and big enough)."""
        if not blas.split_products() or not blas.usable(*arrays):
            return 1
        return parallel.parts("gemm", madds, blas.num_threads())

    def forward(self, flag, srcs):
        x = self._src2d(srcs[0])
        y = scratch(self, "y", (x.shape[0], self.num_output))
        w = self.weight.data          # read every step: sharing may have replaced the array
        b = self.bias.data
        wt = w if self.transpose else w.T       # (in_dim, num_output)
        n_out = self.num_output

        def part(k, n):               # a block of output columns: y[:, c] = x W[c]^T + b[c]
            c = blas.part(n_out, k, n)
            yc = y[:, c]
            blas.gemm(x, wt[:, c], yc)
            self.xp.add(yc, b[c], out=yc)

        blas.parallel(part, self._parts(x.shape[0] * x.shape[1] * n_out, x, w, y))
        self.data = y
        return y

    def backward(self, flag, srcs, grad):
        src = srcs[0]
        x = self._src2d(src)
        g = grad
        w = self.weight.data
        # target = alpha * (g^T x) + beta * target: the gradient, or the update (see the module doc)
        target, alpha, beta, done = self.weight.grad_sink()
        sum_into(self.xp, g, 0, self.bias.grad_sink())
        # Nobody below wants dx of a data source: skip the largest GEMM.
        dx = scratch(self, "dx", x.shape) if wants_gradient(src) else None
        in_dim = self.in_dim
        tr = self.transpose

        def part(k, n):
            # A block c of input columns: dx[:, c] = g W[:, c] reads the old weights before the
            # fused update of that same block writes them, so the blocks are independent.
            c = blas.part(in_dim, k, n)
            xc = x[:, c]
            if tr:       # W is (in_dim, num_output): dx = g W^T, dW = x^T g
                if dx is not None:
                    blas.gemm(g, w[c].T, dx[:, c])
                blas.gemm(xc.T, g, target[c], alpha, beta)
                done((c,))
            else:        # W is (num_output, in_dim): dx = g W, dW = g^T x
                if dx is not None:
                    blas.gemm(g, w[:, c], dx[:, c])
                blas.gemm(g.T, xc, target[:, c], alpha, beta)
                done((slice(None), c))

        madds = g.shape[0] * w.size * (1 if dx is None else 2)
        blas.parallel(part, self._parts(madds, x, g, w, target))
        if dx is None:
            return [None]
        return [dx.reshape(src.data.shape)]
