"""SINGA's message module: every job_pb2 symbol, ``Message``, ``setval`` and the enumXxx helpers.

As in SINGA v0.3 (SINGA-V0.md 1.2) this module copies every public symbol of ``job_pb2`` into
its namespace, so ``from singa.model import *`` gives the proto classes (``JobProto``,
``LayerProto``, ...) and every enum value as a bare global (``kSGD``, ``kInnerProduct``,
``kTrain``, ``RELU``, ...). ``common_pb2`` and ``singa_pb2`` are left out, as in SINGA.

One deliberate difference: ``setval`` rejects keys that are not fields of the message (SINGA
skipped them silently, which hid typos such as ``batch_size`` for ``batchsize``).
"""
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message as _PbMessage

from singa.errors import ConfigError
from singa.proto import enum_value, job_pb2

__all__ = []

for _name in dir(job_pb2):
    if not _name.startswith("_") and _name != "DESCRIPTOR":
        globals()[_name] = getattr(job_pb2, _name)
        __all__.append(_name)


def field_names(proto):
    """The field names of a message (instance or class), in declaration order."""
    return [f.name for f in proto.DESCRIPTOR.fields]


def unknown_field_error(proto, key, extra=(), where=None, hint=None):
    """ConfigError for a key that is no field of ``proto``, listing the valid names."""
    pname = proto.DESCRIPTOR.name
    valid = list(extra) + field_names(proto)
    msg = "Unknown field `%s`%s. Expected one of the %s fields: %s. Received: %r" % (
        key, " for " + where if where else "", pname, ", ".join(valid), key)
    msg += "\nhelp: " + (hint or "check the spelling; the names are those of SINGA v0.3's job.proto")
    return ConfigError(msg)


def _type_error(proto, fd, val, err):
    what = {FieldDescriptor.TYPE_ENUM: "a %s enum value" % (fd.enum_type.name if fd.enum_type else ""),
            FieldDescriptor.TYPE_BOOL: "a bool", FieldDescriptor.TYPE_STRING: "a string",
            FieldDescriptor.TYPE_FLOAT: "a number", FieldDescriptor.TYPE_DOUBLE: "a number",
            FieldDescriptor.TYPE_MESSAGE: "a %s" % (fd.message_type.name if fd.message_type else "message")}
    expected = what.get(fd.type, "an integer")
    if fd.is_repeated:
        expected += " (or a list of them)"
    return ConfigError("Invalid value for `%s` of %s. Expected %s. Received: %r\nhelp: %s" % (
        fd.name, proto.DESCRIPTOR.name, expected, val, err))


def _merge_message(target, val, fd, proto):
    if isinstance(val, dict):
        setval(target, **val)
    elif isinstance(val, _PbMessage) and val.DESCRIPTOR is target.DESCRIPTOR:
        target.MergeFrom(val)
    elif hasattr(val, "proto") and isinstance(val.proto, _PbMessage) \
            and val.proto.DESCRIPTOR is target.DESCRIPTOR:
        target.MergeFrom(val.proto)      # a Store/Updater/... wrapper object
    else:
        raise _type_error(proto, fd, val, "pass a %s (or a dict of its fields)" % target.DESCRIPTOR.name)


def setval(proto, **kwargs):
    """Set fields of ``proto`` with SINGA's semantics.

    * repeated scalar field: the value is appended (a list/tuple is appended element-wise);
    * repeated message field: a new element is added and the value merged into it;
    * singular message field: the value is merged in (a dict of its fields works too);
    * scalar field: assigned.

    A key that is no field of ``proto`` raises ConfigError listing the valid names.
    """
    fields = proto.DESCRIPTOR.fields_by_name
    for key, val in kwargs.items():
        fd = fields.get(key)
        if fd is None:
            raise unknown_field_error(proto, key)
        try:
            if fd.is_repeated:
                vals = list(val) if isinstance(val, (list, tuple)) else [val]
                if fd.type == FieldDescriptor.TYPE_MESSAGE:
                    for v in vals:
                        _merge_message(getattr(proto, key).add(), v, fd, proto)
                else:
                    getattr(proto, key).extend(vals)
            elif fd.type == FieldDescriptor.TYPE_MESSAGE:
                _merge_message(getattr(proto, key), val, fd, proto)
            else:
                setattr(proto, key, val)
        except ConfigError:
            raise
        except (TypeError, ValueError) as e:
            raise _type_error(proto, fd, val, e) from None
    return proto


class Message:
    """``Message('Layer', name='x')`` builds a LayerProto (``.proto``) and applies ``setval``."""

    def __init__(self, protoname, **kwargs):
        cls = getattr(job_pb2, protoname + "Proto", None)
        if cls is None:
            valid = sorted(n[:-5] for n in dir(job_pb2) if n.endswith("Proto") and not n.startswith("_"))
            raise ConfigError("Invalid value for `protoname`. Expected one of %s. Received: %r"
                              % (", ".join(valid), protoname))
        self.proto = cls()
        setval(self.proto, **kwargs)


def _make_enum_helper(enum_type, ename):
    def helper(key):
        return enum_value(enum_type, key, ename)
    helper.__name__ = "enum" + ename
    helper.__doc__ = ("The %s value named by ``key``: the value's name minus its first letter, "
                      "lower-cased (SINGA's enum%s)." % (ename, ename))
    return helper


for _ename in job_pb2.DESCRIPTOR.enum_types_by_name:
    globals()["enum" + _ename] = _make_enum_helper(getattr(job_pb2, _ename), _ename)
    __all__.append("enum" + _ename)

# the one nested enum (PoolingProto.PoolMethod: MAX, AVG)
enumPoolMethod = _make_enum_helper(job_pb2.PoolingProto.PoolMethod, "PoolMethod")
__all__ += ["enumPoolMethod", "Message", "setval"]
