"""The job.conf sections the user API builds: ``Store``, ``Algorithm``, the updaters and ``Cluster``.

Each wraps one JobProto part as ``.proto`` (StoreProto, AlgProto, UpdaterProto, ClusterProto), checked
when it is made, and ``Model.compile()`` / ``fit()`` copy them into ``m.jobconf``. (The module is not
``config``: the engine's run-time switches, the ``SINGA_*`` environment table, are ``singa.switches``;
these are parts of a job.conf.) ``from singa.model import *`` gives them, as SINGA v0.3's model.py did.

``Updater`` here is the user's description of an update rule; the rule that runs is
``singa.updaters.Updater``, made from its ``.proto``.
"""
import inspect
import math
import numbers

from singa.errors import Stated, invalid
from singa.interactive import UpdaterState
from singa.proto import enum_name, job_pb2
from singa.updaters import create_updater
from singa.utils.arguments import positive_int
from singa.utils.message import enumAlgType, enumUpdaterType, field_names, setval, unknown_field_error


class Store:
    """A StoreProto (``.proto``): backend, path, batchsize (or ``batch_size``), shape, mean_value, ..."""

    def __init__(self, **kwargs):
        if "batch_size" in kwargs:
            if "batchsize" in kwargs:
                raise invalid("batch_size", "either batchsize or batch_size", Stated("both"), where="Store")
            kwargs["batchsize"] = kwargs.pop("batch_size")
        self.proto = job_pb2.StoreProto()
        for key in kwargs:
            if key not in self.proto.DESCRIPTOR.fields_by_name:
                raise unknown_field_error(self.proto, key, extra=("batch_size",), where="Store")
        setval(self.proto, **kwargs)


class Algorithm:
    """An AlgProto (``.proto``): ``Algorithm(type=kBP)``; for kCD, ``cd_k=`` goes to ``cd_conf``."""

    def __init__(self, type=job_pb2.kBP, **kwargs):
        self.proto = job_pb2.AlgProto(alg=enumAlgType(type))
        cd_fields = field_names(job_pb2.CDProto)
        alg_kw = {k: v for k, v in kwargs.items() if k not in cd_fields}
        cd_kw = {k: v for k, v in kwargs.items() if k in cd_fields}
        if cd_kw and self.proto.alg != job_pb2.kCD:
            raise invalid(next(iter(cd_kw)), "it only with type=kCD", Stated("type=%s" % enum_name(
                job_pb2.AlgType, self.proto.alg)), where="Algorithm")
        for key in alg_kw:
            if key not in self.proto.DESCRIPTOR.fields_by_name:
                raise unknown_field_error(self.proto, key, extra=cd_fields, where="Algorithm")
        setval(self.proto, **alg_kw)
        if cd_kw:
            setval(self.proto.cd_conf, **cd_kw)


# lr_type -> (ChangeMethod, conf field, {kwarg: default}; a None default means required)
_LR_SCHEDULES = {
    "fixed": (job_pb2.kFixed, None, {}),
    "step": (job_pb2.kStep, "step_conf", {"change_freq": 60, "gamma": 0.997}),
    "manual": (job_pb2.kFixedStep, "fixedstep_conf", {}),
    "fixedstep": (job_pb2.kFixedStep, "fixedstep_conf", {}),
    "linear": (job_pb2.kLinear, "linear_conf", {"change_freq": 10, "final_lr": 0.1}),
    "exponential": (job_pb2.kExponential, "exponential_conf", {"change_freq": None}),
    "inverse": (job_pb2.kInverse, "inverse_conf", {"gamma": 0.0001, "pow": 0.75}),
    "inverset": (job_pb2.kInverseT, "inverset_conf", {"final_lr": None}),
}
_SCHEDULE_KWARGS = ("change_freq", "gamma", "final_lr", "pow")
_UPDATER_KWARGS = ("lr", "lr_type", "decay", "momentum", "step", "step_lr")


def _number(name, val, owner, positive=False):
    # NaN and inf pass `val <= 0` the wrong way (SGD(lr=float('nan')) used to be accepted)
    if (isinstance(val, bool) or not isinstance(val, numbers.Real) or not math.isfinite(val)
            or (val <= 0 if positive else val < 0)):
        raise invalid(name, "a positive finite number" if positive else "a finite number >= 0", val, where=owner)
    return val


def _schedule_key(lr_type, owner):
    key = "fixed" if lr_type is None else lr_type
    if isinstance(key, str):
        key = key.lower()
        if key not in _LR_SCHEDULES and key[:1] == "k" and key[1:] in _LR_SCHEDULES:
            key = key[1:]
    if key not in _LR_SCHEDULES:
        raise invalid("lr_type", "None or one of %s" % ", ".join("'%s'" % n for n in _LR_SCHEDULES), lr_type,
                      where=owner)
    return key


def _set_schedule(lrgen, owner, lr_type, step, step_lr, sched_kw):
    """Fill LRGenProto ``lrgen`` for ``lr_type`` (its conf from the defaults and ``sched_kw``)."""
    key = _schedule_key(lr_type, owner)
    method, conf_name, defaults = _LR_SCHEDULES[key]
    extra = [k for k in sched_kw if k not in defaults]
    if extra:
        uses = ", ".join("%s: %s" % (n, "/".join(d) or "-") for n, (_, _, d) in _LR_SCHEDULES.items())
        raise invalid(extra[0], "it only with an lr_type that uses it (%s)" % uses,
                      Stated("%s=%r with lr_type=%r" % (extra[0], sched_kw[extra[0]], lr_type)), where=owner)
    lrgen.type = method
    if key in ("manual", "fixedstep"):
        steps = list(step) if isinstance(step, (list, tuple)) else [step]
        lrs = list(step_lr) if isinstance(step_lr, (list, tuple)) else [step_lr]
        if len(steps) != len(lrs) or not steps:
            raise invalid("step`/`step_lr", "two lists of the same length (thresholds and their learning rates)",
                          Stated("step=%r, step_lr=%r" % (step, step_lr)), where=owner)
        if any(b < a for a, b in zip(steps, steps[1:])):
            raise invalid("step", "ascending step thresholds", step, where=owner)
        setval(lrgen.fixedstep_conf, step=steps, step_lr=lrs)
    elif conf_name is not None:
        values = dict(defaults, **sched_kw)
        missing = [k for k, v in values.items() if v is None]
        if missing:
            raise invalid(missing[0], "a value for lr_type=%r" % (lr_type,), Stated("nothing"), where=owner,
                          hint="%s(lr=..., lr_type=%r, %s=...)" % (owner, lr_type, missing[0]))
        setval(getattr(lrgen, conf_name), **values)


def _updater_proto(upd_type, owner, lr, lr_type, decay, momentum, step, step_lr, fields):
    """The UpdaterProto of the Updater arguments (``fields``: further UpdaterProto fields)."""
    sched_kw = {k: fields.pop(k) for k in _SCHEDULE_KWARGS if k in fields}
    upd = job_pb2.UpdaterProto(type=enumUpdaterType(upd_type))
    for key in fields:
        if key not in upd.DESCRIPTOR.fields_by_name:
            raise unknown_field_error(upd, key, extra=_UPDATER_KWARGS + _SCHEDULE_KWARGS, where=owner)
    setval(upd, **fields)
    upd.learning_rate.base_lr = _number("lr", lr, owner, positive=True)
    if _number("decay", decay, owner) > 0:
        upd.weight_decay = decay
    if _number("momentum", momentum, owner) > 0:
        upd.momentum = momentum
    _set_schedule(upd.learning_rate, owner, lr_type, step, step_lr, sched_kw)
    return upd


class Updater:
    """An UpdaterProto (``.proto``): ``Updater(upd_type, lr, lr_type, decay, momentum, step, step_lr, **fields)``.

    ``lr_type``: None/'fixed' (kFixed), 'step' (kStep, change_freq 60, gamma 0.997), 'manual' or
    'fixedstep' (kFixedStep with ``step`` / ``step_lr``), 'linear' (kLinear, change_freq 10,
    final_lr 0.1), 'exponential' (kExponential, needs change_freq), 'inverse' (kInverse, gamma
    0.0001, pow 0.75), 'inverset' (kInverseT, needs final_lr); ``change_freq``, ``gamma``,
    ``final_lr`` and ``pow`` keywords override these. ``decay`` (weight_decay) and ``momentum``
    are written only when > 0. Other keywords are UpdaterProto fields (delta, clip_low, ...).
    The engine's rule for it is ``singa.updaters.Updater``.
    """

    def __init__(self, upd_type, lr=0.01, lr_type=None, decay=0, momentum=0, step=(0,), step_lr=(0.01,),
                 **fields):
        self.proto = _updater_proto(upd_type, type(self).__name__, lr, lr_type, decay, momentum, step, step_lr,
                                    dict(fields))
        self._validate()

    def _validate(self):
        """The engine's own checks of the finished UpdaterProto (singa.updaters), so the Python API
        refuses exactly what a job.conf would (gamma, final_lr, step_lr, delta, rho, betas, ...),
        with the same field path in the message, when the optimizer is made rather than at fit()."""
        proto = self.proto
        if proto.type == job_pb2.kRMSProp and not proto.rmsprop_conf.HasField("rho"):
            # Updater(kRMSProp, ...) without rho was accepted by SINGA's Python (the engine says
            # it is missing when the job runs): check the other fields now all the same
            proto = job_pb2.UpdaterProto()
            proto.CopyFrom(self.proto)
            proto.rmsprop_conf.rho = 0.9
        create_updater(proto)

    def Update(self, step, layer):
        """Interactive training (SINGA v0.3): apply this updater to every param of ``layer`` with the
        gradients its last ComputeGradient() left (the updater's state kept per param)."""
        st = getattr(self, "_interactive", None)
        if st is None:
            st = self._interactive = UpdaterState(self.proto)
        st.update(step, layer)


_KEYWORD = inspect.Parameter.POSITIONAL_OR_KEYWORD


class _NamedUpdater(Updater):
    """An Updater of one UpdaterType (SGD, Adam, ...). A subclass names its ``upd_type`` and, in
    ``conf``, its conf message and that message's keywords with their defaults; its signature is
    Updater's without ``upd_type``, plus those keywords before ``**fields``."""

    upd_type = None
    conf = (None, {})          # (UpdaterProto field, {keyword: default}), e.g. ("adam_conf", {"beta1": 0.9})
    _arguments = None          # the signature __init__ binds its arguments to (set per subclass)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in vars(cls):          # a user's subclass with a constructor of its own: its signature
            cls.__signature__ = None
            return
        common = list(inspect.signature(Updater).parameters.values())[1:]     # without upd_type
        own = [inspect.Parameter(k, _KEYWORD, default=d) for k, d in cls.conf[1].items()]
        cls._arguments = cls.__signature__ = inspect.Signature(common[:-1] + own + common[-1:])

    def __init__(self, *args, **kwargs):
        owner = type(self).__name__
        try:
            bound = self._arguments.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError("%s%s: %s" % (owner, self._arguments, e)) from None
        bound.apply_defaults()
        values = dict(bound.arguments)
        conf_name, defaults = self.conf
        own = {k: values.pop(k) for k in defaults}
        self.proto = _updater_proto(self.upd_type, owner, fields=values.pop("fields"), **values)
        if conf_name is not None:
            setval(getattr(self.proto, conf_name), **{k: _number(k, v, owner) for k, v in own.items()})
        self._validate()


class SGD(_NamedUpdater):
    """Stochastic gradient descent (kSGD), optionally with momentum."""
    upd_type = job_pb2.kSGD


class AdaGrad(_NamedUpdater):
    """AdaGrad (kAdaGrad)."""
    upd_type = job_pb2.kAdaGrad


class Nesterov(_NamedUpdater):
    """Nesterov momentum (kNesterov)."""
    upd_type = job_pb2.kNesterov


class RMSProp(_NamedUpdater):
    """RMSProp (kRMSProp); ``rho`` goes to rmsprop_conf (required by the proto, which gives no
    default; 0.9 here)."""
    upd_type, conf = job_pb2.kRMSProp, ("rmsprop_conf", {"rho": 0.9})


class AdaDelta(_NamedUpdater):
    """AdaDelta (kAdaDelta); ``rho`` (proto default 0.9) goes to adadelta_conf."""
    upd_type, conf = job_pb2.kAdaDelta, ("adadelta_conf", {"rho": 0.9})


class Adam(_NamedUpdater):
    """Adam (kAdam); ``beta1``/``beta2`` (proto defaults 0.9, 0.999) go to adam_conf."""
    upd_type, conf = job_pb2.kAdam, ("adam_conf", {"beta1": 0.9, "beta2": 0.999})


class AdamMax(_NamedUpdater):
    """AdaMax (kAdamMax); ``beta1``/``beta2`` (proto defaults 0.9, 0.999) go to adammax_conf."""
    upd_type, conf = job_pb2.kAdamMax, ("adammax_conf", {"beta1": 0.9, "beta2": 0.999})


class Cluster:
    """A ClusterProto (``.proto``) with the workspace and the six topology counts always written;
    other ClusterProto fields (server_worker_separate, sync_freq, ...) as keywords."""

    def __init__(self, workspace=None, nworker_groups=1, nserver_groups=1, nworkers_per_group=1,
                 nservers_per_group=1, nworkers_per_procs=1, nservers_per_procs=1, **fields):
        if workspace is not None and hasattr(workspace, "__fspath__"):
            workspace = str(workspace.__fspath__())
        if not isinstance(workspace, str) or not workspace:
            raise invalid("workspace", "a directory path (checkpoints go to <workspace>/checkpoint)", workspace,
                          where="Cluster", hint="Cluster('examples/mnist'), or the workspace returned by load_data()")
        self.proto = job_pb2.ClusterProto(workspace=workspace)
        counts = dict(nworker_groups=nworker_groups, nserver_groups=nserver_groups,
                      nworkers_per_group=nworkers_per_group, nservers_per_group=nservers_per_group,
                      nworkers_per_procs=nworkers_per_procs, nservers_per_procs=nservers_per_procs)
        for key, val in counts.items():
            positive_int(val, key, where="Cluster")
        setval(self.proto, **counts)
        for key in fields:
            if key not in self.proto.DESCRIPTOR.fields_by_name:
                raise unknown_field_error(self.proto, key, where="Cluster")
        setval(self.proto, **fields)


__all__ = ["Store", "Algorithm", "Updater", "SGD", "AdaGrad", "Nesterov", "RMSProp", "AdaDelta", "Adam",
           "AdamMax", "Cluster"]
