# covers: singa/layers/pooling.py
"""kCPooling / kCudnnPool / kPooling (SINGA-V0.md 6.5): forward and backward against a direct-loop
reference written here, float64 finite-difference checks, tie-breaking, sizes, errors, and
(when torch imports) forward equality with torch's floor-mode pooling."""
import numpy
import pytest

from singa.testing.gradcheck import build_layer, check_layer_gradients, Source
from singa.errors import ConfigError
from singa.backends import parallel
from singa.layers import pooling
from singa.proto import job_pb2

TRAIN, TEST = job_pb2.kTrain, job_pb2.kTest


def conf_text(ltype="kCPooling", **fields):
    body = " ".join("%s: %s" % kv for kv in fields.items())
    return 'name: "pool" type: %s srclayers: "src" pooling_conf { %s }' % (ltype, body)


def geometry(fields, caffe=True):
    """(kh, kw, sh, sw, ph, pw) as the spec reads the proto: plain fields override _y/_x."""
    def pair(name, default):
        if name in fields:
            return fields[name], fields[name]
        return fields.get(name + "_y", default), fields.get(name + "_x", default)
    (kh, kw), (sh, sw), (ph, pw) = pair("kernel", 3), pair("stride", 2), pair("pad", 0)
    if not caffe:
        ph = pw = 0
    return kh, kw, sh, sw, ph, pw


def ref_pool(x, g, geom, method, caffe=True):
    """Direct loops over every output: (y, dx) for input x (B, C, H, W) and output gradient g."""
    kh, kw, sh, sw, ph, pw = geom
    B, C, H, W = x.shape
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    y = numpy.zeros((B, C, Ho, Wo))
    dx = numpy.zeros(x.shape)
    for b in range(B):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    hs, ws = i * sh - ph, j * sw - pw
                    he, we = min(hs + kh, H + ph), min(ws + kw, W + pw)
                    size = (he - hs) * (we - ws) if caffe else kh * kw
                    hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, H), min(we, W)
                    if method == "MAX":
                        best, where = -numpy.inf, None
                        for h in range(hs, he):
                            for w in range(ws, we):
                                if x[b, c, h, w] > best:
                                    best, where = x[b, c, h, w], (h, w)
                        y[b, c, i, j] = best
                        if g is not None:
                            dx[b, c, where[0], where[1]] += g[b, c, i, j]
                    else:
                        y[b, c, i, j] = x[b, c, hs:he, ws:we].sum() / size
                        if g is not None:
                            dx[b, c, hs:he, ws:we] += g[b, c, i, j] / size
    return y, dx


def run(conf, x, g=None, dtype=numpy.float64, flag=TRAIN):
    layer = build_layer(conf, [x.shape], dtype=dtype)
    src = Source("src", numpy.array(x, dtype=dtype))
    y = numpy.array(layer.forward(flag, [src]), dtype=numpy.float64)
    dx = None
    if g is not None:
        dx = numpy.array(layer.backward(flag, [src], numpy.array(g, dtype=dtype))[0], dtype=numpy.float64)
    return layer, y, dx


def distinct(rng, shape):
    """Values at least 1e-3 apart: no ties, and a 1e-6 nudge never changes a window's maximum."""
    n = int(numpy.prod(shape))
    return (rng.permutation(n) * (4.0 / n) - 2.0).reshape(shape)


CASES = [  # (layer type, fields, source shape)
    ("kCPooling", dict(kernel=3, stride=2), (2, 3, 9, 9)),                       # overlapping
    ("kCPooling", dict(kernel=2, stride=2), (2, 2, 8, 8)),                       # non-overlapping
    ("kCPooling", dict(kernel=3, stride=2, pad=1), (2, 2, 7, 7)),                # clipped border windows
    ("kCPooling", dict(kernel_x=3, kernel_y=2, stride_x=2, stride_y=1, pad_x=1), (2, 2, 6, 7)),
    ("kCPooling", dict(kernel=3, stride=1, pad=2), (1, 2, 5, 6)),                # stride 1 with pad
    ("kCPooling", dict(kernel=3, stride=3, pad=1), (2, 1, 10, 11)),              # stride 3, W % 3 != 0
    ("kCPooling", dict(kernel=1, stride=1), (1, 2, 4, 5)),                       # identity
    ("kCPooling", dict(kernel=2, stride=3), (2, 2, 8, 9)),                       # stride > kernel: a phase unused
    ("kCPooling", dict(kernel_x=2, kernel_y=4, stride_x=1, stride_y=3, pad_y=2), (1, 2, 11, 6)),
    ("kCudnnPool", dict(kernel=3, stride=2, pad=1), (2, 2, 8, 8)),
    ("kPooling", dict(kernel=3, stride=2, pad=1), (2, 2, 9, 9)),                 # pad ignored
    ("kPooling", dict(kernel_x=2, kernel_y=3, stride=1), (2, 2, 6, 5)),
]


@pytest.mark.parametrize("method,avg_gemm", [("MAX", False), ("AVG", True), ("AVG", False)])
@pytest.mark.parametrize("ltype,fields,shape", CASES)
def test_forward_backward_match_direct_loops(monkeypatch, method, avg_gemm, ltype, fields, shape):
    if not avg_gemm:     # AVG by the kernel-offset views, as for large maps
        monkeypatch.setattr(pooling, "AVG_GEMM_MAX_ENTRIES", 0)
    rng = numpy.random.default_rng(1)
    conf = conf_text(ltype, pool=method, **fields)
    x = distinct(rng, shape)
    geom = geometry(fields, caffe=ltype != "kPooling")
    want_y, _ = ref_pool(x, None, geom, method, caffe=ltype != "kPooling")
    g = rng.standard_normal(want_y.shape)
    want_y, want_dx = ref_pool(x, g, geom, method, caffe=ltype != "kPooling")
    layer, y, dx = run(conf, x, g)
    assert layer.out_shape == want_y.shape
    numpy.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12)
    # float32 (the default) gives the same numbers to float32 precision
    _, y32, dx32 = run(conf, x, g, dtype=numpy.float32)
    numpy.testing.assert_allclose(y32, want_y, rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(dx32, want_dx, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["MAX", "AVG"])
@pytest.mark.parametrize("ltype,fields,shape", CASES[:6] + CASES[8:])
def test_gradients_finite_differences(method, ltype, fields, shape):
    x = distinct(numpy.random.default_rng(2), shape)
    check_layer_gradients(conf_text(ltype, pool=method, **fields), [shape], inputs=[x])


def test_avg_views_gradients_finite_differences(monkeypatch):
    monkeypatch.setattr(pooling, "AVG_GEMM_MAX_ENTRIES", 0)
    shape = (2, 2, 7, 8)
    check_layer_gradients(conf_text(pool="AVG", kernel_x=3, kernel_y=2, pad_x=1, stride_y=1), [shape])


def test_max_ties_go_to_first_max_in_scan_order():
    # one value everywhere: every window's first cell (in row-major order) gets its gradient
    x = numpy.ones((1, 1, 5, 5))
    g = numpy.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    _, y, dx = run(conf_text(kernel=3, stride=2), x, g)
    want = numpy.zeros((5, 5))
    want[0, 0], want[0, 2], want[2, 0], want[2, 2] = 1, 2, 3, 4
    numpy.testing.assert_array_equal(dx[0, 0], want)
    numpy.testing.assert_array_equal(y, numpy.ones((1, 1, 2, 2)))
    # a tie between a later row and a later column: the earlier row wins
    x = numpy.zeros((1, 1, 3, 3))
    x[0, 0, 1, 0] = x[0, 0, 0, 2] = 5.0
    _, _, dx = run(conf_text(kernel=3, stride=1), x, numpy.ones((1, 1, 1, 1)))
    assert dx[0, 0, 0, 2] == 1 and dx.sum() == 1
    # random integer inputs with many ties, against the reference (strict > keeps the first)
    rng = numpy.random.default_rng(3)
    for fields, shape in [(dict(kernel=3, stride=2, pad=1), (2, 3, 7, 7)), (dict(kernel=2, stride=1), (1, 2, 5, 6))]:
        x = rng.integers(0, 3, size=shape).astype(numpy.float64)
        want_y, _ = ref_pool(x, None, geometry(fields), "MAX")
        g = rng.standard_normal(want_y.shape)
        want_y, want_dx = ref_pool(x, g, geometry(fields), "MAX")
        _, y, dx = run(conf_text(**fields), x, g)
        numpy.testing.assert_array_equal(y, want_y)
        numpy.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12)


def test_wide_images_index_without_overflow():
    # winner row * width exceeds 255: index arithmetic must not run in uint8
    rng = numpy.random.default_rng(8)
    x = distinct(rng, (2, 1, 7, 300))
    fields = dict(kernel=3, stride=2, pad=1)
    want_y, _ = ref_pool(x, None, geometry(fields), "MAX")
    g = rng.standard_normal(want_y.shape)
    want_y, want_dx = ref_pool(x, g, geometry(fields), "MAX")
    _, y, dx = run(conf_text(**fields), x, g)
    numpy.testing.assert_array_equal(y, want_y)
    numpy.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12)


def test_padded_cells_never_win():
    # all values negative: a zero-padded max would return 0 at the border
    x = -1.0 - numpy.random.default_rng(4).random((2, 2, 7, 7))
    _, y, _ = run(conf_text(kernel=3, stride=2, pad=1), x)
    assert (y < -1.0).all()
    numpy.testing.assert_allclose(y, ref_pool(x, None, (3, 3, 2, 2, 1, 1), "MAX")[0])


def test_caffe_avg_counts_padding_and_mshadow_ignores_it():
    x = numpy.ones((1, 1, 7, 7))
    _, y, _ = run(conf_text(pool="AVG", kernel=3, stride=2, pad=1), x)
    # corner window holds 4 image cells of 9 (padded cells count in the divisor), inner ones 9
    assert y.shape == (1, 1, 4, 4)
    assert y[0, 0, 0, 0] == pytest.approx(4 / 9) and y[0, 0, 1, 1] == pytest.approx(1.0)
    assert y[0, 0, 0, 1] == pytest.approx(6 / 9) and y[0, 0, 3, 3] == pytest.approx(4 / 9)
    _, y, _ = run(conf_text("kPooling", pool="AVG", kernel=3, stride=2, pad=1), x)
    assert y.shape == (1, 1, 3, 3)
    numpy.testing.assert_allclose(y, 1.0)


def test_cifar_sizes_and_defaults():
    # the CIFAR-10 net: 32 -> 15 (MAX, defaults k3 s2) -> 7 -> 3 (AVG)
    pool1 = build_layer('name: "pool1" type: kCPooling srclayers: "conv1"', [(100, 32, 32, 32)])
    assert pool1.out_shape == (100, 32, 15, 15) and pool1.method == pooling.MAX
    pool2 = build_layer(conf_text(pool="AVG", kernel=3, stride=2), [(100, 32, 15, 15)])
    assert pool2.out_shape == (100, 32, 7, 7)
    pool3 = build_layer(conf_text(pool="AVG", kernel=3, stride=2), [(100, 64, 7, 7)])
    assert pool3.out_shape == (100, 64, 3, 3)


def test_plain_fields_override_x_y_fields():
    layer = build_layer(conf_text(kernel=2, kernel_x=5, kernel_y=4, stride=1, stride_x=3, pad=1, pad_y=0),
                        [(1, 1, 8, 8)])
    assert layer.geom[:6] == (2, 2, 1, 1, 1, 1)
    layer = build_layer(conf_text(kernel_x=3, kernel_y=2, stride_x=1), [(1, 1, 8, 8)])
    assert layer.geom[:6] == (2, 3, 2, 1, 0, 0) and layer.out_shape == (1, 1, 4, 6)


def test_three_d_source_is_one_channel():
    rng = numpy.random.default_rng(5)
    x = distinct(rng, (3, 9, 9))
    g = rng.standard_normal((3, 1, 4, 4))
    layer, y, dx = run(conf_text(kernel=3, stride=2), x, g)
    assert layer.out_shape == (3, 1, 4, 4) and dx.shape == (3, 9, 9)
    want_y, want_dx = ref_pool(x[:, None], g, (3, 3, 2, 2, 0, 0), "MAX")
    numpy.testing.assert_allclose(y, want_y)
    numpy.testing.assert_allclose(dx, want_dx[:, 0])


@pytest.mark.parametrize("method", ["MAX", "AVG"])
@pytest.mark.parametrize("chunk,threads", [(None, False), (3, False), (3, True)])
def test_batch_size_changes_blocks_threads_and_test_phase(method, chunk, threads, monkeypatch):
    # buffers are reallocated for a smaller last batch, the padding must be refilled each time;
    # blocks of 3 images (8 = 3 + 3 + 2, then 4 = 3 + 1), alone or shared between threads
    monkeypatch.setattr(pooling, "AVG_GEMM_MAX_ENTRIES", 0)
    monkeypatch.setitem(parallel.MIN_SPLIT, "blocks", 2 if threads else 1 << 62)
    rng = numpy.random.default_rng(6)
    fields = dict(kernel=3, stride=2, pad=1)
    layer = build_layer(conf_text(pool=method, **fields), [(4, 2, 7, 7)])
    if chunk:
        layer.chunk = chunk
    for B in (4, 2, 4):
        x = -1.0 - rng.random((B, 2, 7, 7))
        g = rng.standard_normal((B, 2, 4, 4))
        want_y, want_dx = ref_pool(x, g, geometry(fields), method)
        for flag in (TEST, TRAIN):
            y = layer.forward(flag, [Source("src", x.copy())])
            numpy.testing.assert_allclose(y, want_y, rtol=1e-12)
        dx = layer.backward(TRAIN, [Source("src", x)], g.copy())[0]
        numpy.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fields,shape,field,expected", [
    (dict(kernel=6), (1, 1, 5, 5), "kernel", "no larger than the padded input height 5"),
    (dict(kernel_x=8, kernel_y=2, pad_x=1), (1, 1, 5, 5), "kernel_x", "padded input width 7"),
    (dict(stride=0), (1, 1, 5, 5), "stride", "a stride >= 1"),
    (dict(stride_y=0), (1, 1, 5, 5), "stride_y", "a stride >= 1"),
    (dict(kernel=0), (1, 1, 5, 5), "kernel", "a kernel size >= 1"),
    (dict(kernel=2, pad=2), (1, 1, 5, 5), "pad", "smaller than the kernel"),
    (dict(pad_x=-1), (1, 1, 5, 5), "pad_x", "a padding >= 0"),
])
def test_bad_config_names_layer_field_expected_and_received(fields, shape, field, expected):
    with pytest.raises(ConfigError) as e:
        build_layer(conf_text(**fields), [shape])
    msg = str(e.value)
    assert "pooling_conf.%s of layer 'pool' (kCPooling)" % field in msg
    assert expected in msg and "Received:" in msg and "help:" in msg


def test_bad_source_shape():
    with pytest.raises(ConfigError, match=r"source shape of layer 'pool'.*4-D.*Received: \(10, 20\)"):
        build_layer(conf_text(), [(10, 20)])


def test_forward_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = numpy.random.default_rng(7)
    x = rng.standard_normal((4, 3, 13, 12))
    for fields in (dict(kernel=3, stride=2), dict(kernel=3, stride=2, pad=1), dict(kernel=2, stride=2),
                   dict(kernel_x=3, kernel_y=2, stride_x=1, stride_y=2, pad_x=1)):
        kh, kw, sh, sw, ph, pw = geometry(fields)
        t = torch.from_numpy(x)
        _, y, _ = run(conf_text(pool="MAX", **fields), x)
        want = F.max_pool2d(t, (kh, kw), (sh, sw), (ph, pw)).numpy()
        numpy.testing.assert_allclose(y, want, rtol=1e-12)
        _, y, _ = run(conf_text(pool="AVG", **fields), x)
        want = F.avg_pool2d(t, (kh, kw), (sh, sw), (ph, pw), count_include_pad=True).numpy()
        numpy.testing.assert_allclose(y, want, rtol=1e-12)
