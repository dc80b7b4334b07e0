"""SINGA v0.3's interactive training (SINGA-126; SINGA-V0.md 1.9): the layer objects of the Python
API run by hand, one call at a time.

    d = Driver(); d.Init(sys.argv)
    x, label = ImageInput(28, 28), LabelInput()
    nn = [x, Dense(100, init='uniform'), Activation('stanh'), Dense(10, init='uniform')]
    loss, sgd = Loss('softmaxloss'), SGD(lr=0.01)
    for i in range(steps):
        x.Feed(images); label.Feed(labels)
        for h in range(1, len(nn)):
            nn[h].ComputeFeature(nn[h - 1])
        loss.ComputeFeature(nn[-1], label)
        loss.ComputeGradient()
        for h in range(len(nn) - 1, 0, -1):
            nn[h].ComputeGradient()
            sgd.Update(i, nn[h])

A layer object's first ComputeFeature creates its engine layer (the same classes the Driver
runs) from its LayerProto, sets it up on its sources' shapes and initialises its params from
their ParamProtos (a named random stream per param, ``set_seed`` picks the seed). Gradients flow
back through the objects: ComputeGradient takes the gradient its consumers left on it and leaves
its sources theirs. ``GetParams()``/``SetParams(w, b)`` read and write the params as NumPy arrays
(weights in SINGA's (out, in) layout), ``GetData()`` gives the output, ``display()`` prints the
metrics; ``save_model_parameter``/``load_model_parameter`` use SINGA's checkpoint format.

Everything runs on the NumPy backend in float32 (``set_backend`` to change either).
"""
import numpy

from singa.backends import Backend
from singa.errors import ConfigError
from singa.proto import job_pb2
from singa.random import RandomStreams

_SESSION = {"backend": None, "streams": None, "dtype": numpy.float32, "seed": 0}


def set_seed(seed):
    """The seed of the interactive layers' random streams (param init, dropout); 0 by default."""
    _SESSION["seed"] = int(seed)
    _SESSION["streams"] = RandomStreams(int(seed))


def set_backend(backend=None, dtype=numpy.float32):
    _SESSION["backend"] = backend.use() if backend is not None else Backend(None)
    _SESSION["dtype"] = numpy.dtype(dtype)


def _backend():
    if _SESSION["backend"] is None:
        _SESSION["backend"] = Backend(None)
    return _SESSION["backend"]


def _streams():
    if _SESSION["streams"] is None:
        _SESSION["streams"] = RandomStreams(_SESSION["seed"])
    return _SESSION["streams"]


class Input:
    """What an input object (ImageInput, LabelInput, Dummy) holds: the batch it was fed."""
    is_data = True
    is_loss = False

    def __init__(self, name):
        self.name = name
        self.data = self.aux = None
        self.out_shape = None

    def feed(self, data=None, labels=None):
        """Host arrays in; they go to the session's device (one explicit copy per batch)."""
        backend = self.backend = _backend()
        if data is not None:
            self.data = backend.asarray(data, dtype=_SESSION["dtype"])
            self.out_shape = tuple(data.shape)
        if labels is not None:
            self.aux = backend.asarray(labels, dtype=numpy.int32)
            if self.data is None:
                self.out_shape = (labels.shape[0],)


def runtime(obj):
    """The engine object a layer object's consumers read: its last engine layer, or its Input."""
    if isinstance(obj, _InputLike):
        return obj._input
    state = getattr(obj, "_rt", None)
    if not state:
        raise ConfigError("layer '%s' has not computed anything yet.\nhelp: call %s.ComputeFeature(...) before the "
                          "layers that read it" % (obj.layer.name, type(obj).__name__))
    return state[-1]


class _InputLike:
    """Marker base of the feedable layer objects (see singa.layer.Dummy)."""


def compute_feature(obj, srcs):
    """``obj.ComputeFeature(*srcs)``: forward its engine layer(s) on the sources' outputs."""
    if not srcs:
        raise ConfigError("%s.ComputeFeature() needs its source layer(s).\nhelp: layer.ComputeFeature(previous) "
                          "(a loss: loss.ComputeFeature(prediction, label))" % type(obj).__name__)
    src_rt = [runtime(s) for s in srcs]
    for s, r in zip(srcs, src_rt):
        if r.data is None and r.aux is None:
            raise ConfigError("the source '%s' of layer '%s' holds no data.\nhelp: Feed() the input layers first"
                              % (s.layer.name, obj.layer.name))
    if not getattr(obj, "_rt", None):
        _create(obj, src_rt)
    obj._srcs = list(srcs)
    layers = obj._rt
    inputs = src_rt
    for layer in layers:
        layer.forward(job_pb2.kTrain, inputs)
        inputs = [layer]
    obj._grad = None
    for s in srcs:
        s._grad = None
    return layers[-1].data


def _create(obj, src_rt):
    from singa.layers.base import create_layer
    backend, streams, dtype = _backend(), _streams(), _SESSION["dtype"]
    protos = [obj.layer] + ([obj.mask] if getattr(obj, "mask", None) is not None else [])
    layers, shapes = [], [r.out_shape for r in src_rt]
    for proto in protos:
        layer = create_layer(proto, backend, dtype)
        layer.rng = streams.stream("interactive/%s" % proto.name)
        layer.setup(shapes)
        for p in layer.params:
            if p.proto.share_from:
                raise ConfigError("param '%s' of layer '%s' shares another param (share_from); interactive layers "
                                  "own their params.\nhelp: drop share_from, or train the model with fit()"
                                  % (p.name, proto.name))
            p.init_values(streams.stream("init/" + p.name))
        layers.append(layer)
        shapes = [layer.out_shape]
    obj._rt = layers


def compute_gradient(obj):
    """``obj.ComputeGradient()``: back-propagate the gradient its consumers left on it (a loss
    starts from itself) into its params' gradients and onto its sources."""
    layers = getattr(obj, "_rt", None)
    if not layers:
        raise ConfigError("layer '%s': ComputeGradient() before ComputeFeature().\nhelp: run the forward pass first"
                          % obj.layer.name)
    grad = getattr(obj, "_grad", None)
    if grad is None and not layers[-1].is_loss:
        raise ConfigError("layer '%s' has no gradient to propagate: no layer after it computed one.\nhelp: call "
                          "ComputeGradient() from the loss backwards (loss first)" % obj.layer.name)
    srcs = obj._srcs
    src_rt = [runtime(s) for s in srcs]
    for k in range(len(layers) - 1, -1, -1):
        below = [layers[k - 1]] if k > 0 else src_rt
        out = layers[k].backward(job_pb2.kTrain, below, grad)
        grad = out[0] if out else None
    for s, g in zip(srcs, out or []):
        if g is None or isinstance(s, _InputLike):
            continue
        s._grad = g if getattr(s, "_grad", None) is None else s._grad + g
    obj._grad = None


def params_of(obj):
    return [p for layer in getattr(obj, "_rt", None) or [] for p in layer.params]


def get_params(obj):
    ps = params_of(obj)
    if len(ps) != 2:
        raise ConfigError("layer '%s' has %d params; GetParams() returns (weight, bias) of layers with two.\nhelp: "
                          "it works after ComputeFeature() (or load_model_parameter) on Dense/Convolution2D"
                          % (obj.layer.name, len(ps)))
    w, b = (numpy.array(p.backend.to_host(p.data)) for p in ps)
    return w, b.reshape(-1, 1)


def set_params(obj, *values):
    ps = params_of(obj)
    if len(values) != len(ps):
        raise ConfigError("Invalid arguments to SetParams() of layer '%s'. Expected %d arrays (%s). Received: %d"
                          % (obj.layer.name, len(ps), ", ".join("%s %s" % (p.name, p.shape) for p in ps), len(values)))
    for p, v in zip(ps, values):
        v = numpy.asarray(v, dtype=numpy.float32)
        if v.size != p.size:
            raise ConfigError("Invalid value for param '%s' of layer '%s'. Expected %d values (shape %s). Received: "
                              "shape %s" % (p.name, obj.layer.name, p.size, p.shape, v.shape))
        p.set_values(v.reshape(p.shape))


def to_string(obj):
    layers = getattr(obj, "_rt", None) or []
    metrics = {}
    for layer in layers:
        if getattr(layer, "has_metrics", False):
            metrics.update(layer.metrics())
    if not metrics:
        return "%s: output %s" % (obj.layer.name, None if not layers else tuple(layers[-1].out_shape))
    names = {"loss": "Loss", "acc": "accuracy", "se": "Squared Error"}
    return ", ".join("%s = %.6f" % (names.get(k, k), v) for k, v in sorted(metrics.items(), key=lambda kv: kv[0] != "loss"))


class UpdaterState:
    """The engine updater behind an API Updater (SGD, AdaGrad, ...), with each param's state."""

    def __init__(self, proto):
        from singa.updaters import create_updater
        self.updater = create_updater(proto)
        self.state = {}

    def update(self, step, obj):
        for p in params_of(obj):
            if p.frozen:            # its layer writes it (batch norm's running statistics)
                continue
            st = self.state.get(id(p))
            if st is None:
                st = self.state[id(p)] = (p, self.updater.init_state(p.data))
            self.updater.apply(int(step), p.data, p.grad, st[1], lr_scale=p.lr_scale, wd_scale=p.wd_scale)


def save_model_parameter(step, folder, layers):
    """Write the params of ``layers`` as ``<folder>/step<step>-worker0`` (SINGA's checkpoint)."""
    import os
    from singa.io import checkpoint as ckpt
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "step%d-worker0" % int(step))
    blobs = [(p.name, p.host_values(), int(step))
             for obj in layers for p in params_of(obj)]
    ckpt.write_checkpoint(path, blobs)
    return path


def load_model_parameter(path, layers, batchsize=1, data_shape=None):
    """Set ``layers`` up (a chain fed by an input of ``data_shape`` per sample, ``batchsize`` rows)
    if they are not yet, and load their params by name from the checkpoint at ``path``."""
    from singa.errors import DataError
    from singa.io import checkpoint as ckpt
    values = {name: v for name, v, _ in ckpt.read_checkpoint(path)}
    first = layers[0]
    if not getattr(first, "_rt", None) and not isinstance(first, _InputLike):
        if data_shape is None:
            raise ConfigError("load_model_parameter: the layers are not set up yet, so the input shape is needed."
                              "\nhelp: load_model_parameter(path, layers, batchsize=1, data_shape=(784,))")
        shape = (int(batchsize),) + tuple(int(d) for d in numpy.atleast_1d(data_shape))
        src = Input("input")
        src.feed(numpy.zeros(shape, numpy.float32))
        for obj in layers:
            if isinstance(obj, _InputLike):
                continue
            if not getattr(obj, "_rt", None):
                _create(obj, [src])
            src = obj._rt[-1]
    for obj in layers:
        for p in params_of(obj):
            if p.name not in values:
                raise DataError("checkpoint %s holds no param '%s' (layer '%s'); it has %s"
                                % (path, p.name, obj.layer.name, sorted(values)))
            v = values[p.name]
            if v.size != p.size:
                raise DataError("checkpoint %s holds '%s' with %d values but layer '%s' needs shape %s"
                                % (path, p.name, v.size, obj.layer.name, p.shape))
            p.set_values(v.reshape(p.shape))


__all__ = ["set_seed", "set_backend", "save_model_parameter", "load_model_parameter"]
