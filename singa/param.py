"""Runtime parameters (SINGA's Param): values, gradients, sharing and initialisation.

A Param is created by a layer's ``setup`` from its ParamProto. A param with ``share_from``
is a *share*: its ``data`` is the owner's array, and its gradient is summed into the owner's
and averaged over the shares (SINGA's grad_scale = 1/num_shares, SINGA-V0.md 3.4, 6.8).

Not to be confused with the user API's ``singa.parameter.Parameter``, which only builds the
ParamProto a Param is made from.
"""
import math
import os

import numpy

from singa.errors import ConfigError, invalid
from singa.proto import enum_name, job_pb2
from singa.updaters.fused import keep


def memory_limit():
    """The most bytes one layer may ask for: this machine's physical memory, and never more than
    numpy can index (its largest intp). Asking for more can only end in numpy's MemoryError, a
    "array is too big" ValueError or, with overcommit, the OOM killer some steps later."""
    cap = numpy.iinfo(numpy.intp).max
    try:
        phys = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):    # not on Linux/macOS: numpy's bound only
        return cap
    return min(phys, cap) if phys > 0 else cap


def format_bytes(n):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return ("%d %s" if unit == "bytes" else "%.1f %s") % (n, unit)
        n /= 1024.0
    return "%.1f EiB" % n


def check_alloc(what, fields, arrays, dtype, hint):
    """Refuse, before anything is allocated, a layer whose arrays would not fit in memory.

    ``what`` names the layer ("layer 'fc1' (kInnerProduct)"), ``fields`` the config values that
    size the arrays ({"innerproduct_conf.num_output": 2147483647}), ``arrays`` is a list of
    (name, shape) and ``dtype`` their element type. Sizes are Python ints, so a product that
    would wrap around in int64 is still seen whole.
    """
    itemsize = numpy.dtype(dtype).itemsize
    sizes = [(name, tuple(int(d) for d in shape), math.prod(int(d) for d in shape) * itemsize)
             for name, shape in arrays]
    total = sum(b for _, _, b in sizes)
    limit = memory_limit()
    if total <= limit:
        return
    biggest = sorted(sizes, key=lambda t: -t[2])[:3]
    names = ", ".join("`%s`" % f for f in fields)
    received = ", ".join("%s: %s" % kv for kv in fields.items())
    raise ConfigError(
        "Invalid value for %s of %s. Expected sizes whose arrays fit in memory (%s on this machine). Received: %s, "
        "which asks for %s (%s).\nhelp: %s" % (
            names, what, format_bytes(limit), received, format_bytes(total),
            "; ".join("%s %s %s: %s" % (name, shape, numpy.dtype(dtype).name, format_bytes(b))
                      for name, shape, b in biggest), hint))


# The ParamGenProto fields each init type reads (the others are ignored, as in SINGA).
_GEN_FIELDS = {
    job_pb2.kConstant: ("value",),
    job_pb2.kGaussian: ("mean", "std", "value"),
    job_pb2.kGaussianSqrtFanIn: ("mean", "std", "value"),
    job_pb2.kUniform: ("low", "high", "value"),
    job_pb2.kUniformSqrtFanIn: ("low", "high", "value"),
    job_pb2.kUniformSqrtFanInOut: ("low", "high", "value"),
}


def check_init_values(values, owner):
    """Refuse init values numpy would reject or turn into NaN weights: ``values`` maps ParamGenProto
    field names (mean, std, low, high, value) to numbers; ``owner`` names the param in the message.
    The one check of both the Python API (Parameter, w_std=...) and a job.conf's ``init { ... }``."""
    for k, v in values.items():
        if not math.isfinite(v):
            raise ConfigError("Invalid value for `%s` of %s. Expected a finite number. Received: %r\nhelp: e.g. "
                              "`init { type: kGaussian std: 0.01 }` (Parameter(init='gaussian', std=0.01))"
                              % (k, owner, v))
    if values.get("std", 0) < 0:
        raise ConfigError("Invalid value for `std` of %s. Expected a number >= 0. Received: %r\nhelp: the spread of "
                          "the gaussian, e.g. `std: 0.01`" % (owner, values["std"]))
    if "low" in values and "high" in values and values["low"] > values["high"]:
        raise ConfigError("Invalid value for `low`/`high` of %s. Expected low <= high. Received: low=%r, "
                          "high=%r\nhelp: scale=s gives the range [-s, s]; in job.conf swap them, e.g. "
                          "`low: -0.05 high: 0.05`" % (owner, values["low"], values["high"]))


def check_init(gen, owner):
    """``check_init_values`` for a ParamGenProto (the fields its type reads)."""
    if gen is not None:
        check_init_values({f: getattr(gen, f) for f in _GEN_FIELDS.get(gen.type, ())}, owner)


def _check_scale(proto, field, layer_name):
    v = getattr(proto, field)
    # a negative lr_scale climbs the loss for this param; NaN/inf poison it at the first step
    if not (math.isfinite(v) and v >= 0):
        raise invalid("%s of param '%s' (layer '%s')" % (field, proto.name, layer_name), "a finite number >= 0",
                      v, "1 keeps the job's rate/decay, 0 freezes it (lr_scale) or turns decay off (wd_scale)")


class Param:
    def __init__(self, proto, shape, backend, dtype=numpy.float32, layer_name=None):
        # Checked here, when the layer is set up, so a bad conf fails while the net is built, naming
        # the param and its layer (not later inside numpy's random generator).
        if proto.HasField("init"):
            check_init(proto.init, "param '%s' (layer '%s')" % (proto.name, layer_name))
        for field in ("lr_scale", "wd_scale"):
            _check_scale(proto, field, layer_name)
        # the layer checks its own sizes first, naming its fields; this catches any other caller
        check_alloc("param '%s' (layer '%s')" % (proto.name, layer_name), {"shape": tuple(shape)},
                    [("values", shape), ("gradient", shape)], dtype, "use smaller layers")
        self.proto = proto
        self.name = proto.name
        self.shape = tuple(int(s) for s in shape)
        self.backend = backend
        self.dtype = numpy.dtype(dtype)
        self.layer_name = layer_name
        self.owner = None          # the owner Param for a share, else None
        self.shares = [self]       # for an owner: itself and every share of it
        self.version = 0           # number of updates applied (+ start step); 0 = not loaded
        self.aliased = None        # the Param of another net (train) whose values this one reads
        self.sink = None           # this step's GemmUpdate, installed by the worker (see grad_sink)
        xp = backend.xp
        self.data = xp.zeros(self.shape, dtype=self.dtype)
        self.grad = xp.zeros(self.shape, dtype=self.dtype)

    @property
    def size(self):
        return int(numpy.prod(self.shape)) if self.shape else 1

    frozen = False     # values its layer writes (batch norm's running statistics): the updater leaves them

    @property
    def lr_scale(self):
        return 0.0 if (self.owner or self).frozen else (self.owner or self).proto.lr_scale

    @property
    def wd_scale(self):
        return 0.0 if (self.owner or self).frozen else (self.owner or self).proto.wd_scale

    def share_from(self, owner):
        """Make this param a share of ``owner``: same values, gradient contributed to owner."""
        if owner.shape != self.shape:
            raise ConfigError(
                "Invalid value for `share_from` of param '%s' (layer %s). Expected an owner of shape %s. "
                "Received: '%s' of shape %s (layer %s).\nhelp: shared params must have the same shape; for a "
                "tied decoder weight set `transpose: true` on the decoder's innerproduct_conf"
                % (self.name, self.layer_name, self.shape, owner.name, owner.shape, owner.layer_name))
        self.owner = owner
        owner.shares.append(self)
        self.data = owner.data

    def alias(self, other):
        """Read ``other``'s values (another net's param of the same name); not a gradient share."""
        if other.shape != self.shape:
            raise ConfigError(
                "param '%s' has shape %s in layer '%s' but %s in layer '%s' of the training net.\nhelp: a param "
                "name used in several phases must have the same shape in each" % (
                    self.name, self.shape, self.layer_name, other.shape, other.layer_name))
        self.aliased = other
        self.data = other.data

    def grad_sink(self):
        """Where a layer writes this param's gradient G this step, as (target, alpha, beta, done):
        ``target = alpha * G + beta * target``, then ``done(index)`` for each block written. The
        gradient buffer by default; what the worker installed for the step otherwise
        (singa.updaters.fused: an update done inside the product, or a sum over several passes)."""
        s = self.sink
        if s is None:
            return self.grad, 1.0, 0.0, keep
        return s.target, s.alpha, s.beta, s.done

    def write_grad(self, g):
        """This step's gradient ``g`` of the whole param into its sink (``target = alpha * g + beta *
        target``); ``g`` None: a zero gradient."""
        target, alpha, beta, done = self.grad_sink()
        if g is None:
            if beta == 0.0:
                target[...] = 0
            elif beta != 1.0:
                target *= beta
        elif beta == 0.0:
            target[...] = g if alpha == 1.0 else alpha * g
        else:
            if beta != 1.0:
                target *= beta
            target += g if alpha == 1.0 else alpha * g
        done()

    grad_scale = 1.0      # a feature-split param's 1/n (NeuralNet._whole_param)

    def owner_grad(self):
        """The gradient the updater applies to an owner: the mean over its shares' gradients
        (times ``grad_scale``)."""
        if len(self.shares) == 1:
            return self.grad if self.grad_scale == 1.0 else self.grad * self.grad_scale
        g = self.shares[0].grad.copy()
        for s in self.shares[1:]:
            g += s.grad
        g *= 1.0 / len(self.shares)
        return g

    def init_values(self, rng):
        """Fill ``data`` from the ParamGenProto (SINGA-V0.md 6.9) using numpy Generator ``rng``."""
        host = fill(self.proto.init if self.proto.HasField("init") else None, self.shape, rng,
                    name=self.name, dtype=self.dtype)
        self.set_values(host)

    def host_values(self):
        """The values as a float32 NumPy array (the live array itself on the NumPy backend: copy it
        to keep it)."""
        return numpy.asarray(self.backend.to_host(self.data), dtype=numpy.float32)

    def set_values(self, host_array):
        a = numpy.asarray(host_array, dtype=self.dtype)
        if a.size != self.size:
            raise ConfigError("Invalid value for param '%s'. Expected %d values (shape %s). Received: %d values "
                              "(shape %s)" % (self.name, self.size, self.shape, a.size, a.shape))
        self.data[...] = self.backend.asarray(a.reshape(self.shape), dtype=self.dtype)

    def __repr__(self):
        return "Param(%r, shape=%s%s)" % (self.name, self.shape,
                                           "" if self.owner is None else ", share_from=%r" % self.owner.name)


_BUILTIN_INITS = (job_pb2.kConstant, job_pb2.kGaussian, job_pb2.kUniform, job_pb2.kGaussianSqrtFanIn,
                  job_pb2.kUniformSqrtFanIn, job_pb2.kUniformSqrtFanInOut)


def _user_values(fn, gen, shape, rng, name, dtype):
    """A registered param generator's values: ``fn(init proto, shape, rng)``, checked."""
    v = numpy.asarray(fn(gen, tuple(shape), rng), dtype=numpy.float64)
    if v.shape != tuple(shape):
        raise ConfigError("the param generator %r for param '%s' returned shape %s; the param has %s.\nhelp: return "
                          "an array of the `shape` it is given" % (gen.user_type or gen.type, name, v.shape, tuple(shape)))
    if not numpy.isfinite(v).all():
        raise ConfigError("the param generator %r for param '%s' returned NaN or infinite values"
                          % (gen.user_type or gen.type, name))
    return v.astype(dtype)


def fill(gen, shape, rng, name="?", dtype=numpy.float32):
    """Values of a ParamGenProto ``gen`` for ``shape``, drawn from Generator ``rng`` (host array)."""
    if gen is None:
        raise ConfigError(
            "param '%s' has no `init` and was not loaded from a checkpoint.\nhelp: give it an init, e.g. "
            "`init { type: kUniform low: -0.05 high: 0.05 }`, or list a checkpoint that holds it in "
            "`checkpoint_path`" % name)
    from singa import registry
    user = registry.param_generators.user(gen, "param '%s'" % name) or (registry.param_generators.enum(gen.type)
                                                   if gen.type not in _BUILTIN_INITS else None)
    if user is not None:
        return _user_values(user, gen, shape, rng, name, dtype)
    check_init(gen, "param '%s'" % name)
    t = gen.type
    fan_ok = len(shape) == 2
    if t == job_pb2.kConstant:
        return numpy.full(shape, gen.value, dtype=dtype)
    if t in (job_pb2.kGaussian, job_pb2.kGaussianSqrtFanIn):
        v = rng.normal(gen.mean, gen.std, size=shape)
    elif t in (job_pb2.kUniform, job_pb2.kUniformSqrtFanIn, job_pb2.kUniformSqrtFanInOut):
        v = rng.uniform(gen.low, gen.high, size=shape)
    else:
        raise invalid("init.type of param '%s'" % name,
                      "one of kConstant, kGaussian, kUniform, kGaussianSqrtFanIn, kUniformSqrtFanIn, "
                      "kUniformSqrtFanInOut", enum_name(job_pb2.InitMethod, t))
    if t in (job_pb2.kGaussianSqrtFanIn, job_pb2.kUniformSqrtFanIn, job_pb2.kUniformSqrtFanInOut) and not fan_ok:
        raise ConfigError("param '%s': fan-in initialisation needs a 2-D param. Received shape %s" % (name, shape))
    # SINGA uses shape[1] (columns) as fan-in (SINGA-58).
    if t == job_pb2.kGaussianSqrtFanIn:
        v /= math.sqrt(shape[1])
    elif t == job_pb2.kUniformSqrtFanIn:
        v /= math.sqrt(shape[1] / 3.0)
    elif t == job_pb2.kUniformSqrtFanInOut:
        v /= math.sqrt(shape[0] + shape[1])
    if gen.value != 1:
        v *= gen.value
    return v.astype(dtype)
