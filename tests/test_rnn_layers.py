# covers: singa/layers/gru.py (kGRU, kEmbedding),
#   singa/layers/charrnn.py (kCharRNN, kOneHot, kRNNLabel, kRNNDummy, kArgSort, kCharRNNOutput)
"""The recurrent runtime layers (SINGA-V0-REST.md 2, 3): float64 finite-difference checks of kGRU
(with and without the context source and the biases) and kEmbedding on NumPy and the device
stand-in; forward values against formulas written here; kGRU against a NumPy GRU of SINGA's
formulas and against torch.nn.GRUCell (values and autograd gradients, so the FIXED dh too);
gradients summed over passes through ``Accumulate`` sinks (BPTT); a 3-step unrolled chain of
GRU copies against finite differences; and the error cases."""
import io
import sys

import numpy
import pytest

from singa.backends import Backend
from singa.errors import ConfigError, DataError
from singa.proto import job_pb2
from singa.testing import Source, build_layer, check_layer_gradients, device_backends
from singa.updaters.fused import accumulating, installed

F64 = numpy.float64


def gru_conf(H, nparam=9, name="gru", unroll_index=0):
    params = "".join('param { name: "%s" }' % n for n in
                     ["z_hx", "r_hx", "c_hx", "z_hh", "r_hh", "c_hh", "z_b", "r_b", "c_b"][:nparam])
    return 'name: "%s" type: kGRU unroll_index: %d gru_conf { dim_hidden: %d } %s' % (name, unroll_index, H, params)


def sigmoid(a):
    return 1.0 / (1.0 + numpy.exp(-a))


def singa_gru(x, h, w):
    """SINGA's forward (2.2), written out: w = [W_zx, W_rx, W_cx, W_zh, W_rh, W_ch(, b_z, b_r, b_c)]."""
    b = w[6:] if len(w) == 9 else [0, 0, 0]
    h = numpy.zeros((x.shape[0], w[3].shape[0])) if h is None else h
    z = sigmoid(x @ w[0].T + b[0] + h @ w[3].T)
    r = sigmoid(x @ w[1].T + b[1] + h @ w[4].T)
    c = numpy.tanh(r * (h @ w[5].T) + x @ w[2].T + b[2])
    return (h - c) * z + c


def set_params(layer, rng, scale=0.5):
    vals = [rng.standard_normal(p.shape) * scale for p in layer.params]
    for p, v in zip(layer.params, vals):
        p.set_values(v)
    return vals


# -- gradient checks ------------------------------------------------------------------------------
@pytest.mark.parametrize("nparam", [6, 9])
@pytest.mark.parametrize("context", [False, True])
def test_gru_gradients(nparam, context):
    shapes = [(3, 5)] + ([(3, 4)] if context else [])
    report = check_layer_gradients(gru_conf(4, nparam), shapes)
    assert len(report) == len(shapes) + nparam


def test_gru_gradients_of_a_multidimensional_input():
    check_layer_gradients(gru_conf(3), [(2, 2, 3), (2, 3)])


def test_embedding_gradients_with_repeated_indices():
    conf = 'name: "emb" type: kEmbedding embedding_conf { vocab_size: 7 feature_dim: 3 } param { name: "w" }'
    idx = numpy.array([0, 3, 3, 6, 1, 3], dtype=F64)
    check_layer_gradients(conf, [(6,)], data_srcs={0}, inputs=[idx])


# -- kGRU forward against SINGA's formulas and torch ------------------------------------------------
@pytest.mark.parametrize("nparam", [6, 9])
@pytest.mark.parametrize("context", [False, True])
def test_gru_forward_is_singas_formulas(nparam, context):
    rng = numpy.random.default_rng(1)
    layer = build_layer(gru_conf(5, nparam), [(4, 6)] + ([(4, 5)] if context else []))
    w = set_params(layer, rng)
    x = rng.standard_normal((4, 6))
    h = rng.standard_normal((4, 5)) if context else None
    srcs = [Source("x", x)] + ([Source("h", h)] if context else [])
    y = layer.forward(job_pb2.kTrain, srcs)
    numpy.testing.assert_allclose(y, singa_gru(x, h, w), rtol=1e-12, atol=1e-13)
    assert layer.out_shape == (4, 5) and [p.shape for p in layer.params][:4] == [(5, 6)] * 3 + [(5, 5)]


def test_gru_matches_torch_gru_cell_values_and_gradients():
    """torch.nn.GRUCell: r, z = sigmoid(W_i x + b_i + W_h h + b_h), n = tanh(W_in x + b_in + r * (W_hn h
    + b_hn)), h' = (1 - z) n + z h. SINGA's c also applies r after the hh product, so the two coincide
    with b_ih = [b_r, b_z, b_c] and b_hh = 0 (SINGA has one bias per gate; torch's row order is r, z, n)."""
    torch = pytest.importorskip("torch")
    rng = numpy.random.default_rng(2)
    B, V, H = 4, 6, 5
    layer = build_layer(gru_conf(H), [(B, V), (B, H)])
    w = set_params(layer, rng)
    x, h, g = rng.standard_normal((B, V)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    srcs = [Source("x", x), Source("h", h)]
    y = layer.forward(job_pb2.kTrain, srcs)
    dx, dh = layer.backward(job_pb2.kTrain, srcs, g.copy())

    cell = torch.nn.GRUCell(V, H).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(numpy.concatenate([w[1], w[0], w[2]])))
        cell.weight_hh.copy_(torch.from_numpy(numpy.concatenate([w[4], w[3], w[5]])))
        cell.bias_ih.copy_(torch.from_numpy(numpy.concatenate([w[7], w[6], w[8]])))
        cell.bias_hh.zero_()
    tx = torch.from_numpy(x).requires_grad_()
    th = torch.from_numpy(h).requires_grad_()
    ty = cell(tx, th)
    ty.backward(torch.from_numpy(g))
    numpy.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-13)
    numpy.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(dh, th.grad.numpy(), rtol=1e-10, atol=1e-12)     # the FIXED dh (g*z)
    gih, ghh, gb = cell.weight_ih.grad.numpy(), cell.weight_hh.grad.numpy(), cell.bias_ih.grad.numpy()
    torch_grads = [gih[H:2 * H], gih[:H], gih[2 * H:], ghh[H:2 * H], ghh[:H], ghh[2 * H:],
                   gb[H:2 * H], gb[:H], gb[2 * H:]]
    for p, tg in zip(layer.params, torch_grads):
        numpy.testing.assert_allclose(p.grad, tg, rtol=1e-10, atol=1e-12, err_msg=p.name)


def test_gru_float32_runs_on_numpy_and_the_device_standin():
    rng = numpy.random.default_rng(3)
    x, h = rng.standard_normal((50, 101)), rng.standard_normal((50, 64))
    outs = []
    for backend in [Backend(None)] + list(device_backends()):
        layer = build_layer(gru_conf(64), [(50, 101), (50, 64)], backend, numpy.float32)
        set_params(layer, numpy.random.default_rng(4), 0.08)
        srcs = [Source("x", backend.asarray(x)), Source("h", backend.asarray(h))]
        y = layer.forward(job_pb2.kTrain, srcs)
        dx, dh = layer.backward(job_pb2.kTrain, srcs, backend.asarray(numpy.ones((50, 64))))
        assert y.dtype == numpy.float32 and dh.dtype == numpy.float32
        outs.append([numpy.asarray(backend.to_host(a)) for a in (y, dx, dh)])
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_gru_device_path_runs_one_kernel_each_way_on_the_standin():
    from singa.testing import standin_kernels
    dev = device_backends()[0]
    layer = build_layer(gru_conf(4), [(3, 5), (3, 4)], dev)
    srcs = [Source("x", dev.asarray(numpy.ones((3, 5)), dtype=F64)), Source("h", dev.asarray(numpy.ones((3, 4)),
                                                                                            dtype=F64))]
    before = standin_kernels.launches["elementwise"]
    layer.forward(job_pb2.kTrain, srcs)
    layer.backward(job_pb2.kTrain, srcs, dev.asarray(numpy.ones((3, 4)), dtype=F64))
    assert standin_kernels.launches["elementwise"] - before == 2


# the GRU kernels compile to PTX with every other kernel: tests/test_fused_kernels.py


def test_gru_stacked_param_blocks_and_separate_arrays_agree():
    """On NumPy each param triple is made of row blocks of one array (one GEMM per triple); params whose
    arrays were replaced by separate ones (as sharing may) take three GEMMs, with the same numbers."""
    from singa.layers.gru import _stacked
    rng = numpy.random.default_rng(11)
    x, h, g = rng.standard_normal((3, 5)), rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    results = []
    for stacked in (True, False):
        layer = build_layer(gru_conf(4), [(3, 5), (3, 4)])
        set_params(layer, numpy.random.default_rng(12))
        assert all(_stacked([p.data for p in layer.params[k:k + 3]]) is not None for k in (0, 3, 6))
        if not stacked:
            for p in layer.params:
                p.data, p.grad = p.data.copy(), p.grad.copy()
            assert _stacked([p.data for p in layer.params[0:3]]) is None
        srcs = [Source("x", x), Source("h", h)]
        y = layer.forward(job_pb2.kTrain, srcs).copy()
        dx, dh = layer.backward(job_pb2.kTrain, srcs, g.copy())
        results.append([y, dx.copy(), dh.copy()] + [p.grad.copy() for p in layer.params])
    for a, b in zip(*results):
        numpy.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)


def test_gru_gives_no_input_gradient_to_a_grad_free_source():
    layer = build_layer(gru_conf(3), [(2, 4)])
    set_params(layer, numpy.random.default_rng(5))
    onehot = Source("onehot", numpy.eye(4)[:2])
    onehot.grad_free = True
    layer.forward(job_pb2.kTrain, [onehot])
    assert layer.backward(job_pb2.kTrain, [onehot], numpy.ones((2, 3))) == [None]


# -- BPTT: gradients summed through the sinks -----------------------------------------------------------
def _one_pass(layer, srcs, g):
    layer.forward(job_pb2.kTrain, srcs)
    layer.backward(job_pb2.kTrain, srcs, g.copy())


def test_gru_and_embedding_accumulate_through_accumulate_sinks():
    rng = numpy.random.default_rng(6)
    gru = build_layer(gru_conf(4), [(3, 5), (3, 4)])
    set_params(gru, rng)
    gsrcs = [Source("x", rng.standard_normal((3, 5))), Source("h", rng.standard_normal((3, 4)))]
    emb = build_layer('name: "e" type: kEmbedding embedding_conf { vocab_size: 6 feature_dim: 2 } param { name: "w" }',
                      [(3,)])
    set_params(emb, rng)
    esrcs = [Source("data", numpy.array([5.0, 0.0, 5.0]), is_data=True)]
    for layer, srcs, g in ((gru, gsrcs, rng.standard_normal((3, 4))), (emb, esrcs, rng.standard_normal((3, 2)))):
        _one_pass(layer, srcs, g)
        once = [p.grad.copy() for p in layer.params]
        for p in layer.params:
            p.grad[...] = 0
        with installed(accumulating(layer.params)):
            _one_pass(layer, srcs, g)
            _one_pass(layer, srcs, g)
        for p, o in zip(layer.params, once):
            numpy.testing.assert_allclose(p.grad, 2 * o, rtol=1e-12, err_msg=p.name)
        _one_pass(layer, srcs, g)      # without sinks: overwritten again
        for p, o in zip(layer.params, once):
            numpy.testing.assert_allclose(p.grad, o, rtol=1e-12, err_msg=p.name)


def test_three_unrolled_gru_copies_sum_the_true_gradient():
    """Copies 0..2 share their params (as the unroller shares them); with Accumulate sinks, back-propagating
    dh through the chain gives the finite-difference gradient of sum_t y_t * R_t."""
    rng = numpy.random.default_rng(7)
    B, V, H, T = 2, 3, 4, 3
    copies = [build_layer(gru_conf(H, unroll_index=t), [(B, V)] + ([(B, H)] if t else [])) for t in range(T)]
    for c in copies[1:]:
        c.params = copies[0].params
    set_params(copies[0], rng)
    xs = [rng.standard_normal((B, V)) for _ in range(T)]
    rs = [rng.standard_normal((B, H)) for _ in range(T)]

    def run():
        srcs, total = [], 0.0
        for t, c in enumerate(copies):
            s = [Source("x%d" % t, xs[t])] + ([copies[t - 1]] if t else [])
            srcs.append(s)
            total += float(numpy.sum(c.forward(job_pb2.kTrain, s) * rs[t]))
        return total, srcs

    _, srcs = run()
    params = copies[0].params
    for p in params:
        p.grad[...] = 0
    with installed(accumulating(params)):
        dh = None
        for t in reversed(range(T)):
            g = rs[t] + (0 if dh is None else dh)
            out = copies[t].backward(job_pb2.kTrain, srcs[t], g)
            dh = out[1] if t else None
    eps = 1e-6
    for p in params:
        for idx in [tuple(int(i) for i in numpy.unravel_index(k, p.shape)) for k in range(0, p.size, 3)]:
            v = p.data[idx]
            p.data[idx] = v + eps
            fp = run()[0]
            p.data[idx] = v - eps
            fm = run()[0]
            p.data[idx] = v
            assert abs(p.grad[idx] - (fp - fm) / (2 * eps)) < 1e-7, (p.name, idx)


# -- kGRU errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [5, 7, 8])
def test_gru_refuses_a_param_count_other_than_6_or_9(n):
    with pytest.raises(ConfigError, match=r"(?s)param of layer 'gru' \(kGRU\).*Expected 6 params.*%d param" % n):
        build_layer(gru_conf(3, n), [(2, 4)])


def test_gru_context_of_the_wrong_width_names_the_layer_and_field():
    with pytest.raises(ConfigError, match=r"(?s)srclayers\[1\] \(the context\) of layer 'gru'.*dim_hidden 3.*help:"):
        build_layer(gru_conf(3), [(2, 4), (2, 5)])
    layer = build_layer(gru_conf(3), [(2, 4), (2, 3)])
    with pytest.raises(ConfigError, match=r"srclayers\[1\].*'prev' of shape \(2, 7\)"):
        layer.forward(job_pb2.kTrain, [Source("x", numpy.zeros((2, 4))), Source("prev", numpy.zeros((2, 7)))])


def test_gru_refuses_three_sources_and_a_zero_dim_hidden():
    with pytest.raises(ConfigError, match="srclayers"):
        build_layer(gru_conf(3), [(2, 4), (2, 3), (2, 3)])
    with pytest.raises(ConfigError, match="dim_hidden"):
        build_layer(gru_conf(0), [(2, 4)])


# -- kEmbedding -----------------------------------------------------------------------------------------
def emb_conf(V=5, F=3, unroll_index=0):
    return ('name: "emb" type: kEmbedding unroll_index: %d embedding_conf { vocab_size: %d feature_dim: %d } '
            'param { name: "w" }' % (unroll_index, V, F))


class Blobs:
    """A kCharRNN stand-in: several (B,) blobs in ``datavec``."""

    def __init__(self, *rows, vocab_size=None):
        self.name = "data"
        self.datavec = [numpy.asarray(r, dtype=F64) for r in rows]
        self.data = self.datavec[0]
        self.is_data = True
        if vocab_size is not None:
            self.vocab_size = vocab_size


def test_embedding_forward_reads_its_unroll_index_blob():
    layer = build_layer(emb_conf(unroll_index=1), [(3,)])
    w = set_params(layer, numpy.random.default_rng(8))[0]
    y = layer.forward(job_pb2.kTrain, [Blobs([0, 0, 0], [4, 1, 4])])
    numpy.testing.assert_array_equal(y, w[[4, 1, 4]])
    assert layer.backward(job_pb2.kTrain, [Blobs([0, 0, 0], [4, 1, 4])], numpy.ones((3, 3))) == [None]
    expect = numpy.zeros((5, 3))
    expect[4], expect[1] = 2, 1
    numpy.testing.assert_array_equal(layer.weight.grad, expect)


def test_embedding_index_out_of_range_and_bad_conf():
    layer = build_layer(emb_conf(), [(2,)])
    with pytest.raises(DataError, match=r"(?s)layer 'emb' \(kEmbedding\).*\[0, 5\).*embedding_conf.vocab_size.*5"):
        layer.forward(job_pb2.kTrain, [Source("d", numpy.array([1.0, 5.0]))])
    with pytest.raises(ConfigError, match="embedding_conf.feature_dim"):
        build_layer(emb_conf(F=0), [(2,)])


# -- kCharRNN -------------------------------------------------------------------------------------------
def char_rnn(tmp_path, text, vocab, B=2, U=3, name="data"):
    (tmp_path / "text.txt").write_bytes(text)
    (tmp_path / "vocab.txt").write_bytes(vocab)
    conf = ('name: "%s" type: kCharRNN char_rnn_conf { path: "%s" vocab_path: "%s" batchsize: %d unroll_len: %d }'
            % (name, tmp_path / "text.txt", tmp_path / "vocab.txt", B, U))
    layer = build_layer(conf, [])
    layer.load()
    return layer


def test_char_rnn_blobs_are_positions_in_the_vocab_and_wrap_in_the_segment(tmp_path):
    text, vocab = b"abcdefghijklmnopqrstu", b"utsrqponmlkjihgfedcba"    # 21 chars: segments of 10
    layer = char_rnn(tmp_path, text, vocab, B=2, U=3)
    assert layer.vocab_size == 21 and layer.out_shape == (2,) and layer.is_data and layer.grad_free
    idx = {c: vocab.index(c) for c in text}
    # FIX of the end-of-buffer read: offsets 0, 3, 6 read [o, o+3] inside the segment [0, 10); 9 would
    # read past it, so the next call starts again at 0
    for offset in (0, 3, 6, 0, 3):
        data, labels = layer.next_batch()
        assert labels is None and len(layer.datavec) == 4 and data is layer.datavec[0]
        for l in range(4):
            numpy.testing.assert_array_equal(layer.datavec[l], [idx[text[offset + l]], idx[text[10 + offset + l]]])


def test_char_rnn_position_saves_and_restores_the_stream(tmp_path):
    text = bytes(range(65, 65 + 40))
    layer = char_rnn(tmp_path, text, text, B=2, U=3)      # segments of 20: offsets 0, 3, ..., 15, 0
    for _ in range(4):
        layer.forward(job_pb2.kTrain, [])
    saved = layer.pos
    after = [layer.forward(job_pb2.kTrain, []).copy() for _ in range(3)]
    other = char_rnn(tmp_path, text, text, B=2, U=3)
    other.pos = saved
    for a in after:
        numpy.testing.assert_array_equal(other.forward(job_pb2.kTrain, []), a)
    with pytest.raises(DataError, match=r"position 17 for layer 'data' \(kCharRNN\).*\[0, 16\]"):
        other.pos = 17


def test_char_rnn_read_part_reads_its_rows_and_strides(tmp_path):
    layer = char_rnn(tmp_path, bytes(range(65, 65 + 40)), bytes(range(65, 65 + 40)), B=4, U=2)    # segments of 10
    layer.read_part(1, 3, 8)         # rows 1 and 2, two batches per call
    assert layer.out_shape == (2,)
    layer.forward(job_pb2.kTrain, [])
    numpy.testing.assert_array_equal(layer.datavec[2], [12, 22])
    layer.forward(job_pb2.kTrain, [])
    numpy.testing.assert_array_equal(layer.datavec[0], [14, 24])
    with pytest.raises(ValueError):
        layer.read_part(0, 4, 6)


def test_char_rnn_errors(tmp_path):
    with pytest.raises(DataError, match=r"(?s)char_rnn_conf.vocab_path.*layer 'data' \(kCharRNN\).*each "
                                        r"character once.*repeating b'a'"):
        char_rnn(tmp_path, b"abcabcabcabc", b"abca")
    with pytest.raises(DataError, match=r"(?s)Invalid text .* for layer 'data' \(kCharRNN\).*at least batchsize \* "
                                        r"\(unroll_len \+ 1\) = 2 \* 4 = 8.*Received: 7"):
        char_rnn(tmp_path, b"abcabca", b"abc")
    with pytest.raises(DataError, match=r"(?s)only characters of the vocabulary.*b'x' at byte 3"):
        char_rnn(tmp_path, b"abcxabcabc", b"abc")
    conf = ('name: "data" type: kCharRNN char_rnn_conf { path: "%s" vocab_path: "%s" batchsize: 2 }'
            % (tmp_path / "none.txt", tmp_path / "vocab.txt"))
    layer = build_layer(conf, [])      # as in SINGA the files are read at the first batch
    assert layer.out_shape == (2,)
    with pytest.raises(DataError, match=r"char_rnn_conf.path.*none.txt"):
        layer.forward(job_pb2.kTrain, [])
    conf = 'name: "data" type: kCharRNN char_rnn_conf { path: "x" vocab_path: "%s" }' % (tmp_path / "no-vocab.txt")
    with pytest.raises(DataError, match=r"char_rnn_conf.vocab_path.*no-vocab.txt"):
        build_layer(conf, []).next_batch()
    with pytest.raises(DataError, match=r"char_rnn_conf.vocab_path.*no-vocab.txt"):
        build_layer(conf, []).vocab_size


def test_char_rnn_files_are_bytes_and_corrupt_ones_are_data_errors(tmp_path):
    # a character is a byte: vocab.txt and the text need not be UTF-8
    text, vocab = b"\xff\xfe\x00a\xc3" * 4, b"a\xc3\x00\xfe\xff"
    layer = char_rnn(tmp_path, text, vocab, B=2, U=3)
    assert layer.vocab_size == 5
    layer.next_batch()
    numpy.testing.assert_array_equal(layer.datavec[0], [4, 4])         # rows start at bytes 0 and 10: 0xff
    out = build_layer('name: "out" type: kCharRNNOutput char_rnn_conf { vocab_path: "%s" }' % (tmp_path / "vocab.txt"),
                      [(2,)])
    out.stream = io.StringIO()
    out.forward(job_pb2.kTest, [layer])
    assert out.stream.getvalue() == "\ufffd\ufffd"                    # 0xff is no UTF-8: printed as U+FFFD
    with pytest.raises(DataError, match=r"(?s)char_rnn_conf.vocab_path` of layer 'data' \(kCharRNN\).*"
                                        r"each character once. Received: .*vocab.txt, an empty file"):
        char_rnn(tmp_path, b"abcabcabc", b"")
    with pytest.raises(DataError, match=r"(?s)Invalid text .*text.txt .*= 8 characters.*Received: 0"):
        char_rnn(tmp_path, b"", b"abc")
    # a UTF-8 text cut inside a character still reads (its bytes are in the vocabulary); the same text in
    # Latin-1 against the UTF-8 text's vocab.txt is an error at its first foreign byte
    utf8 = "caf\u00e9 ".encode() * 3
    assert char_rnn(tmp_path, utf8 + b"\xc3", bytes(sorted(set(utf8))), B=2, U=3).segment == 9
    with pytest.raises(DataError, match=r"only characters of the vocabulary .*vocab.txt. Received: b'\\xe9' at byte 3"):
        char_rnn(tmp_path, "caf\u00e9 ".encode("latin-1") * 3, bytes(sorted(set(utf8))))


# -- kOneHot, kRNNLabel ------------------------------------------------------------------------------------
def onehot_conf(D=4, unroll_index=0):
    return 'name: "onehot" type: kOneHot unroll_index: %d onehot_conf { vocab_size: %d }' % (unroll_index, D)


def test_onehot_and_label_read_blobs_i_and_i_plus_1():
    src = Blobs([0, 1, 2], [3, 0, 3], [1, 1, 2])
    oh = build_layer(onehot_conf(unroll_index=1), [(3,)])
    y = oh.forward(job_pb2.kTrain, [src])
    numpy.testing.assert_array_equal(y, numpy.eye(4)[[3, 0, 3]])
    assert oh.grad_free and oh.backward(job_pb2.kTrain, [src], None) == [None]
    lab = build_layer('name: "label" type: kRNNLabel unroll_index: 1', [(3,)])
    lab.forward(job_pb2.kTrain, [src])
    assert lab.aux.dtype == numpy.int32 and lab.grad_free
    numpy.testing.assert_array_equal(lab.aux, [1, 1, 2])
    with pytest.raises(ConfigError, match=r"unroll_index of layer 'label' \(kRNNLabel\).*has 3"):
        build_layer('name: "label" type: kRNNLabel unroll_index: 2', [(3,)]).forward(job_pb2.kTrain, [src])


def test_onehot_of_a_single_blob_source_and_its_errors():
    oh = build_layer(onehot_conf(), [(2,)])
    numpy.testing.assert_array_equal(oh.forward(job_pb2.kTest, [Source("dummy", numpy.array([[2.0], [1.0]]))]),
                                     numpy.eye(4)[[2, 1]])
    for bad in ([0.0, 4.0], [-1.0, 0.0], [0.5, 1.0]):
        with pytest.raises(DataError, match=r"(?s)layer 'onehot' \(kOneHot\).*\[0, 4\).*onehot_conf.vocab_size"):
            oh.forward(job_pb2.kTrain, [Source("d", numpy.array(bad))])
    with pytest.raises(ConfigError, match=r"(?s)onehot_conf.vocab_size.*'data' \(5\).*Received: 4"):
        oh.forward(job_pb2.kTrain, [Blobs([0, 1], vocab_size=5)])
    with pytest.raises(ConfigError, match="onehot_conf.vocab_size"):
        build_layer(onehot_conf(-1), [(2,)])
    unset = build_layer('name: "onehot" type: kOneHot', [(2,)])      # SINGA's default 0: builds, then says so
    assert unset.out_shape == (2, 0)
    with pytest.raises(ConfigError, match=r"(?s)onehot_conf.vocab_size.*Received: 0 \(unset\).*help:"):
        unset.forward(job_pb2.kTrain, [Source("d", numpy.array([1.0, 0.0]))])


def test_onehot_on_the_device_standin():
    for dev in device_backends():
        oh = build_layer(onehot_conf(), [(2,)], dev)
        y = oh.forward(job_pb2.kTrain, [Source("d", dev.asarray(numpy.array([3.0, 0.0]), dtype=F64))])
        numpy.testing.assert_array_equal(dev.to_host(y), numpy.eye(4)[[3, 0]])


# -- kRNNDummy, kArgSort, kCharRNNOutput --------------------------------------------------------------------
def dummy_conf(extra='shape: 2 shape: 3 integer: true low: 0 high: 5'):
    return 'name: "dummy" type: kRNNDummy rnn_dummy_conf { dynamic_srclayer: "argsort" %s }' % extra


def test_rnn_dummy_draws_from_its_seeded_stream_or_passes_its_source():
    layer = build_layer(dummy_conf(), [])
    layer.rng = numpy.random.default_rng(9)
    y = layer.forward(job_pb2.kTest, [])
    numpy.testing.assert_array_equal(y, numpy.floor(numpy.random.default_rng(9).uniform(0, 5, (2, 3))))
    assert layer.dynamic_src == "0#argsort" and layer.grad_free
    real = build_layer(dummy_conf("shape: 4 low: -1 high: 1"), [])
    real.rng = numpy.random.default_rng(10)
    numpy.testing.assert_array_equal(real.forward(job_pb2.kTest, []),
                                     numpy.random.default_rng(10).uniform(-1, 1, (4,)))
    fed = layer.forward(job_pb2.kTest, [Source("0#argsort", numpy.arange(6.0).reshape(6, 1))])
    numpy.testing.assert_array_equal(fed, numpy.arange(6.0).reshape(2, 3))
    with pytest.raises(ConfigError, match=r"source of layer 'dummy' \(kRNNDummy\).*6 values"):
        layer.forward(job_pb2.kTest, [Source("a", numpy.zeros(5))])
    with pytest.raises(ConfigError, match="test nets only"):
        layer.backward(job_pb2.kTrain, [], numpy.zeros((2, 3)))
    with pytest.raises(ConfigError, match="rnn_dummy_conf.low/high"):
        build_layer(dummy_conf("shape: 1 low: 3 high: 3"), [])
    with pytest.raises(ConfigError, match="rnn_dummy_conf.shape"):
        build_layer(dummy_conf("low: 0 high: 3"), [])


def test_argsort_ties_go_to_the_larger_index():
    x = numpy.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, 1.0, 5.0, 4.0]])
    top1 = build_layer('name: "a" type: kArgSort', [(3, 4)])
    numpy.testing.assert_array_equal(top1.forward(job_pb2.kTest, [Source("p", x)]), [[2], [3], [2]])
    top3 = build_layer('name: "a" type: kArgSort argsort_conf { topk: 3 }', [(3, 4)])
    expect = [sorted(range(4), key=lambda j: (-row[j], -j))[:3] for row in x]     # by (value, index), descending
    numpy.testing.assert_array_equal(top3.forward(job_pb2.kTest, [Source("p", x)]), expect)
    for dev in device_backends():
        layer = build_layer('name: "a" type: kArgSort argsort_conf { topk: 3 }', [(3, 4)], dev)
        numpy.testing.assert_array_equal(dev.to_host(layer.forward(job_pb2.kTest, [Source("p", dev.asarray(x))])),
                                         expect)
    with pytest.raises(ConfigError, match=r"argsort_conf.topk of layer 'a' \(kArgSort\).*\[1, 4\]"):
        build_layer('name: "a" type: kArgSort argsort_conf { topk: 5 }', [(3, 4)])


def test_char_rnn_output_writes_and_flushes_the_decoded_chars(tmp_path, capsys):
    (tmp_path / "vocab.txt").write_bytes("ab\n\u00e9".encode())     # e-acute is two bytes: indices 3 and 4
    conf = 'name: "out" type: kCharRNNOutput char_rnn_conf { vocab_path: "%s" }' % (tmp_path / "vocab.txt")
    layer = build_layer(conf, [(3, 1)])

    class Stream(io.StringIO):
        flushes = 0

        def flush(self):
            Stream.flushes += 1

    layer.stream = Stream()
    for idx in ([[1.0], [0.0], [2.0]], [[3.0]], [[4.0]]):     # the two bytes of one char in two calls
        layer.forward(job_pb2.kTest, [Source("argsort", numpy.array(idx))])
    assert layer.stream.getvalue() == "ba\n\u00e9" and Stream.flushes == 3
    layer.stream = None
    layer.forward(job_pb2.kTest, [Source("argsort", numpy.array([[0.0, 1.0]]))])     # topk 2: the first column
    assert capsys.readouterr().out == "a"
    with pytest.raises(DataError, match=r"layer 'out' \(kCharRNNOutput\).*\[0, 5\)"):
        layer.forward(job_pb2.kTest, [Source("argsort", numpy.array([[5.0]]))])
    assert sys.stdout is not None


def test_two_hand_unrolled_steps_of_char_rnn_feed_softmax_loss(tmp_path):
    """kCharRNN -> kOneHot/kRNNLabel copies i -> kGRU copies -> kInnerProduct -> kSoftmaxLoss, wired by hand
    as the unroller wires them: the loss reads kRNNLabel's aux, the GRU gives the one-hot no gradient."""
    text = b"hello world, hello char-rnn. " * 4
    vocab = bytes(sorted(set(text)))
    data = char_rnn(tmp_path, text, vocab, B=2, U=2)
    V = data.vocab_size
    data.forward(job_pb2.kTrain, [])
    params = 'param { name: "w" } param { name: "b" }'
    total = 0.0
    prev = None
    for i in range(2):
        oh = build_layer(onehot_conf(V, unroll_index=i), [(2,)])
        lab = build_layer('name: "label" type: kRNNLabel unroll_index: %d' % i, [(2,)])
        gru = build_layer(gru_conf(3, unroll_index=i), [(2, V)] + ([(2, 3)] if prev else []))
        set_params(gru, numpy.random.default_rng(13))
        ip = build_layer('name: "ip" type: kInnerProduct innerproduct_conf { num_output: %d } %s' % (V, params),
                         [(2, 3)])
        loss = build_layer('name: "loss" type: kSoftmaxLoss', [(2, V), (2,)])
        oh.forward(job_pb2.kTrain, [data])
        lab.forward(job_pb2.kTrain, [data])
        gru.forward(job_pb2.kTrain, [oh] + ([prev] if prev else []))
        ip.forward(job_pb2.kTrain, [gru])
        loss.forward(job_pb2.kTrain, [ip, lab])
        numpy.testing.assert_array_equal(lab.aux, [vocab.index(text[i + 1]), vocab.index(text[len(text) // 2 + i + 1])])
        total += loss.metrics()["loss"]
        assert gru.backward(job_pb2.kTrain, [oh] + ([prev] if prev else []), numpy.ones((2, 3)))[0] is None
        prev = gru
    assert numpy.isclose(total, 2 * numpy.log(V))       # zero ip weights: uniform predictions


def test_char_rnn_label_and_dummy_give_device_arrays_on_the_standin(tmp_path):
    (tmp_path / "text.txt").write_bytes(b"abcabcabcabcabcabc")
    (tmp_path / "vocab.txt").write_bytes(b"cba")
    conf = ('name: "data" type: kCharRNN char_rnn_conf { path: "%s" vocab_path: "%s" batchsize: 2 unroll_len: 2 }'
            % (tmp_path / "text.txt", tmp_path / "vocab.txt"))
    for dev in device_backends():
        data = build_layer(conf, [], dev)
        data.forward(job_pb2.kTrain, [])
        assert all(type(b) is type(dev.asarray(numpy.zeros(1))) for b in data.datavec)
        lab = build_layer('name: "label" type: kRNNLabel unroll_index: 1', [(2,)], dev)
        lab.forward(job_pb2.kTrain, [data])
        numpy.testing.assert_array_equal(dev.to_host(lab.aux), [0, 0])      # blob 2: "c" at 2 and at 11
        dummy = build_layer(dummy_conf("shape: 1 integer: true low: 0 high: 3"), [], dev)
        dummy.rng = numpy.random.default_rng(14)
        y = dummy.forward(job_pb2.kTest, [])
        assert type(y) is type(data.data) and 0 <= float(y[0]) < 3
