"""The lowering of a 2-D convolution to one matrix product (im2col) and its adjoint (col2im).

``Lowering(xp)`` works on any array module: it uses nothing but strided views, ``copyto`` and
``add``, so the same code runs on NumPy and CuPy.

Layouts (chosen so every copy walks both operands in the same order over long contiguous runs,
and every product is one contiguous GEMM over the whole batch). The column order of ``col`` is
``(B, Ho, Wo)`` ("batch outer") or ``(Ho, Wo, B)`` ("batch inner", ``ConvGeometry.batch_inner``):

* ``xpad``: the padded input channel-major, (C, B, Hp, Wp) or (C, Hp, Wp, B), zero borders;
* ``col``: (C*kh*kw, B*Ho*Wo): row (c, i, j) holds, for every output pixel, the input value under
  kernel tap (i, j) of channel c. Its row order is the weight's column order, so
  ``Y (F, B*Ho*Wo) = W (F, C*kh*kw) @ col``.

With the batch inner, a tap of a stride-1 convolution reads and writes runs of Wo*B values,
instead of Wo: on small images (15x15, 7x7) numpy's per-run overhead otherwise dominates
(CIFAR-10's second convolution: im2col 10.7 -> 7.5 ms, col2im 24 -> 10.6 ms, one thread). On
large images the rows are long anyway, and the batch-outer order saves the transposes of the
input and output between (B, C, H, W) and the channel-major layout (32x32: 20 ms a step).
``batch_inner`` is chosen from the output width (``BATCH_INNER_MAX_WIDTH``).

Both kernels can split their work over threads (``parts``, a callable such as
``singa.backends.blas.parallel``): numpy's copy and add loops release the GIL.
"""
from singa.errors import invalid

# Output widths up to this put the batch innermost in col (see the module docstring).
BATCH_INNER_MAX_WIDTH = 24
# Row lowering (``ConvGeometry.rows``) from this many columns of a kernel row (C*kw) on: each of
# its kh products then has K = C*kw (CIFAR-10's conv2: 160, as fast per FLOP as im2col's 800).
ROW_MIN_K = 64


class ConvGeometry:
    """Sizes of one convolution: input (B, C, H, W), kernel (kh, kw), stride (sy, sx), zero
    padding (py, px); output (B, F, Ho, Wo) with Ho = (H + 2*py - kh) // sy + 1 (floor).
    ``batch_inner``: col's columns in (Ho, Wo, B) order rather than (B, Ho, Wo); None picks it
    from the output width."""

    __slots__ = ("B", "C", "H", "W", "kh", "kw", "sy", "sx", "py", "px", "Ho", "Wo", "Hp", "Wp", "batch_inner",
                 "rows")

    def __init__(self, B, C, H, W, kh, kw, sy=1, sx=1, py=0, px=0, batch_inner=None, rows=None):
        self.B, self.C, self.H, self.W = int(B), int(C), int(H), int(W)
        self.kh, self.kw, self.sy, self.sx, self.py, self.px = int(kh), int(kw), int(sy), int(sx), int(py), int(px)
        if min(self.kh, self.kw, self.sy, self.sx) < 1 or min(self.py, self.px) < 0:
            raise invalid("convolution geometry", "kernel >= 1, stride >= 1, pad >= 0",
                          "kernel (%d, %d), stride (%d, %d), pad (%d, %d)"
                          % (self.kh, self.kw, self.sy, self.sx, self.py, self.px))
        self.Hp, self.Wp = self.H + 2 * self.py, self.W + 2 * self.px
        if self.kh > self.Hp or self.kw > self.Wp:
            raise invalid("convolution geometry", "a kernel no larger than the padded input (%d, %d)"
                          % (self.Hp, self.Wp), "kernel (%d, %d)" % (self.kh, self.kw))
        self.Ho = (self.Hp - self.kh) // self.sy + 1
        self.Wo = (self.Wp - self.kw) // self.sx + 1
        self.batch_inner = (self.Wo <= BATCH_INNER_MAX_WIDTH) if batch_inner is None else bool(batch_inner)
        # Row lowering needs the batch inner (kernel row i is then a column offset of i*Wo*B),
        # stride 1 (so dx is a forward convolution of the padded gradient) and pad < kernel
        # (that convolution's padding kernel - 1 - pad is then >= 0).
        can = (self.batch_inner and self.sy == 1 and self.sx == 1 and self.py < self.kh and self.px < self.kw
               and self.kh > 1)
        self.rows = can and (self.C * self.kw >= ROW_MIN_K if rows is None else bool(rows))

    @property
    def K(self):
        """Rows of col: C*kh*kw (the weight's columns)."""
        return self.C * self.kh * self.kw

    @property
    def N(self):
        """Columns of col: B*Ho*Wo (output pixels of the batch)."""
        return self.B * self.Ho * self.Wo

    @property
    def padded_shape(self):
        return (self.C, self.Hp, self.Wp, self.B) if self.batch_inner else (self.C, self.B, self.Hp, self.Wp)

    def with_batch(self, B):
        return ConvGeometry(B, self.C, self.H, self.W, self.kh, self.kw, self.sy, self.sx, self.py, self.px,
                            self.batch_inner, self.rows)

    @property
    def KR(self):
        """Rows of the row-lowered input: C*kw (one kernel row's weights)."""
        return self.C * self.kw

    @property
    def NR(self):
        """Columns of the row-lowered input: Hp*Wo*B (every padded row, output columns, batch)."""
        return self.Hp * self.Wo * self.B

    def transposed(self, F):
        """The geometry of dx as a convolution: the gradient (B, F, Ho, Wo) padded by
        kernel - 1 - pad, convolved with the flipped, transposed weights, gives (B, C, H, W).
        Only for stride 1 (``rows``)."""
        return ConvGeometry(self.B, F, self.Ho, self.Wo, self.kh, self.kw, 1, 1, self.kh - 1 - self.py,
                            self.kw - 1 - self.px, batch_inner=True, rows=True)

    def __repr__(self):
        return "ConvGeometry(in=%s, kernel=(%d, %d), stride=(%d, %d), pad=(%d, %d), out=(%d, %d)%s)" % (
            (self.B, self.C, self.H, self.W), self.kh, self.kw, self.sy, self.sx, self.py, self.px, self.Ho,
            self.Wo, (", batch inner" if self.batch_inner else "") + (", rows" if self.rows else ""))


def _serial(fn, n=None):
    fn(0, 1)


def _rows(size, k, n):
    return slice(size * k // n, size * (k + 1) // n)


class Lowering:
    """im2col/col2im with strided views: one copy (or one add) per kernel tap, each over the
    whole batch, so the Python overhead is kh*kw calls whatever the image size. Work is split
    between threads by channel (batch inner) or by sample (batch outer): disjoint outputs."""

    def __init__(self, xp):
        self.xp = xp

    def new_padded(self, g, dtype):
        """A zeroed padded-input buffer; ``pad_input`` rewrites only its interior, so reuse it."""
        return self.xp.zeros(g.padded_shape, dtype=dtype)

    def _interior(self, xpad, g):
        """The unpadded part of ``xpad`` as a (C, B, H, W) view."""
        if g.batch_inner:
            return xpad[:, g.py:g.py + g.H, g.px:g.px + g.W].transpose(0, 3, 1, 2)
        return xpad[:, :, g.py:g.py + g.H, g.px:g.px + g.W]

    def _check(self, name, a, shape):
        if tuple(a.shape) != tuple(shape):
            raise invalid(name, "an array of shape %s for %r" % (tuple(shape), self), tuple(a.shape))

    def pad_input(self, x, g, xpad):
        """x (B, C, H, W) into the interior of ``xpad`` (``g.padded_shape``)."""
        self._check("xpad", xpad, g.padded_shape)
        self.xp.copyto(self._interior(xpad, g), x.transpose(1, 0, 2, 3))
        return xpad

    def _col6(self, col, g):
        if g.batch_inner:
            return col.reshape(g.C, g.kh, g.kw, g.Ho, g.Wo, g.B)
        return col.reshape(g.C, g.kh, g.kw, g.B, g.Ho, g.Wo)

    def _taps(self, xpad, g):
        """xpad viewed like col6: [c, i, j, (y, x, b) or (b, y, x)] = x_pad[b, c, y*sy + i, x*sx + j]."""
        st = xpad.strides
        if g.batch_inner:
            sc, sh, sw, sb = st
            shape, strides = (g.C, g.kh, g.kw, g.Ho, g.Wo, g.B), (sc, sh, sw, sh * g.sy, sw * g.sx, sb)
        else:
            sc, sb, sh, sw = st
            shape, strides = (g.C, g.kh, g.kw, g.B, g.Ho, g.Wo), (sc, sh, sw, sb, sh * g.sy, sw * g.sx)
        return self.xp.lib.stride_tricks.as_strided(xpad, shape=shape, strides=strides)

    def _split(self, g, parts, fn):
        """Run fn(channels, samples) over disjoint blocks on the threads ``parts`` offers."""
        if g.batch_inner or g.B < 2:
            parts(lambda k, n: fn(_rows(g.C, k, n), slice(None)))
        else:
            parts(lambda k, n: fn(slice(None), _rows(g.B, k, n)))

    def im2col(self, xpad, g, col, parts=_serial):
        """Fill ``col`` (C*kh*kw, B*Ho*Wo), C-contiguous, from the padded input ``xpad``."""
        self._check("xpad", xpad, g.padded_shape)
        self._check("col", col, (g.K, g.N))
        taps, col6 = self._taps(xpad, g), self._col6(col, g)

        def fn(c, b):
            if g.batch_inner:
                self.xp.copyto(col6[c], taps[c])
            else:
                self.xp.copyto(col6[c, :, :, b], taps[c, :, :, b])
        self._split(g, parts, fn)
        return col

    def col2im(self, col, g, dxpad, parts=_serial):
        """The adjoint of im2col: ``dxpad`` (``g.padded_shape``) = sum over taps of the values of
        ``col`` at the pixels they came from. Overwrites ``dxpad`` (padding included)."""
        self._check("col", col, (g.K, g.N))
        self._check("dxpad", dxpad, g.padded_shape)
        xp = self.xp
        col6 = self._col6(col, g)
        ye, xe = g.sy * (g.Ho - 1) + 1, g.sx * (g.Wo - 1) + 1

        def fn(c, b):
            if g.batch_inner:
                d, src = dxpad[c], col6[c]
            else:
                d, src = dxpad[c, b], col6[c, :, :, b]
            d[...] = 0      # pixels no tap reaches (stride > kernel, the floor's leftovers) get 0
            for i in range(g.kh):
                for j in range(g.kw):
                    if g.batch_inner:
                        dst = d[:, i:i + ye:g.sy, j:j + xe:g.sx]
                    else:
                        dst = d[:, :, i:i + ye:g.sy, j:j + xe:g.sx]
                    xp.add(dst, src[:, i, j], out=dst)
        self._split(g, parts, fn)
        return dxpad

    def unpad_output(self, dxpad, g, dx):
        """dx (B, C, H, W) = the interior of ``dxpad``, back in sample-major order."""
        self._check("dxpad", dxpad, g.padded_shape)
        self.xp.copyto(dx.transpose(1, 0, 2, 3), self._interior(dxpad, g))
        return dx

    # -- row lowering (g.rows): only the kernel columns are lowered ----------------------------
    # col1 (C*kw, Hp*Wo*B): row (c, j), column (h, wo, b) = xpad[c, h, wo + j, b]. With the batch
    # inner and stride 1, kernel row i of every output pixel (ho, wo, b) sits in column
    # (ho + i, wo, b), i.e. at a fixed offset i*Wo*B: the operand of kernel row i is the
    # contiguous column block [i*Wo*B, i*Wo*B + N) and the forward is kh GEMMs with K = C*kw
    # accumulated into Y. The copy is kh times smaller than im2col's, and dx is the same
    # forward on the padded gradient with flipped weights (``ConvGeometry.transposed``), so
    # no col2im is needed either.
    def lower_rows(self, xpad, g, col1):
        """Fill ``col1`` (C*kw, Hp*Wo*B) from ``xpad`` (C, Hp, Wp, B)."""
        self._check("xpad", xpad, g.padded_shape)
        self._check("col1", col1, (g.KR, g.NR))
        sc, sh, sw, sb = xpad.strides
        taps = self.xp.lib.stride_tricks.as_strided(xpad, shape=(g.C, g.kw, g.Hp, g.Wo, g.B),
                                                    strides=(sc, sw, sh, sw, sb))
        self.xp.copyto(col1.reshape(g.C, g.kw, g.Hp, g.Wo, g.B), taps)
        return col1

    def row_block(self, a, g, i):
        """Columns of kernel row i in a (rows, Hp*Wo*B) row-lowered array: a (rows, N) view."""
        s = i * g.Wo * g.B
        return a[:, s:s + g.N]

    def weight_rows(self, w, g, wr):
        """wr (kh, F, C*kw): wr[i] = the weights of kernel row i, from w (F, C*kh*kw)."""
        F = w.shape[0]
        self.xp.copyto(wr.reshape(g.kh, F, g.C, g.kw), w.reshape(F, g.C, g.kh, g.kw).transpose(2, 0, 1, 3))
        return wr

    def flipped_weight_rows(self, w, g, wr):
        """wr (kh, C, F*kw) of the transposed convolution: wr[i, c, f*kw + j] = w[f, c, kh-1-i, kw-1-j]."""
        F = w.shape[0]
        w4 = w.reshape(F, g.C, g.kh, g.kw)[:, :, ::-1, ::-1]
        self.xp.copyto(wr.reshape(g.kh, g.C, F, g.kw), w4.transpose(2, 1, 0, 3))
        return wr

    def rows_to_weight(self, wr, g, out, alpha=1.0, beta=0.0):
        """out (F, C*kh*kw) = alpha * wr (kh, F, C*kw) in the weight's order + beta * out."""
        F = out.shape[0]
        src = wr.reshape(g.kh, F, g.C, g.kw).transpose(1, 2, 0, 3)
        dst = out.reshape(F, g.C, g.kh, g.kw)
        if beta == 0:
            self.xp.multiply(src, alpha, out=dst)
        else:
            if beta != 1:
                dst *= beta
            dst += src if alpha == 1 else alpha * src
        return out

    def channel_major(self, G, g, gpad):
        """The interior of ``gpad`` (C, Hp, Wp, B) = G (C, H*W*B); the border stays as it is."""
        self.xp.copyto(gpad[:, g.py:g.py + g.H, g.px:g.px + g.W], G.reshape(g.C, g.H, g.W, g.B))
        return gpad

    def from_channel_major(self, a, x):
        """x (B, C, H, W) = a (C, H*W*B)."""
        B, C, H, W = x.shape
        self.xp.copyto(x.transpose(1, 2, 3, 0), a.reshape(C, H, W, B))
        return x

    def _by_sample(self, a, g, rows):
        """A (rows, B*Ho*Wo) product in col's column order viewed as (B, rows, Ho*Wo)."""
        if g.batch_inner:
            return a.reshape(rows, g.Ho * g.Wo, g.B).transpose(2, 0, 1)
        return a.reshape(rows, g.B, g.Ho * g.Wo).transpose(1, 0, 2)

    def output(self, Y, g, bias, y):
        """y (B, F, Ho, Wo) = Y (F, B*Ho*Wo, col's order) + bias, in one pass."""
        F = Y.shape[0]
        self.xp.add(self._by_sample(Y, g, F), bias.reshape(1, F, 1), out=y.reshape(g.B, F, g.Ho * g.Wo))
        return y

    def output_grad(self, gy, g, G):
        """G (F, B*Ho*Wo, col's order) = gy (B, F, Ho, Wo) reordered."""
        F = G.shape[0]
        self.xp.copyto(self._by_sample(G, g, F), gy.reshape(g.B, F, g.Ho * g.Wo))
        return G


__all__ = ["ConvGeometry", "Lowering", "BATCH_INNER_MAX_WIDTH"]
