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
from singa.proto import job_pb2

STANH_A, STANH_B = 1.7159047, 0.66666667


def export(model_job, predictor, path, preprocess=True, opset=17, name=None):
    """Write the ONNX model of ``predictor.net`` (a singa.inference.Predictor with params loaded)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ConfigError("export_onnx needs the onnx package.\nhelp: pip install 'singa[onnx]' (or pip install "
                          "onnx)") from None
    net = predictor.net
    nodes, inits = [], []
    counter = [0]

    def fresh(base):
        counter[0] += 1
        return "%s_%d" % (base, counter[0])

    def const(base, array):
        n = fresh(base)
        inits.append(numpy_helper.from_array(numpy.asarray(array, dtype=numpy.float32), n))
        return n

    data = net.data_layers[0]
    sample = tuple(int(d) for d in data.out_shape[1:])
    cur = "input"
    if preprocess:
        if data._mean is not None:
            mean = numpy.broadcast_to(numpy.asarray(data._mean, numpy.float32).reshape(-1), (int(numpy.prod(sample)),))
            nodes.append(helper.make_node("Sub", [cur, const("mean", mean.reshape(sample))], [fresh("centred")]))
            cur = nodes[-1].output[0]
        if data._std is not None:
            std = numpy.broadcast_to(numpy.asarray(data._std, numpy.float32).reshape(-1), (int(numpy.prod(sample)),))
            nodes.append(helper.make_node("Div", [cur, const("std", std.reshape(sample))], [fresh("scaled")]))
            cur = nodes[-1].output[0]
    outputs = {data.name: cur}
    final = final_dim = None
    for layer in net.layers:
        if layer.is_data:
            continue
        t = layer.conf.type
        x = outputs[net.srcs[layer.name][0].name]       # (a loss's second source is the labels)
        out = fresh(layer.name)
        if t == job_pb2.kInnerProduct:
            flat = fresh(layer.name + "_flat")
            nodes.append(helper.make_node("Flatten", [x], [flat], axis=1))
            w = layer.weight.backend.to_host(layer.weight.data)
            b = layer.bias.backend.to_host(layer.bias.data)
            nodes.append(helper.make_node("Gemm", [flat, const(layer.weight.name, w), const(layer.bias.name, b)], [out],
                                          transB=0 if layer.transpose else 1))
        elif t in (job_pb2.kCConvolution, job_pb2.kConvolution, job_pb2.kCudnnConv):
            g = layer.geom
            w = layer.weight.backend.to_host(layer.weight.data).reshape(layer.num_filters, g.C, g.kh, g.kw)
            b = layer.bias.backend.to_host(layer.bias.data)
            nodes.append(helper.make_node("Conv", [x, const(layer.weight.name, w), const(layer.bias.name, b)], [out],
                                          kernel_shape=[g.kh, g.kw], strides=[g.sy, g.sx],
                                          pads=[g.py, g.px, g.py, g.px]))
        elif t in (job_pb2.kCPooling, job_pb2.kPooling, job_pb2.kCudnnPool):
            kh, kw, sh, sw, ph, pw = layer.geom[:6]
            if t == job_pb2.kPooling:
                ph = pw = 0
            op = "MaxPool" if layer.method == job_pb2.PoolingProto.MAX else "AveragePool"
            kw_args = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw], ceil_mode=0)
            if op == "AveragePool":
                kw_args["count_include_pad"] = 1
            nodes.append(helper.make_node(op, [x], [out], **kw_args))
        elif t in (job_pb2.kLRN, job_pb2.kCudnnLRN):
            nodes.append(helper.make_node("LRN", [x], [out], size=layer.local_size, alpha=layer.alpha,
                                          beta=layer.beta, bias=layer.knorm))
        elif t == job_pb2.kSTanh:
            a = fresh("stanh_in")
            th = fresh("stanh_tanh")
            nodes += [helper.make_node("Mul", [x, const("stanh_b", STANH_B)], [a]),
                      helper.make_node("Tanh", [a], [th]),
                      helper.make_node("Mul", [th, const("stanh_a", STANH_A)], [out])]
        elif t in (job_pb2.kReLU,):
            nodes.append(helper.make_node("Relu", [x], [out]))
        elif t == job_pb2.kSigmoid:
            nodes.append(helper.make_node("Sigmoid", [x], [out]))
        elif t in (job_pb2.kActivation, job_pb2.kCudnnActivation):
            op = {job_pb2.RELU: "Relu", job_pb2.SIGMOID: "Sigmoid", job_pb2.TANH: "Tanh"}[layer.conf.activation_conf.type]
            nodes.append(helper.make_node(op, [x], [out]))
        elif t in (job_pb2.kDropout,):
            nodes.append(helper.make_node("Identity", [x], [out]))
        elif t in (job_pb2.kSoftmax, job_pb2.kCudnnSoftmax, job_pb2.kSoftmaxLoss):
            flat = fresh(layer.name + "_flat")
            nodes.append(helper.make_node("Flatten", [x], [flat], axis=1))
            nodes.append(helper.make_node("Softmax", [flat], [out], axis=1))
        elif t == job_pb2.kEuclideanLoss:
            nodes.append(helper.make_node("Flatten", [x], [out], axis=1))
        elif t == job_pb2.kAccuracy:
            continue
        else:
            name = job_pb2.LayerType.Name(t) if t in job_pb2.LayerType.values() else t
            raise ConfigError("export_onnx: layer '%s' of type %s has no ONNX mapping here.\nhelp: MLPs and CNNs "
                              "(inner product, convolution, pooling, LRN, activations, dropout, softmax) export"
                              % (layer.name, name))
        outputs[layer.name] = out
        final, final_dim = out, int(numpy.prod(layer.out_shape[1:]))
        if layer.is_loss:
            break
    if final is None:
        raise ConfigError("export_onnx: the net has no layer after its data layer")
    nodes.append(helper.make_node("Identity", [final], ["output"]))
    out_dim = final_dim
    graph = helper.make_graph(
        nodes, name or model_job.name or "singa",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch"] + list(sample))],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", out_dim])], initializer=inits)
    model = helper.make_model(graph, producer_name="singa", opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 10)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


__all__ = ["export"]
