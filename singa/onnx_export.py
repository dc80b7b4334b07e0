"""ONNX export of a trained feed-forward model (MLPs, CNNs): ``Model.export_onnx(path)``.

The graph is the model's test-phase net with the trained params (from its checkpoint), one input
``input`` of shape (batch, *the data layer's sample shape*) and one output ``output``: what
``Model.predict`` returns (the class probabilities of a softmax loss, else the loss layer's
input). With ``preprocess=True`` (default) the data layer's normalisation (mean_value/std_value
or mean_file/std_file) is part of the graph, so the ONNX model takes the same raw samples as
``predict``. Needs the ``onnx`` package (the ``onnx`` extra).

SINGA's layout facts kept: an InnerProduct weight is (out, in) (Gemm with transB=1; (in, out)
with ``transpose``), a convolution weight is (F, C*kh*kw) in (c, i, j) order, pooling sizes are
floor sizes (ceil_mode 0) and average pooling divides by the full window (count_include_pad 1),
kPooling (mshadow) has no padding, LRN is across channels with knorm as the bias, kSTanh is
1.7159047 * tanh(0.66666667 x), and dropout is the identity at inference.
"""
import numpy

from singa.errors import ConfigError
from singa.layers.neuron import STANH_A, STANH_B
from singa.proto import enum_name, job_pb2

_ACTIVATION_OPS = {job_pb2.RELU: "Relu", job_pb2.SIGMOID: "Sigmoid", job_pb2.TANH: "Tanh"}


class _Graph:
    """The nodes and initializers being written, with fresh value names."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.inits, self._count = [], [], 0

    def fresh(self, base):
        self._count += 1
        return "%s_%d" % (base, self._count)

    def const(self, base, array):
        name = self.fresh(base)
        self.inits.append(self.numpy_helper.from_array(numpy.asarray(array, dtype=numpy.float32), name))
        return name

    def node(self, op, inputs, outputs, **attrs):
        self.nodes.append(self.helper.make_node(op, inputs, outputs, **attrs))
        return outputs[0]


def _host(param):
    return param.backend.to_host(param.data)


# One function per layer type: (graph, layer, input value, output value) -> writes the layer's nodes.
def _inner_product(g, layer, x, out):
    flat = g.node("Flatten", [x], [g.fresh(layer.name + "_flat")], axis=1)
    g.node("Gemm", [flat, g.const(layer.weight.name, _host(layer.weight)), g.const(layer.bias.name, _host(layer.bias))],
           [out], transB=0 if layer.transpose else 1)


def _convolution(g, layer, x, out):
    geo = layer.geom
    w = _host(layer.weight).reshape(layer.num_filters, geo.C, geo.kh, geo.kw)
    g.node("Conv", [x, g.const(layer.weight.name, w), g.const(layer.bias.name, _host(layer.bias))], [out],
           kernel_shape=[geo.kh, geo.kw], strides=[geo.sy, geo.sx], pads=[geo.py, geo.px, geo.py, geo.px])


def _pooling(g, layer, x, out):
    kh, kw, sh, sw, ph, pw = layer.geom[:6]
    if layer.conf.type == job_pb2.kPooling:      # mshadow's pooling has no padding
        ph = pw = 0
    attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw], ceil_mode=0)
    if layer.method == job_pb2.PoolingProto.MAX:
        g.node("MaxPool", [x], [out], **attrs)
    else:
        g.node("AveragePool", [x], [out], count_include_pad=1, **attrs)


def _lrn(g, layer, x, out):
    g.node("LRN", [x], [out], size=layer.local_size, alpha=layer.alpha, beta=layer.beta, bias=layer.knorm)


def _stanh(g, layer, x, out):
    scaled, th = g.fresh("stanh_in"), g.fresh("stanh_tanh")
    g.node("Mul", [x, g.const("stanh_b", STANH_B)], [scaled])
    g.node("Tanh", [scaled], [th])
    g.node("Mul", [th, g.const("stanh_a", STANH_A)], [out])


def _op(name):
    def write(g, layer, x, out):
        g.node(name, [x], [out])
    return write


def _activation(g, layer, x, out):
    g.node(_ACTIVATION_OPS[layer.conf.activation_conf.type], [x], [out])


def _softmax(g, layer, x, out):
    flat = g.node("Flatten", [x], [g.fresh(layer.name + "_flat")], axis=1)
    g.node("Softmax", [flat], [out], axis=1)


def _flatten(g, layer, x, out):
    g.node("Flatten", [x], [out], axis=1)


_WRITERS = {
    job_pb2.kInnerProduct: _inner_product,
    job_pb2.kCConvolution: _convolution, job_pb2.kConvolution: _convolution, job_pb2.kCudnnConv: _convolution,
    job_pb2.kCPooling: _pooling, job_pb2.kPooling: _pooling, job_pb2.kCudnnPool: _pooling,
    job_pb2.kLRN: _lrn, job_pb2.kCudnnLRN: _lrn,
    job_pb2.kSTanh: _stanh,
    job_pb2.kReLU: _op("Relu"), job_pb2.kSigmoid: _op("Sigmoid"),
    job_pb2.kActivation: _activation, job_pb2.kCudnnActivation: _activation,
    job_pb2.kDropout: _op("Identity"),                  # the identity at inference
    job_pb2.kSoftmax: _softmax, job_pb2.kCudnnSoftmax: _softmax, job_pb2.kSoftmaxLoss: _softmax,
    job_pb2.kEuclideanLoss: _flatten,                   # its prediction: the input, one row per sample
}
_SKIPPED = (job_pb2.kAccuracy,)


def _preprocess(g, data, sample, cur):
    """The data layer's normalisation as Sub/Div nodes on ``cur``; returns the normalised value."""
    size = int(numpy.prod(sample))
    if data._mean is not None:
        mean = numpy.broadcast_to(numpy.asarray(data._mean, numpy.float32).reshape(-1), (size,))
        cur = g.node("Sub", [cur, g.const("mean", mean.reshape(sample))], [g.fresh("centred")])
    if data._std is not None:
        std = numpy.broadcast_to(numpy.asarray(data._std, numpy.float32).reshape(-1), (size,))
        cur = g.node("Div", [cur, g.const("std", std.reshape(sample))], [g.fresh("scaled")])
    return cur


def _layers(g, net, cur):
    """Write the net's layers after its data layer (up to the loss); returns the final value and its
    size per sample."""
    outputs = {net.data_layers[0].name: cur}
    final = final_dim = None
    for layer in net.layers:
        if layer.is_data:
            continue
        t = layer.conf.type
        out = g.fresh(layer.name)       # (also for a skipped layer: the value names stay as they were)
        if t in _SKIPPED:
            continue
        write = _WRITERS.get(t)
        if write is None:
            raise ConfigError("export_onnx: layer '%s' of type %s has no ONNX mapping here.\nhelp: MLPs and CNNs "
                              "(inner product, convolution, pooling, LRN, activations, dropout, softmax) export"
                              % (layer.name, enum_name(job_pb2.LayerType, t)))
        write(g, layer, outputs[net.srcs[layer.name][0].name], out)    # (a loss's second source: the labels)
        outputs[layer.name] = out
        final, final_dim = out, int(numpy.prod(layer.out_shape[1:]))
        if layer.is_loss:
            break
    if final is None:
        raise ConfigError("export_onnx: the net has no layer after its data layer")
    return final, final_dim


def export(model_job, predictor, path, preprocess=True, opset=17, name=None):
    """Write the ONNX model of ``predictor.net`` (a singa.inference.Predictor with params loaded)."""
    try:
        import onnx      # optional: only export needs it
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ConfigError("export_onnx needs the onnx package.\nhelp: pip install 'singa[onnx]' (or pip install "
                          "onnx)") from None
    net = predictor.net
    g = _Graph(helper, numpy_helper)
    data = net.data_layers[0]
    sample = tuple(int(d) for d in data.out_shape[1:])
    cur = _preprocess(g, data, sample, "input") if preprocess else "input"
    final, out_dim = _layers(g, net, cur)
    g.node("Identity", [final], ["output"])
    graph = helper.make_graph(
        g.nodes, name or model_job.name or "singa",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch"] + list(sample))],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", out_dim])], initializer=g.inits)
    model = helper.make_model(graph, producer_name="singa", opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 10)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


__all__ = ["export"]
