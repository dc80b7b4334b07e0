"""The update rules of SINGA v0.3 (SINGA-V0.md 6.10): kSGD, kNesterov, kAdaGrad, kRMSProp,
kAdaDelta, kAdam and kAdamMax, each a small subclass of ``singa.updaters.base.Updater`` (which
holds the shared parts: gradient clipping and scaling, weight decay, the chunked NumPy walk and
the fused device kernel), and ``create_updater`` from an UpdaterProto.
"""
from singa.errors import ConfigError, invalid
from singa.proto import enum_name, job_pb2
from singa.updaters.base import CHUNK, Updater, get_num_threads, set_num_threads  # noqa: F401  (their old home)
from singa.updaters.fused import GemmUpdate

_UPDATER_TYPES = "kSGD, kNesterov, kAdaGrad, kRMSProp, kAdaDelta, kAdam or kAdamMax"


class SGDUpdater(Updater):
    """kSGD: ``h = momentum*h - lr*g; w += h`` when momentum > 0, else ``w -= lr*g``."""

    clips = True

    def __init__(self, proto, name="updater"):
        super().__init__(proto, name)
        self.state_names = ("history",) if self.momentum > 0 else ()

    def gemm_update(self, step, data, state, lr_scale=1.0, wd_scale=1.0):
        # The same formulas as _rule with grad_scale 1, written as C = alpha*g + beta*C:
        # w = (1 - lr*wd)*w - lr*g, or h = momentum*h - lr*g (then h -= lr*wd*w; w += h).
        if self.clipping:
            return None
        lr = self._rate(step, lr_scale)
        wd = self.weight_decay * wd_scale
        wd = wd if wd > 0 else 0.0
        hist = self._state_arrays(state, data)
        if self._skip(lr, hist):
            return None
        if not hist:
            return GemmUpdate(data, data, -lr, 1.0 - lr * wd)
        return GemmUpdate(data, hist[0], -lr, self.momentum, lr * wd)

    def _kernel_body(self):
        if not self.state_names:
            return ("s", "k"), "d = k * d - s * gc;"
        return ("s", "mom", "lw"), "h = mom * h - s * gc - lw * d;\nd += h;"

    @property
    def kernel_state(self):
        return ("h",) if self.state_names else ()

    def _kernel_args(self, lr, wd, gs):
        if not self.state_names:
            return lr * gs, 1.0 - lr * wd
        return lr * gs, self.momentum, lr * wd

    def _rule(self, xp, d, g, hist, t, t2, lr, wd, gs):
        # lr folded into the gradient scale: t = lr*gs*clip(g).
        if not hist:
            self._grad_into(xp, d, g, t, t2, lr * gs, 0.0)
            if wd:
                d *= 1.0 - lr * wd          # w - lr*wd*w, without a temporary
            d -= t
            return
        h, = hist
        self._grad_into(xp, d, g, t, t2, lr * gs, 0.0)
        h *= self.momentum
        h -= t
        if wd:
            xp.multiply(d, lr * wd, out=t)
            h -= t
        d += h


class NesterovUpdater(Updater):
    """kNesterov: ``h' = momentum*h + lr*g; w -= (1+momentum)*h' - momentum*h``.

    Computed as ``w -= momentum*h' + lr*g`` (the same value) so the old h needs no copy.
    """

    state_names = ("history",)
    kernel_state = ("h",)
    clips = True

    def _kernel_body(self):
        return ("s", "w", "mom"), "const T e = s * gc + w * d;\nh = mom * h + e;\nd -= e;\nd -= mom * h;"

    def _kernel_args(self, lr, wd, gs):
        return lr * gs, lr * wd, self.momentum

    def _rule(self, xp, d, g, hist, t, t2, lr, wd, gs):
        h, = hist
        self._grad_into(xp, d, g, t, t2, lr * gs, lr * wd)   # t = lr*g
        h *= self.momentum
        h += t
        d -= t
        xp.multiply(h, self.momentum, out=t)
        d -= t


class _RootScaled(Updater):
    """Shared tail of AdaGrad/RMSProp: ``w -= lr * g / sqrt(h + delta)`` with g in ``t``."""

    eps = None  # the delta under the root

    def _descend(self, xp, d, h, t, t2, lr):
        xp.add(h, self.eps, out=t2)
        xp.sqrt(t2, out=t2)
        xp.divide(t, t2, out=t)
        t *= lr
        d -= t


class AdaGradUpdater(_RootScaled):
    """kAdaGrad: ``h += g^2; w -= lr * g / sqrt(h + 1e-8)``.

    SINGA's AdaGrad read delta from a proto that was never filled, so it always used the default
    1e-8 whatever ``updater.delta`` says; kept for compatibility (``delta`` is ignored here).
    """

    state_names = ("history",)
    kernel_state = ("h",)
    clips = True
    eps = 1e-8

    def _kernel_body(self):
        return ("s", "w", "lr", "eps"), "const T e = s * gc + w * d;\nh += e * e;\nd -= e / sqrt(h + eps) * lr;"

    def _kernel_args(self, lr, wd, gs):
        return gs, wd, lr, self.eps

    def _rule(self, xp, d, g, hist, t, t2, lr, wd, gs):
        h, = hist
        self._grad_into(xp, d, g, t, t2, gs, wd)
        xp.multiply(t, t, out=t2)
        h += t2
        self._descend(xp, d, h, t, t2, lr)


class RMSPropUpdater(_RootScaled):
    """kRMSProp: ``h = rho*h + (1-rho)*g^2; w -= lr * g / sqrt(h + delta)``."""

    state_names = ("history",)
    clips = True

    def __init__(self, proto, name="updater"):
        super().__init__(proto, name)
        if not (proto.HasField("rmsprop_conf") and proto.rmsprop_conf.HasField("rho")):
            raise ConfigError(
                "`%s.rmsprop_conf.rho` is missing: kRMSProp needs the decay rate of its running average."
                "\nhelp: add `rmsprop_conf { rho: 0.9 }` to the updater" % name)
        self.rho = _unit(name + ".rmsprop_conf.rho", proto.rmsprop_conf.rho, "rmsprop_conf { rho: 0.9 }")
        self.eps = self.delta

    kernel_state = ("h",)

    def _kernel_body(self):
        return (("s", "w", "lr", "eps", "rho", "rho1"),
                "const T e = s * gc + w * d;\nh = rho * h + rho1 * e * e;\nd -= e / sqrt(h + eps) * lr;")

    def _kernel_args(self, lr, wd, gs):
        return gs, wd, lr, self.eps, self.rho, 1.0 - self.rho

    def _rule(self, xp, d, g, hist, t, t2, lr, wd, gs):
        h, = hist
        self._grad_into(xp, d, g, t, t2, gs, wd)
        xp.multiply(t, 1.0 - self.rho, out=t2)
        t2 *= t
        h *= self.rho
        h += t2
        self._descend(xp, d, h, t, t2, lr)


class AdaDeltaUpdater(Updater):
    """kAdaDelta: ``h = rho*h + (1-rho)*g^2; t = g*sqrt(u+delta)/sqrt(h+delta);
    u = rho*u + (1-rho)*t^2; w -= lr*t``  (state: history = h, update = u).

    adadelta_conf may be left out: SINGA then used the proto default rho 0.9.
    """

    state_names = ("history", "update")

    def __init__(self, proto, name="updater"):
        super().__init__(proto, name)
        self.rho = _unit(name + ".adadelta_conf.rho", proto.adadelta_conf.rho, "adadelta_conf { rho: 0.9 }")

    kernel_state = ("h", "u")

    def _kernel_body(self):
        return (("s", "w", "lr", "eps", "rho", "rho1"),
                "const T e = s * gc + w * d;\nh = rho * h + rho1 * e * e;\n"
                "const T t = e * sqrt(u + eps) / sqrt(h + eps);\nu = rho * u + rho1 * t * t;\nd -= t * lr;")

    def _kernel_args(self, lr, wd, gs):
        return gs, wd, lr, self.delta, self.rho, 1.0 - self.rho

    def _rule(self, xp, d, g, hist, t, t2, lr, wd, gs):
        h, u = hist
        rho, eps = self.rho, self.delta
        self._grad_into(xp, d, g, t, t2, gs, wd)
        xp.multiply(t, 1.0 - rho, out=t2)
        t2 *= t
        h *= rho
        h += t2
        xp.add(u, eps, out=t2)
        xp.sqrt(t2, out=t2)
        t *= t2
        xp.add(h, eps, out=t2)
        xp.sqrt(t2, out=t2)
        t /= t2
        xp.multiply(t, 1.0 - rho, out=t2)
        t2 *= t
        u *= rho
        u += t2
        t *= lr
        d -= t


class AdamUpdater(Updater):
    """kAdam without bias correction: ``m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
    w -= lr*m/sqrt(v+delta)``  (state: history = m, update = v).

    adam_conf may be left out: SINGA then used the proto defaults beta1 0.9, beta2 0.999.
    """

    state_names = ("history", "update")

    def __init__(self, proto, name="updater"):
        super().__init__(proto, name)
        self.beta1, self.beta2 = _betas(proto, name, "adam_conf")

    kernel_state = ("m", "v")

    def _kernel_body(self):
        return (("s", "w", "lr", "eps", "b1", "b1c", "b2", "b2c"),
                "const T e = s * gc + w * d;\nm = b1 * m + b1c * e;\nv = b2 * v + e * e * b2c;\n"
                "d -= m / sqrt(v + eps) * lr;")

    def _kernel_args(self, lr, wd, gs):
        return gs, wd, lr, self.delta, self.beta1, 1.0 - self.beta1, self.beta2, 1.0 - self.beta2

    def _rule(self, xp, d, g, hist, t, t2, lr, wd, gs):
        m, v = hist
        self._grad_into(xp, d, g, t, t2, gs, wd)
        xp.multiply(t, 1.0 - self.beta1, out=t2)
        m *= self.beta1
        m += t2
        t *= t
        t *= 1.0 - self.beta2
        v *= self.beta2
        v += t
        xp.add(v, self.delta, out=t)
        xp.sqrt(t, out=t)
        xp.divide(m, t, out=t)
        t *= lr
        d -= t


class AdamMaxUpdater(Updater):
    """kAdamMax: ``m = b1*m + (1-b1)*g; u = max(b2*u, |g|) + delta; w -= lr*m/u``
    (state: history = m, update = u; delta is added every step, as in SINGA).

    adammax_conf may be left out: SINGA then used the proto defaults beta1 0.9, beta2 0.999.
    """

    state_names = ("history", "update")

    def __init__(self, proto, name="updater"):
        super().__init__(proto, name)
        self.beta1, self.beta2 = _betas(proto, name, "adammax_conf")

    kernel_state = ("m", "u")

    def _kernel_body(self):
        return (("s", "w", "lr", "eps", "b1", "b1c", "b2"),
                "const T e = s * gc + w * d;\nm = b1 * m + b1c * e;\nu = max(b2 * u, fabs(e)) + eps;\n"
                "d -= m / u * lr;")

    def _kernel_args(self, lr, wd, gs):
        return gs, wd, lr, self.delta, self.beta1, 1.0 - self.beta1, self.beta2

    def _rule(self, xp, d, g, hist, t, t2, lr, wd, gs):
        m, u = hist
        self._grad_into(xp, d, g, t, t2, gs, wd)
        xp.multiply(t, 1.0 - self.beta1, out=t2)
        m *= self.beta1
        m += t2
        xp.abs(t, out=t)
        u *= self.beta2
        xp.maximum(u, t, out=u)
        u += self.delta
        xp.divide(m, u, out=t)
        t *= lr
        d -= t


def _betas(proto, name, field):
    """(beta1, beta2) of an Adam-style rule from ``proto.<field>``, each checked to be in [0, 1]."""
    conf = getattr(proto, field)
    example = "%s { beta1: 0.9 beta2: 0.999 }" % field
    return (_unit("%s.%s.beta1" % (name, field), conf.beta1, example),
            _unit("%s.%s.beta2" % (name, field), conf.beta2, example))


def _unit(name, value, example):
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise invalid(name, "a decay rate in [0, 1]", value, "e.g. `%s`" % example)
    return value


UPDATERS = {
    job_pb2.kSGD: SGDUpdater,
    job_pb2.kNesterov: NesterovUpdater,
    job_pb2.kAdaGrad: AdaGradUpdater,
    job_pb2.kRMSProp: RMSPropUpdater,
    job_pb2.kAdaDelta: AdaDeltaUpdater,
    job_pb2.kAdam: AdamUpdater,
    job_pb2.kAdamMax: AdamMaxUpdater,
}


def create_updater(proto, name="updater"):
    """The Updater for an UpdaterProto (job.conf's ``updater { ... }``)."""
    if not isinstance(proto, job_pb2.UpdaterProto):
        raise invalid(name, "a singa.proto.job_pb2.UpdaterProto", type(proto).__name__)
    from singa import registry
    cls = registry.updaters.user(proto, name) or UPDATERS.get(proto.type) or registry.updaters.enum(proto.type)
    if cls is None:
        received = enum_name(job_pb2.UpdaterType, proto.type)
        hint = ("set it explicitly, e.g. `updater { type: kSGD learning_rate { type: kFixed base_lr: 0.01 } }` "
                "(the default kUserUpdater means a user-registered updater")
        hint += ", given as `user_type` with @singa.register_updater"
        raise invalid(name + ".type", "one of " + _UPDATER_TYPES, received, hint + ")")
    return cls(proto, name)
