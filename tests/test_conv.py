# covers: singa/layers/conv.py, singa/backends/lowering.py
"""kConvolution / kCConvolution / kCudnnConv (SINGA-V0.md 6.4) and the lowering kernels:
forward against a direct-loop reference (and torch when installed), finite-difference gradients
over padding, stride, non-square kernels and channel counts, output shapes, bad
configurations, and the SGD update fused into the weight-gradient GEMM."""
import numpy as np
import pytest

from singa.backends import Backend, blas, lowering, parallel
from singa.backends.lowering import ConvGeometry, Lowering
from singa.errors import ConfigError
from singa.io.kvfile import KVFileWriter
from singa.io.record import encode_record
from singa.layers.base import LAYERS
from singa.layers import conv
from singa.layers.conv import ConvolutionLayer
from singa.neuralnet import NeuralNet
from singa.proto import job_pb2, parse_job_conf
from singa.random import RandomStreams
from singa.updaters import create_updater
from singa.updaters.fused import accumulating, installed
from singa.worker import BPWorker
from singa.testing.gradcheck import Source, build_layer, check_layer_gradients


def conv_conf(fields, type="kCConvolution", name="conv1"):
    return ('name: "%s" type: %s srclayers: "src" convolution_conf { %s } '
            'param { name: "w" } param { name: "b" }' % (name, type, fields))


def reference_conv(x, w, b, kh, kw, sy, sx, py, px):
    """Direct loops over output pixels: y[n, f, i, j] = sum_{c,u,v} w[f, c, u, v] x_pad[n, c, i*sy+u, j*sx+v] + b[f]."""
    B, C, H, W = x.shape
    F = w.shape[0]
    w4 = w.reshape(F, C, kh, kw)
    xp = np.zeros((B, C, H + 2 * py, W + 2 * px))
    xp[:, :, py:py + H, px:px + W] = x
    Ho = (H + 2 * py - kh) // sy + 1
    Wo = (W + 2 * px - kw) // sx + 1
    y = np.empty((B, F, Ho, Wo))
    for n in range(B):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    win = xp[n, :, i * sy:i * sy + kh, j * sx:j * sx + kw]
                    y[n, f, i, j] = np.sum(win * w4[f]) + b[f]
    return y


# (conv fields, source shape, (kh, kw, sy, sx, py, px))
CASES = {
    "k3p1s1_C3": ("num_filters: 4 kernel: 3 pad: 1", (2, 3, 6, 5), (3, 3, 1, 1, 1, 1)),
    "k5p2s2_C3": ("num_filters: 3 kernel: 5 pad: 2 stride: 2", (2, 3, 7, 8), (5, 5, 2, 2, 2, 2)),
    "nonsquare_C1": ("num_filters: 2 kernel_x: 3 kernel_y: 2 stride_x: 2 stride_y: 1 pad_x: 0 pad_y: 1",
                     (2, 1, 5, 7), (2, 3, 1, 2, 1, 0)),
    "3d_input": ("num_filters: 3 kernel: 3", (2, 6, 5), (3, 3, 1, 1, 0, 0)),
    "stride_gt_kernel": ("num_filters: 2 kernel: 2 stride: 3", (1, 2, 8, 7), (2, 2, 3, 3, 0, 0)),
    "kernel_is_padded_input": ("num_filters: 2 kernel: 5 pad: 1", (2, 2, 3, 3), (5, 5, 1, 1, 1, 1)),
    "nonsquare_s1_C2": ("num_filters: 3 kernel_x: 4 kernel_y: 2 pad_x: 2 pad_y: 1", (3, 2, 5, 6), (2, 4, 1, 1, 1, 2)),
    "pad_ge_kernel": ("num_filters: 2 kernel: 2 pad: 2", (2, 2, 4, 3), (2, 2, 1, 1, 2, 2)),
    "override_x_y": ("num_filters: 2 kernel: 3 kernel_x: 5 pad: 1 pad_y: 4 stride: 2 stride_x: 3",
                     (1, 2, 6, 6), (3, 3, 2, 2, 1, 1)),
}


@pytest.fixture(params=["batch_inner", "batch_outer", "rows"])
def layout(request, monkeypatch):
    """Both column orders of im2col (chosen by output width; forced here), and the row lowering
    wherever the geometry allows it (batch inner, stride 1, pad < kernel; forced from K = 1)."""
    monkeypatch.setattr(lowering, "BATCH_INNER_MAX_WIDTH", 0 if request.param == "batch_outer" else 10 ** 6)
    monkeypatch.setattr(lowering, "ROW_MIN_K", 1 if request.param == "rows" else 10 ** 9)
    return request.param


def run_forward(fields, shape, dtype=np.float64, seed=0):
    layer = build_layer(conv_conf(fields), [shape], dtype=dtype)
    rng = np.random.default_rng(seed)
    for p in layer.params:
        p.set_values(rng.standard_normal(p.shape))
    x = rng.standard_normal(shape)
    y = layer.forward(job_pb2.kTrain, [Source("src", x.astype(dtype))])
    return layer, x, y


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_matches_direct_loops(case, layout):
    fields, shape, (kh, kw, sy, sx, py, px) = CASES[case]
    layer, x, y = run_forward(fields, shape)
    assert layer.geom.batch_inner == (layout != "batch_outer")
    g = layer.geom
    assert layer.geom.rows == (layout == "rows" and g.sy == g.sx == 1 and g.py < g.kh and g.px < g.kw and g.kh > 1)
    x4 = x.reshape(shape[0], -1, shape[-2], shape[-1])
    ref = reference_conv(x4, layer.weight.data, layer.bias.data, kh, kw, sy, sx, py, px)
    assert y.shape == ref.shape == layer.out_shape
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    # The weight is (num_filters, C*kh*kw) and the bias (num_filters,).
    assert layer.weight.shape == (layer.num_filters, x4.shape[1] * kh * kw)
    assert layer.bias.shape == (layer.num_filters,)


@pytest.mark.parametrize("case", ["k3p1s1_C3", "k5p2s2_C3", "nonsquare_C1", "stride_gt_kernel"])
def test_forward_matches_torch(case, layout):
    torch = pytest.importorskip("torch")
    fields, shape, (kh, kw, sy, sx, py, px) = CASES[case]
    layer, x, y = run_forward(fields, shape)
    C = shape[1]
    w = torch.from_numpy(layer.weight.data.reshape(layer.num_filters, C, kh, kw).copy())
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), w, torch.from_numpy(layer.bias.data.copy()),
                                     stride=(sy, sx), padding=(py, px)).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10)


def test_float32_forward_close_to_float64():
    fields, shape, _ = CASES["k5p2s2_C3"]
    _, _, y64 = run_forward(fields, shape, np.float64)
    _, _, y32 = run_forward(fields, shape, np.float32)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradients_match_finite_differences(case, layout):
    fields, shape, _ = CASES[case]
    report = check_layer_gradients(conv_conf(fields), [shape], max_checks=40)
    layer = build_layer(conv_conf(fields), [shape])
    assert set(report) == {"source 0 'src'", "param 'w' (%s)" % (layer.weight.shape,),
                           "param 'b' ((%d,))" % layer.num_filters}


def test_no_input_gradient_for_a_data_source(layout):
    report = check_layer_gradients(conv_conf("num_filters: 2 kernel: 3 pad: 1"), [(2, 3, 5, 5)], data_srcs={0},
                                   max_checks=20)
    assert not any(k.startswith("source") for k in report)


def test_one_implementation_for_all_three_types():
    for t in (job_pb2.kConvolution, job_pb2.kCConvolution, job_pb2.kCudnnConv):
        assert LAYERS[t] is ConvolutionLayer
    ys = [run_forward_type(t) for t in ("kConvolution", "kCConvolution", "kCudnnConv")]
    np.testing.assert_array_equal(ys[0], ys[1])
    np.testing.assert_array_equal(ys[0], ys[2])


def run_forward_type(type_name):
    layer = build_layer(conv_conf("num_filters: 2 kernel: 3", type=type_name), [(1, 2, 4, 4)])
    rng = np.random.default_rng(1)
    for p in layer.params:
        p.set_values(rng.standard_normal(p.shape))
    return layer.forward(job_pb2.kTrain, [Source("src", rng.standard_normal((1, 2, 4, 4)))]).copy()


def test_cifar10_shapes_and_floor_rule():
    conf = conv_conf("num_filters: 32 kernel: 5 pad: 2 stride: 1")
    assert build_layer(conf, [(100, 3, 32, 32)]).out_shape == (100, 32, 32, 32)
    assert build_layer(conf, [(100, 32, 15, 15)]).out_shape == (100, 32, 15, 15)
    assert build_layer(conv_conf("num_filters: 64 kernel: 5 pad: 2"), [(100, 32, 7, 7)]).out_shape == (100, 64, 7, 7)
    # floor((H + 2*pad - k) / stride) + 1
    assert build_layer(conv_conf("num_filters: 1 kernel: 3 stride: 2"), [(1, 1, 8, 9)]).out_shape == (1, 1, 3, 4)
    conf = conv_conf("num_filters: 1 kernel: 4 stride: 3 pad: 1")
    assert build_layer(conf, [(1, 1, 9, 10)]).out_shape == (1, 1, 3, 3)


def test_cifar10_net_dense_input_is_576():
    pytest.importorskip("singa.layers.pooling")
    pytest.importorskip("singa.layers.lrn")
    net = [conv_conf("num_filters: 32 kernel: 5 pad: 2"),
           'name: "p1" type: kCPooling pooling_conf { pool: MAX kernel: 3 stride: 2 }',
           'name: "n1" type: kLRN lrn_conf { local_size: 3 alpha: 5e-05 beta: 0.75 }',
           conv_conf("num_filters: 32 kernel: 5 pad: 2", name="conv2"),
           'name: "p2" type: kCPooling pooling_conf { pool: AVG kernel: 3 stride: 2 }',
           conv_conf("num_filters: 64 kernel: 5 pad: 2", name="conv3"),
           'name: "p3" type: kCPooling pooling_conf { pool: AVG kernel: 3 stride: 2 }']
    shape = (100, 3, 32, 32)
    for text in net:
        shape = build_layer(text, [shape], dtype=np.float32).out_shape
    assert shape == (100, 64, 3, 3) and int(np.prod(shape[1:])) == 576


def test_smaller_last_batch(layout):
    fields, shape, (kh, kw, sy, sx, py, px) = CASES["k3p1s1_C3"]
    layer, _, _ = run_forward(fields, (3,) + shape[1:])
    x = np.random.default_rng(5).standard_normal(shape)      # 2 samples instead of 3
    y = layer.forward(job_pb2.kTrain, [Source("src", x)])
    np.testing.assert_allclose(y, reference_conv(x, layer.weight.data, layer.bias.data, kh, kw, sy, sx, py, px),
                               rtol=1e-12, atol=1e-12)
    dx, = layer.backward(job_pb2.kTrain, [Source("src", x)], np.ones_like(y))
    assert dx.shape == x.shape


def test_agg_grad_accumulates():
    layer, x, y = run_forward("num_filters: 2 kernel: 3 pad: 1", (2, 2, 4, 4))
    src = [Source("src", x)]
    g = np.random.default_rng(2).standard_normal(y.shape)
    layer.backward(job_pb2.kTrain, src, g.copy())
    w1, b1 = layer.weight.grad.copy(), layer.bias.grad.copy()
    with installed(accumulating(layer.params)):                   # a sum over passes (BPTT)
        layer.backward(job_pb2.kTrain, src, g.copy())
    np.testing.assert_allclose(layer.weight.grad, 2 * w1, rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, 2 * b1, rtol=1e-12)


def expect_error(fields, shape, *words):
    with pytest.raises(ConfigError) as e:
        build_layer(conv_conf(fields), [shape])
    msg = str(e.value)
    for w in ("conv1", "Expected", "Received", "help:") + words:
        assert w in msg, msg
    return msg


def test_errors():
    expect_error("num_filters: 2 kernel: 3", (4, 784), "store_conf", "shape: 28")
    expect_error("num_filters: 2 kernel: 3", (4, 1, 1, 28, 28), "(4, 1, 1, 28, 28)")
    expect_error("num_filters: 2 kernel: 7 pad: 1", (2, 3, 4, 4), "kernel", "7", "6")
    expect_error("num_filters: 2 kernel_x: 3 kernel_y: 9", (2, 3, 8, 8), "kernel_y")
    expect_error("num_filters: 2 kernel: 3 stride: 0", (2, 3, 8, 8), "stride", "0")
    expect_error("num_filters: 2 kernel: 3 stride_x: 0", (2, 3, 8, 8), "stride_x")
    expect_error("num_filters: 0 kernel: 3", (2, 3, 8, 8), "num_filters")
    expect_error("num_filters: -4 kernel: 3", (2, 3, 8, 8), "num_filters", "-4")
    expect_error("kernel: 3", (2, 3, 8, 8), "num_filters")
    expect_error("num_filters: 2 kernel: 0", (2, 3, 8, 8), "kernel")
    expect_error("num_filters: 2 kernel: 3 pad: -1", (2, 3, 8, 8), "pad")
    with pytest.raises(ConfigError, match="param"):
        build_layer('name: "conv1" type: kCConvolution convolution_conf { num_filters: 2 kernel: 3 }', [(2, 3, 8, 8)])


def test_input_of_wrong_shape_is_reported():
    layer, _, _ = run_forward("num_filters: 2 kernel: 3", (2, 3, 5, 5))
    with pytest.raises(ConfigError, match="conv1.*Expected.*Received.*\\(2, 4, 5, 5\\)"):
        layer.forward(job_pb2.kTrain, [Source("src", np.zeros((2, 4, 5, 5)))])


@pytest.mark.parametrize("batch_inner", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_lowering_kernels_are_adjoint(batch_inner, threads):
    # <im2col(x), c> == <x, col2im(c)> for any x and c: col2im is im2col's transpose.
    g = ConvGeometry(3, 3, 7, 6, 3, 2, 2, 1, 1, 2, batch_inner=batch_inner)
    assert (g.Ho, g.Wo, g.K, g.N) == (4, 9, 18, 108)
    low = Lowering(np)
    parts = lambda fn: [fn(k, threads) for k in range(threads)]     # noqa: E731  (blocks one by one)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((g.B, g.C, g.H, g.W))
    c = rng.standard_normal((g.K, g.N))
    col = low.im2col(low.pad_input(x, g, low.new_padded(g, np.float64)), g, np.full((g.K, g.N), np.nan), parts)
    dxpad = low.col2im(c, g, np.full(g.padded_shape, np.nan), parts)
    dx = low.unpad_output(dxpad, g, np.empty_like(x))
    assert np.isclose(np.sum(col * c), np.sum(x * dx), rtol=1e-12)
    with pytest.raises(ConfigError, match="col"):
        low.im2col(low.new_padded(g, np.float64), g, np.empty((g.K, g.N + 1)))


# -- the fused update inside a net ---------------------------------------------------------

NET = """
updater { type: kSGD %(upd)s learning_rate { type: kFixed base_lr: 0.05 } }
neuralnet {
  layer { name: "data" type: kRecordInput
          store_conf { backend: "kvfile" path: "%(path)s" batchsize: 6 shape: 2 shape: 6 shape: 6 std_value: 2 } }
  layer { name: "conv1" type: kCConvolution srclayers: "data" convolution_conf { num_filters: 3 kernel: 3 pad: 1 }
          param { name: "w1" init { type: kGaussian std: 0.3 } }
          param { name: "b1" init { type: kConstant value: 0.1 } } }
  layer { name: "relu1" type: kReLU srclayers: "conv1" }
  layer { name: "conv2" type: kConvolution srclayers: "relu1" convolution_conf { num_filters: 4 kernel: 3 stride: 2 }
          param { name: "w2" init { type: kGaussian std: 0.3 } }
          param { name: "b2" init { type: kConstant value: 0 } } }
  layer { name: "fc" type: kInnerProduct srclayers: "conv2" innerproduct_conf { num_output: 3 }
          param { name: "w3" init { type: kGaussian std: 0.3 } }
          param { name: "b3" init { type: kConstant value: 0 } } }
  layer { name: "loss" type: kSoftmaxLoss srclayers: "fc" srclayers: "data" }
}
"""


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    path = tmp_path_factory.mktemp("conv") / "train.bin"
    rng = np.random.default_rng(7)
    with KVFileWriter(str(path)) as w:
        for i in range(24):
            c = int(rng.integers(0, 3))
            x = rng.normal(0, 2, 72) + c
            w.insert("%08d" % i, encode_record(label=c, data=x.astype(np.float32).tolist(), shape=[2, 6, 6]))
    return str(path)


def train(records, fuse, upd, dtype=np.float64, steps=4):
    job = parse_job_conf(NET % dict(path=records, upd=upd))
    streams = RandomStreams(3)
    net = NeuralNet(job.neuralnet, job_pb2.kTrain, Backend(None), streams, dtype=dtype)
    for p in net.owner_params:
        p.init_values(streams.stream("init/" + p.name))
    worker = BPWorker(net, create_updater(job.updater), fuse_updates=fuse)
    fused = []
    for step in range(steps):
        plans = worker.gemm_updates(step) or {}
        fused.append(sorted(p.name for p in plans))
        worker.train_one_batch(step)
    return net, worker, fused


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request, monkeypatch):
    """Everything the layer can split over threads split (thresholds 0), or nothing."""
    monkeypatch.setitem(parallel.MIN_SPLIT, "gemm", 0)
    monkeypatch.setitem(parallel.MIN_SPLIT, "copy", 0)
    monkeypatch.setitem(conv._split, "on", True)
    blas.set_num_threads(request.param)
    yield request.param
    blas.set_num_threads(None)


@pytest.mark.parametrize("upd", ["", "momentum: 0.9", "momentum: 0.9 weight_decay: 0.004", "weight_decay: 0.01"])
def test_fused_update_equals_unfused(records, upd, threads):
    assert conv.split_lowering()
    a, wa, fused = train(records, True, upd)
    b, wb, plain = train(records, False, upd)
    conv.set_split_lowering(False)      # nothing split by the layer: an independent baseline
    try:
        c, _, _ = train(records, False, upd)
    finally:
        conv.set_split_lowering(True)       # the fixture restores the default
    for pb, pc in zip(b.owner_params, c.owner_params):
        np.testing.assert_allclose(pb.data, pc.data, rtol=1e-12, atol=1e-13, err_msg=pb.name)
    assert fused[0] == ["w1", "w2", "w3"] and plain[0] == []
    for pa, pb in zip(a.owner_params, b.owner_params):
        np.testing.assert_allclose(pa.data, pb.data, rtol=1e-12, atol=1e-13, err_msg=pa.name)
        assert pa.version == pb.version == 4
        for k in wa.state[pa.name]:
            np.testing.assert_allclose(wa.state[pa.name][k], wb.state[pb.name][k], rtol=1e-12, atol=1e-13)
    # and training moved the conv weights
    assert not np.allclose(a.by_name["conv1"].weight.data, train(records, True, upd, steps=0)[0].owners["w1"].data)


@pytest.mark.parametrize("upd", ["", "momentum: 0.9 weight_decay: 0.004"])
def test_fused_update_with_row_lowering(records, upd, monkeypatch):
    # conv1 (stride 1) row-lowered: its update is applied from the per-kernel-row products
    monkeypatch.setattr(lowering, "ROW_MIN_K", 1)
    a, wa, fused = train(records, True, upd)
    assert a.by_name["conv1"].geom.rows and not a.by_name["conv2"].geom.rows
    monkeypatch.setattr(lowering, "ROW_MIN_K", 10 ** 9)
    b, wb, plain = train(records, False, upd)
    assert not b.by_name["conv1"].geom.rows
    assert fused[0] == ["w1", "w2", "w3"] and plain[0] == []
    for pa, pb in zip(a.owner_params, b.owner_params):
        np.testing.assert_allclose(pa.data, pb.data, rtol=1e-11, atol=1e-12, err_msg=pa.name)


@pytest.mark.parametrize("case", ["k5p2s2_C3", "nonsquare_C1", "3d_input"])
def test_lowering_split_over_threads_is_identical(case, layout, monkeypatch):
    fields, shape, _ = CASES[case]

    def step():
        layer, x, y = run_forward(fields, shape, np.float32)
        dx, = layer.backward(job_pb2.kTrain, [Source("src", x.astype(np.float32))], np.ones_like(y))
        return y.copy(), dx.copy(), layer.weight.grad.copy(), layer.bias.grad.copy()

    monkeypatch.setitem(parallel.MIN_SPLIT, "copy", 0)
    monkeypatch.setitem(parallel.MIN_SPLIT, "gemm", 0)
    monkeypatch.setitem(conv._split, "on", True)
    blas.set_num_threads(1)
    serial = step()
    blas.set_num_threads(2)
    try:
        assert conv.split_lowering()
        split = step()
    finally:
        blas.set_num_threads(None)
    # Copies and adds are split into disjoint blocks: bit-identical. The weight gradient is summed
    # in two halves: equal up to rounding.
    for a, b in zip(serial[:2] + serial[3:], split[:2] + split[3:]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(serial[2], split[2], rtol=1e-5, atol=1e-5)
