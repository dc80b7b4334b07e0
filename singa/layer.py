"""SINGA v0.3's layer classes: each builds a LayerProto (``.layer``) for ``Model.build()``.

Names, types and fields follow SINGA-V0.md 1.5. Every layer object has ``.layer`` (its
LayerProto), ``.is_datalayer``, and optionally ``.mask`` (the LayerProto of the activation
layer that follows it, from ``activation=``) and, for RBM, ``.bidirect`` (the paired RBMHid).

Keyword arguments beyond a class's own parameters must be LayerProto fields (``name``,
``partition_dim``, ...) or, for layers with params, ``w_<x>``/``b_<x>`` param settings (see
``singa.parameter.set_param_field``). Anything else raises ConfigError; SINGA silently ignored
unknown keywords, so a misspelt ``w_sdt=0.1`` had no effect there.

Other differences to SINGA v0.3, on purpose:

* ``Dropout`` works (v0.3's raised NameError) and ``RBM`` builds its RBMHid (v0.3's failed);
  RBM follows the working v0.2 semantics.
* a layer never modifies the Parameter objects it is given (see ``singa.parameter``).
* layers that count (Dense 'layer<N>', Convolution2D 'conv<N>') advance the counter even when
  given an explicit ``name``, so their default param names stay distinct.
* Convolution2D, pooling and LRN layers produce the v0.3 protos (kCConvolution, kCPooling, kLRN);
  no layer type is ever rewritten to a cuDNN type.
"""
import copy
import numbers

import numpy

from singa.errors import ConfigError, Stated, invalid
from singa.initialization import get_init_values
from singa.interactive import (Input, _InputLike, compute_feature, compute_gradient, get_params, runtime,
                               set_params, to_string)
from singa.parameter import Parameter, layer_param, set_param_field  # noqa: F401
from singa.proto import enum_name, is_input_layer, job_pb2, rnnlm_pb2
from singa.utils import message
from singa.utils.arguments import positive_int
from singa.utils.message import *  # noqa: F401,F403  (SINGA's layer.py exposed every pb2 symbol)
from singa.utils.message import enumLayerType, enumPhase, field_names, setval
from singa.utils.utility import generate_name, name_epoch

_LAYER_FIELDS = tuple(field_names(job_pb2.LayerProto))
_STORE_FIELDS = tuple(field_names(job_pb2.StoreProto))
_DATA_FIELDS = tuple(field_names(rnnlm_pb2.DataProto))      # Data(load='kData')'s [data_conf]
_ACTIVATIONS = {
    "stanh": (job_pb2.kSTanh, None),
    "softmax": (job_pb2.kSoftmax, None),
    "relu": (job_pb2.kActivation, job_pb2.RELU),
    "sigmoid": (job_pb2.kActivation, job_pb2.SIGMOID),
    "tanh": (job_pb2.kActivation, job_pb2.TANH),
}
_LOSSES = {"softmaxloss": job_pb2.kSoftmaxLoss, "euclideanloss": job_pb2.kEuclideanLoss}
_PHASES = ("train", "val", "test")


def _split_kwargs(owner, kwargs, extra=(), params=False, hint=None):
    """(LayerProto fields, other accepted keys) of ``kwargs``; anything else raises ConfigError."""
    layer_kw, other = {}, {}
    for key, val in kwargs.items():
        if key in _LAYER_FIELDS:
            layer_kw[key] = val
        elif key in extra or (params and key[:2] in ("w_", "b_")):
            other[key] = val
        else:
            accepted = ["LayerProto fields (%s)" % ", ".join(_LAYER_FIELDS)]
            if extra:
                accepted.insert(0, ", ".join(extra))
            if params:
                accepted.insert(0, "w_<x>/b_<x> param settings (w_lr, w_wd, w_std, b_value, ...)")
            raise ConfigError(
                "Invalid value for `%s` (a keyword argument of %s). Expected %s. Received: %s=%r\n"
                "help: %s" % (key, owner, " or ".join(accepted), key, val,
                              hint or "check the spelling (SINGA v0.3 silently ignored unknown keywords)"))
    return layer_kw, other


def _activation_type(activation, owner="Activation"):
    key = activation.lower() if isinstance(activation, str) else activation
    if key not in _ACTIVATIONS:
        raise invalid("activation", "one of %s" % ", ".join("'%s'" % a for a in _ACTIVATIONS), activation,
                      where=owner)
    return key


class Layer:
    """A LayerProto (``.layer``) built from LayerProto fields; named ``layer<++LAYERID>`` by default."""
    is_datalayer = False
    mask = None
    bidirect = None

    def __init__(self, **kwargs):
        _split_kwargs(type(self).__name__, kwargs)
        self._setup(kwargs.pop("name", None) or generate_name("layer", 1), kwargs)

    def _setup(self, name, fields):
        """Create ``self.layer`` named ``name`` with the LayerProto ``fields``."""
        self.layer = job_pb2.LayerProto(name=name)
        setval(self.layer, **fields)
        self._name_epoch = name_epoch()

    @property
    def name(self):
        return self.layer.name

    def _copy(self):
        """An independent copy (protos copied), used when a model takes in a data layer."""
        other = copy.copy(self)
        other.layer = job_pb2.LayerProto()
        other.layer.CopyFrom(self.layer)
        for attr in ("mask", "bidirect"):
            proto = getattr(self, attr)
            if proto is not None:
                dup = job_pb2.LayerProto()
                dup.CopyFrom(proto)
                setattr(other, attr, dup)
        return other

    def __repr__(self):
        return "%s(%r, %s)" % (type(self).__name__, self.layer.name, enum_name(job_pb2.LayerType, self.layer.type))

    # -- interactive training (SINGA v0.3, SINGA-126; see singa.interactive) ----------------
    def ComputeFeature(self, *srcs):
        """Forward this layer on the outputs of ``srcs`` (a loss: prediction, then the label
        input); the first call creates and sets up its engine layer and initialises its params."""
        return compute_feature(self, srcs)

    def ComputeGradient(self):
        """Back-propagate: params' gradients and the gradients of this layer's sources."""
        compute_gradient(self)

    def GetParams(self):
        """(weight, bias) as NumPy arrays: the weight in SINGA's layout, the bias as (n, 1)."""
        return get_params(self)

    def SetParams(self, *params):
        """Replace the params' values (as many arrays as the layer has params, in order)."""
        set_params(self, *params)

    def GetData(self):
        """This layer's last output, flattened (a NumPy array)."""
        r = runtime(self)
        return numpy.array(r.backend.to_host(r.data) if hasattr(r, "backend") else r.data).reshape(-1)

    def ToString(self, debug=False, flag=None):
        return to_string(self)

    def display(self):
        """Print the layer's metrics (a loss: 'Loss = ..., accuracy = ...')."""
        print(self.ToString())


class Data(Layer):
    """An input layer: ``Data(load='recordinput', phase='train', conf=Store(...))``.

    ``load`` names the input layer type ('recordinput' -> kRecordInput, 'csvinput', ...; 'kData'
    sets user_type 'kData', rnnlm's, whose keywords ``path``, ``max_window``, ``backend`` fill
    ``[data_conf]``); ``phase`` is 'train', 'val' or 'test' (LayerProto.include);
    ``conf`` a Store (or StoreProto) for ``store_conf``; ``checkpoint`` a path or list of paths
    that ``fit()`` appends to the job's checkpoint_path (e.g. pre-trained RBMs). Keyword
    arguments are LayerProto fields or StoreProto fields (``batch_size`` = ``batchsize``); store
    fields given here replace those of ``conf``. Named ``data<LAYERID>`` (no increment).
    """
    is_datalayer = True

    def __init__(self, load, phase="train", checkpoint=None, conf=None, **kwargs):
        if not load:
            raise invalid("load", "an input layer type such as 'recordinput'", load, where="Data",
                          hint="Data(load='recordinput', phase='train', conf=Store(path=..., batchsize=64, shape=784))")
        if "batch_size" in kwargs:
            kwargs["batchsize"] = kwargs.pop("batch_size")
        rnnlm = load == "kData"     # rnnlm's data layer: its kwargs fill [data_conf], there is no store
        layer_kw, store_kw = _split_kwargs("Data", kwargs, extra=_DATA_FIELDS if rnnlm else _STORE_FIELDS)
        if phase not in _PHASES:
            raise invalid("phase", "one of 'train', 'val', 'test'", phase, where="Data")
        self._auto_named = "name" not in layer_kw
        name = layer_kw.pop("name", None) or generate_name("data")
        if load == "kData":
            layer_kw["user_type"] = load
        else:
            t = enumLayerType(load)
            if not is_input_layer(job_pb2.LayerProto(type=t)):
                inputs = [v.name[1:].lower() for v in job_pb2.LayerType.DESCRIPTOR.values
                          if is_input_layer(job_pb2.LayerProto(type=v.number))]
                raise invalid("load", "an input layer type (%s)" % ", ".join("'%s'" % i for i in inputs), load,
                              where="Data")
            layer_kw["type"] = t
        self.layer_type = layer_kw.get("type", job_pb2.kUserLayer)
        self._setup(name, layer_kw)
        self.layer.include.append(enumPhase(phase))
        if rnnlm:
            if conf is not None:
                raise invalid("conf", "no Store for load='kData' (its path, max_window and backend are keywords)",
                              conf, where="Data", hint="Data(load='kData', phase='train', path='train_data.bin', "
                              "max_window=10, backend='kvfile')")
            setval(self.layer.Extensions[rnnlm_pb2.data_conf], **store_kw)
            store_kw = {}
        elif conf is not None:
            proto = conf.proto if hasattr(conf, "proto") else conf
            if not isinstance(proto, job_pb2.StoreProto):
                raise invalid("conf", "a Store", conf, where="Data", hint="conf=Store(path='train.bin', batchsize=64)")
            self.layer.store_conf.CopyFrom(proto)
        if store_kw:
            replace_fields(self.layer.store_conf, **store_kw)
        if checkpoint is not None and not isinstance(checkpoint, (str, list, tuple)):
            raise invalid("checkpoint", "a path or a list of paths", checkpoint, where="Data")
        self.checkpoint = checkpoint


def replace_fields(proto, **kwargs):
    """setval, except that repeated scalar fields are replaced instead of appended to."""
    for key in kwargs:
        fd = proto.DESCRIPTOR.fields_by_name.get(key)
        if fd is not None and fd.is_repeated and fd.type != fd.TYPE_MESSAGE:
            proto.ClearField(key)
    return setval(proto, **kwargs)


class Dummy(Layer, _InputLike):
    """An input fed from Python (kDummy with ``dummy_conf { input: true }``): ``Feed(data)``."""

    def __init__(self, shape=None, **kwargs):
        layer_kw, _ = _split_kwargs(type(self).__name__, kwargs)
        self._setup(layer_kw.pop("name", None) or generate_name("dummy"), dict(layer_kw, type=job_pb2.kDummy))
        self.layer.dummy_conf.input = True
        if shape:
            self.layer.dummy_conf.shape.extend(int(d) for d in shape)
        self._input = Input(self.layer.name)

    def Feed(self, data, nb_channel=1, is_label=0):
        """The next batch: ``data`` (batch, ...) numbers; with ``is_label`` the labels instead."""
        arr = numpy.asarray(data)
        if arr.ndim < 1 or arr.shape[0] == 0:
            raise invalid("data", "a batch (N, ...)", Stated("an array of shape %s" % (arr.shape,)),
                          where="%s.Feed()" % type(self).__name__)
        if is_label:
            self._input.feed(labels=_labels(arr, type(self).__name__))
        else:
            self._input.feed(data=self._shape(numpy.ascontiguousarray(arr, dtype=numpy.float32)))

    def _shape(self, arr):
        return arr


def _labels(arr, owner):
    lab = arr.reshape(-1) if arr.ndim == 2 and arr.shape[1] == 1 else arr
    if lab.ndim != 1 or (lab.size and (numpy.any(lab < 0) or numpy.any(lab != numpy.round(lab)))):
        raise ConfigError("Invalid value for the labels of %s.Feed(). Expected class indices, shape (N,) or (N, 1). "
                          "Received: shape %s" % (owner, arr.shape))
    return numpy.ascontiguousarray(lab, dtype=numpy.int32)


class ImageInput(Dummy):
    """Images fed from Python: ``ImageInput(width, height, nb_channel=1).Feed(x)`` with x of shape
    (batch, pixels) (or any shape holding width*height*nb_channel values per row); the layer's
    output is (batch, nb_channel, height, width), or (batch, pixels) without a width."""

    def __init__(self, width=None, height=None, nb_channel=1, **kwargs):
        super().__init__(**kwargs)
        self.width, self.height, self.nb_channel = width, height if height is not None else width, int(nb_channel)
        if width is not None:
            self.layer.dummy_conf.shape.extend([self.nb_channel, int(self.height), int(width)])

    def _shape(self, arr):
        if self.width is None:
            return arr.reshape(arr.shape[0], -1)
        per = self.nb_channel * int(self.height) * int(self.width)
        if arr.size != arr.shape[0] * per:
            expected = "%d values per image (%d x %d x %d)" % (per, self.nb_channel, self.height, self.width)
            raise invalid("data", expected, Stated("an array of shape %s" % (arr.shape,)), where="ImageInput.Feed()")
        return arr.reshape(arr.shape[0], self.nb_channel, int(self.height), int(self.width))


class LabelInput(Dummy):
    """Labels fed from Python: ``LabelInput().Feed(y)`` with class indices, (batch,) or (batch, 1)."""

    def Feed(self, data, nb_channel=1, is_label=1):
        super().Feed(data, is_label=1)


class Dense(Layer):
    """Fully connected layer (kInnerProduct), named ``layer<++LAYERID>``.

    Weight default gaussian(0, 0.01), bias constant 0; ``init`` sets both (``init='uniform'`` =
    uniform +-0.05). ``w_param``/``b_param`` are Parameters (copied); ``w_<x>``/``b_<x>``
    kwargs adjust them; ``transpose=True`` makes an InnerProduct with a transposed weight (tied
    autoencoder decoders); ``activation`` adds an activation layer after it. ``input_dim`` is
    accepted and unused, as in SINGA.
    """

    def __init__(self, output_dim=0, activation=None, init=None, w_param=None, b_param=None,
                 input_dim=None, **kwargs):
        output_dim = positive_int(output_dim, "output_dim", "Dense")
        layer_kw, pkw = _split_kwargs("Dense", kwargs, extra=("transpose",), params=True)
        if activation is not None:
            _activation_type(activation, "Dense")
        auto = generate_name("layer", 1)
        self._setup(layer_kw.pop("name", None) or auto, dict(layer_kw, type=job_pb2.kInnerProduct))
        self.layer.innerproduct_conf.num_output = output_dim
        if "transpose" in pkw:
            self.layer.innerproduct_conf.transpose = bool(pkw.pop("transpose"))
        self.layer.param.add().CopyFrom(layer_param(w_param, init or "gaussian", "w", pkw))
        self.layer.param.add().CopyFrom(layer_param(b_param, init or "constant", "b", pkw))
        if activation:
            self.mask = _mask(activation, layer_kw)


def _mask(activation, layer_kw):
    """The activation layer after a Dense or Convolution2D; split by features like the layer it
    follows (``partition_dim=1``), so no slice and concate come between them, except a softmax,
    which needs every output (and becomes the loss)."""
    kw = {}
    if "partition_dim" in layer_kw and str(activation).lower() != "softmax":
        kw["partition_dim"] = layer_kw["partition_dim"]
    return Activation(activation=activation, **kw).layer


class Activation(Layer):
    """Activation layer, v0.3 mapping: 'stanh' -> kSTanh, 'softmax' -> kSoftmax, 'relu' / 'sigmoid'
    / 'tanh' -> kActivation with activation_conf.type RELU / SIGMOID / TANH. Named
    ``<activation><LAYERID>``."""

    def __init__(self, activation="stanh", **kwargs):
        key = _activation_type(activation)
        layer_kw, _ = _split_kwargs("Activation", kwargs)
        ltype, atype = _ACTIVATIONS[key]
        self.layer_type = ltype
        self._setup(layer_kw.pop("name", None) or generate_name(key), dict(layer_kw, type=ltype))
        if atype is not None:
            self.layer.activation_conf.type = atype


class Loss(Layer):
    """Loss layer: ``Loss('softmaxloss', topk=1)`` (kSoftmaxLoss) or ``Loss('euclideanloss')``."""

    def __init__(self, lossname, topk=1, **kwargs):
        if lossname not in _LOSSES:
            raise invalid("lossname", "'softmaxloss' or 'euclideanloss'", lossname, where="Loss")
        layer_kw, _ = _split_kwargs("Loss", kwargs)
        self.layer_type = _LOSSES[lossname]
        self._setup(layer_kw.pop("name", None) or generate_name(lossname), dict(layer_kw, type=self.layer_type))
        if self.layer_type == job_pb2.kSoftmaxLoss:
            self.layer.softmaxloss_conf.topk = positive_int(topk, "topk", "Loss")


class Dropout(Layer):
    """Dropout layer (kDropout) dropping a fraction ``ratio`` of the units in training."""

    def __init__(self, ratio=0.5, **kwargs):
        if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0 <= ratio < 1:
            raise invalid("ratio", "a number in [0, 1)", ratio, where="Dropout")
        layer_kw, _ = _split_kwargs("Dropout", kwargs)
        self.layer_type = job_pb2.kDropout
        self._setup(layer_kw.pop("name", None) or generate_name("dropout"), dict(layer_kw, type=job_pb2.kDropout))
        self.layer.dropout_conf.dropout_ratio = ratio


class Accuracy(Layer):
    """Accuracy layer (kAccuracy), named ``accuracy<LAYERID>``."""

    def __init__(self, **kwargs):
        layer_kw, _ = _split_kwargs("Accuracy", kwargs)
        self.layer_type = job_pb2.kAccuracy
        self._setup(layer_kw.pop("name", None) or generate_name("accuracy"), dict(layer_kw, type=job_pb2.kAccuracy))


def _pair(value, name, owner):
    """An int or a 2-tuple of ints (SINGA's <name> or <name>_x/<name>_y)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise invalid(name, "an int or a pair (x, y)", value, where=owner)
        return {name + "_x": value[0], name + "_y": value[1]}
    return {name: value}


class Convolution2D(Layer):
    """2-D convolution (kCConvolution), named ``conv<++LAYERID>``.

    ``Convolution2D(nb_filter, kernel, stride=1, pad=0)``; kernel/stride/pad are ints or (x, y)
    pairs. Weight default gaussian(0, 0.01), bias constant 0 (or ``init`` for both); its params
    are always renamed ``w<N>``/``b<N>`` (as SINGA's changename=True).
    """

    def __init__(self, nb_filter=0, kernel=0, stride=1, pad=0, init=None, w_param=None, b_param=None,
                 activation=None, **kwargs):
        nb_filter = positive_int(nb_filter, "nb_filter", "Convolution2D")
        for k in (kernel if isinstance(kernel, (tuple, list)) else (kernel,)):
            positive_int(k, "kernel", "Convolution2D")
        layer_kw, pkw = _split_kwargs("Convolution2D", kwargs, params=True)
        if activation is not None:
            _activation_type(activation, "Convolution2D")
        auto = generate_name("conv", 1)
        self._setup(layer_kw.pop("name", None) or auto, dict(layer_kw, type=job_pb2.kCConvolution))
        fields = {"num_filters": nb_filter}
        for name, value in (("kernel", kernel), ("stride", stride), ("pad", pad)):
            fields.update(_pair(value, name, "Convolution2D"))
        setval(self.layer.convolution_conf, **fields)
        self.layer.param.add().CopyFrom(layer_param(w_param, init or "gaussian", "w", pkw, changename=True))
        self.layer.param.add().CopyFrom(layer_param(b_param, init or "constant", "b", pkw, changename=True))
        if activation:
            self.mask = _mask(activation, layer_kw)


Convolution = Convolution2D   # the name python.md's TIPS use


class _Pooling2D(Layer):
    _method = None

    def __init__(self, pool_size=None, stride=1, ignore_border=True, **kwargs):
        owner = type(self).__name__
        if isinstance(pool_size, numbers.Integral) and not isinstance(pool_size, bool):
            pool_size = (pool_size, pool_size)
        if not isinstance(pool_size, (tuple, list)) or len(pool_size) != 2 or pool_size[0] != pool_size[1]:
            raise invalid("pool_size", "an int or a square pair such as (3, 3) (SINGA pools square windows only)",
                          pool_size, where=owner)
        size = positive_int(pool_size[0], "pool_size", owner)
        stride = positive_int(stride, "stride", owner)
        layer_kw, _ = _split_kwargs(owner, kwargs)
        self.layer_type = job_pb2.kCPooling
        self._setup(layer_kw.pop("name", None) or generate_name("pool"), dict(layer_kw, type=job_pb2.kCPooling))
        setval(self.layer.pooling_conf, pool=self._method, kernel=size, stride=stride,
               pad=0 if ignore_border else 1)


class MaxPooling2D(_Pooling2D):
    """Max pooling (kCPooling, pool MAX), named ``pool<LAYERID>``; pad 0, or 1 if not ignore_border."""
    _method = job_pb2.PoolingProto.MAX


class AvgPooling2D(_Pooling2D):
    """Average pooling (kCPooling, pool AVG), named ``pool<LAYERID>``."""
    _method = job_pb2.PoolingProto.AVG


class LRN2D(Layer):
    """Local response normalisation across channels (kLRN), named ``norm<LAYERID>``:
    ``LRN2D(size, alpha=1, beta=0.75, knorm=1)``."""

    def __init__(self, size=0, **kwargs):
        size = positive_int(size, "size", "LRN2D")
        layer_kw, lrn_kw = _split_kwargs("LRN2D", kwargs, extra=("alpha", "beta", "knorm"))
        self.layer_type = job_pb2.kLRN
        self._setup(layer_kw.pop("name", None) or generate_name("norm"), dict(layer_kw, type=job_pb2.kLRN))
        self.layer.lrn_conf.local_size = size
        setval(self.layer.lrn_conf, **get_init_values("lrn2d", **lrn_kw))


class RGB(Layer):
    """SINGA v0.1's image parser (kRGBImage), named ``rgb<LAYERID>``: ``RGB(meanfile=None)`` subtracts
    the mean image of ``meanfile`` (a serialized record, SINGA v0.1's image_mean.bin) from the
    images of the data layer before it. ``cropsize``, ``mirror`` and ``scale`` (rgbimage_conf
    fields) may be given too; SINGA's binding set the meanfile only."""

    def __init__(self, meanfile=None, **kwargs):
        layer_kw, conf_kw = _split_kwargs("RGB", kwargs, extra=("cropsize", "mirror", "scale"))
        if meanfile is not None and not isinstance(meanfile, str):
            raise invalid("meanfile", "the path of the mean image file", meanfile, where="RGB",
                          hint="RGB(meanfile='examples/cifar10/image_mean.bin')")
        self.layer_type = job_pb2.kRGBImage
        self._setup(layer_kw.pop("name", None) or generate_name("rgb"), dict(layer_kw, type=job_pb2.kRGBImage))
        self.layer.rgbimage_conf.SetInParent()
        if meanfile:
            self.layer.rgbimage_conf.meanfile = meanfile
        setval(self.layer.rgbimage_conf, **conf_kw)


class BatchNormalization(Layer):
    """Batch normalisation per channel (kBM; ``cudnn=True``: kCudnnBM, the same maths), named
    ``bm<LAYERID>``, after a Convolution2D (4-D) or a Dense (2-D) layer.

    SINGA's four params, in its order: scale ``<name>_scale`` (constant 1), bias ``<name>_bias``
    (constant 0), and the running mean and running inverse std ``<name>_mean`` / ``<name>_invstd``
    (constant 0, written by the layer, never updated by the updater). Training normalises with the
    batch's statistics and folds them into the running ones (factor 0.1); test uses the running
    ones. SINGA v0.3's binding had no such class; the protos are those of its cudnn_bm.conf.
    """

    def __init__(self, cudnn=False, **kwargs):
        layer_kw, _ = _split_kwargs("BatchNormalization", kwargs)
        self.layer_type = job_pb2.kCudnnBM if cudnn else job_pb2.kBM
        self._setup(layer_kw.pop("name", None) or generate_name("bm"), dict(layer_kw, type=self.layer_type))
        self.layer.bm_conf.SetInParent()
        for role, value in (("scale", 1.0), ("bias", 0.0), ("mean", 0.0), ("invstd", 0.0)):
            p = self.layer.param.add(name="%s_%s" % (self.layer.name, role))
            p.init.type = job_pb2.kConstant
            p.init.value = value


class Autoencoder:
    """Not a layer: a stack that ``Sequential.add`` expands (SINGA-V0.md 1.5).

    ``Autoencoder(hid_dim=[1000, 500, 250, 30], out_dim=784, activation='sigmoid',
    param_share=True)``: an encoder h1..hn (the code layer hn linear) and, with param_share, a
    decoder of transposed InnerProducts whose weights share the encoder's; without it a plain
    MLP h1..hn, out_dim.
    """
    is_datalayer = False
    layer_type = "AutoEncoder"

    def __init__(self, hid_dim=None, out_dim=0, activation=None, param_share=True):
        self.out_dim = positive_int(out_dim, "out_dim", "Autoencoder")
        if hid_dim is None:
            raise invalid("hid_dim", "an int or a list of ints", None, where="Autoencoder",
                          hint="Autoencoder([1000, 500, 250, 30], out_dim=784)")
        dims = [hid_dim] if isinstance(hid_dim, numbers.Integral) else list(hid_dim)
        if not dims:
            raise invalid("hid_dim", "at least one hidden size", hid_dim, where="Autoencoder")
        self.hid_dim = [positive_int(d, "hid_dim", "Autoencoder") for d in dims]
        if activation is not None:
            _activation_type(activation, "Autoencoder")
        self.activation = activation
        self.param_share = bool(param_share)


class RBM(Layer):
    """A stack of RBMs for ``Energy.add`` (SINGA-V0.md 1.5), v0.2 semantics.

    ``RBM(out_dim=[d1..dn], w_param=None, b_param=None, sampling=None, **kwargs)``: ``.layer`` is
    the RBMVis layer (hdim dn) with weight ``w<n>`` (gaussian 0, 0.01 unless ``w_param``/``w_*``)
    and visible bias ``b<n>`` (constant 0); ``.bidirect`` the paired RBMHid with weight ``w<n>_``
    (share_from ``w<n>``) and hidden bias ``b<n>2`` (wd_scale 0, constant 0), gaussian hidden
    units when ``sampling='gaussian'``. ``Energy.add`` puts the sigmoid Dense layers d1..d(n-1)
    (params ``w<i>``, ``b<i>2``, loaded from the lower RBMs' checkpoints) below it.
    """

    def __init__(self, out_dim=None, w_param=None, b_param=None, sampling=None, **kwargs):
        if out_dim is None:
            raise invalid("out_dim", "an int or a list of ints", None, where="RBM",
                          hint="RBM([1000, 500], w_std=0.1, b_wd=0)")
        dims = [out_dim] if isinstance(out_dim, numbers.Integral) else list(out_dim)
        if not dims:
            raise invalid("out_dim", "at least one size", out_dim, where="RBM")
        self.out_dim = [positive_int(d, "out_dim", "RBM") for d in dims]
        if sampling not in (None, "bernoulli", "gaussian"):
            raise invalid("sampling", "None, 'bernoulli' or 'gaussian'", sampling, where="RBM")
        layer_kw, pkw = _split_kwargs("RBM", kwargs, params=True)
        n = len(self.out_dim)
        hdim = self.out_dim[-1]
        self.layer_type = job_pb2.kRBMVis
        self._setup(layer_kw.pop("name", None) or generate_name("RBMVis", withnumber=False),
                    dict(layer_kw, type=job_pb2.kRBMVis))
        self.layer.rbm_conf.hdim = hdim
        w = self.layer.param.add()
        w.CopyFrom(layer_param(w_param, "gaussian", "w", pkw, withnumber=False, level=n))
        b = self.layer.param.add()
        b.CopyFrom(layer_param(b_param, "constant", "b", pkw, withnumber=False, level=n))

        hid = job_pb2.LayerProto(name="RBMHid", type=job_pb2.kRBMHid)
        hid.rbm_conf.hdim = hdim
        if sampling == "gaussian":
            hid.rbm_conf.gaussian = True
        hid.param.add().CopyFrom(Parameter(name=w.name + "_", init="none", share_from=w.name).param)
        hid.param.add().CopyFrom(Parameter(name=b.name + "2", wd=0, init="constant").param)
        self.bidirect = hid


# LayerType -> the class whose objects make LayerProtos of that type (Model.from_jobproto)
_CLASS_OF_TYPE = {
    job_pb2.kInnerProduct: Dense, job_pb2.kSTanh: Activation, job_pb2.kSoftmax: Activation,
    job_pb2.kActivation: Activation, job_pb2.kSoftmaxLoss: Loss, job_pb2.kEuclideanLoss: Loss,
    job_pb2.kDropout: Dropout, job_pb2.kAccuracy: Accuracy, job_pb2.kCConvolution: Convolution2D,
    job_pb2.kLRN: LRN2D, job_pb2.kRBMVis: RBM,
}


def from_proto(lp):
    """A layer object holding a copy of LayerProto ``lp``, of the class that makes such protos (Dense
    for kInnerProduct, Data for an input layer without sources, ...; Layer for the others), as Keras'
    ``Layer.from_config``. Its fields are taken as they are, not re-derived from arguments."""
    if not lp.srclayers and is_input_layer(lp):
        cls = Data
    elif lp.type == job_pb2.kCPooling:
        cls = AvgPooling2D if lp.pooling_conf.pool == job_pb2.PoolingProto.AVG else MaxPooling2D
    else:
        cls = _CLASS_OF_TYPE.get(lp.type, Layer)
    layer = cls.__new__(cls)
    layer.layer = job_pb2.LayerProto()
    layer.layer.CopyFrom(lp)
    layer._name_epoch = name_epoch()
    if cls is not Layer:
        layer.layer_type = lp.type
    if cls is Data:
        layer._auto_named, layer.checkpoint = False, None
    elif cls is RBM:
        layer.out_dim, layer.bidirect = [lp.rbm_conf.hdim], None
    return layer


from singa.recurrent import *  # noqa: E402,F401,F403  (the recurrent layers, which build on Layer)
from singa.recurrent import __all__ as _recurrent_all  # noqa: E402

__all__ = ["Layer", "Data", "Dummy", "ImageInput", "LabelInput", "Dense", "Activation", "Loss", "Dropout", "Accuracy",
           "Convolution2D", "Convolution", "MaxPooling2D", "AvgPooling2D", "LRN2D", "BatchNormalization", "RGB",
           "Autoencoder", "RBM",
           "Parameter", "set_param_field"] + _recurrent_all + message.__all__
