"""SINGA's Factory (SINGA-V0-REST.md 9): what a user registers from Python, and how a proto picks it.

SINGA's Driver registered user layers, updaters, learning-rate generators, param generators and
workers; each proto selected its class by a string field when that field was *present*
(``user_type``, ``user_alg``) and otherwise by its enum (``type``, ``alg``). One ``Registry`` per
kind keeps both maps: enum values (ints) and user types (strings, a namespace of their own, so a
user's "kEmbedding" is not the built-in kEmbedding). Registering a key another class already has
is refused; the same class again (a re-run notebook cell) replaces itself.

    from singa import registry

    @registry.updaters.register("kSignSGD")
    class SignSGD(Updater): ...                 # `updater { user_type: "kSignSGD" ... }`

The decorators are also ``singa.register_updater``, ``register_lr_generator``,
``register_param_generator`` and ``register_worker``; layers have ``singa.layers.register``.
``singa-run -module PKG`` imports PKG before the conf is parsed, so its registrations count.
"""
from singa.errors import ConfigError, invalid


def _qualified(obj):
    return "%s.%s" % (getattr(obj, "__module__", "?"), getattr(obj, "__qualname__", repr(obj)))


class Registry:
    """Classes (or functions) of one kind by enum value and by user type."""

    def __init__(self, kind, user_field, enum_field, example):
        self.kind, self.user_field, self.enum_field, self.example = kind, user_field, enum_field, example
        self.by_enum, self.by_user = {}, {}

    def register(self, *keys):
        for k in keys:
            if not (isinstance(k, str) and k) and not (isinstance(k, int) and not isinstance(k, bool)):
                raise invalid("%s type given to register" % self.kind, "an enum value (int) or a non-empty user "
                              "type string", k, hint=self.example)

        def deco(obj):
            for k in keys:
                table = self.by_user if isinstance(k, str) else self.by_enum
                old = table.get(k)
                if old is not None and _qualified(old) != _qualified(obj):
                    raise ConfigError("Invalid value for the %s type %r given to register by %s. Expected a type no "
                                      "other one has. Received: a type %s already has\nhelp: pick another name"
                                      % (self.kind, k, _qualified(obj), _qualified(old)))
                table[k] = obj
            return obj
        return deco

    def user(self, proto, where=None):
        """The registered class a proto names by its user field, None when the field is absent; a
        ConfigError naming the field (under ``where``, its proto's path) when nobody registered it."""
        if not proto.HasField(self.user_field):
            return None
        name = getattr(proto, self.user_field)
        obj = self.by_user.get(name)
        if obj is None:
            known = ", ".join(repr(t) for t in sorted(self.by_user)) or "none so far"
            field = "`%s`" % self.user_field if where is None else (
                "`%s` of %s" % (self.user_field, where) if " " in where else "`%s.%s`" % (where, self.user_field))
            raise ConfigError("Invalid value for %s. Expected a user %s type registered from Python (registered: "
                              "%s). Received: %r\nhelp: import the module that registers it before the job is "
                              "built (singa-run -module PKG), e.g. %s" % (field, self.kind, known, name,
                                                                           self.example))
        return obj

    def enum(self, value):
        return self.by_enum.get(value)


updaters = Registry("updater", "user_type", "type", '@singa.register_updater("kSignSGD") on an Updater subclass')
lr_generators = Registry("learning-rate generator", "user_type", "type",
                         '@singa.register_lr_generator("kCosine") on an LRGenerator subclass')
param_generators = Registry("param generator", "user_type", "type",
                            '@singa.register_param_generator("kOrthogonal") on fn(init, shape, rng) -> array')
workers = Registry("worker", "user_alg", "alg", '@singa.register_worker("kMyAlg") on a BPWorker subclass')

register_updater = updaters.register
register_lr_generator = lr_generators.register
register_param_generator = param_generators.register
register_worker = workers.register


def import_modules(names):
    """Load each of ``names`` (singa-run -module), so its registrations take effect: a module or
    package name, a ``.py`` file, a protoc-made ``*_pb2.py`` or a ``.proto`` file (see
    singa.proto.load_proto / import_pb2). An import error names the module and keeps its cause."""
    import importlib
    import os
    import sys
    from singa.proto import import_pb2, load_file_module, load_proto
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())     # a module beside the job.conf, as `python -m` finds it
    for name in names:
        if name.endswith(".proto"):
            load_proto(name)
            continue
        if name.endswith("_pb2.py") or (name.endswith("_pb2") and os.path.isfile(name + ".py")):
            import_pb2(name)
            continue
        try:
            if name.endswith(".py"):
                if not os.path.isfile(name):
                    raise ImportError("no such file")
                load_file_module(name)
            else:
                importlib.import_module(name)
        except ImportError as e:
            raise ConfigError("-module %s: the module cannot be imported (%s).\nhelp: give a module or package "
                              "name importable from the working directory or PYTHONPATH, or a .py file, e.g. "
                              "-module myext for ./myext.py" % (name, e)) from e
