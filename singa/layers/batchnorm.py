"""Batch normalisation: kCudnnBM and kBM (SINGA-V0-REST.md 6), one implementation for NumPy and
the device backends (kBM's CPU code was an empty TODO in v0.3: FIX).

Per channel over the batch and the spatial positions (cuDNN's SPATIAL mode), of a (N, C, H, W)
source (a (N, C) one counts as H = W = 1). Four params in SINGA's order, each (1, C, 1, 1):
scale γ, bias β, the running mean and the running inverse standard deviation 1/√(σ² + ε) (what
cuDNN v4 kept in its "inverse variance" slot), ε = 1e-5.

* Training: y = γ (x − μ_B) / √(σ²_B + ε) + β with the batch's mean and (biased) variance; then
  running = (1 − f) running + f batch, for the mean and for the variance (unbiased, N/(N−1)),
  f = 0.1 (``RUNNING_AVERAGE_FACTOR``). v0.3's cuDNN call used f = 1, so its running params held
  the last batch's statistics only (FIX: SINGA's test results depended on the last batch).
* Test and validation: y = γ (x − mean) · invstd + β with the running params.
* Backward (training): dx, dγ, dβ; the running params get no gradient and are ``frozen``: the
  updater leaves them as the layer wrote them (v0.3 sent them to the updater, so weight decay and
  momentum nudged them: FIX).

Under data-parallel replicas (and a batch split among a group's workers) each copy normalises its
own slice of the batch, as PyTorch's DistributedDataParallel without SyncBatchNorm does, and the
first copy's statistics update the running ones (``writes_state``; DDP keeps rank 0's buffers).
Processes keep their own running statistics: parameter servers never see them, and an all-reduce
leaves them alone (their gradient is zero and they are frozen).
"""
from singa.errors import Stated, invalid
from singa.layers.base import Layer, register, scratch
from singa.proto import job_pb2

EPS = 1e-5
# the weight of each batch's statistics in the running ones (BMProto has no field for it; v0.3's
# cuDNN call used 1, the last batch's statistics only)
RUNNING_AVERAGE_FACTOR = 0.1
ROLES = ("scale", "bias", "running mean", "running inverse std")


@register(job_pb2.kBM, job_pb2.kCudnnBM)
class BMLayer(Layer):
    def _where(self):
        return "layer '%s' (%s)" % (self.name, job_pb2.LayerType.Name(self.conf.type))

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        shape = tuple(int(s) for s in src_shapes[0])
        if len(shape) not in (2, 4):
            raise invalid("source shape of %s" % self._where(), "a 4-D (batch, channels, height, width) or 2-D "
                          "(batch, features) shape", shape, hint="batch norm follows a convolution or a dense layer")
        if len(self.conf.param) != 4:
            raise invalid("param of %s" % self._where(), "4 params: scale, bias, running mean, running inverse std "
                          "(SINGA's order)", Stated("%d param entries" % len(self.conf.param)),
                          hint="e.g. cifar10-cudnn_bm.conf's s11..s14: constant 1, 0, 0, 0")
        self.factor = RUNNING_AVERAGE_FACTOR
        C = shape[1]
        self.in_shape = shape
        self.shape3 = (shape[0], C, shape[2] * shape[3] if len(shape) == 4 else 1)
        self._ones = None
        self.gamma, self.beta, self.mean, self.invstd = [self.make_param(i, (1, C, 1, 1), ROLES[i]) for i in range(4)]
        for p in (self.mean, self.invstd):
            p.frozen = True         # written by the layer, left alone by the updater
        self.out_shape = shape
        return shape

    # The passes work on (N, C L) views (L = H W) with per-channel coefficients expanded to rows
    # of C L values: an element-wise pass then runs one long loop over each sample (a (1, C, 1, 1)
    # broadcast runs a loop of W per channel, about twice as slow), and per-channel sums are
    # products with a vector of ones (BLAS: several times faster than a reduction over axes 0, 2, 3).
    # Measured on NumPy (benchmarks/bench_bn.py): neither cache-sized blocks of samples nor splitting
    # the passes among threads made them faster at these sizes.

    def _rows(self, v):
        """(C,) per-channel values as a (1, C L) row."""
        L = self.shape3[2]
        return (v if L == 1 else self.xp.repeat(v, L)).reshape(1, -1)

    def _sums(self, a2):
        """Per-channel sums of an (n, C L) array."""
        C, L = self.shape3[1:]
        if L == 1:
            return a2.sum(axis=0)
        if self._ones is None:
            self._ones = self.xp.ones(L, dtype=self.dtype)
        n = a2.shape[0]
        return (a2.reshape(n * C, L) @ self._ones).reshape(n, C).sum(axis=0)

    def _dots(self, a2, b2):
        """Per-channel sums of the products of two (n, C L) arrays."""
        C, L = self.shape3[1:]
        n = a2.shape[0]
        return self.xp.einsum("nci,nci->c", a2.reshape(n, C, L), b2.reshape(n, C, L))

    def forward(self, flag, srcs):
        xp = self.xp
        N, C, L = self.shape3
        x = srcs[0].data.reshape(N, C * L)
        y = scratch(self, "y", (N, C * L))
        gamma, beta = self.gamma.data.reshape(C), self.beta.data.reshape(C)
        if flag & job_pb2.kTrain:
            m = N * L
            mu = self._sums(x) / m
            xc = scratch(self, "xc", (N, C * L))
            xp.subtract(x, self._rows(mu), out=xc)
            var = self._dots(xc, xc) / m
            inv = 1.0 / xp.sqrt(var + EPS)
            a = gamma * inv
            self._inv, self._a = inv, a
            src = xc
            if self.writes_state:
                self._running(mu, var, m)
        else:
            a = gamma * self.invstd.data.reshape(C)
            beta = beta - self.mean.data.reshape(C) * a
            src = x
        xp.multiply(src, self._rows(a), out=y)
        y += self._rows(beta)
        self.data = y.reshape(self.in_shape)
        return self.data

    def _running(self, mu, var, m):
        xp, f = self.xp, self.factor
        shape = self.mean.data.shape
        mu, var = mu.reshape(shape), var.reshape(shape)
        unbiased = var * (m / (m - 1.0)) if m > 1 else var
        if f == 1.0:
            self.mean.data[...] = mu
            self.invstd.data[...] = 1.0 / xp.sqrt(unbiased + EPS)
            return
        inv = self.invstd.data
        # the running variance behind the stored inverse std; none yet (0, the conf's init): the batch's
        seen = inv > 0
        safe = xp.where(seen, inv, 1.0)
        old = xp.where(seen, 1.0 / (safe * safe) - EPS, unbiased)
        self.mean.data[...] = xp.where(seen, (1 - f) * self.mean.data + f * mu, mu)
        inv[...] = 1.0 / xp.sqrt(xp.maximum((1 - f) * old + f * unbiased, 0) + EPS)

    def backward(self, flag, srcs, grad):
        xp = self.xp
        N, C, L = self.shape3
        m = N * L
        g = grad.reshape(N, C * L)
        xc = scratch(self, "xc", (N, C * L))
        inv, a = self._inv, self._a
        dbeta = self._sums(g)
        dgamma = self._dots(g, xc) * inv           # the sum of g times x̂ = (x − μ) inv
        shape = self.gamma.data.shape
        self.gamma.write_grad(dgamma.reshape(shape))
        self.beta.write_grad(dbeta.reshape(shape))
        self.mean.write_grad(None)
        self.invstd.write_grad(None)
        # dx = a (g − Σg / m − x̂ Σ(g x̂) / m), a = γ inv: a g − (x − μ) (a inv Σ(g x̂) / m) − a Σg / m
        t = scratch(self, "t", (N, C * L))
        xp.multiply(xc, self._rows(a * inv * dgamma / m), out=t)
        t += self._rows(a * dbeta / m)
        dx = scratch(self, "dx", (N, C * L))
        xp.multiply(g, self._rows(a), out=dx)
        dx -= t
        return [dx.reshape(self.in_shape)]
