"""The runtime layer contract and the registry from layer type to implementation
(docs/user-layers.md shows a user's layer end to end).

A runtime layer is built from its LayerProto and a Backend, then

* ``setup(src_shapes)`` gets the output shapes of its source layers (batch first) and
  returns its own output shape; it creates its params with ``make_param``;
* ``forward(flag, srcs)`` reads ``src.data`` (and ``src.aux``, the labels of a data layer),
  stores and returns ``self.data``;
* ``backward(flag, srcs, grad)`` gets the gradient w.r.t. ``self.data`` (None for loss
  layers, which start back-propagation), writes ``param.grad`` for its params and
  returns one gradient per source (None where the source needs none);
* ``metrics()`` (loss and accuracy layers) returns this batch's metrics as floats.

``flag`` is a Phase value (kTrain, kVal, kTest). Layers use ``self.xp`` for math, so the
same code runs on NumPy and CuPy, and ``self.dtype`` (float32 unless a test asks for float64).
A layer with a NumPy body and a device kernel implements ``forward_cpu``/``forward_device``
(and ``backward_cpu``/``backward_device``) instead of ``forward``/``backward``.

``register`` maps LayerType values (ints) and user types (strings) to classes. As in SINGA's
``Layer::Create``, a LayerProto whose ``user_type`` is set selects by that string (a namespace of
its own: a user's "kEmbedding" is not the built-in kEmbedding); otherwise by ``type``.
"""
import numpy

from singa.errors import ConfigError, invalid
from singa.param import Param
from singa.proto import enum_name, job_pb2

LAYERS = {}         # LayerType value -> class
USER_LAYERS = {}    # LayerProto.user_type -> class


def register(*layer_types):
    """Class decorator: the class implements these LayerType values (``job_pb2.kInnerProduct``)
    and user types (``"kPReLU"``, selected by a LayerProto's ``user_type``). Registering a type
    that another class already implements is refused (the same class again, e.g. a re-run
    notebook cell, replaces it)."""
    for t in layer_types:
        if not (isinstance(t, str) and t) and not (isinstance(t, int) and not isinstance(t, bool)):
            raise invalid("layer type given to register", "a LayerType value (int) or a non-empty user type string",
                          t, hint='e.g. @register("kPReLU"), then `user_type: "kPReLU"` in the layer\'s conf')

    def deco(cls):
        for t in layer_types:
            table = USER_LAYERS if isinstance(t, str) else LAYERS
            old = table.get(t)
            if old is not None and _qualified(old) != _qualified(cls):
                raise ConfigError("Invalid value for the layer type %r given to register by %s. Expected a type no "
                                  "other class implements. Received: a type %s already implements\nhelp: pick "
                                  "another name for the user type" % (t, _qualified(cls), _qualified(old)))
            table[t] = cls
        return cls
    return deco


def _qualified(cls):
    return "%s.%s" % (cls.__module__, cls.__qualname__)


def type_name(t):
    """A LayerType's name ('kInnerProduct'), or the number for a user type."""
    return enum_name(job_pb2.LayerType, t)


def conf_pair(conf, name):
    """((y, x), (field names)) of a kernel/pad/stride field: ``name`` when set overrides name_y/name_x."""
    if conf.HasField(name):
        v = getattr(conf, name)
        return (v, v), (name, name)
    return (getattr(conf, name + "_y"), getattr(conf, name + "_x")), (name + "_y", name + "_x")


def image_shape(layer, shape, hint):
    """(B, C, H, W) of a 4-D source shape, or of a 3-D one with C = 1; else a ConfigError with ``hint``."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 3:
        return shape[0], 1, shape[1], shape[2]
    if len(shape) == 4:
        return shape
    raise invalid("source shape of layer '%s' (%s)" % (layer.name, type_name(layer.conf.type)),
                  "a 4-D (batch, channels, height, width) or 3-D (batch, height, width) shape", shape, hint=hint)


def scratch(layer, key, shape, dtype=None, host=False):
    """A buffer of ``layer`` kept across steps (on the host if ``host``), reallocated only when
    the shape changes (e.g. a smaller last batch)."""
    bufs = layer.__dict__.setdefault("_scratch", {})
    shape = tuple(shape)
    dtype = layer.dtype if dtype is None else numpy.dtype(dtype)
    a = bufs.get(key)
    if a is None or a.shape != shape or a.dtype != dtype:
        a = bufs[key] = (numpy if host else layer.xp).empty(shape, dtype=dtype)
    return a


def flat2d(a):
    """(B, ...) viewed as (B, prod(rest))."""
    return a.reshape(a.shape[0], -1)


def create_layer(conf, backend, dtype=numpy.float32):
    """The runtime layer for a LayerProto, or a ConfigError naming the layer and its type."""
    if conf.HasField("user_type"):
        cls = USER_LAYERS.get(conf.user_type)
        if cls is None:
            known = ", ".join(repr(t) for t in sorted(USER_LAYERS)) or "none so far"
            raise ConfigError(
                "Invalid value for `user_type` of layer '%s'. Expected a user type registered with "
                "singa.layers.register (registered: %s). Received: %r\nhelp: import the module that defines the "
                "layer (its class decorated with @register(%r)) before the net is built"
                % (conf.name, known, conf.user_type, conf.user_type))
        return cls(conf, backend, dtype)
    cls = LAYERS.get(conf.type)
    if cls is None:
        known = ", ".join(sorted(type_name(t) for t in LAYERS))
        raise ConfigError(
            "Invalid value for `type` of layer '%s'. Expected a layer type this engine implements (%s). "
            "Received: %s%s" % (conf.name, known, type_name(conf.type),
                                " (user_type %r)" % conf.user_type if conf.user_type else ""))
    return cls(conf, backend, dtype)


def check_types(layer_protos):
    """One ConfigError naming every layer of ``layer_protos`` whose type (or user_type) this engine
    does not implement, so a conf with several gaps shows them all at once, before anything else
    (a missing GPU or data file) is looked at."""
    missing = []
    for lp in layer_protos:
        if lp.HasField("user_type"):
            gap = None if lp.user_type in USER_LAYERS else (lp.name, "user_type %r" % lp.user_type)
        else:
            gap = None if lp.type in LAYERS else (lp.name, type_name(lp.type))
        if gap is not None and gap not in missing:      # a train and a test layer of one name count once
            missing.append(gap)
    if not missing:
        return
    kinds = sorted({k for _, k in missing})
    users = [k for k in kinds if k.startswith("user_type")]
    raise ConfigError(
        "the net has %d layer(s) of type(s) this engine does not implement: %s (%s).\nImplemented: %s.\nhelp: %s" % (
            len(missing), ", ".join("'%s' (%s)" % m for m in missing), ", ".join(kinds),
            ", ".join(sorted(type_name(t) for t in LAYERS)),
            "import the module that registers the user layers (@register(...)) before the net is built"
            if users and len(users) == len(kinds) else "change those layers to implemented types, or register your "
            "own implementation (docs/user-layers.md)"))


def wants_gradient(src):
    """Whether back-propagation should compute the gradient of source ``src``'s output: not for
    a data layer, nor for one computed from data alone (``grad_free``: kOneHot, kRNNLabel)."""
    return not (getattr(src, "is_data", False) or getattr(src, "grad_free", False))


class Layer:
    is_data = False    # produces batches from a store (has next_batch)
    is_loss = False    # starts back-propagation; has metrics()
    has_metrics = False
    grad_free = False  # its output depends on data alone: no gradient flows into it (wants_gradient)
    pulls_gradient = False  # runs its backward even when no gradient reached it (a bridge end)
    writes_state = True     # writes the params it keeps itself (batch norm's running statistics)

    def __init__(self, conf, backend, dtype=numpy.float32):
        self.conf = conf
        self.name = conf.name
        self.backend = backend
        self.xp = backend.xp
        self.dtype = numpy.dtype(dtype)
        self.params = []
        self.data = None
        self.aux = None
        self.rng = None     # numpy Generator, set by NeuralNet for layers that draw random numbers
        self.out_shape = None

    # -- to implement -----------------------------------------------------------
    def setup(self, src_shapes):
        raise NotImplementedError

    # A layer whose code serves every backend (xp calls) overrides forward and backward. One with
    # a NumPy body and a device kernel (singa.backends.device_kernels) defines forward_cpu and
    # forward_device (and the backward pair) instead: the one place choosing between them is here.
    def forward(self, flag, srcs):
        return (self.forward_device if self.on_device else self.forward_cpu)(flag, srcs)

    def backward(self, flag, srcs, grad):
        return (self.backward_device if self.on_device else self.backward_cpu)(flag, srcs, grad)

    def forward_cpu(self, flag, srcs):
        raise NotImplementedError(self._missing("forward"))

    forward_device = forward_cpu

    def backward_cpu(self, flag, srcs, grad):
        raise NotImplementedError(self._missing("backward"))

    backward_device = backward_cpu

    def _missing(self, what):
        return ("layer class %s implements neither %s nor %s_cpu and %s_device"
                % (type(self).__name__, what, what, what))

    @property
    def on_device(self):
        """Whether this layer's arrays live on a device (CuPy or the stand-in), not in NumPy."""
        return self.xp is not numpy

    def metrics(self):
        return {}

    # -- helpers ----------------------------------------------------------------
    def make_param(self, index, shape, role):
        """Create the index-th param (``role`` 'weight' or 'bias' for messages) from conf.param."""
        if index >= len(self.conf.param):
            raise ConfigError(
                "layer '%s' (%s) needs a `param` entry for its %s (param #%d); it has %d.\nhelp: add "
                "`param { name: \"w1\" init { type: kGaussian std: 0.01 } }` (weight first, then bias)"
                % (self.name, type_name(self.conf.type), role, index, len(self.conf.param)))
        p = Param(self.conf.param[index], shape, self.backend, self.dtype, layer_name=self.name)
        self.params.append(p)
        return p

    def feature_part(self, size):
        """How many of ``size`` outputs this copy computes: size / n for a copy of a layer split by
        its features among n partitions (partition_dim 1; singa.partition checks n divides it)."""
        c = self.conf
        return size // c.num_partitions if c.num_partitions > 1 and c.partition_dim == 1 else size

    def partition_axis(self, param):
        """The axis along which a feature-split copy's ``param`` is a slice of the whole one."""
        raise ConfigError("layer '%s' (%s) has params but no rule for splitting them by features.\nhelp: "
                          "`partition_dim: 0` on it" % (self.name, type_name(self.conf.type)))

    def expect_srcs(self, src_shapes, n):
        if len(src_shapes) != n:
            raise ConfigError("Invalid value for `srclayers` of layer '%s' (%s). Expected %d source layer(s). "
                              "Received: %d" % (self.name, type_name(self.conf.type), n, len(src_shapes)))

    def __repr__(self):
        return "%s(%r, out=%s)" % (type(self).__name__, self.name, self.out_shape)


class DataLayer(Layer):
    """A layer that makes batches from a store or a file (kRecordInput, kCSVInput, kCharRNN, rnnlm's
    kData): no sources and no gradient; ``next_batch`` loads the next one."""
    is_data = True

    def backward(self, flag, srcs, grad):
        return []

    def next_batch(self, flag=job_pb2.kTrain):
        """Load the next batch; returns (data, labels) (labels None where another layer makes them)."""
        self.forward(flag, [])
        return self.data, self.aux
