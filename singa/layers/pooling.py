"""Pooling (SINGA-V0.md 6.5): kCPooling and kCudnnPool (Caffe semantics) and kPooling (mshadow).

``PoolingLayer`` holds what both algorithms share (the conf checks, the geometry and the phase
layout below); creating one gives a ``MaxPoolingLayer`` or an ``AvgPoolingLayer`` by
``pooling_conf.pool``.

Source (B, C, H, W), or (B, H, W) as one channel; output (B, C, Ho, Wo) with the floor size
Ho = (H + 2*pad - kernel) // stride + 1.

* MAX: the window [ho*stride - pad, +kernel) clipped to the image; padded cells never win; the
  gradient goes to the first maximum in scan order (row by row).
* AVG: the sum over the clipped window divided by the window size clipped to [-pad, H + pad).
  With floor sizes no window reaches past H + pad, so the divisor is always kh*kw.
* kPooling ignores ``pad`` (the mshadow expressions had none) and divides by kh*kw.

How it is fast with NumPy alone (measured on the 2-core test machine):

* A ufunc over a view with a strided last axis, or with short rows, runs several times slower
  than over long contiguous runs; masked ops (``where=``) slower still; and whole-batch passes
  were memory-bound. So x is copied, padded, into ``stride_x`` column phases
  P[r, n, h*Wq + q] = xpad[n, h, q*stride_x + r], and each kernel offset (i, j) is the view
  P[j % sx, :, s : s + L] with s = i*Wq + j//sx: one contiguous run per image, covering the
  window at every plane row and column (up to stride_y times the outputs; the extra ones are
  never read). Images are processed in blocks of about CHUNK_BYTES of planes so that the
  kh*kw passes stay in the caches; on NumPy the blocks are shared out between threads.
* MAX is separable: first the maximum over each window row (kw column views of the phases,
  at every plane row), then over kh of those rows (views of the row maxima): kw + kh - 2
  passes instead of kh*kw - 1. Each stage keeps the index of its winning view (uint8): the
  number of leading views strictly below the maximum, so the
  first maximum keeps the win: the first row holding the window's maximum, and in it the
  first column, which is the first maximum in scan order. (Tried and dropped: row phases as
  well, so the second stage runs at output rows only: 4 strided copies into the phases and
  more, shorter passes made the forward 15% slower.) Backward turns the winners into
  flat indices into x and scatters g with one unbuffered add (add.at).
* On a device, MAX is one kernel each way (device_kernels.POOL_MAX_FORWARD, _BACKWARD): the
  phases and the separable passes are for CPU caches, and each would be a kernel launch there.
* AVG on small planes (the 15x15 and 7x7 maps of the CIFAR-10 net) is one GEMM with the dense
  (Ho*Wo, H*W) window matrix, forward and backward, its rows split between threads with
  single-threaded BLAS (OpenBLAS's own threads cost more than these products). Larger planes
  use the views, backward adding g/size into each offset's view of a phase-shaped gradient.
"""
import numpy

from singa.backends import blas, device_kernels, parallel
from singa.errors import invalid
from singa.layers.base import conf_pair, image_shape, Layer, register, scratch, type_name
from singa.param import check_alloc
from singa.proto import job_pb2

MAX = job_pb2.PoolingProto.MAX
AVG = job_pb2.PoolingProto.AVG
# AVG runs as a GEMM with the window matrix while that matrix has at most this many entries
# (H*W*Ho*Wo): 15x15 -> 7x7 is 11025, 32x32 -> 15x15 is 230400 (then the views are cheaper).
AVG_GEMM_MAX_ENTRIES = 1 << 15
# Images per block: about this many bytes of phase planes (measured best at 1-4 MiB).
CHUNK_BYTES = 2 << 20


def out_size(size, kernel, pad, stride):
    """Floor output size, as SINGA computed it (not Caffe's ceil)."""
    return (size + 2 * pad - kernel) // stride + 1


def avg_divisors(size, kernel, pad, stride, n_out, caffe):
    """Per-output divisor along one axis: the window clipped to [.., size + pad) (Caffe), or kernel."""
    if not caffe:
        return numpy.full(n_out, kernel, dtype=numpy.float64)
    start = numpy.arange(n_out) * stride - pad
    return (numpy.minimum(start + kernel, size + pad) - start).astype(numpy.float64)


def window_matrix(H, W, geom, caffe):
    """The dense AVG operator A (Ho*Wo, H*W): y_plane = A @ x_plane, the divisor folded in."""
    kh, kw, sh, sw, ph, pw, Ho, Wo = geom
    A = numpy.zeros((Ho, Wo, H, W))
    dh = avg_divisors(H, kh, ph, sh, Ho, caffe)
    dw = avg_divisors(W, kw, pw, sw, Wo, caffe)
    for ho in range(Ho):
        h0 = ho * sh - ph
        for wo in range(Wo):
            w0 = wo * sw - pw
            A[ho, wo, max(h0, 0):min(h0 + kh, H), max(w0, 0):min(w0 + kw, W)] = 1.0 / (dh[ho] * dw[wo])
    return A.reshape(Ho * Wo, H * W)


@register(job_pb2.kCPooling, job_pb2.kCudnnPool, job_pb2.kPooling)
class PoolingLayer(Layer):
    """The geometry and phase layout of both algorithms; ``PoolingLayer(conf, ...)`` is the one
    of ``pooling_conf.pool`` (an unknown method stays a PoolingLayer, and setup names it)."""

    def __new__(cls, conf=None, *args, **kwargs):
        if cls is PoolingLayer and conf is not None:
            cls = _ALGORITHMS.get(conf.pooling_conf.pool, PoolingLayer)
        return super().__new__(cls)

    def __init__(self, conf, backend, dtype=numpy.float32):
        super().__init__(conf, backend, dtype)
        self.caffe = conf.type != job_pb2.kPooling
        self.method = conf.pooling_conf.pool
        self.idx = None      # winning kernel offset per output of the last training forward (MAX)

    def _field(self, field, expected, value, hint):
        return invalid("pooling_conf.%s of layer '%s' (%s)" % (field, self.name, type_name(self.conf.type)),
                       expected, value, hint=hint)

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        shape = tuple(int(s) for s in src_shapes[0])
        B, C, H, W = image_shape(
            self, shape, "pooling needs images: put it after a convolution, or give the data layer's "
                  "store_conf the image shape, e.g. `shape: 3 shape: 32 shape: 32`")
        conf = self.conf.pooling_conf
        if self.method not in (MAX, AVG):
            raise self._field("pool", "MAX or AVG", self.method, "e.g. `pooling_conf { pool: AVG }`")
        (kh, kw), kname = conf_pair(conf, "kernel")
        (ph, pw), pname = conf_pair(conf, "pad")
        (sh, sw), sname = conf_pair(conf, "stride")
        for v, name in ((kh, kname[0]), (kw, kname[1])):
            if v < 1:
                raise self._field(name, "a kernel size >= 1", v, "e.g. `kernel: 3`")
        for v, name in ((sh, sname[0]), (sw, sname[1])):
            if v < 1:
                raise self._field(name, "a stride >= 1", v, "e.g. `stride: 2` (the default)")
        if not self.caffe:
            ph = pw = 0      # mshadow's pool expressions had no padding
        for v, k, name in ((ph, kh, pname[0]), (pw, kw, pname[1])):
            if v < 0:
                raise self._field(name, "a padding >= 0", v, "e.g. `pad: 1` (or leave it out for 0)")
            if v >= k:
                # Caffe's rule: a window lying wholly in the padding would have no cell to pool.
                raise self._field(name, "a padding smaller than the kernel (%d)" % k, v,
                                  "use a smaller `pad` or a larger `kernel`")
        for k, p, size, name, axis in ((kh, ph, H, kname[0], "height"), (kw, pw, W, kname[1], "width")):
            if k > size + 2 * p:
                raise self._field(name, "a kernel no larger than the padded input %s %d (= %d + 2*pad %d)"
                                  % (axis, size + 2 * p, size, p), k,
                                  "use a smaller `kernel` (or more `pad`), or pool earlier in the net")
        # A stride past the padded input leaves one window (Ho = 1 whatever its value, as SINGA's
        # floor rule says), but the phase layout below has `stride` planes: stride 2^20 made three
        # steps take 30-50 s. The smallest stride with the same single window gives the same
        # output (and the same floor size to an ONNX export), at a cost bounded by the input.
        sh, sw = min(sh, H + 2 * ph - kh + 1), min(sw, W + 2 * pw - kw + 1)
        Ho, Wo = out_size(H, kh, ph, sh), out_size(W, kw, pw, sw)
        self.geom = (kh, kw, sh, sw, ph, pw, Ho, Wo)
        self.src_shape = shape
        self.in4 = (B, C, H, W)
        # The phase planes cover every output window and every input cell.
        Hp = max((Ho - 1) * sh + kh, ph + H)
        Wq = -(-max((Wo - 1) * sw + kw, pw + W) // sw)
        # checked before numpy allocates: a pad of 2^31 (with a larger kernel) asked for TiB
        check_alloc("layer '%s' (%s)" % (self.name, type_name(self.conf.type)),
                    {"pooling_conf.%s" % n: v for n, v in zip(kname + pname + sname, (kh, kw, ph, pw, sh, sw))},
                    [("output", (B, C, Ho, Wo)), ("output gradient", (B, C, Ho, Wo)),
                     ("window positions", (B * C, ((Ho - 1) * sh + 1) * Wq)), ("padded planes", (sw, Hp * Wq))],
                    self.dtype, "input %s gives a %d x %d output; use less padding (below the kernel, usually "
                    "0 or 1)" % (shape, Ho, Wo))
        self.plane = (Hp, Wq)
        self.Hf = (Ho - 1) * sh + 1              # plane rows a window may start on
        self.L = (self.Hf - 1) * Wq + Wo         # flat span from the first to the last output
        # kernel offset (i, j) in scan order -> (phase, flat start) of its view
        self.offsets = [(j % sw, i * Wq + j // sw) for i in range(kh) for j in range(kw)]
        # separable MAX: column offset j -> (phase, start) over L1 positions, row offset i -> start
        self.L1 = (self.Hf + kh - 2) * Wq + Wo
        self.col_offsets = [(j % sw, j // sw) for j in range(kw)]
        self.row_offsets = [i * Wq for i in range(kh)]
        self.direct = sw == 1 and ph == 0 and pw == 0    # x is its own (only) phase
        self.chunk = max(1, min(B * C, CHUNK_BYTES // (sw * Hp * Wq * self.dtype.itemsize)))
        self.setup_algorithm()
        self.out_shape = (B, C, Ho, Wo)
        return self.out_shape

    def setup_algorithm(self):
        """The algorithm's own state, once the geometry is known."""

    # -- the phase layout --------------------------------------------------------
    # P (sx, N, Hp*Wq): plane r of image n holds xpad[n, :, r::sx], flattened. The view of kernel
    # offset (i, j) is P[j % sx, :, s : s + L] with s = i*Wq + j//sx: its element (n, h*Wq + q)
    # is the window cell of the window starting at plane row h, column q. Every plane row h and
    # every column q < Wq is computed, not only h = ho*sy and q < Wo: up to sy times the work,
    # but each view is one contiguous run per image, which NumPy handles several times faster
    # than (Ho, Wo) views with a stride inside each row. The extra cells are never read back.
    def _column_parts(self, W):
        """(phase r, first plane column q0, first x column w0, count) for every phase that holds x."""
        sw, pw = self.geom[3], self.geom[5]
        parts = []
        for r in range(sw):
            w0 = (r - pw) % sw
            n = len(range(w0, W, sw))
            if n:
                parts.append((r, (pw + w0) // sw, w0, n))
        return parts

    def _kept(self, key, shape, fill, dtype=None):
        """Scratch whose cells that are never written hold ``fill`` (set when (re)allocated)."""
        a = scratch(self, key, shape, dtype)
        tag = "_filled_" + key
        if self.__dict__.get(tag) is not a:
            a.fill(fill)
            self.__dict__[tag] = a
        return a

    def _to_phases(self, x3, fill, t=0):
        """The phase planes of the images x3 (m, H, W), in a buffer reused across chunks."""
        m, H, W = x3.shape
        if self.direct:
            return x3.reshape(1, m, H * W)
        Hp, Wq = self.plane
        sw, ph = self.geom[3], self.geom[4]
        P = self._kept("P%d" % t, (sw, self.chunk, Hp * Wq), fill)[:, :m]
        P4 = P.reshape(sw, m, Hp, Wq)
        for r, q0, w0, n in self._column_parts(W):
            self.xp.copyto(P4[r, :, ph:ph + H, q0:q0 + n], x3[:, :, w0::sw])
        return P

    def _from_phases(self, dP, dx3):
        m, H, W = dx3.shape
        Hp, Wq = self.plane
        sw, ph = self.geom[3], self.geom[4]
        dP4 = dP.reshape(sw, m, Hp, Wq)
        for r, q0, w0, n in self._column_parts(W):
            self.xp.copyto(dx3[:, :, w0::sw], dP4[r, :, ph:ph + H, q0:q0 + n])

    def _views(self, P):
        """The kh*kw (m, L) views of P, one per kernel offset, in scan order."""
        L = self.L
        return [P[r, :, s:s + L] for r, s in self.offsets]

    def _outputs(self, full):
        """The (m, Ho, Wo) outputs inside a (m, Hf*Wq) array of every window position."""
        sh, Wo = self.geom[2], self.geom[7]
        return full.reshape(full.shape[0], self.Hf, self.plane[1])[:, ::sh, :Wo]

    def _chunks(self, N):
        # Blocks of images small enough for their phase planes and accumulators to stay in the
        # caches across the kh*kw passes (whole-batch passes ran twice as long, memory-bound).
        c = self.chunk
        return [(n0, min(n0 + c, N)) for n0 in range(0, N, c)]

    def _images(self, x):
        """N = B*C, the planes of x (N, H, W), the output y and its planes (N, Ho, Wo)."""
        C, H, W = self.in4[1:]
        Ho, Wo = self.geom[6:]
        N = x.shape[0] * C
        y = scratch(self, "y", (x.shape[0], C, Ho, Wo))
        return N, x.reshape(N, H, W), y, y.reshape(N, Ho, Wo)

    def _gradients(self, grad):
        """N = B*C, the planes of the output gradient (N, Ho, Wo), dx and its planes (N, H, W)."""
        C, H, W = self.in4[1:]
        Ho, Wo = self.geom[6:]
        N = grad.shape[0] * C
        dx = scratch(self, "dx", (grad.shape[0],) + self.src_shape[1:])
        return N, grad.reshape(N, Ho, Wo), dx, dx.reshape(N, H, W)

    def _run_chunks(self, N, fn):
        """fn(n0, n1, t) over the blocks of images; on NumPy the blocks are shared out between
        blas.num_threads() threads (NumPy's loops release the GIL), each with its own buffers."""
        chunks = self._chunks(N)
        n = parallel.parts("blocks", len(chunks), blas.num_threads(), most=len(chunks)) if not self.on_device else 1
        if n <= 1:
            for n0, n1 in chunks:
                fn(n0, n1, 0)
            return
        blas.parallel(lambda k, n: [fn(n0, n1, k) for n0, n1 in chunks[k::n]], n)


class MaxPoolingLayer(PoolingLayer):
    """MAX: on NumPy separable passes over the phase planes (the winners kept in training, for
    backward's scatter); on a device one kernel each way."""

    def setup_algorithm(self):
        kh, kw = self.geom[:2]
        self.idx_dtype = numpy.dtype(numpy.uint8 if kh * kw < 256 else numpy.int32)

    def forward_cpu(self, flag, srcs):
        N, x3, y, y3 = self._images(srcs[0].data)
        self.idx = None
        track = flag & job_pb2.kTrain
        if track:    # winning row offset per window, winning column offset per window row
            self.idx = (scratch(self, "irow", (N, self.Hf * self.plane[1]), self.idx_dtype),
                        scratch(self, "icol", (N, self.L1), self.idx_dtype))
        self._run_chunks(N, lambda n0, n1, t: self._forward_chunk(x3[n0:n1], y3[n0:n1], n0, track, t))
        self.data = y
        return y

    def forward_device(self, flag, srcs):
        xp, x = self.xp, srcs[0].data
        y = self._images(x)[2]
        arg = scratch(self, "arg", y.shape, numpy.int32)
        device_kernels.POOL_MAX_FORWARD(xp, xp.ascontiguousarray(x), *self._geom_args(), y, arg)
        self.idx = arg if flag & job_pb2.kTrain else None
        self.data = y
        return y

    def backward_cpu(self, flag, srcs, grad):
        if grad is None:
            return [None]
        self._check_winners()
        N, g3, dx, dx3 = self._gradients(grad)
        self._run_chunks(N, lambda n0, n1, t: self._max_backward_chunk(g3[n0:n1], dx3[n0:n1], n0, t))
        return [dx]

    def backward_device(self, flag, srcs, grad):
        if grad is None:
            return [None]
        self._check_winners()
        dx = self._gradients(grad)[2]
        device_kernels.POOL_MAX_BACKWARD(self.xp, self.xp.ascontiguousarray(grad), self.idx, *self._geom_args(), dx)
        return [dx]

    def _check_winners(self):
        if self.idx is None:
            raise RuntimeError("layer '%s': backward of MAX pooling needs a forward with the kTrain flag "
                               "first (it keeps the winning positions)" % self.name)

    def _geom_args(self):
        B, C, H, W = self.in4
        kh, kw, sh, sw, ph, pw, Ho, Wo = self.geom
        return [numpy.int32(v) for v in (H, W, Ho, Wo, kh, kw, sh, sw, ph, pw)]

    def _forward_chunk(self, x3, y3, n0, track, t):
        """Images x3 (m, H, W) -> y3 (m, Ho, Wo); ``t`` names this thread's buffers."""
        xp = self.xp
        m = x3.shape[0]
        full = scratch(self, "full%d" % t, (self.chunk, self.Hf * self.plane[1]))[:m]
        acc = full[:, :self.L]
        # MAX is separable: the maximum over each window row (kw column offsets), then over the
        # kh rows of those, kw + kh - 2 passes instead of kh*kw - 1
        P = self._to_phases(x3, -numpy.inf, t)
        rows = scratch(self, "rows%d" % t, (self.chunk, self.L1))[:m]
        cols = [P[r, :, s:s + self.L1] for r, s in self.col_offsets]
        row_views = [rows[:, s:s + self.L] for s in self.row_offsets]
        if not track:
            xp.copyto(rows, cols[0])
            for v in cols[1:]:
                xp.maximum(rows, v, out=rows)
            xp.copyto(acc, row_views[0])
            for v in row_views[1:]:
                xp.maximum(acc, v, out=acc)
        else:
            alive = scratch(self, "alive%d" % t, (self.chunk, self.L1), numpy.bool_)[:m]
            less = scratch(self, "less%d" % t, (self.chunk, self.L1), numpy.bool_)[:m]
            for a, views, idx, n in ((rows, cols, self.idx[1][n0:n0 + m], self.L1),
                                     (acc, row_views, self.idx[0][n0:n0 + m, :self.L], self.L)):
                if len(views) == 1:
                    xp.copyto(a, views[0])
                    idx.fill(0)
                else:
                    self._argmax(a, views, idx, alive[:, :n], less[:, :n])
        xp.copyto(y3, self._outputs(full))

    def _argmax(self, acc, views, idx, alive, less):
        """acc = max of the views, idx = the index of the first view holding it: the number of
        leading views strictly below the maximum (a running AND of ``v_k < acc``, summed).
        Byte-wide masks: K - 1 float passes and 3K - 5 byte passes, instead of 4 float-sized
        passes per view for a running argmax (the pool forward of the CIFAR-10 net: 10.6 -> 9.3
        ms, one thread)."""
        xp = self.xp
        xp.maximum(views[0], views[1], out=acc)
        for v in views[2:]:
            xp.maximum(acc, v, out=acc)
        xp.less(views[0], acc, out=alive)
        xp.copyto(idx, alive.view(numpy.uint8), casting="unsafe")
        for v in views[1:-1]:
            xp.less(v, acc, out=less)
            xp.logical_and(alive, less, out=alive)
            xp.add(idx, alive.view(numpy.uint8), out=idx, casting="unsafe")

    def _flat_base(self):
        """For a block of images: the index in it (chunk*H*W) of each output window's top-left
        cell, and the index in a row-maximum array (L1 per image) of the same window's first
        row. Pad cells never win, so base + i*W + j of the winner always lands inside x."""
        if getattr(self, "_base_for", None) != self.chunk:
            B, C, H, W = self.in4
            kh, kw, sh, sw, ph, pw, Ho, Wo = self.geom
            ho, wo = numpy.arange(Ho)[:, None], numpy.arange(Wo)
            base = numpy.arange(self.chunk)[:, None, None] * (H * W) + (ho * sh - ph) * W + (wo * sw - pw)
            rowpos = numpy.arange(self.chunk)[:, None, None] * self.L1 + ho * sh * self.plane[1] + wo
            # int32 while the block's indices fit: half the memory traffic of intp
            big = max(self.chunk * H * W, self.chunk * self.L1)
            self.index_dtype = numpy.dtype(numpy.int32 if big < 2 ** 31 else numpy.intp)
            self._base = self.backend.asarray(base, dtype=self.index_dtype)
            self._rowpos = self.backend.asarray(rowpos, dtype=self.index_dtype)
            self._base_for = self.chunk
        return self._base, self._rowpos

    def _max_backward_chunk(self, g3, dx3, n0, t):
        # the winner of each window: its row i from irow, its column j from icol at that row;
        # then scatter g with an unbuffered add (add.at), as overlapping windows may share a
        # winner. Blocks write disjoint images of dx: threads may share them out.
        xp = self.xp
        m = g3.shape[0]
        W, Wq = self.in4[3], self.plane[1]
        base, rowpos = self._flat_base()
        irow = self._outputs(self.idx[0][n0:n0 + m])
        it = self.index_dtype.type
        flat = scratch(self, "flat%d" % t, base.shape, self.index_dtype)[:m]
        pos = scratch(self, "pos%d" % t, base.shape, self.index_dtype)[:m]
        jcol = scratch(self, "jcol%d" % t, base.shape, self.idx_dtype)[:m]
        # typed scalars: uint8 * a Python int would be computed in uint8 and overflow
        xp.multiply(irow, it(Wq), out=pos)
        xp.add(pos, rowpos[:m], out=pos)
        xp.take(self.idx[1][n0:n0 + m].reshape(-1), pos, out=jcol)
        xp.multiply(irow, it(W), out=flat)
        xp.add(flat, base[:m], out=flat)
        xp.add(flat, jcol, out=flat)
        dx3.fill(0)
        xp.add.at(dx3.reshape(-1), flat.reshape(-1), g3.reshape(-1))


class AvgPoolingLayer(PoolingLayer):
    """AVG, the same xp code on every backend: one GEMM with the dense window matrix on small
    planes, the views of the phase planes on larger ones."""

    def setup_algorithm(self):
        B, C, H, W = self.in4
        kh, kw, sh, sw, ph, pw, Ho, Wo = self.geom
        self.gemm = None
        if H * W * Ho * Wo <= AVG_GEMM_MAX_ENTRIES:
            self.gemm = self.backend.asarray(window_matrix(H, W, self.geom, self.caffe), dtype=self.dtype)
            return
        dh = avg_divisors(H, kh, ph, sh, Ho, self.caffe)
        dw = avg_divisors(W, kw, pw, sw, Wo, self.caffe)
        inv = 1.0 / numpy.outer(dh, dw)
        # a scalar when constant (always, with floor sizes): no broadcast array to read
        self.inv_div = float(inv.flat[0]) if numpy.all(inv == inv.flat[0]) else \
            self.backend.asarray(inv, dtype=self.dtype)

    def forward(self, flag, srcs):
        N, x3, y, y3 = self._images(srcs[0].data)
        (H, W), (Ho, Wo) = self.in4[2:], self.geom[6:]
        if self.gemm is not None:
            self._matmul(x3.reshape(N, H * W), self.gemm.T, y3.reshape(N, Ho * Wo))
        else:
            self._run_chunks(N, lambda n0, n1, t: self._forward_chunk(x3[n0:n1], y3[n0:n1], t))
        self.data = y
        return y

    def backward(self, flag, srcs, grad):
        if grad is None:
            return [None]
        N, g3, dx, dx3 = self._gradients(grad)
        (H, W), (Ho, Wo) = self.in4[2:], self.geom[6:]
        if self.gemm is not None:
            self._matmul(g3.reshape(N, Ho * Wo), self.gemm, dx3.reshape(N, H * W))
        else:
            self._run_chunks(N, lambda n0, n1, t: self._avg_backward_chunk(g3[n0:n1], dx3[n0:n1], t))
        return [dx]

    def _forward_chunk(self, x3, y3, t):
        """Images x3 (m, H, W) -> y3 (m, Ho, Wo) by the views; ``t`` names this thread's buffers."""
        xp = self.xp
        m = x3.shape[0]
        full = scratch(self, "full%d" % t, (self.chunk, self.Hf * self.plane[1]))[:m]
        acc = full[:, :self.L]
        views = self._views(self._to_phases(x3, 0, t))
        xp.copyto(acc, views[0])
        for v in views[1:]:
            xp.add(acc, v, out=acc)
        xp.multiply(self._outputs(full), self.inv_div, out=y3)

    def _avg_backward_chunk(self, g3, dx3, t):
        # g/size at the output positions of gfull (0 at all others: they are never written),
        # added into every offset's view of the phase-shaped gradient
        xp = self.xp
        m, H, W = dx3.shape
        gfull = self._kept("gfull%d" % t, (self.chunk, self.Hf * self.plane[1]), 0)[:m]
        if self.direct:
            dP = dx3.reshape(1, m, H * W)
        else:
            dP = scratch(self, "dP%d" % t, (self.geom[3], self.chunk, self.plane[0] * self.plane[1]))[:, :m]
        dP.fill(0)
        xp.multiply(g3, self.inv_div, out=self._outputs(gfull))
        gsum = gfull[:, :self.L]
        for v in self._views(dP):
            xp.add(v, gsum, out=v)
        if not self.direct:
            self._from_phases(dP, dx3)

    def _matmul(self, a, b, out):
        """out = a @ b; on NumPy the rows are split between threads, each with single-threaded
        BLAS: for these small products OpenBLAS's own threads cost more than the work."""
        n = min(blas.num_threads(), a.shape[0]) if not self.on_device else 1
        if n <= 1:
            self.xp.matmul(a, b, out=out)
            return

        def part(k, n):
            r = blas.part(a.shape[0], k, n)
            numpy.matmul(a[r], b, out=out[r])
        blas.parallel(part, n)


_ALGORITHMS = {MAX: MaxPoolingLayer, AVG: AvgPoolingLayer}

__all__ = ["PoolingLayer", "MaxPoolingLayer", "AvgPoolingLayer", "out_size", "avg_divisors", "window_matrix",
           "MAX", "AVG"]
