# covers: singa/recurrent.py, singa/layer.py, singa/compiling.py, singa/netbuild.py, examples/char_rnn.py
"""The recurrent nets through the Python API: rnnlm's classes as SINGA v0.3's binding built them
(SINGA-V0-REST.md 4.8), char-rnn's net from Python, compared with the original job.confs field by field,
and training through the API (BPTT for char-rnn; rnnlm once its runtime layers are registered)."""
import os

import numpy
import pytest

from tests.conftest import CONF_DIR
from singa.errors import ConfigError
from singa.model import (CharRNN, Cluster, Data, Dense, Embedding, GRU, OneHot, Parameter, RMSProp, RNNLM, RNNLabel,
                         SGD, Sequential, Store, UserLossRNNLM)
from singa.proto import job_pb2, read_job_conf, rnnlm_pb2


RNNLM_CONF = os.path.join(CONF_DIR, "rnnlm-job.conf")
CHAR_RNN_CONF = os.path.join(CONF_DIR, "char-rnn-job.conf")


def rnnlm_model(train="examples/rnnlm/train_data.bin", valid="examples/rnnlm/valid_data.bin", vocab=3720, nclass=100,
                dim=15, window=10, workspace="examples/rnnlm/"):
    m = Sequential("rnnlm")
    m.add(Data(load="kData", phase="train", path=train, max_window=window, backend="kvfile"))
    m.add(Data(load="kData", phase="val", path=valid, max_window=window))
    m.add(Embedding(vocab, dim))
    m.add(RNNLM(dim))
    m.compile(loss="user_loss_rnnlm", nclass=nclass, in_dim=vocab, optimizer=SGD(lr=0.1), cluster=Cluster(workspace))
    return m


def char_rnn_model(path="examples/char-rnn/linux_input.txt", vocab="examples/char-rnn/vocab.txt", hidden=512,
                   batchsize=50, unroll=50, workspace="examples/char-rnn/"):
    m = Sequential("char-rnn")
    m.add(CharRNN(path, vocab, batchsize=batchsize, unroll_len=unroll))
    m.add(OneHot(101))
    m.add(RNNLabel())
    m.add(GRU(hidden))
    m.add(Dense(101, init="uniform", w_scale=0.08, b_scale=0.08))
    m.compile(loss="categorical_crossentropy", cluster=Cluster(workspace),
              optimizer=RMSProp(lr=0.002, rho=0.95, lr_type="step", gamma=0.97, change_freq=2000, clip_low=-5,
                                clip_high=5))
    return m


def normalised(net, rename_layers, rename_params):
    """A copy of NetProto ``net`` with layer and param names mapped, and lr_scale/wd_scale 1 (the
    defaults, which SINGA's Parameter always wrote and job.confs leave out) cleared."""
    out = job_pb2.NetProto()
    out.CopyFrom(net)
    for ly in out.layer:
        ly.name = rename_layers.get(ly.name, ly.name)
        srcs = [rename_layers.get(s, s) for s in ly.srclayers]
        del ly.srclayers[:]
        ly.srclayers.extend(srcs)
        for p in ly.param:
            p.name = rename_params.get(p.name, p.name)
            for f in ("lr_scale", "wd_scale"):
                if getattr(p, f) == 1:
                    p.ClearField(f)
    return out


# -- rnnlm, as SINGA's binding built it ------------------------------------------------------------------------
def test_rnnlm_layer_names_and_params_are_singas():
    net = rnnlm_model().jobconf.neuralnet
    assert [ly.name for ly in net.layer] == ["data0", "data0", "embedding1", "hidden2", "loss3"]
    assert [ly.user_type for ly in net.layer] == ["kData", "kData", "kEmbedding", "kHidden", "kLoss"]
    assert [[p.name for p in ly.param] for ly in net.layer] == [[], [], ["w1"], ["w2"], ["w3", "w4"]]
    assert [list(ly.srclayers) for ly in net.layer] == [[], [], ["data0"], ["embedding1"], ["hidden2", "data0"]]
    assert all(ly.type == job_pb2.kUserLayer for ly in net.layer)
    emb = net.layer[2].Extensions[rnnlm_pb2.embedding_conf]
    assert (emb.vocab_size, emb.word_dim) == (3720, 15)
    loss = net.layer[4].Extensions[rnnlm_pb2.loss_conf]
    assert (loss.nclass, loss.vocab_size) == (100, 3720)
    for ly in net.layer[2:]:
        for p in ly.param:     # w_param=None: kUniform -0.3..0.3 (SINGA: NameError for Embedding and RNNLM)
            assert (p.init.type, p.init.low, p.init.high) == (job_pb2.kUniform, pytest.approx(-0.3),
                                                              pytest.approx(0.3))


def test_rnnlm_net_equals_rnnlm_job_conf_but_for_singas_names():
    conf = read_job_conf(RNNLM_CONF).neuralnet
    built = rnnlm_model().jobconf.neuralnet
    # the differences SINGA's binding had: layer names with its counter (data0, embedding1, hidden2, loss3),
    # and lr_scale/wd_scale 1 written into every param; the rest is field by field the same
    same = normalised(built, {"data0": "data", "embedding1": "embedding", "hidden2": "hidden", "loss3": "loss"}, {})
    assert len(same.layer) == len(conf.layer)
    for got, want in zip(same.layer, conf.layer):
        assert got == want, (got, want)
    assert same == conf


def test_embedding_and_rnnlm_take_w_param_and_w_kwargs():
    m = Sequential("x")
    e = Embedding(10, 4, w_param=Parameter(init="gaussian", std=0.1), w_lr=2, w_wd=0)
    h = RNNLM(4, w_std=0.5, w_init="gaussian")
    assert m is not None and e.layer.name == "embedding1" and h.layer.name == "hidden2"
    pe, ph = e.layer.param[0], h.layer.param[0]
    assert (pe.name, pe.init.type, pe.init.std, pe.lr_scale, pe.wd_scale) == ("w1", job_pb2.kGaussian,
                                                                              pytest.approx(0.1), 2, 0)
    assert (ph.name, ph.init.type, ph.init.std) == ("w2", job_pb2.kGaussian, 0.5)
    assert h.dim == 4


def test_user_loss_rnnlm_draws_two_param_numbers():
    Sequential("x")
    loss = UserLossRNNLM(nclass=5, vocab_size=20)
    assert loss.layer.name == "loss1" and [p.name for p in loss.layer.param] == ["w1", "w2"]
    assert Embedding(3, 2).layer.name == "embedding3"       # the counter went on by two, as SINGA's


@pytest.mark.parametrize("call, field", [
    (lambda: Embedding(0, 4), "in_dim"), (lambda: Embedding(4, "x"), "out_dim"),
    (lambda: Embedding(4, 4, w_param="w"), "w_param"), (lambda: Embedding(4, 4, wdim=3), "wdim"),
    (lambda: UserLossRNNLM(nclass=10), "vocab_size"), (lambda: UserLossRNNLM(nclass=30, vocab_size=20), "nclass"),
    (lambda: Data(load="kData", phase="train", path="a", batchsize=4), "batchsize"),
    (lambda: Data(load="kData", phase="train", conf=Store(path="a")), "conf"),
])
def test_bad_rnnlm_arguments_name_the_field(call, field):
    with pytest.raises(ConfigError, match=field):
        call()


def test_kdata_keywords_fill_data_conf_and_no_store():
    d = Data(load="kData", phase="val", path="v.bin", max_window=7)
    conf = d.layer.Extensions[rnnlm_pb2.data_conf]
    assert (conf.path, conf.max_window, conf.HasField("backend")) == ("v.bin", 7, False)
    assert not d.layer.HasField("store_conf") and list(d.layer.include) == [job_pb2.kVal]


def test_compile_user_loss_rnnlm_checks_its_arguments():
    def model():
        m = Sequential("x")
        m.add(Data(load="kData", phase="train", path="t.bin", max_window=3))
        m.add(Embedding(20, 4))
        m.add(RNNLM(4))
        return m
    kw = dict(optimizer=SGD(), cluster=Cluster("ws"))
    with pytest.raises(ConfigError, match="in_dim"):
        model().compile(loss="user_loss_rnnlm", nclass=5, **kw)
    with pytest.raises(ConfigError, match="nclass"):
        model().compile(loss="categorical_crossentropy", nclass=5, **kw)
    m = model()
    m.compile(loss="user_loss_rnnlm", nclass=5, in_dim=20, **kw)
    m.compile(loss="user_loss_rnnlm", nclass=5, in_dim=20, **kw)       # a second compile keeps the one loss
    assert [ly.user_type for ly in m.jobconf.neuralnet.layer] == ["kData", "kEmbedding", "kHidden", "kLoss"]
    s = Sequential("y")
    s.add(Dense(3, activation="softmax"))
    with pytest.raises(ConfigError, match="softmax"):                  # SINGA: silently no loss at all
        s.compile(loss="user_loss_rnnlm", nclass=2, in_dim=3, **kw)


@pytest.mark.parametrize("make", [rnnlm_model, char_rnn_model])
def test_recurrent_models_round_trip_through_a_jobproto(make):
    m = make()
    job = m.to_jobproto()
    back = type(m).from_jobproto(job)
    assert back.to_jobproto() == job


def test_rnnlm_trains_through_the_api(in_tmp):
    from singa.io.rnnlm_data import create_rnnlm_data
    words = ["the cat sat on the mat", "a dog ate the cat", "the mat is red", "a cat is on a dog"] * 20
    for part in ("train", "valid", "test"):
        (in_tmp / ("%s.txt" % part)).write_text("\n".join(words) + "\n")
    s = create_rnnlm_data("train.txt", "valid.txt", "test.txt", class_size=3, out_dir="rnn")
    m = rnnlm_model("rnn/train_data.bin", "rnn/valid_data.bin", vocab=s["vocab_size"], nclass=3, dim=8, window=5,
                    workspace="rnn")
    result = m.fit(alg="bp", nb_epoch=30, seed=0, validate_steps=3)
    assert numpy.isfinite(result.last()["loss"])


# -- char-rnn from Python ---------------------------------------------------------------------------------------
def test_char_rnn_net_is_wired_as_char_rnn_job_conf():
    job = char_rnn_model().jobconf
    net = job.neuralnet
    assert net.unroll_len == 50
    assert [ly.name for ly in net.layer] == ["data0", "onehot0", "label0", "gru1", "layer2", "softmaxloss2"]
    assert [list(ly.srclayers) for ly in net.layer] == [[], ["data0"], ["data0"], ["onehot0"], ["gru1"],
                                                        ["layer2", "label0"]]
    assert [p.name for p in net.layer[3].param] == ["z_hx1", "r_hx1", "c_hx1", "z_hh1", "r_hh1", "c_hh1", "z_b1",
                                                    "r_b1", "c_b1"]


def test_char_rnn_net_equals_char_rnn_job_conf_but_for_names():
    conf = read_job_conf(CHAR_RNN_CONF)
    job = char_rnn_model().jobconf
    layers = {"data0": "data", "onehot0": "onehot", "label0": "label", "layer2": "ip1", "softmaxloss2": "loss"}
    params = {n + "1": n for n in ("z_hx", "r_hx", "c_hx", "z_hh", "r_hh", "c_hh", "z_b", "r_b", "c_b")}
    params.update(w2="w", b2="b")
    same = normalised(job.neuralnet, layers, params)
    # the API's other differences: the data layer is a train-phase one (include kTrain), and Loss writes
    # softmaxloss_conf.topk 1 (the proto's default)
    assert list(same.layer[0].include) == [job_pb2.kTrain]
    del same.layer[0].include[:]
    assert same.layer[5].softmaxloss_conf.topk == 1
    same.layer[5].ClearField("softmaxloss_conf")
    for got, want in zip(same.layer, conf.neuralnet.layer):
        assert got == want, (got, want)
    assert same == conf.neuralnet
    assert job.updater == conf.updater


@pytest.mark.parametrize("call, field", [
    (lambda: CharRNN("", "v.txt"), "path"), (lambda: CharRNN("t.txt", None), "vocab_path"),
    (lambda: CharRNN("t", "v", unroll_len=0), "unroll_len"), (lambda: CharRNN("t", "v", phase="dev"), "phase"),
    (lambda: OneHot(0), "vocab_size"), (lambda: GRU(-1), "dim_hidden"), (lambda: GRU(4, w_sdt=1), "w_sdt"),
    (lambda: RNNLabel(vocab_size=3), "vocab_size"), (lambda: OneHot(3, unroll_conn_type="sideways"), "Unroll"),
])
def test_bad_char_rnn_arguments_name_the_field(call, field):
    with pytest.raises(ConfigError, match=field):
        call()


def test_gru_options_and_conn_types_pass_through():
    Sequential("x")
    g = GRU(8, bias_term=False, w_init="gaussian", w_std=0.2, unroll_conn_type=["onetoone"])
    assert len(g.layer.param) == 6 and not g.layer.gru_conf.bias_term
    assert all(p.init.type == job_pb2.kGaussian and p.init.std == pytest.approx(0.2) for p in g.layer.param)
    assert list(g.layer.unroll_conn_type) == [job_pb2.kUnrollOneToOne]
    g2 = GRU(8, b_value=0.5, b_init="constant")
    assert [p.init.type for p in g2.layer.param] == [job_pb2.kUniform] * 6 + [job_pb2.kConstant] * 3
    assert g2.layer.param[8].init.value == 0.5 and g2.layer.param[8].name == "c_b2"


def test_two_unroll_lengths_are_refused():
    m = Sequential("x")
    m.add(CharRNN("t", "v", unroll_len=5))
    m.add(CharRNN("t2", "v", unroll_len=6, phase="val"))
    m.add(OneHot(3))
    m.add(Dense(3))
    with pytest.raises(ConfigError, match="unroll_len"):
        m.compile(loss="categorical_crossentropy", optimizer=SGD(), cluster=Cluster("ws"))


def _tiny_text(tmp):
    from singa.io.create_data import convert_char_rnn
    rng = numpy.random.default_rng(0)
    words = ["abc", "abd", "bca", "cab", "dd"]
    alphabet = "".join(chr(c) for c in range(32, 127)) + "\t\n"      # 97 characters, as the fortunes text
    (tmp / "raw.txt").write_text(alphabet + " ".join(words[i] for i in rng.integers(0, 5, 3000)) + "\n")
    convert_char_rnn(str(tmp / "raw.txt"), "cr", "text.txt", vocab_size=101)
    return "cr/text.txt", "cr/vocab.txt"


def test_char_rnn_trains_with_bptt_through_the_api(in_tmp, capsys):
    text, vocab = _tiny_text(in_tmp)
    m = char_rnn_model(text, vocab, hidden=16, batchsize=4, unroll=8, workspace="ws")
    m.jobconf.updater.learning_rate.base_lr = 0.02
    result = m.fit(alg="bptt", nb_epoch=30, seed=0, disp_freq=10)
    assert m.jobconf.train_one_batch.alg == job_pb2.kBPTT
    assert "summed over the 8 unrolled copies" in capsys.readouterr().out      # the BPTT worker's log line
    assert result[0]["loss"] == pytest.approx(numpy.log(101), rel=0.05)
    assert result.last()["loss"] < 0.7 * result[0]["loss"]
    assert os.path.isfile(m.last_checkpoint_path)


def test_the_samplers_gru_step_is_torchs_gru_cell():
    torch = pytest.importorskip("torch")
    from examples.char_rnn import gru_step
    rng = numpy.random.default_rng(1)
    V, H = 7, 5
    g = [rng.uniform(-0.5, 0.5, s) for s in [(H, V)] * 3 + [(H, H)] * 3 + [(H,)] * 3]
    cell = torch.nn.GRUCell(V, H).double()
    with torch.no_grad():      # torch's rows are [r, z, n]; SINGA's c is torch's n with b_hn = 0
        cell.weight_ih.copy_(torch.tensor(numpy.concatenate([g[1], g[0], g[2]])))
        cell.weight_hh.copy_(torch.tensor(numpy.concatenate([g[4], g[3], g[5]])))
        cell.bias_ih.copy_(torch.tensor(numpy.concatenate([g[7], g[6], g[8]])))
        cell.bias_hh.zero_()
    h = rng.uniform(-1, 1, H)
    for x in (3, 0, 6):
        want = cell(torch.nn.functional.one_hot(torch.tensor([x]), V).double(), torch.tensor(h[None]))[0].detach()
        h = gru_step(g, x, h)
        numpy.testing.assert_allclose(h, want.numpy(), rtol=1e-12, atol=1e-12)


def test_sampling_is_seeded_and_greedy_is_argmax(in_tmp):
    from examples.char_rnn import sample
    Sequential("x")
    gru, ip = GRU(4), Dense(3)
    rng = numpy.random.default_rng(2)
    params = {p.name: rng.normal(size=s) for p, s in zip(gru.layer.param, [(4, 3)] * 3 + [(4, 4)] * 3 + [(4,)] * 3)}
    params.update({ip.layer.param[0].name: rng.normal(size=(3, 4)) * 3, ip.layer.param[1].name: numpy.zeros(3)})
    vocab = b"xyz"
    a = sample(params, gru, ip, vocab, "x", 40, temperature=1.0, seed=5)
    assert a == sample(params, gru, ip, vocab, "x", 40, temperature=1.0, seed=5) and len(a) == 41
    assert set(a) <= set("xyz")
    greedy = sample(params, gru, ip, vocab, "x", 10, greedy=True, seed=0)
    assert greedy == sample(params, gru, ip, vocab, "x", 10, greedy=True, seed=99)    # no randomness
    cold = sample(params, gru, ip, vocab, "x", 10, temperature=1e-6, seed=3)
    assert cold == greedy                     # temperature -> 0 is the argmax
