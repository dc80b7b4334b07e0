"""SINGA's Parameter class and the w_/b_ convention of the layer constructors (SINGA-V0.md 1.6).

``Parameter(**kwargs)`` builds a ParamProto (``.param``):

============  ===============================================  ================================
kwarg         meaning                                          default
============  ===============================================  ================================
name          param name; with ``level=i`` it becomes          ``param<++PARAMID>``, renamed
              ``name+str(i)`` plus '2' if it starts with 'b'   ``w<N>``/``b<N>`` by its layer
lr, wd        lr_scale, wd_scale                               1, 1 (always written)
init          'uniform', 'gaussian', 'constant', 'none' (no    omitted: kUniform with the proto
              init message), 'uniformsqrtfanin',              bounds -1, 1
              'gaussiansqrtfanin', 'uniformsqrtfaninout';
              'gauss'/'const' are aliases
scale         uniform bounds -scale..scale                     0.05
low, high     uniform bounds                                   -scale, +scale
value         constant value                                   0 (proto default is 1)
mean, std     gaussian                                         0, 0.01
share_from    name of the owner param                          --
============  ===============================================  ================================

Differences to SINGA, on purpose:

* an unknown kwarg or init name raises ConfigError (SINGA ignored the kwarg, and failed on
  'gauss', 'const' and the fan-in methods);
* with ``init`` omitted, explicit ``scale``/``low``/``high`` are written into the uniform
  bounds (SINGA dropped them and used -1, 1);
* a layer never modifies the Parameter object it is given: it takes a copy, renames and
  updates the copy (see ``layer_param``). In SINGA the first layer renamed the object itself,
  so one Parameter passed as ``w_param`` and ``b_param`` to several layers produced the same
  name everywhere, and per-layer ``w_``/``b_`` kwargs leaked into the next layers.
"""
import math
import numbers

from singa.errors import ConfigError, Stated, invalid
from singa.initialization import get_init_values, init_name
from singa.param import check_init, check_init_values
from singa.proto import job_pb2
from singa.utils.message import enumInitMethod, field_names, setval
from singa.utils.utility import generate_name

_INIT_KEYS = ("scale", "low", "high", "value", "mean", "std")
PARAMETER_KWARGS = ("name", "lr", "wd", "lr_scale", "wd_scale", "init", "share_from", "level") + _INIT_KEYS
_GEN_FIELDS = tuple(f for f in field_names(job_pb2.ParamGenProto) if f != "type")


def _check_number(key, val):
    if isinstance(val, bool) or not isinstance(val, numbers.Real):
        raise invalid(key, "a number", val)


def _check_scale(key, val):
    _check_number(key, val)
    # a negative lr scale climbs the loss for this param; NaN/inf poison it at the first step
    if not (math.isfinite(val) and val >= 0):
        raise invalid(key, "a finite number >= 0", val,
                      hint="1 keeps the job's rate/decay, 0 freezes the param (lr) or turns its decay off (wd)")


def _check_init_values(values, owner):
    for k, v in values.items():
        _check_number(k, v)
    check_init_values(values, owner)     # the same check as a job.conf's init { ... }


def _set_init(param, identifier, values):
    """Replace param.init by a ParamGenProto of type ``identifier`` with ``values`` (or none at all)."""
    kind = init_name(identifier)
    param.ClearField("init")
    if kind == "none":
        return
    fields = get_init_values(kind, **values)
    _check_init_values(fields, "param '%s'" % param.name)
    param.init.type = enumInitMethod(kind)
    setval(param.init, **fields)


class Parameter:
    """A ParamProto (``.param``) built from SINGA's Parameter kwargs; see the module doc."""

    def __init__(self, **kwargs):
        unknown = [k for k in kwargs if k not in PARAMETER_KWARGS]
        if unknown:
            raise ConfigError(
                "Invalid value for `%s` (a Parameter kwarg). Expected one of %s. Received: %s=%r\n"
                "help: Parameter(init='gaussian', std=0.01, lr=1, wd=1)"
                % (unknown[0], ", ".join(PARAMETER_KWARGS), unknown[0], kwargs[unknown[0]]))
        lr = kwargs.get("lr", kwargs.get("lr_scale", 1))
        wd = kwargs.get("wd", kwargs.get("wd_scale", 1))
        _check_scale("lr", lr)
        _check_scale("wd", wd)
        self.param = job_pb2.ParamProto(lr_scale=lr, wd_scale=wd)

        if "name" not in kwargs:
            if "level" in kwargs:
                raise invalid("level", "it only together with `name` (Parameter(name='w', level=2) -> 'w2')",
                              Stated("level=%r without name" % (kwargs["level"],)))
            self.param.name = generate_name("param", 1)
        else:
            pname = kwargs["name"]
            if not isinstance(pname, str) or not pname:
                raise invalid("name", "a non-empty string", pname)
            if kwargs.get("level") is not None:
                pname += str(kwargs["level"])
                if pname[0] == "b":     # RBM/autoencoder bias naming: b<level>2
                    pname += "2"
            self.param.name = pname

        if kwargs.get("share_from") is not None:
            self.param.share_from = kwargs["share_from"]

        values = {k: kwargs[k] for k in _INIT_KEYS if k in kwargs}
        if "init" in kwargs:
            _set_init(self.param, kwargs["init"], values)
        else:
            # SINGA's default: kUniform with the proto's bounds (-1, 1) unless bounds are given
            self.param.init.type = job_pb2.kUniform
            bounds = {}
            if "scale" in values:
                bounds = {"low": -values["scale"], "high": values["scale"]}
            bounds.update({k: values[k] for k in ("low", "high") if k in values})
            _check_init_values(bounds, "param '%s'" % self.param.name)
            setval(self.param.init, **bounds)

    @property
    def name(self):
        return self.param.name

    def update(self, **fields):
        """Change fields of this Parameter (e.g. ``parw.update(std=0.01)``); later layers see them.

        Keys: ParamProto fields (name, lr_scale, wd_scale, share_from, ...), ``lr``/``wd``,
        ParamGenProto fields (value, mean, std, low, high), ``scale`` and ``init`` (a new type).
        """
        fields = dict(fields)
        if "init" in fields:
            kind = fields.pop("init")
            values = {k: fields.pop(k) for k in _INIT_KEYS if k in fields}
            _set_init(self.param, kind, values)
        if "scale" in fields:
            s = fields.pop("scale")
            _check_number("scale", s)
            fields.setdefault("low", -s)
            fields.setdefault("high", s)
        for alias, real in (("lr", "lr_scale"), ("wd", "wd_scale")):
            if alias in fields:
                fields[real] = fields.pop(alias)
            if real in fields:
                _check_scale(alias, fields[real])
        gen = {k: fields.pop(k) for k in list(fields) if k in _GEN_FIELDS}
        if "type" in fields:
            gen["type"] = enumInitMethod(fields.pop("type"))
        if gen:
            if not self.param.HasField("init"):
                raise ConfigError(
                    "Invalid value for `%s` of param '%s'. Expected an init field only for a param that has "
                    "an init method. Received: %s while init='none'\nhelp: update(init='gaussian', std=...)"
                    % (next(iter(gen)), self.param.name, gen))
            _check_init_values({k: v for k, v in gen.items() if k in _INIT_KEYS}, "param '%s'" % self.param.name)
            setval(self.param.init, **gen)
            check_init(self.param.init, "param '%s'" % self.param.name)   # std=-1 or low > the old high
        bad = [k for k in fields if k not in job_pb2.ParamProto.DESCRIPTOR.fields_by_name]
        if bad:
            raise ConfigError(
                "Invalid value for `%s` in Parameter.update(). Expected a ParamProto field (%s), a ParamGenProto "
                "field (%s), lr, wd, scale or init. Received: %s=%r"
                % (bad[0], ", ".join(field_names(job_pb2.ParamProto)), ", ".join(_GEN_FIELDS), bad[0], fields[bad[0]]))
        setval(self.param, **fields)
        return self

    def copy(self):
        """An independent Parameter with the same ParamProto (no new default name is drawn)."""
        other = Parameter.__new__(Parameter)
        other.param = job_pb2.ParamProto()
        other.param.CopyFrom(self.param)
        return other

    def __repr__(self):
        return "Parameter(%s)" % " ".join(str(self.param).split())


def set_param_field(param, pname, changename=False, withnumber=True, level=None, **kwargs):
    """Apply a layer's ``w_``/``b_`` kwargs to ``param`` (a ParamProto) and name it as SINGA did.

    For ``pname`` 'w' the keys starting with ``w_`` are used (``b_`` for 'b'; other keys are left
    to the caller): ``w_lr`` -> lr_scale, ``w_wd`` -> wd_scale, ``w_init`` -> a new init type,
    ``w_scale`` -> uniform bounds, any other ``w_<x>`` -> field ``x`` of the init ParamGenProto
    (``w_std``, ``w_mean``, ``w_low``, ``w_high``, ``w_value``). Unknown ``<x>`` raise ConfigError.

    Renaming: a param still named ``param<N>``, or any param when ``changename`` is True, becomes
    ``generate_name(pname + str(level or ''), withnumber=withnumber)``, i.e. ``w<LAYERID>``.
    """
    if isinstance(param, Parameter):
        param = param.param
    if pname not in ("w", "b"):
        raise invalid("pname", "'w' or 'b'", pname)
    prefix = pname + "_"
    lr, wd = param.lr_scale, param.wd_scale
    initkv = {}
    new_init = None
    for key, val in kwargs.items():
        if not key.startswith(prefix):
            continue
        sub = key[len(prefix):]
        if sub == "lr":
            _check_scale(key, val)
            lr = val
        elif sub == "wd":
            _check_scale(key, val)
            wd = val
        elif sub == "init":
            new_init = val
        elif sub == "scale":
            _check_number(key, val)
            initkv.setdefault("low", -val)
            initkv.setdefault("high", val)
        elif sub in _GEN_FIELDS:
            initkv[sub] = val
        else:
            raise ConfigError(
                "Invalid value for `%s`. Expected %slr, %swd, %sinit, %sscale or %s<x> with x a ParamGenProto "
                "field (%s). Received: %s=%r" % (key, prefix, prefix, prefix, prefix, prefix,
                                                 ", ".join(_GEN_FIELDS), key, val))

    if param.name.startswith("param") or changename:
        label = pname + (str(level) if level is not None else "")
        param.name = generate_name(label, withnumber=withnumber)
    param.lr_scale = lr
    param.wd_scale = wd

    if new_init is not None:
        _set_init(param, new_init, {k: initkv.pop(k) for k in _INIT_KEYS if k in initkv})
    if initkv:
        if not param.HasField("init"):
            raise ConfigError(
                "Invalid value for `%s%s` of param '%s'. Expected init fields only for a param with an init "
                "method. Received: %r while the param has init='none'\nhelp: pass %sinit='gaussian' as well"
                % (prefix, next(iter(initkv)), param.name, initkv, prefix))
        _check_init_values({k: v for k, v in initkv.items() if k in _INIT_KEYS}, "param '%s'" % param.name)
        setval(param.init, **initkv)
        check_init(param.init, "param '%s'" % param.name)    # w_low=1 against the default high too
    return param


def layer_param(given, default_init, pname, kwargs, changename=False, withnumber=True, level=None):
    """The ParamProto a layer stores for its weight ('w') or bias ('b').

    ``given`` (a Parameter or None) is copied, never modified; without one a
    ``Parameter(init=default_init)`` is made, as SINGA did.
    """
    if given is None:
        par = Parameter(init=default_init)
        proto = par.param
    elif isinstance(given, Parameter):
        proto = job_pb2.ParamProto()
        proto.CopyFrom(given.param)
    elif isinstance(given, job_pb2.ParamProto):
        proto = job_pb2.ParamProto()
        proto.CopyFrom(given)
    else:
        raise invalid("%s_param" % pname, "a Parameter", given,
                      hint="%s_param=Parameter(init='gaussian', std=0.01)" % pname)
    return set_param_field(proto, pname, changename=changename, withnumber=withnumber, level=level, **kwargs)
