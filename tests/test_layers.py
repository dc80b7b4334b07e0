# covers: singa/layers/dense.py, singa/layers/neuron.py, singa/layers/loss.py, singa/layers/base.py
"""Runtime dense-network layers and losses: gradients (float64 finite differences), forward values
against plain NumPy formulas, dropout statistics, top-k ties and the error messages."""
import numpy
import pytest

from singa.testing.gradcheck import GradientMismatch, Source, build_layer, check_layer_gradients

import singa.layers as layers
from singa.backends import Backend
from singa.errors import ConfigError, DataError
from singa.layers.base import LAYERS
from singa.proto import job_pb2
from singa.updaters.fused import accumulating, installed

FC = 'name: "fc" type: kInnerProduct srclayers: "pool" innerproduct_conf { num_output: %d%s } ' \
     'param { name: "w" } param { name: "b" }'
LOSS = 'name: "loss" type: kSoftmaxLoss srclayers: "fc" srclayers: "data" %s'
EUCL = 'name: "loss" type: kEuclideanLoss srclayers: "recon" srclayers: "data"'
ACC = 'name: "acc" type: kAccuracy srclayers: "prob" srclayers: "data" %s'
FLT_MIN = numpy.finfo(numpy.float32).tiny


def fc_conf(n, transpose=False):
    return FC % (n, " transpose: true" if transpose else "")


def run(conf, inputs, aux=None, data_srcs=(), flag=job_pb2.kTrain, dtype=numpy.float64, rng=None):
    layer = build_layer(conf, [a.shape for a in inputs], dtype=dtype)
    layer.rng = rng
    srcs = [Source("s%d" % i, numpy.array(a, dtype=dtype), (aux or {}).get(i), i in data_srcs)
            for i, a in enumerate(inputs)]
    return layer, srcs, layer.forward(flag, srcs)


def top_k_reference(p, label, k):
    """Sort (prob, index) pairs descending, as SINGA's partial_sort did: ties put the larger index first."""
    order = sorted(range(len(p)), key=lambda j: (p[j], j), reverse=True)
    return label in order[:k]


# -- registry -------------------------------------------------------------------------------------

def test_importing_the_package_registers_every_layer():
    assert layers.LAYERS is LAYERS
    for t in ("kInnerProduct", "kSTanh", "kReLU", "kSigmoid", "kActivation", "kSoftmax", "kDropout",
              "kSoftmaxLoss", "kEuclideanLoss", "kAccuracy"):
        assert getattr(job_pb2, t) in LAYERS, t
    assert LAYERS[job_pb2.kSoftmaxLoss].is_loss and LAYERS[job_pb2.kEuclideanLoss].is_loss
    assert LAYERS[job_pb2.kAccuracy].has_metrics and not LAYERS[job_pb2.kAccuracy].is_loss


# -- gradient checks ----------------------------------------------------------------------------

@pytest.mark.parametrize("transpose", [False, True])
def test_innerproduct_gradients_with_4d_input(transpose):
    report = check_layer_gradients(fc_conf(5, transpose), [(3, 2, 2, 3)])
    assert set(report) == {"source 0 'pool'", "param 'w' (%s)" % ((12, 5) if transpose else (5, 12),),
                           "param 'b' ((5,))"}


def test_innerproduct_gives_no_gradient_to_a_data_layer_but_still_param_gradients():
    report = check_layer_gradients(fc_conf(4), [(3, 6)], data_srcs={0})
    assert not any(k.startswith("source") for k in report) and len(report) == 2
    layer, srcs, _ = run(fc_conf(4), [numpy.ones((3, 6))], data_srcs={0})
    for p in layer.params:
        p.set_values(numpy.ones(p.shape))
    assert layer.backward(job_pb2.kTrain, srcs, numpy.ones((3, 4))) == [None]


@pytest.mark.parametrize("conf", [
    'name: "a" type: kReLU', 'name: "a" type: kSigmoid', 'name: "a" type: kSTanh',
    'name: "a" type: kActivation activation_conf { type: RELU }',
    'name: "a" type: kActivation activation_conf { type: SIGMOID }',
    'name: "a" type: kActivation activation_conf { type: TANH }',
    'name: "a" type: kActivation share_src_blobs: true activation_conf { type: TANH }',
])
def test_activation_gradients(conf):
    x = numpy.random.default_rng(1).standard_normal((4, 3, 5))
    x[numpy.abs(x) < 0.05] += 0.1       # keep ReLU's kink out of the finite differences
    check_layer_gradients(conf, [x.shape], inputs=[x])


def test_dropout_gradient_uses_the_forward_mask():
    check_layer_gradients('name: "d" type: kDropout dropout_conf { dropout_ratio: 0.4 }', [(6, 7)])
    check_layer_gradients('name: "d" type: kDropout dropout_conf { dropout_ratio: 0.4 }', [(6, 7)],
                          flag=job_pb2.kTest)


@pytest.mark.parametrize("extra", ["", "softmaxloss_conf { scale: 2.5 topk: 2 }"])
def test_softmaxloss_gradient(extra):
    check_layer_gradients(LOSS % extra, [(5, 7, 1, 1), (5, 3)])


def test_euclidean_gradient_is_half_the_derivative_of_its_reported_loss():
    report = check_layer_gradients(EUCL, [(4, 6), (4, 1, 2, 3)], loss_grad_factor=0.5)
    assert list(report) == ["source 0 'recon'"]
    with pytest.raises(GradientMismatch, match="disagree"):
        check_layer_gradients(EUCL, [(4, 6), (4, 1, 2, 3)], loss_grad_factor=1.0)


def test_gradcheck_catches_a_wrong_gradient():
    # The relation is checked both ways: a factor that is off must be reported.
    with pytest.raises(GradientMismatch):
        check_layer_gradients(LOSS % "", [(4, 5), (4, 2)], loss_grad_factor=0.9)


# -- forward values -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("transpose", [False, True])
def test_innerproduct_forward_backward_values(dtype, transpose):
    rng = numpy.random.default_rng(2)
    x = rng.standard_normal((4, 3, 2))
    layer = build_layer(fc_conf(5, transpose), [x.shape], dtype=dtype)
    w = rng.standard_normal(layer.params[0].shape)
    b = rng.standard_normal(5)
    layer.params[0].set_values(w)
    layer.params[1].set_values(b)
    src = Source("pool", x.astype(dtype))
    y = layer.forward(job_pb2.kTrain, [src])
    x2 = x.reshape(4, 6)
    want = x2 @ (w if transpose else w.T) + b
    tol = 1e-5 if dtype == numpy.float32 else 1e-12
    assert y.dtype == dtype and y.shape == layer.out_shape == (4, 5)
    numpy.testing.assert_allclose(y, want, rtol=tol, atol=tol)
    g = rng.standard_normal((4, 5))
    (dx,) = layer.backward(job_pb2.kTrain, [src], g.astype(dtype))
    numpy.testing.assert_allclose(dx, (g @ (w.T if transpose else w)).reshape(x.shape), rtol=tol, atol=tol)
    numpy.testing.assert_allclose(layer.params[0].grad, x2.T @ g if transpose else g.T @ x2, rtol=tol, atol=tol)
    numpy.testing.assert_allclose(layer.params[1].grad, g.sum(0), rtol=tol, atol=tol)


def test_innerproduct_reuses_buffers_follows_shared_weights_and_accumulates_only_with_aggrad():
    rng = numpy.random.default_rng(3)
    enc = build_layer(fc_conf(3), [(2, 5)])
    dec = build_layer(fc_conf(5, True), [(2, 3)])
    enc.params[0].set_values(rng.standard_normal((3, 5)))
    dec.params[0].share_from(enc.params[0])        # tied weights: the decoder reads the encoder's matrix
    for p in (enc.params[1], dec.params[1]):
        p.set_values(numpy.zeros(p.shape))
    h = Source("h", rng.standard_normal((2, 3)))
    y1 = dec.forward(job_pb2.kTrain, [h])
    numpy.testing.assert_allclose(y1, h.data @ enc.params[0].data, rtol=1e-12)
    assert dec.forward(job_pb2.kTrain, [h]) is y1          # same buffer every step
    g = rng.standard_normal((2, 5))
    dec.backward(job_pb2.kTrain, [h], g)
    once = dec.params[0].grad.copy()
    dec.backward(job_pb2.kTrain, [h], g)
    numpy.testing.assert_array_equal(dec.params[0].grad, once)        # overwritten
    with installed(accumulating(dec.params)):
        dec.backward(job_pb2.kTrain, [h], g)
    numpy.testing.assert_allclose(dec.params[0].grad, 2 * once, rtol=1e-12)   # BPTT accumulates
    small = Source("h", rng.standard_normal((1, 3)))                  # a smaller batch still works
    numpy.testing.assert_allclose(dec.forward(job_pb2.kTest, [small]), small.data @ enc.params[0].data,
                                  rtol=1e-12)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_activation_forward_values(dtype):
    x = numpy.random.default_rng(4).standard_normal((3, 4, 5)) * 3
    tol = 1e-6 if dtype == numpy.float32 else 1e-13
    want = {
        'name: "a" type: kReLU': numpy.maximum(x, 0),
        'name: "a" type: kSigmoid': 1 / (1 + numpy.exp(-x)),
        'name: "a" type: kSTanh': 1.7159047 * numpy.tanh(0.66666667 * x),
        'name: "a" type: kActivation activation_conf { type: TANH }': numpy.tanh(x),
        'name: "a" type: kActivation activation_conf { type: SIGMOID }': 1 / (1 + numpy.exp(-x)),
        'name: "a" type: kActivation': numpy.maximum(x, 0),        # default RELU
    }
    for conf, w in want.items():
        layer, srcs, y = run(conf, [x], dtype=dtype)
        assert y.dtype == dtype and layer.out_shape == x.shape
        numpy.testing.assert_allclose(y, w, rtol=tol, atol=tol, err_msg=conf)


def test_stanh_backward_uses_singas_formula_from_the_output():
    x = numpy.linspace(-3, 3, 13).reshape(1, 13)
    layer, srcs, y = run('name: "a" type: kSTanh', [x])
    g = numpy.linspace(1, 2, 13).reshape(1, 13)
    (dx,) = layer.backward(job_pb2.kTrain, srcs, g.copy())
    a, b = 1.7159047, 0.66666667
    numpy.testing.assert_allclose(dx, (a * b - (b / a) * y ** 2) * g, rtol=1e-12)


def test_sigmoid_saturates_without_overflow_warnings():
    x = numpy.array([[-1000.0, -100.0, 0.0, 100.0, 1000.0]])
    with numpy.errstate(all="raise"):
        _, _, y = run('name: "a" type: kSigmoid', [x], dtype=numpy.float32)
    numpy.testing.assert_allclose(y, [[0, 0, 0.5, 1, 1]], atol=1e-7)


def test_inplace_activation_writes_into_its_source():
    x = numpy.array([[-1.0, 2.0, -3.0]])
    layer, srcs, y = run('name: "a" type: kActivation share_src_blobs: true', [x])
    assert y is srcs[0].data
    numpy.testing.assert_array_equal(y, [[0, 2, 0]])
    layer, srcs, y = run('name: "a" type: kReLU', [x])
    assert y is not srcs[0].data and srcs[0].data[0, 0] == -1


def test_softmax_forward_is_stable_and_has_no_backward():
    x = numpy.array([[1000.0, 1001.0, 999.0], [-5.0, 0.0, 5.0]]).reshape(2, 3, 1)
    layer, srcs, y = run('name: "sm" type: kSoftmax', [x], dtype=numpy.float32)
    e = numpy.exp(x.reshape(2, 3) - x.reshape(2, 3).max(1, keepdims=True))
    numpy.testing.assert_allclose(y.reshape(2, 3), e / e.sum(1, keepdims=True), rtol=1e-6)
    assert y.shape == (2, 3, 1)
    assert layer.backward(job_pb2.kTest, srcs, None) == [None]
    with pytest.raises(ConfigError, match=r"'sm' \(kSoftmax\) cannot back-propagate(.|\n)*kSoftmaxLoss"):
        layer.backward(job_pb2.kTrain, srcs, numpy.ones_like(y))


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_softmaxloss_values(dtype):
    rng = numpy.random.default_rng(5)
    x = rng.standard_normal((6, 4)) * 2
    x[0] = [0, -200, 0, 0]                 # p[label] underflows in float32: clamped at FLT_MIN
    lab = rng.integers(0, 4, 6)
    lab[0] = 1
    scale = 1.5
    layer, srcs, p = run(LOSS % "softmaxloss_conf { scale: 1.5 topk: 2 }", [x, numpy.zeros((6, 1))],
                         aux={1: lab}, data_srcs={1}, dtype=dtype)
    e = numpy.exp(x - x.max(1, keepdims=True))
    want_p = e / e.sum(1, keepdims=True)
    if dtype == numpy.float32:
        want_p = want_p.astype(numpy.float32).astype(numpy.float64)
    pl = numpy.maximum(want_p[numpy.arange(6), lab], FLT_MIN)
    want_loss = -scale / 6 * numpy.log(pl).sum()
    want_acc = scale * numpy.mean([top_k_reference(want_p[i], lab[i], 2) for i in range(6)])
    m = layer.metrics()
    tol = 1e-5 if dtype == numpy.float32 else 1e-12
    assert set(m) == {"loss", "acc"} and all(type(v) is float for v in m.values())
    numpy.testing.assert_allclose(m["loss"], want_loss, rtol=tol)
    numpy.testing.assert_allclose(m["acc"], want_acc, rtol=1e-12)
    numpy.testing.assert_allclose(p, want_p, rtol=tol, atol=tol)
    dx, dlab = layer.backward(job_pb2.kTrain, srcs)
    onehot = numpy.eye(4)[lab]
    assert dlab is None
    numpy.testing.assert_allclose(dx, (want_p - onehot) * scale / 6, rtol=tol, atol=tol)


def test_euclidean_values():
    rng = numpy.random.default_rng(6)
    r, x = rng.standard_normal((5, 6)), rng.standard_normal((5, 2, 3))
    layer, srcs, _ = run(EUCL, [r, x], data_srcs={1})
    d = r - x.reshape(5, 6)
    assert layer.metrics() == {"loss": pytest.approx((d ** 2).sum() / 5, rel=1e-12)}
    dr, dx = layer.backward(job_pb2.kTrain, srcs)
    assert dx is None
    numpy.testing.assert_allclose(dr, d / 5, rtol=1e-12)


# -- top-k and ties -----------------------------------------------------------------------------

def test_topk_ties_favour_the_larger_index():
    scores = numpy.array([[1.0, 1.0, 0.0],     # tie between 0 and 1: 1 ranks first
                          [1.0, 1.0, 0.0],
                          [2.0, 2.0, 2.0],     # three-way tie: order 2, 1, 0
                          [2.0, 2.0, 2.0],
                          [0.0, 3.0, 3.0]])
    labels = numpy.array([0, 1, 0, 1, 1])
    for k, hits in ((1, [0, 1, 0, 0, 0]), (2, [1, 1, 0, 1, 1])):
        assert [top_k_reference(s, l, k) for s, l in zip(scores, labels)] == [bool(h) for h in hits]
        for conf in (LOSS % ("softmaxloss_conf { topk: %d }" % k), ACC % ("argsort_conf { topk: %d }" % k)):
            layer, _, _ = run(conf, [scores, numpy.zeros((5, 1))], aux={1: labels}, data_srcs={1},
                              dtype=numpy.float32)
            assert layer.metrics()["acc"] == pytest.approx(numpy.mean(hits)), (conf, k)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_accuracy_matches_a_sorting_reference_on_random_ties(k):
    rng = numpy.random.default_rng(k)
    p = rng.integers(0, 3, size=(40, 6)).astype(float)     # many ties
    lab = rng.integers(0, 6, 40)
    layer, srcs, out = run(ACC % ("argsort_conf { topk: %d }" % k), [p, numpy.zeros((40, 2))],
                           aux={1: lab}, data_srcs={1})
    want = numpy.mean([top_k_reference(p[i], lab[i], k) for i in range(40)])
    assert layer.metrics() == {"acc": pytest.approx(want)}
    assert out is srcs[0].data and layer.backward(job_pb2.kTrain, srcs) == [None, None]


# -- dropout --------------------------------------------------------------------------------------

def dropout(p, shape, seed, flag=job_pb2.kTrain):
    x = numpy.ones(shape, dtype=numpy.float32)
    return run('name: "d" type: kDropout dropout_conf { dropout_ratio: %g }' % p, [x], flag=flag,
               dtype=numpy.float32, rng=numpy.random.default_rng(seed))


def test_dropout_statistics():
    p, n = 0.3, 200000
    layer, srcs, y = dropout(p, (200, 1000), seed=11)
    dropped = numpy.mean(y == 0)
    assert abs(dropped - p) < 5 * (p * (1 - p) / n) ** 0.5
    kept = y[y != 0]
    numpy.testing.assert_allclose(kept, 1 / (1 - p), rtol=1e-6)
    assert abs(y.mean() - 1) < 0.01                        # inverted dropout keeps the expectation
    g = numpy.full(y.shape, 2.0, dtype=numpy.float32)
    (dx,) = layer.backward(job_pb2.kTrain, srcs, g)
    numpy.testing.assert_array_equal(dx == 0, y == 0)        # the same mask
    numpy.testing.assert_allclose(dx[y != 0], 2 / (1 - p), rtol=1e-6)


def test_dropout_is_determined_by_the_seed_and_identity_outside_training():
    a = dropout(0.5, (30, 40), seed=3)
    b = dropout(0.5, (30, 40), seed=3)
    c = dropout(0.5, (30, 40), seed=4)
    numpy.testing.assert_array_equal(a[2], b[2])
    assert not numpy.array_equal(a[2], c[2])
    first = a[2].copy()
    assert not numpy.array_equal(a[0].forward(job_pb2.kTrain, a[1]), first)     # a new mask each step
    for flag in (job_pb2.kTest, job_pb2.kVal):
        layer, srcs, y = dropout(0.5, (3, 4), seed=3, flag=flag)
        assert y is srcs[0].data
        g = numpy.ones((3, 4), numpy.float32)
        assert layer.backward(flag, srcs, g)[0] is g
    _, _, y = dropout(0.0, (3, 4), seed=3)
    numpy.testing.assert_array_equal(y, 1)


# -- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [3, -1])
@pytest.mark.parametrize("conf", [LOSS % "", ACC % ""])
def test_label_out_of_range_is_a_data_error(conf, bad):
    lab = numpy.array([0, 2, bad, 1])
    with pytest.raises(DataError) as e:
        run(conf, [numpy.zeros((4, 3)), numpy.zeros((4, 1))], aux={1: lab}, data_srcs={1})
    msg = str(e.value)
    name = "loss" if "Loss" in conf else "acc"
    assert "'%s'" % name in msg and "label %d" % bad in msg and "3 outputs" in msg and "[0, 3)" in msg


def test_non_integer_labels_are_a_data_error():
    with pytest.raises(DataError, match="integer class indices"):
        run(LOSS % "", [numpy.zeros((2, 3)), numpy.zeros((2, 1))], aux={1: numpy.array([0.5, 1.0])},
            data_srcs={1})
    layer, _, _ = run(LOSS % "", [numpy.zeros((2, 3)), numpy.zeros((2, 1))], aux={1: numpy.array([0.0, 2.0])},
                      data_srcs={1})
    assert layer.metrics()["loss"] == pytest.approx(numpy.log(3))


def test_loss_shape_mismatches_name_both_layers():
    with pytest.raises(ConfigError, match=r"'loss'.*'fc' of shape \(4, 3\) and 'data' of shape \(5, 1\)"):
        build_layer(LOSS % "", [(4, 3), (5, 1)])
    with pytest.raises(ConfigError, match=r"'recon' of shape \(4, 6\) and 'data' of shape \(4, 5\)"):
        build_layer(EUCL, [(4, 6), (4, 5)])
    layer = build_layer(LOSS % "", [(4, 3), (4, 1)])
    srcs = [Source("fc", numpy.zeros((4, 3))), Source("data", numpy.zeros((4, 1)), numpy.arange(3), True)]
    with pytest.raises(ConfigError, match=r"one label per row.*'fc' of shape \(4, 3\).*'data'"):
        layer.forward(job_pb2.kTrain, srcs)
    srcs[1].aux = None
    with pytest.raises(ConfigError, match="'data', which has none"):
        layer.forward(job_pb2.kTrain, srcs)
    layer = build_layer(EUCL, [(4, 6), (4, 6)])
    with pytest.raises(ConfigError, match="same shape"):
        layer.forward(job_pb2.kTrain, [Source("recon", numpy.zeros((4, 6))), Source("data", numpy.zeros((4, 5)))])


@pytest.mark.parametrize("conf, shapes, pattern", [
    (LOSS % "", [(4, 3)], r"Expected 2 source layer\(s\). Received: 1"),
    ('name: "a" type: kReLU', [(2, 3), (2, 3)], r"Expected 1 source layer\(s\). Received: 2"),
    (fc_conf(0), [(2, 3)], r"num_output.*Received: 0"),
    (LOSS % "softmaxloss_conf { topk: 4 }", [(4, 3), (4, 1)], r"topk.*\[1, 3\].*Received: 4"),
    (ACC % "argsort_conf { topk: 0 }", [(4, 3), (4, 1)], r"topk.*Received: 0"),
    ('name: "fc" type: kInnerProduct innerproduct_conf { num_output: 2 } param { name: "w" }', [(2, 3)],
     r"needs a `param` entry for its bias"),
])
def test_config_errors(conf, shapes, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_layer(conf, shapes)


def test_stanh_in_activation_points_to_kstanh():
    with pytest.raises(ConfigError, match=r"activation_conf.type.*Received: 'STANH'(.|\n)*kSTanh"):
        build_layer('name: "a" type: kActivation activation_conf { type: STANH }', [(2, 3)])


def test_dropout_errors():
    with pytest.raises(ConfigError, match=r"dropout_ratio.*\[0, 1\).*Received: 1"):
        build_layer('name: "d" type: kDropout dropout_conf { dropout_ratio: 1 }', [(2, 3)])
    layer = build_layer('name: "d" type: kDropout', [(2, 3)])
    with pytest.raises(ConfigError, match="'d' .*no random stream"):
        layer.forward(job_pb2.kTrain, [Source("x", numpy.ones((2, 3)))])


def test_innerproduct_rejects_an_input_of_the_wrong_size():
    layer = build_layer(fc_conf(2), [(2, 3, 2)])
    with pytest.raises(ConfigError, match=r"'fc'.*6 features.*shape \(2, 5\) from 'pool'"):
        layer.forward(job_pb2.kTrain, [Source("pool", numpy.ones((2, 5)))])


def test_float32_is_the_default_dtype():
    layer = build_layer(fc_conf(2), [(2, 3)], dtype=numpy.float32)
    layer.params[0].set_values(numpy.ones((2, 3)))
    y = layer.forward(job_pb2.kTrain, [Source("pool", numpy.ones((2, 3), numpy.float32))])
    assert y.dtype == numpy.float32 and layer.params[0].grad.dtype == numpy.float32


# -- GPU (runs where CuPy and a device are present) -----------------------------------------------

def test_every_gradient_check_also_runs_on_the_devices(monkeypatch):
    """check_layer_gradients compares every device backend with NumPy: a bug only on the device
    (here a dropout backward kernel that forgets the 1/keep scale) fails the ordinary check."""
    from singa.testing.gradcheck import device_backends
    from singa.backends.fused import Kernel
    from singa.backends import device_kernels
    assert [b.name for b in device_backends()][:1] == ["standin"]
    monkeypatch.setattr(device_kernels, "DROPOUT_BACKWARD", Kernel("bool m, T scale", "T g", "g = g * (T)m;", "bad_dropout",
                                                           scalars={"scale"}))
    with pytest.raises(GradientMismatch, match=r"'d' on Backend\(standin:0\): gradient of source 0 differs"):
        check_layer_gradients('name: "d" type: kDropout dropout_conf { dropout_ratio: 0.4 }', [(6, 7)])


def test_gradients_on_cupy():
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no GPU")
    except Exception as e:        # CuPy installed without a usable driver
        pytest.skip("no usable GPU: %s" % e)
    gpu = Backend(0)
    check_layer_gradients(fc_conf(5, True), [(3, 2, 2)], backend=gpu)
    check_layer_gradients('name: "a" type: kSTanh', [(3, 4)], backend=gpu)
    check_layer_gradients('name: "d" type: kDropout', [(3, 4)], backend=gpu)
    check_layer_gradients(LOSS % "softmaxloss_conf { topk: 2 }", [(4, 5), (4, 1)], backend=gpu)
    check_layer_gradients(EUCL, [(4, 6), (4, 6)], backend=gpu, loss_grad_factor=0.5)


def test_cudnn_layer_types_run_the_same_code():
    from singa.layers.base import LAYERS
    assert LAYERS[job_pb2.kCudnnSoftmax] is LAYERS[job_pb2.kSoftmax]
    assert LAYERS[job_pb2.kCudnnSoftmaxLoss] is LAYERS[job_pb2.kSoftmaxLoss]
    assert LAYERS[job_pb2.kCudnnActivation] is LAYERS[job_pb2.kActivation]
