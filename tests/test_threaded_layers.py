# covers: singa/layers/dense.py, singa/layers/neuron.py, singa/layers/lrn.py, singa/backends/parallel.py
"""kInnerProduct and the element-wise layers with their work split between threads (as on a
multi-core CPU): the same values as one part and as plain numpy formulas, in float32 and float64,
with BLAS on and off, including finite-difference gradients of the split code."""
import numpy
import pytest

from singa.testing.gradcheck import Source, build_layer, check_layer_gradients

from singa.backends import blas, parallel
from singa.proto import job_pb2
from singa.updaters.fused import accumulating, installed

FC = ('name: "fc" type: kInnerProduct srclayers: "pool" innerproduct_conf { num_output: %d%s } '
      'param { name: "w" } param { name: "b" }')


@pytest.fixture(params=["split", "single", "numpy"])
def mode(request, monkeypatch):
    """split: every product and element-wise pass over 3 threads; single: one BLAS call each;
    numpy: BLAS off (plain numpy.matmul)."""
    monkeypatch.setitem(parallel.MIN_SPLIT, "gemm", 0)
    monkeypatch.setitem(parallel.MIN_SPLIT, "ufunc", 0)
    blas.set_num_threads(3 if request.param == "split" else 1)
    blas.set_split_products(request.param == "split")
    blas.set_enabled(request.param != "numpy")
    yield request.param
    blas.set_num_threads(None)
    blas.set_split_products(False)
    blas.set_enabled(True)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("data_src", [False, True])
def test_innerproduct_values(mode, dtype, transpose, data_src):
    rng = numpy.random.default_rng(2)
    x = rng.standard_normal((5, 3, 7))
    layer = build_layer(FC % (11, " transpose: true" if transpose else ""), [x.shape], dtype=dtype)
    w = rng.standard_normal(layer.params[0].shape)
    b = rng.standard_normal(11)
    layer.params[0].set_values(w)
    layer.params[1].set_values(b)
    src = Source("pool", x.astype(dtype), is_data=data_src)
    y = layer.forward(job_pb2.kTrain, [src])
    x2 = x.reshape(5, 21)
    tol = 2e-5 if dtype == numpy.float32 else 1e-12
    numpy.testing.assert_allclose(y, x2 @ (w if transpose else w.T) + b, rtol=tol, atol=tol)
    g = rng.standard_normal((5, 11))
    (dx,) = layer.backward(job_pb2.kTrain, [src], g.astype(dtype))
    if data_src:
        assert dx is None
    else:
        numpy.testing.assert_allclose(dx, (g @ (w.T if transpose else w)).reshape(x.shape), rtol=tol, atol=tol)
    dw = x2.T @ g if transpose else g.T @ x2
    numpy.testing.assert_allclose(layer.params[0].grad, dw, rtol=tol, atol=tol)
    numpy.testing.assert_allclose(layer.params[1].grad, g.sum(0), rtol=tol, atol=tol)
    with installed(accumulating(layer.params)):                      # BPTT: accumulates
        layer.backward(job_pb2.kTrain, [src], g.astype(dtype))
    numpy.testing.assert_allclose(layer.params[0].grad, 2 * dw, rtol=tol, atol=tol)
    numpy.testing.assert_allclose(layer.params[1].grad, 2 * g.sum(0), rtol=tol, atol=tol)
    numpy.testing.assert_array_equal(layer.params[0].data, w.astype(dtype))   # no update without a plan


@pytest.mark.parametrize("conf", ['name: "a" type: kSTanh', 'name: "a" type: kReLU', 'name: "a" type: kSigmoid',
                                  'name: "a" type: kActivation activation_conf { type: TANH }'])
def test_elementwise_split_equals_formulas(mode, conf):
    rng = numpy.random.default_rng(3)
    x = rng.standard_normal((7, 2, 5)) * 2
    g = rng.standard_normal(x.shape)
    f = {"kSTanh": lambda v: 1.7159047 * numpy.tanh(0.66666667 * v), "kReLU": lambda v: numpy.maximum(v, 0),
         "kSigmoid": lambda v: 1 / (1 + numpy.exp(-v)), "TANH": numpy.tanh}
    fn = next(v for k, v in f.items() if k in conf)
    layer = build_layer(conf, [x.shape])
    src = Source("s", x.copy())
    y = layer.forward(job_pb2.kTrain, [src])
    numpy.testing.assert_allclose(y, fn(x), rtol=1e-7, atol=1e-7)
    (dx,) = layer.backward(job_pb2.kTrain, [src], g.copy())
    eps = 1e-6
    numpy.testing.assert_allclose(dx, g * (fn(x + eps) - fn(x - eps)) / (2 * eps), rtol=1e-5, atol=1e-6)


def test_split_gradients_pass_finite_differences(mode):
    check_layer_gradients(FC % (9, ""), [(6, 4)])
    check_layer_gradients(FC % (9, " transpose: true"), [(6, 2, 2)])
    check_layer_gradients('name: "a" type: kSTanh', [(6, 5)])


@pytest.mark.parametrize("threads", [2, 3])
def test_lrn_split_over_threads_is_identical(threads, monkeypatch):
    conf = 'name: "norm" type: kLRN srclayers: "src" lrn_conf { local_size: 3 alpha: 0.5 beta: 0.75 knorm: 1 }'
    rng = numpy.random.default_rng(5)
    x = rng.standard_normal((5, 4, 3, 3)).astype(numpy.float32)
    g = rng.standard_normal(x.shape).astype(numpy.float32)

    def run():
        layer = build_layer(conf, [x.shape], dtype=numpy.float32)
        src = Source("src", x.copy())
        y = layer.forward(job_pb2.kTrain, [src]).copy()
        (dx,) = layer.backward(job_pb2.kTrain, [src], g.copy())
        return y, dx.copy()

    blas.set_num_threads(1)
    try:
        one = run()
        monkeypatch.setitem(parallel.MIN_SPLIT, "lrn", 0)
        blas.set_num_threads(threads)
        split = run()
    finally:
        blas.set_num_threads(None)
    for a, b in zip(one, split):
        numpy.testing.assert_array_equal(a, b)
    assert not numpy.array_equal(one[1], g)      # the backward did something
