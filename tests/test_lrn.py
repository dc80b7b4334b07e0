# covers: singa/layers/lrn.py
"""kLRN / kCudnnLRN (SINGA-V0.md 6.6): forward and backward against direct loops written here,
float64 finite-difference checks over window sizes, channel edges and alpha/beta/knorm, errors,
and (when torch imports) forward equality with torch's LocalResponseNorm."""
import numpy
import pytest

from singa.testing.gradcheck import build_layer, check_layer_gradients, Source
from singa.errors import ConfigError
from singa.proto import job_pb2

TRAIN = job_pb2.kTrain


def conf_text(ltype="kLRN", **fields):
    body = " ".join("%s: %s" % kv for kv in fields.items())
    return 'name: "norm" type: %s srclayers: "src" lrn_conf { %s }' % (ltype, body)


def ref_lrn(x, g, n, alpha=1.0, beta=0.75, knorm=1.0):
    """Direct loops over channels, straight from the formulas: (y, dx)."""
    # the proto's fields are float32: use the values the layer reads
    alpha, beta, knorm = (float(numpy.float32(v)) for v in (alpha, beta, knorm))
    C = x.shape[1]
    half = n // 2
    norm = numpy.empty(x.shape)
    for c in range(C):
        lo, hi = max(c - half, 0), min(c + half, C - 1)
        s = sum(x[:, k] ** 2 for k in range(lo, hi + 1))
        norm[:, c] = knorm + alpha / n * s
    y = x * norm ** -beta
    if g is None:
        return y, None
    dx = numpy.empty(x.shape)
    inner = g * x * norm ** (-beta - 1)
    for c in range(C):
        lo, hi = max(c - half, 0), min(c + half, C - 1)
        ws = sum(inner[:, k] for k in range(lo, hi + 1))
        dx[:, c] = g[:, c] * norm[:, c] ** -beta - 2 * beta * alpha / n * x[:, c] * ws
    return y, dx


def run(conf, x, g, dtype=numpy.float64):
    layer = build_layer(conf, [x.shape], dtype=dtype)
    src = Source("src", numpy.array(x, dtype=dtype))
    y = numpy.array(layer.forward(TRAIN, [src]), dtype=numpy.float64)
    dx = numpy.array(layer.backward(TRAIN, [src], numpy.array(g, dtype=dtype))[0], dtype=numpy.float64)
    return layer, y, dx


PARAMS = [  # (local_size, alpha, beta, knorm)
    (1, 1.0, 0.75, 1.0),
    (3, 1.0, 0.75, 1.0),
    (5, 1.0, 0.75, 1.0),
    (3, 0.5, 0.5, 2.0),
    (5, 2.0, 1.3, 1.5),     # the general power path
    (3, 5e-5, 0.75, 1.0),   # the CIFAR-10 example's values
    (7, 1.0, 0.75, 1.0),    # window as wide as the channels
]


@pytest.mark.parametrize("n,alpha,beta,knorm", PARAMS)
@pytest.mark.parametrize("ltype", ["kLRN", "kCudnnLRN"])
def test_forward_backward_match_direct_loops(ltype, n, alpha, beta, knorm):
    rng = numpy.random.default_rng(n)
    x = rng.standard_normal((3, 7, 4, 5)) * 1.5
    g = rng.standard_normal(x.shape)
    conf = conf_text(ltype, local_size=n, alpha=alpha, beta=beta, knorm=knorm)
    want_y, want_dx = ref_lrn(x, g, n, alpha, beta, knorm)
    layer, y, dx = run(conf, x, g)
    assert layer.out_shape == x.shape
    numpy.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-14)
    numpy.testing.assert_allclose(dx, want_dx, rtol=1e-10, atol=1e-12)
    _, y32, dx32 = run(conf, x, g, dtype=numpy.float32)
    numpy.testing.assert_allclose(y32, want_y, rtol=2e-5, atol=2e-6)
    numpy.testing.assert_allclose(dx32, want_dx, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("n,alpha,beta,knorm", PARAMS)
def test_gradients_finite_differences(n, alpha, beta, knorm):
    # 7 channels: with n = 3 or 5 the windows of channels 0, 1, 5, 6 are clipped at the edges
    check_layer_gradients(conf_text(local_size=n, alpha=alpha, beta=beta, knorm=knorm), [(2, 7, 3, 2)])


def test_defaults_and_other_ranks():
    layer = build_layer('name: "norm" type: kLRN srclayers: "src" lrn_conf { local_size: 5 }', [(2, 6, 3, 3)])
    assert (layer.local_size, layer.alpha, layer.beta, layer.knorm) == (5, 1.0, 0.75, 1.0)
    rng = numpy.random.default_rng(9)
    for shape in [(4, 6), (2, 6, 5)]:      # channels on axis 1, the rest flattened
        x = rng.standard_normal(shape)
        g = rng.standard_normal(shape)
        x4, g4 = x.reshape(shape[0], 6, -1, 1), g.reshape(shape[0], 6, -1, 1)
        want_y, want_dx = ref_lrn(x4, g4, 3)
        _, y, dx = run(conf_text(local_size=3), x, g)
        assert y.shape == shape and dx.shape == shape
        numpy.testing.assert_allclose(y, want_y.reshape(shape), rtol=1e-12)
        numpy.testing.assert_allclose(dx, want_dx.reshape(shape), rtol=1e-10, atol=1e-12)
        check_layer_gradients(conf_text(local_size=3, alpha=0.7), [shape])


def test_repeated_steps_and_batch_change():
    rng = numpy.random.default_rng(10)
    layer = build_layer(conf_text(local_size=3), [(4, 5, 2, 2)], dtype=numpy.float64)
    for B in (4, 1, 4):
        x = rng.standard_normal((B, 5, 2, 2))
        g = rng.standard_normal(x.shape)
        src = Source("src", x)
        y = layer.forward(TRAIN, [src])
        dx = layer.backward(TRAIN, [src], g.copy())[0]
        want_y, want_dx = ref_lrn(x, g, 3)
        numpy.testing.assert_allclose(y, want_y, rtol=1e-12)
        numpy.testing.assert_allclose(dx, want_dx, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n,C,expected", [
    (4, 8, "a positive odd number of channels"),
    (0, 8, "a positive odd number of channels"),
    (-3, 8, "a positive odd number of channels"),
    (9, 8, "at most the number of channels of the source (8)"),
])
def test_bad_local_size(n, C, expected):
    with pytest.raises(ConfigError) as e:
        build_layer(conf_text(local_size=n), [(2, C, 3, 3)])
    msg = str(e.value)
    assert "Invalid value for `lrn_conf.local_size of layer 'norm' (kLRN)`" in msg
    assert expected in msg and "Received: %d" % n in msg and "help:" in msg


def test_bad_source_shape():
    with pytest.raises(ConfigError, match=r"source shape of layer 'norm'.*Received: \(10,\)"):
        build_layer(conf_text(local_size=3), [(10,)])


def test_forward_matches_torch():
    torch = pytest.importorskip("torch")
    rng = numpy.random.default_rng(11)
    x = rng.standard_normal((3, 8, 5, 4))
    for n, alpha, beta, knorm in [(3, 1.0, 0.75, 1.0), (5, 5e-5, 0.75, 1.0), (1, 0.5, 0.5, 2.0), (7, 2.0, 1.3, 1.5)]:
        _, y, _ = run(conf_text(local_size=n, alpha=alpha, beta=beta, knorm=knorm), x, numpy.zeros(x.shape))
        want = torch.nn.functional.local_response_norm(torch.from_numpy(x), n, alpha=alpha, beta=beta, k=knorm)
        numpy.testing.assert_allclose(y, want.numpy(), rtol=1e-6, atol=1e-12)
