"""kConvolution / kCConvolution / kCudnnConv: 2-D convolution (SINGA-V0.md 6.4), one
implementation for all three.

Source (B, C, H, W), or (B, H, W) as one channel. Cross-correlation with zero padding; output
(B, F, Ho, Wo), Ho = (H + 2*pad - kernel) // stride + 1. Weight (F, C*kh*kw) with columns in
(channel, kernel row, kernel column) order, bias (F,).

The whole batch is lowered once per step (singa.backends.lowering): ``col`` (C*kh*kw, B*Ho*Wo)
is built from a channel-major padded copy of x, then every product is one GEMM:

    forward   Y  = W col               (F, B*Ho*Wo), written to y (B, F, Ho, Wo) with the bias
    backward  dW = G col^T             G = g as (F, B*Ho*Wo)
              dcol = W^T G,  dx = col2im(dcol)   (skipped for a data-layer source)

Like kInnerProduct, the gradients go to the params' sinks (``Param.grad_sink``), so the worker
may have the SGD update of the weight folded into the dW product: W = beta*W + alpha*G col^T,
after dcol has read the old W.
"""

import numpy

from singa import switches
from singa.backends import blas, parallel
from singa.backends.lowering import ConvGeometry, Lowering
from singa.errors import ConfigError, invalid
from singa.layers.base import conf_pair, image_shape, Layer, register, scratch, type_name, wants_gradient
from singa.param import check_alloc
from singa.proto import job_pb2
from singa.updaters.fused import sum_into

# SINGA_CONV_SPLIT=1 splits im2col/col2im and the weight-gradient product over threads (see
# set_split_lowering). Off by default: two threads of copies or of single-threaded products ran no
# faster than one (benchmarks/README.md, the CNN's "What was tried", item 5).
_split = {"on": switches.flag("SINGA_CONV_SPLIT")}


def set_split_lowering(flag):
    """Whether im2col/col2im and the weight-gradient product of big layers are split over
    ``blas.num_threads()`` threads by the layer itself."""
    _split["on"] = bool(flag)


def split_lowering():
    return _split["on"]


@register(job_pb2.kConvolution, job_pb2.kCConvolution, job_pb2.kCudnnConv)
class ConvolutionLayer(Layer):
    def _field(self, field, expected, value, hint):
        return invalid("convolution_conf.%s of layer '%s' (%s)" % (field, self.name, type_name(self.conf.type)),
                       expected, value, hint=hint)

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        shape = tuple(int(s) for s in src_shapes[0])
        B, C, H, W = image_shape(
            self, shape, "a convolution needs images: give the data layer's store_conf the image shape, "
                  "e.g. `shape: 1 shape: 28 shape: 28` (MNIST) or `shape: 3 shape: 32 shape: 32`")
        conf = self.conf.convolution_conf
        F = conf.num_filters
        if F <= 0:
            raise self._field("num_filters", "a positive number of filters", F,
                              "e.g. `convolution_conf { num_filters: 32 kernel: 5 }`")
        F = self.feature_part(F)          # this copy's filters when split by features
        (kh, kw), kname = conf_pair(conf, "kernel")
        (py, px), pname = conf_pair(conf, "pad")
        (sy, sx), sname = conf_pair(conf, "stride")
        for v, name in ((kh, kname[0]), (kw, kname[1])):
            if v < 1:
                raise self._field(name, "a kernel size >= 1", v, "e.g. `kernel: 5`")
        for v, name in ((py, pname[0]), (px, pname[1])):
            if v < 0:
                raise self._field(name, "a padding >= 0", v, "e.g. `pad: 2` (or leave it out for 0)")
        for v, name in ((sy, sname[0]), (sx, sname[1])):
            if v < 1:
                raise self._field(name, "a stride >= 1", v, "e.g. `stride: 1` (or leave it out for 1)")
        for k, p, size, name, axis in ((kh, py, H, kname[0], "height"), (kw, px, W, kname[1], "width")):
            if k > size + 2 * p:
                raise self._field(name, "a kernel no larger than the padded input %s %d (= %d + 2*pad %d)"
                                  % (axis, size + 2 * p, size, p), k,
                                  "use a smaller kernel or more padding, or check the source's shape %s" % (shape,))
        # Sizes in Python ints, checked before anything is allocated (a huge num_filters or pad
        # gave numpy's MemoryError without the layer's name). pad >= kernel stays accepted, as
        # in SINGA: the outermost outputs then see only padding and hold the bias.
        Ho, Wo = (H + 2 * py - kh) // sy + 1, (W + 2 * px - kw) // sx + 1
        K, N = C * kh * kw, B * Ho * Wo
        fields = {"num_filters": F}
        fields.update({n: v for n, v in zip(kname + pname + sname, (kh, kw, py, px, sy, sx))})
        check_alloc("layer '%s' (%s)" % (self.name, type_name(self.conf.type)),
                    {"convolution_conf.%s" % n: v for n, v in fields.items()},
                    [("weight", (F, K)), ("weight gradient", (F, K)), ("lowered input", (K, N)),
                     ("output", (F, N)), ("output copy", (B, F, Ho, Wo)),
                     ("padded input", (C, B, H + 2 * py, W + 2 * px))],
                    self.dtype, "input %s gives a %d x %d output of %d filters; use fewer filters or less padding "
                    "(pad is usually (kernel - 1) / 2)" % (shape, Ho, Wo, F))
        self.geom = ConvGeometry(B, C, H, W, kh, kw, sy, sx, py, px)
        self.num_filters = F
        self.in_shape = shape
        self.lower = Lowering(self.xp)
        self.weight = self.make_param(0, (F, self.geom.K), "weight")
        self.bias = self.make_param(1, (F,), "bias")
        self.out_shape = (B, F, self.geom.Ho, self.geom.Wo)
        return self.out_shape

    # -- helpers ------------------------------------------------------------------
    def partition_axis(self, param):
        """The filters axis: rows of the weight (F, C*kh*kw) and the bias."""
        return 0

    def _src4d(self, src):
        x = src.data
        g = self.geom
        if tuple(x.shape) != self.in_shape:
            if x.ndim in (3, 4) and x.shape[0] != g.B and x.size == x.shape[0] * g.C * g.H * g.W:
                self._regeom(x.shape[0])        # a smaller last batch
            else:
                raise ConfigError(
                    "Invalid input of layer '%s' (%s). Expected an array of shape %s (set up from the source's "
                    "shape). Received: shape %s from '%s'" % (self.name, type_name(self.conf.type), self.in_shape,
                                                            tuple(x.shape), getattr(src, "name", "?")))
        g = self.geom
        return x.reshape(g.B, g.C, g.H, g.W)

    def _regeom(self, B):
        self.geom = self.geom.with_batch(B)
        self.in_shape = (B,) + tuple(self.in_shape[1:])

    def _parts(self, size):
        """``parts`` for the lowering kernels: both cores for a big copy, else inline."""
        if (not _split["on"] or self.xp is not numpy or not parallel.worth_splitting("copy", size)
                or not blas.available()):
            return _inline
        return blas.parallel

    def fusable_params(self):
        """Params whose update this layer can apply inside its weight-gradient GEMM (see backward)."""
        return [self.weight] if blas.usable(self.weight.data) else []

    # -- forward / backward ---------------------------------------------------------
    def forward(self, flag, srcs):
        x = self._src4d(srcs[0])
        g = self.geom
        F = self.num_filters
        xpad = self._scratch_padded("xpad", g)
        self.lower.pad_input(x, g, xpad)
        Y = scratch(self, "Y", (F, g.N))
        if g.rows:
            col1 = scratch(self, "col1", (g.KR, g.NR))
            self.lower.lower_rows(xpad, g, col1)
            wr = self.lower.weight_rows(self.weight.data, g, scratch(self, "wr", (g.kh, F, g.KR)))
            for i in range(g.kh):
                blas.gemm(wr[i], self.lower.row_block(col1, g, i), Y, 1.0, 1.0 if i else 0.0)
        else:
            col = scratch(self, "col", (g.K, g.N))
            self.lower.im2col(xpad, g, col, self._parts(g.K * g.N))
            blas.gemm(self.weight.data, col, Y)
        y = scratch(self, "y", (g.B, F, g.Ho, g.Wo))
        self.lower.output(Y, g, self.bias.data, y)     # reordered to (B, F, Ho, Wo), plus the bias
        self.data = y
        return y

    def _scratch_padded(self, name, g):
        # Zeroed once: only the interior is rewritten, so the zero border survives across steps.
        bufs = self.__dict__.setdefault("_padded", {})
        a = bufs.get(name)
        if a is None or a.dtype != self.dtype or a.shape != g.padded_shape:
            a = bufs[name] = self.lower.new_padded(g, self.dtype)
        return a

    def backward(self, flag, srcs, grad):
        src = srcs[0]
        g = self.geom
        F = self.num_filters
        w = self.weight.data
        target, alpha, beta, done = self.weight.grad_sink()      # the gradient, or the update
        # G reuses forward's Y buffer: Y is dead once y is written.
        G = self.lower.output_grad(grad, g, scratch(self, "Y", (F, g.N)))
        sum_into(self.xp, G, 1, self.bias.grad_sink())
        dx = None
        if wants_gradient(src):
            # dx reads the old weights, before the fused update below writes them.
            dx = scratch(self, "dx", (g.B, g.C, g.H, g.W))
            if g.rows:
                self._input_grad_rows(G, w, dx)
            else:
                dcol = scratch(self, "dcol", (g.K, g.N))
                blas.gemm(w.T, G, dcol)
                parts = self._parts(g.K * g.N)
                dxpad = scratch(self, "dxpad", g.padded_shape)
                self.lower.col2im(dcol, g, dxpad, parts)
                self.lower.unpad_output(dxpad, g, dx)
        if g.rows:
            col1 = scratch(self, "col1", (g.KR, g.NR))
            dwr = scratch(self, "dwr", (g.kh, F, g.KR))
            for i in range(g.kh):
                blas.gemm(G, self.lower.row_block(col1, g, i).T, dwr[i])
            self.lower.rows_to_weight(dwr, g, target, alpha, beta)
        else:
            self._weight_grad(G, scratch(self, "col", (g.K, g.N)), target, alpha, beta)
        done()
        if dx is None:
            return [None]
        return [dx.reshape(src.data.shape)]

    def _input_grad_rows(self, G, w, dx):
        """dx as a forward convolution (row-lowered) of G padded by kernel - 1 - pad with the
        flipped, transposed weights (stride 1)."""
        g = self.geom
        F = self.num_filters
        gt = g.transposed(F)
        gpad = self._scratch_padded("gpad", gt)
        self.lower.channel_major(G, gt, gpad)
        gcol1 = scratch(self, "gcol1", (gt.KR, gt.NR))
        self.lower.lower_rows(gpad, gt, gcol1)
        wtr = self.lower.flipped_weight_rows(w, g, scratch(self, "wtr", (g.kh, g.C, gt.KR)))
        dxc = scratch(self, "dxc", (g.C, gt.N))
        for i in range(g.kh):
            blas.gemm(wtr[i], self.lower.row_block(gcol1, gt, i), dxc, 1.0, 1.0 if i else 0.0)
        self.lower.from_channel_major(dxc, dx)

    def _weight_grad(self, G, col, target, alpha, beta):
        """target = alpha * G col^T + beta * target: a sum over all B*Ho*Wo pixels for a small
        (F, C*kh*kw) result. With ``split_lowering`` the pixels are split in blocks, one
        single-threaded product per thread, and the partial sums added: that keeps OpenBLAS's
        threads from stalling on an overloaded machine, but on an idle one OpenBLAS's threading is
        faster (benchmarks/README.md, the CNN's item 5)."""
        g = self.geom
        n = blas.num_threads()
        if (not _split["on"] or n < 2 or g.N < 2 * n or not parallel.worth_splitting("gemm", G.shape[0] * g.K * g.N)
                or not blas.usable(G, col, target)):
            blas.gemm(G, col.T, target, alpha, beta)
            return
        partial = scratch(self, "dw_partial", (n - 1,) + tuple(target.shape))

        def part(k, n):
            c = blas.part(g.N, k, n)
            if k == 0:
                blas.gemm(G[:, c], col[:, c].T, target, alpha, beta)
            else:
                blas.gemm(G[:, c], col[:, c].T, partial[k - 1], alpha, 0.0)
        blas.parallel(part, n)
        for p in partial:
            blas.axpy(1.0, p, target)


def _inline(fn, n=None):
    fn(0, 1)
