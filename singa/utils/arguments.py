"""Checks of the user API's arguments (after keras.src.utils.argument_validation): each returns the value
in the form the JobProto takes, or raises the standard ConfigError (singa.errors.invalid) naming the
argument and its owner ("Invalid value for `batch_size` of fit(). Expected ... Received: ...")."""
import numbers

import numpy

from singa.errors import ConfigError, invalid
from singa.proto import job_pb2
from singa.utils.message import field_names

_JOB_FIELDS = tuple(field_names(job_pb2.JobProto))
_ALGS = {"bp": job_pb2.kBP, "cd": job_pb2.kCD, "bptt": job_pb2.kBPTT}


def positive_int(value, name, where=None):
    """``value`` as an int when it is a positive integer (a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise invalid(name, "a positive integer", value, where=where)
    return int(value)


def short(value):
    """A value as a message shows it: an array by its shape, anything else by its repr, cut at 60."""
    r = repr(value) if not isinstance(value, numpy.ndarray) else "array of shape %s" % (value.shape,)
    return r if len(r) < 60 else r[:57] + "..."


def paths(value, name):
    """A path or a list of paths as a list (None: none)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise invalid(name, "a path or a list of paths", value)


def gpu_ids(device):
    """``device=`` (a GPU id or a list of them) as a list of ints."""
    ids = [device] if isinstance(device, numbers.Integral) else device
    if not isinstance(ids, (list, tuple)) or not all(
            isinstance(i, numbers.Integral) and not isinstance(i, bool) and i >= 0 for i in ids):
        raise invalid("device", "a GPU id or a list of GPU ids (ints >= 0)", device, hint="device=0 or device=[0]")
    return [int(i) for i in ids]


def alg_value(alg, method):
    """``alg=`` ('bp', 'cd', 'bptt', a kXX name or an AlgType value) as an AlgType value."""
    if isinstance(alg, str):
        key = alg.lower()
        key = key[1:] if key[:1] == "k" and key[1:] in _ALGS else key
        if key in _ALGS:
            return _ALGS[key]
    elif isinstance(alg, numbers.Integral) and not isinstance(alg, bool) and alg in _ALGS.values():
        return int(alg)
    hint = "pass alg='bp' (back-propagation), 'cd' (contrastive divergence) or 'bptt'"
    if isinstance(alg, numbers.Integral):
        hint += "; to set the batch size use the keyword: %s(X, batch_size=%d)" % (method, alg)
    raise invalid("alg", "'bp', 'cd' or 'bptt'", alg, where=method + "()", hint=hint)


def check_job_kwargs(method, fields, extra):
    """Refuse a keyword of ``method`` that is neither one of ``extra`` nor a JobProto field."""
    for key, val in fields.items():
        if key not in _JOB_FIELDS and key not in extra:
            raise ConfigError(
                "Invalid value for `%s` (a keyword argument of %s). Expected one of %s or a JobProto field "
                "(%s). Received: %s=%r\nhelp: check the spelling; SINGA v0.3 silently ignored unknown keywords"
                % (key, method, ", ".join(extra), ", ".join(_JOB_FIELDS), key, val))
