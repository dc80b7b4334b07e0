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


def _write(p, value):
    """``value`` (None: zeros) as param ``p``'s gradient, through its sink."""
    target, alpha, beta, done = p.grad_sink()
    if value is None:
        if beta == 0.0:
            target[...] = 0
        elif beta != 1.0:
            target *= beta
    elif beta == 0.0:
        target[...] = value if alpha == 1.0 else alpha * value
    else:
        if beta != 1.0:
            target *= beta
        target += value if alpha == 1.0 else alpha * value
    done()


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
        self.shape4 = shape if len(shape) == 4 else (shape[0], C, 1, 1)
        self.gamma, self.beta, self.mean, self.invstd = [self.make_param(i, (1, C, 1, 1), ROLES[i]) for i in range(4)]
        for p in (self.mean, self.invstd):
            p.frozen = True         # written by the layer, left alone by the updater
        self.out_shape = shape
        return shape

    def forward(self, flag, srcs):
        xp = self.xp
        x = srcs[0].data.reshape(self.shape4)
        N, C, H, W = self.shape4
        axes = (0, 2, 3)
        y = scratch(self, "y", self.shape4)
        if flag & job_pb2.kTrain:
            mu = x.mean(axis=axes, keepdims=True)
            xhat = scratch(self, "xhat", self.shape4)
            xp.subtract(x, mu, out=xhat)
            var = (xhat * xhat).mean(axis=axes, keepdims=True)
            inv = 1.0 / xp.sqrt(var + EPS)
            xhat *= inv
            self._inv = inv
            xp.multiply(xhat, self.gamma.data, out=y)
            y += self.beta.data
            if self.writes_state:
                self._running(mu, var, N * H * W)
        else:
            xp.subtract(x, self.mean.data, out=y)
            y *= self.invstd.data * self.gamma.data
            y += self.beta.data
        self.data = y.reshape(self.in_shape)
        return self.data

    def _running(self, mu, var, m):
        xp, f = self.xp, self.factor
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
        g = grad.reshape(self.shape4)
        N, C, H, W = self.shape4
        axes = (0, 2, 3)
        xhat = scratch(self, "xhat", self.shape4)
        dbeta = g.sum(axis=axes, keepdims=True)
        dgamma = (g * xhat).sum(axis=axes, keepdims=True)
        _write(self.gamma, dgamma)
        _write(self.beta, dbeta)
        _write(self.mean, None)
        _write(self.invstd, None)
        m = N * H * W
        dx = scratch(self, "dx", self.shape4)
        # dx = γ invstd / m (m g − Σg − x̂ Σ(g x̂))
        self.xp.multiply(g, m, out=dx)
        dx -= dbeta
        dx -= xhat * dgamma
        dx *= self.gamma.data * self._inv / m
        return [dx.reshape(self.in_shape)]
