"""Learning-rate generators: LRGenProto -> a pure function of the step (SINGA-V0.md 6.11).

Every generator is stateless, so ``gen(step)`` gives the same value whatever steps were asked
before; a resumed job therefore sees the schedule it would have seen without the restart.
Values are computed in double precision (SINGA mixed float and double; the difference is
below float32 resolution of the weights it scales).
"""
import bisect
import math

import numpy

from singa.errors import ConfigError, invalid
from singa.proto import enum_name, job_pb2

_CHANGE_METHODS = "kFixed, kInverseT, kInverse, kExponential, kLinear, kStep or kFixedStep"


def check_number(name, value, minimum=0.0, strict=False, hint=None):
    """``value`` as a float if it is finite and >= ``minimum`` (> when ``strict``; no bound when
    ``minimum`` is None), else the ConfigError naming the field ``name``.

    NaN and infinity pass every plain comparison test in the wrong direction (``nan < 0`` is
    False), so they must be refused explicitly: a NaN rate or decay turns every weight into NaN
    at the first step, an infinite one diverges at once.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = None
    ok = v is not None and math.isfinite(v)
    if ok and minimum is not None:
        ok = v > minimum if strict else v >= minimum
    if not ok:
        if minimum is None:
            expected = "a finite number"
        elif minimum == 0.0 and strict:
            expected = "a positive finite number"
        else:
            expected = "a finite number %s %g" % (">" if strict else ">=", minimum)
        raise invalid(name, expected, _shown(v) if v is not None else value, hint)
    return v


def _shown(v):
    """A job.conf value as written: proto floats are float32, so -0.9 arrives as -0.8999999761581421."""
    if not math.isfinite(v):
        return v
    short = float(str(numpy.float32(v)))
    return short if numpy.float32(short) == numpy.float32(v) else v


def _change_method(t):
    return enum_name(job_pb2.ChangeMethod, t)


class LRGenerator:
    """Base class: ``gen(step) -> float``; ``base_lr`` from the proto."""

    def __init__(self, proto, name):
        self.proto = proto
        self.name = name
        # kFixedStep does not use base_lr (its step_lr values are checked instead). 0 is kept
        # valid, as in SINGA (a frozen run); a negative rate climbs the loss without any error.
        self.base_lr = (float(proto.base_lr) if proto.type == job_pb2.kFixedStep else check_number(
            name + ".base_lr", proto.base_lr,
            hint="a negative rate climbs the loss instead of descending it; e.g. `base_lr: 0.01` (lr=0.01)"))

    def __call__(self, step):
        raise NotImplementedError

    def __repr__(self):
        return "%s(base_lr=%g)" % (type(self).__name__, self.base_lr)

    # Shared checks of the kind-specific sub-message.
    def _conf(self, field):
        if not self.proto.HasField(field):
            raise ConfigError(
                "`%s.%s` is missing: learning-rate type %s needs it.\nhelp: add `%s { ... }` inside "
                "`learning_rate`, e.g. %s" % (self.name, field, _change_method(self.proto.type), field,
                                              _EXAMPLES[field]))
        return getattr(self.proto, field)

    def _required(self, conf, conf_name, field):
        if not conf.HasField(field):
            raise ConfigError(
                "`%s.%s.%s` is missing: it is required for learning-rate type %s.\nhelp: set it, e.g. %s"
                % (self.name, conf_name, field, _change_method(self.proto.type), _EXAMPLES[conf_name]))
        return getattr(conf, field)

    def _positive(self, conf_name, field, value, why="it divides the step"):
        check_number("%s.%s.%s" % (self.name, conf_name, field), value, strict=True,
                     hint="%s; e.g. %s" % (why, _EXAMPLES[conf_name]))
        return value

    def _at_least_zero(self, conf_name, field, value, why):
        return check_number("%s.%s.%s" % (self.name, conf_name, field), value,
                            hint="%s; e.g. %s" % (why, _EXAMPLES[conf_name]))


_EXAMPLES = {
    "fixedstep_conf": "`fixedstep_conf { step: 0 step_lr: 0.01 step: 1000 step_lr: 0.001 }`",
    "step_conf": "`step_conf { change_freq: 1000 gamma: 0.1 }`",
    "linear_conf": "`linear_conf { change_freq: 10000 final_lr: 0.0001 }`",
    "exponential_conf": "`exponential_conf { change_freq: 1000 }`",
    "inverse_conf": "`inverse_conf { gamma: 0.0001 pow: 0.75 }`",
    "inverset_conf": "`inverset_conf { final_lr: 1000 }`",
}


class FixedLRGen(LRGenerator):
    """kFixed: ``base_lr`` at every step."""

    def __call__(self, step):
        return self.base_lr


class InverseTLRGen(LRGenerator):
    """kInverseT: ``base_lr / (1 + step / final_lr)``; SINGA's ``final_lr`` is really a step count."""

    def __init__(self, proto, name):
        super().__init__(proto, name)
        conf = self._conf("inverset_conf")
        self.final_lr = float(self._positive("inverset_conf", "final_lr",
                                             self._required(conf, "inverset_conf", "final_lr")))

    def __call__(self, step):
        return self.base_lr / (1.0 + step / self.final_lr)


class InverseLRGen(LRGenerator):
    """kInverse: ``base_lr * (1 + gamma * step) ** (-pow)``."""

    def __init__(self, proto, name):
        super().__init__(proto, name)
        conf = self._conf("inverse_conf")
        # gamma < 0: 1 + gamma*step turns negative and the power undefined (NaN in SINGA);
        # pow < 0: the rate grows without bound instead of decaying.
        why = "the rate is base_lr * (1 + gamma*step)^(-pow)"
        self.gamma = self._at_least_zero("inverse_conf", "gamma", conf.gamma, why)
        self.pow = self._at_least_zero("inverse_conf", "pow", conf.pow, why)

    def __call__(self, step):
        return self.base_lr * math.pow(1.0 + self.gamma * step, -self.pow)


class ExpLRGen(LRGenerator):
    """kExponential: ``base_lr / 2 ** (step / change_freq)`` (real-valued exponent)."""

    def __init__(self, proto, name):
        super().__init__(proto, name)
        conf = self._conf("exponential_conf")
        self.change_freq = int(self._positive("exponential_conf", "change_freq",
                                              self._required(conf, "exponential_conf", "change_freq")))

    def __call__(self, step):
        # 2**-x underflows to 0 for huge steps, where 2**x would overflow.
        return self.base_lr * 2.0 ** (-step / self.change_freq)


class LinearLRGen(LRGenerator):
    """kLinear: moves from base_lr to final_lr over change_freq steps and keeps going (no clamp)."""

    def __init__(self, proto, name):
        super().__init__(proto, name)
        conf = self._conf("linear_conf")
        self.change_freq = int(self._positive("linear_conf", "change_freq",
                                              self._required(conf, "linear_conf", "change_freq")))
        self.final_lr = self._at_least_zero("linear_conf", "final_lr",
                                            self._required(conf, "linear_conf", "final_lr"),
                                            "the rate moves linearly from base_lr to final_lr")

    def __call__(self, step):
        r = step / self.change_freq
        return (1.0 - r) * self.base_lr + r * self.final_lr


class StepLRGen(LRGenerator):
    """kStep: ``base_lr * gamma ** (step // change_freq)`` (a staircase)."""

    def __init__(self, proto, name):
        super().__init__(proto, name)
        conf = self._conf("step_conf")
        self.change_freq = int(self._positive("step_conf", "change_freq",
                                              self._required(conf, "step_conf", "change_freq")))
        # gamma <= 0 gives a zero or sign-flipping rate after the first change
        self.gamma = self._positive("step_conf", "gamma", conf.gamma,
                                    "the rate is base_lr * gamma^(step / change_freq)")

    def __call__(self, step):
        try:
            return self.base_lr * self.gamma ** (int(step) // self.change_freq)
        except OverflowError:   # gamma > 1 for long enough: the updater refuses the infinite rate
            return math.inf


class FixedStepLRGen(LRGenerator):
    """kFixedStep: ``step_lr[i]`` for the last threshold ``step[i] <= step`` (``step_lr[0]`` before).

    SINGA advanced an index by at most one per call; for consecutive steps that is this same
    function, which unlike SINGA's is also right when a job resumes mid-schedule. base_lr is unused.
    """

    def __init__(self, proto, name):
        super().__init__(proto, name)
        conf = self._conf("fixedstep_conf")
        self.steps = [int(s) for s in conf.step]
        self.step_lrs = [float(v) for v in conf.step_lr]
        where = "%s.fixedstep_conf" % name
        if not self.steps or len(self.steps) != len(self.step_lrs):
            raise invalid(where, "as many `step` thresholds as `step_lr` values (at least one of each)",
                          "%d step, %d step_lr" % (len(self.steps), len(self.step_lrs)),
                          "pair them up, e.g. %s" % _EXAMPLES["fixedstep_conf"])
        for i, v in enumerate(self.step_lrs):
            check_number("%s.step_lr[%d]" % (where, i), v, strict=True,
                         hint="each step_lr is the rate from its threshold on; e.g. %s" % _EXAMPLES["fixedstep_conf"])
        for i in range(1, len(self.steps)):
            if self.steps[i] <= self.steps[i - 1]:
                raise invalid("%s.step" % where, "strictly ascending thresholds", self.steps,
                              "step[%d]=%d is not after step[%d]=%d; list the thresholds in increasing "
                              "order with their step_lr in the same order"
                              % (i, self.steps[i], i - 1, self.steps[i - 1]))

    def __call__(self, step):
        return self.step_lrs[max(bisect.bisect_right(self.steps, step) - 1, 0)]

    def __repr__(self):
        return "FixedStepLRGen(step=%s, step_lr=%s)" % (self.steps, self.step_lrs)


LR_GENERATORS = {
    job_pb2.kFixed: FixedLRGen,
    job_pb2.kInverseT: InverseTLRGen,
    job_pb2.kInverse: InverseLRGen,
    job_pb2.kExponential: ExpLRGen,
    job_pb2.kLinear: LinearLRGen,
    job_pb2.kStep: StepLRGen,
    job_pb2.kFixedStep: FixedStepLRGen,
}


def create_lr_generator(proto, name="updater.learning_rate"):
    """The LRGenerator for an LRGenProto; ``name`` is the field path used in error messages."""
    if not isinstance(proto, job_pb2.LRGenProto):
        raise invalid(name, "a singa.proto.job_pb2.LRGenProto", type(proto).__name__)
    from singa import registry
    cls = registry.lr_generators.user(proto, name) or LR_GENERATORS.get(proto.type) or registry.lr_generators.enum(proto.type)
    if cls is None:
        hint = ("set it explicitly, e.g. `learning_rate { type: kFixed base_lr: 0.01 }` "
                "(the default kUserChange means a user-registered generator")
        hint += ", given as `user_type` with @singa.register_lr_generator"
        raise invalid("%s.type" % name, "one of " + _CHANGE_METHODS, _change_method(proto.type), hint + ")")
    return cls(proto, name)
