# covers: singa/unroll.py, singa/neuralnet.py (unrolled nets: copies, edges, shared params)
"""Unrolling (SINGA-V0-REST.md 1.2-1.4, 1.6): copies named ``{i}#name`` with their unroll_index,
edges by unroll_conn_type and shift, params ``{i}#p`` whose copies i > 0 share values and
gradient with copy 0's, the kGRU state edge, char-rnn's 251 layers, and the errors SINGA did
not raise. The stand-in layers here (a per-step slice of a sequence record) also serve
tests/test_bptt.py."""
import os

import numpy as np
import pytest

from tests.conftest import CONF_DIR
from singa.backends import Backend
from singa.errors import ConfigError
from singa.layers import LAYERS, USER_LAYERS, Layer, register
from singa.neuralnet import NeuralNet
from singa.proto import job_pb2, parse_job_conf
from singa.random import RandomStreams
from singa.unroll import is_unroll_copy, unroll

CHAR_RNN = os.path.join(CONF_DIR, "char-rnn-job.conf")


class StepLayer(Layer):
    """Time step t (its unroll_index) of a sequence record: ``data`` is the t-th slice of V values
    (``dummy_conf.shape: [V, H]``) of its first source's row, zero-padded to width H, plus its
    second source (the previous step's hidden state, width H) when it has one; ``aux`` is the
    class of slice t-1 (slice 0's for t = 0): remembering the previous input is the task."""

    def setup(self, src_shapes):
        self.V, self.H = (int(d) for d in self.conf.dummy_conf.shape)
        if len(src_shapes) == 2 and tuple(src_shapes[1][1:]) != (self.H,):
            raise ConfigError("kTestStep '%s': the state source has width %s, not %d" % (
                self.name, src_shapes[1][1:], self.H))
        self.out_shape = (src_shapes[0][0], self.H)
        return self.out_shape

    def forward(self, flag, srcs):
        t, V = self.conf.unroll_index, self.V
        x = srcs[0].data
        self.data = srcs[1].data.copy() if len(srcs) > 1 else self.xp.zeros((x.shape[0], self.H), x.dtype)
        self.data[:, :V] += x[:, t * V:(t + 1) * V]
        prev = x[:, max(t - 1, 0) * V:max(t, 1) * V]
        self.aux = self.xp.argmax(prev, axis=1).astype(np.int32)
        return self.data

    def backward(self, flag, srcs, grad):
        return [None, grad] if len(srcs) > 1 else [None]


if "kTestStep" not in USER_LAYERS:     # tests/test_bptt.py imports this module a second time
    register("kTestStep")(StepLayer)


def rnn_conf(T=3, V=4, H=12, shift=1, net_len=True, extra=""):
    """A recurrent net of today's layers: h_t = stanh(W (x_t + h_{t-1}) + b), y_t = V h_t + c (x_t
    zero-padded to the width H of h)."""
    return """
neuralnet {
  %(net)s
  layer { name: "data" type: kRecordInput unroll_len: 1
          store_conf { backend: "kvfile" path: "PATH" batchsize: 5 shape: %(TV)d } }
  layer { name: "step" user_type: "kTestStep" srclayers: "data" srclayers: "act"
          unroll_conn_type: kUnrollOneToAll unroll_conn_type: kUnrollOneToOne shift: 0 shift: %(shift)d
          dummy_conf { shape: %(V)d shape: %(H)d } %(own)s }
  layer { name: "ip" type: kInnerProduct srclayers: "step" innerproduct_conf { num_output: %(H)d }
          param { name: "w" init { type: kGaussian std: 0.5 } }
          param { name: "b" init { type: kConstant value: 0.1 } } }
  layer { name: "act" type: kSTanh srclayers: "ip" }
  layer { name: "out" type: kInnerProduct srclayers: "act" innerproduct_conf { num_output: %(V)d }
          param { name: "v" init { type: kGaussian std: 0.5 } }
          param { name: "c" init { type: kConstant value: 0 } } }
  layer { name: "loss" type: kSoftmaxLoss srclayers: "out" srclayers: "step" }
  %(extra)s
}
""" % dict(net="unroll_len: %d" % T if net_len else "", TV=T * V, V=V, H=H, shift=shift, extra=extra,
           own="" if net_len else "unroll_len: %d" % T)


def protos(conf, phase=job_pb2.kTrain):
    job = parse_job_conf(conf)
    return {lp.name: lp for lp in unroll(list(job.neuralnet.layer), job.neuralnet.unroll_len)}


def srcs(ps, name):
    return list(ps[name].srclayers)


def test_copies_are_named_indexed_and_cleared():
    ps = protos(rnn_conf(T=3))
    assert sorted(ps) == sorted(["0#data"] + ["%d#%s" % (i, n) for i in range(3)
                                             for n in ("step", "ip", "act", "out", "loss")])
    for i in range(3):
        c = ps["%d#step" % i]
        assert c.unroll_index == i
        assert not c.HasField("unroll_len") and not c.unroll_conn_type and not c.shift
    assert ps["0#data"].unroll_index == 0 and not ps["0#data"].HasField("unroll_len")


def test_params_are_renamed_and_copies_share_from_copy_0():
    ps = protos(rnn_conf(T=3))
    assert [(p.name, p.share_from) for p in ps["0#ip"].param] == [("0#w", ""), ("0#b", "")]
    assert [(p.name, p.share_from) for p in ps["2#ip"].param] == [("2#w", "0#w"), ("2#b", "0#b")]
    assert is_unroll_copy(ps["2#ip"], ps["2#ip"].param[0]) and not is_unroll_copy(ps["0#ip"], ps["0#ip"].param[0])


def test_a_user_share_from_is_kept_on_copy_0_and_overridden_on_the_others():
    conf = rnn_conf(T=2).replace('param { name: "v"', 'param { name: "v" share_from: "w"')
    ps = protos(conf)
    assert ps["0#out"].param[0].share_from == "w"
    assert ps["1#out"].param[0].share_from == "0#v"


def test_one_to_one_with_shift_one_to_all_and_first_to_last():
    ps = protos(rnn_conf(T=3, shift=1))
    assert srcs(ps, "0#step") == ["0#data"]                 # j < shift: nothing from act
    assert srcs(ps, "1#step") == ["0#data", "0#act"]
    assert srcs(ps, "2#step") == ["0#data", "1#act"]
    assert srcs(ps, "2#ip") == ["2#step"]                   # default: one to one, shift 0
    assert srcs(ps, "1#loss") == ["1#out", "1#step"]
    ps = protos(rnn_conf(T=3, shift=2))
    assert srcs(ps, "1#step") == ["0#data"] and srcs(ps, "2#step") == ["0#data", "0#act"]
    extra = 'layer { name: "last" type: kSTanh srclayers: "act" unroll_conn_type: kUnrollFirstToLast }'
    ps = protos(rnn_conf(T=3, extra=extra))
    assert srcs(ps, "0#last") == ["2#act"] and srcs(ps, "1#last") == [] and srcs(ps, "2#last") == []
    extra = ('layer { name: "all" type: kSTanh unroll_len: 1 srclayers: "act" '
             'unroll_conn_type: kUnrollOneToAll }')
    ps = protos(rnn_conf(T=3, extra=extra))
    assert srcs(ps, "0#all") == ["0#act", "1#act", "2#act"] and "1#all" not in ps


def test_a_layer_unroll_len_overrides_the_nets():
    ps = protos(rnn_conf(T=2, net_len=False).replace('name: "ip" type', 'name: "ip" unroll_len: 2 type')
                .replace('name: "act" type', 'name: "act" unroll_len: 2 type')
                .replace('name: "out" type', 'name: "out" unroll_len: 2 type')
                .replace('name: "loss" type', 'name: "loss" unroll_len: 2 type'))
    assert "1#ip" in ps and "1#step" in ps and "1#data" not in ps


def test_a_gru_copy_reads_the_previous_copy_last():
    conf = """neuralnet { unroll_len: 3
      layer { name: "data" type: kCharRNN unroll_len: 1 char_rnn_conf { unroll_len: 3 } }
      layer { name: "x" type: kOneHot srclayers: "data" unroll_conn_type: kUnrollOneToAll }
      layer { name: "g" type: kGRU srclayers: "x" } }"""
    ps = protos(conf)
    assert srcs(ps, "0#g") == ["0#x"] and srcs(ps, "1#g") == ["1#x", "0#g"] and srcs(ps, "2#g") == ["2#x", "1#g"]


@pytest.mark.parametrize("edit, match", [
    (("shift: 0 shift: 1", "shift: 0 shift: -1"), r"`shift` of layer 'step'.*>= 0.*Received: -1"),
    (("kUnrollOneToOne shift", "kUnrollCustomized shift"), r"`unroll_conn_type` of layer 'step'.*kUnrollCustomized"),
    (('srclayers: "act"', 'srclayers: "akt"'), r"`srclayers` of layer 'step'.*Received: 'akt'"),
    (("unroll_len: 1", "unroll_len: 0"), r"`unroll_len` of layer 'data'.*>= 1.*Received: 0"),
    (("kUnrollOneToAll unroll_conn_type", "kUnrollOneToOne unroll_conn_type"),
     r"(?s)`unroll_len` of layer 'step'.*at most 1 copies.*'data'.*Received: 3.*kUnrollOneToAll"),
])
def test_bad_unrolling_is_a_clear_error(edit, match):
    with pytest.raises(ConfigError, match=match) as e:
        protos(rnn_conf(T=3).replace(*edit))
    assert "help:" in str(e.value)


def test_a_char_rnn_data_layer_whose_unroll_len_differs_from_its_readers_is_a_clear_error():
    conf = """neuralnet { unroll_len: 3
      layer { name: "data" type: kCharRNN unroll_len: 1 char_rnn_conf { unroll_len: 5 } }
      layer { name: "x" type: kOneHot srclayers: "data" unroll_conn_type: kUnrollOneToAll } }"""
    with pytest.raises(ConfigError, match=r"(?s)`unroll_len` of layer 'x'. Expected 5, the "
                                          r"char_rnn_conf.unroll_len of its source 'data'.*Received: 3.*help:"):
        protos(conf)
    protos(conf.replace("unroll_len: 5", "unroll_len: 3"))


def test_unnamed_params_of_an_unrolled_net_are_refused(tmp_path):
    """SINGA named both `0#` and crashed on "Repeated param"; here the missing name is the error."""
    conf = rnn_conf(T=2).replace('param { name: "w" init', "param { init")
    with pytest.raises(ConfigError, match=r"a param of layer '0#ip' has no name.*\n.*help:"):
        build(tmp_path, T=2, conf=conf)


def test_char_rnn_job_conf_unrolls_to_251_layers():
    if not os.path.exists(CHAR_RNN):
        pytest.skip("the SINGA v0.3 files are not here")
    ps = protos(open(CHAR_RNN).read())
    assert len(ps) == 251 and "0#data" in ps and "1#data" not in ps
    for t in range(50):
        assert srcs(ps, "%d#onehot" % t) == ["0#data"] and srcs(ps, "%d#label" % t) == ["0#data"]
        assert srcs(ps, "%d#gru1" % t) == ["%d#onehot" % t] + (["%d#gru1" % (t - 1)] if t else [])
        assert srcs(ps, "%d#ip1" % t) == ["%d#gru1" % t]
        assert srcs(ps, "%d#loss" % t) == ["%d#ip1" % t, "%d#label" % t]
        assert ps["%d#gru1" % t].unroll_index == t
    assert [p.name for p in ps["0#gru1"].param] == ["0#" + n for n in (
        "z_hx", "r_hx", "c_hx", "z_hh", "r_hh", "c_hh", "z_b", "r_b", "c_b")]
    assert [p.share_from for p in ps["7#ip1"].param] == ["0#w", "0#b"]


def test_char_rnn_job_conf_builds_its_251_layers_and_sixteen_owner_params(tmp_path):
    job = parse_job_conf(open(CHAR_RNN).read())
    net = NeuralNet(job.neuralnet, job_pb2.kTrain, Backend(None), RandomStreams(0))
    assert len(net.layers) == 251
    assert sorted(net.owners) == sorted(["z_hx", "r_hx", "c_hx", "z_hh", "r_hh", "c_hh", "z_b", "r_b", "c_b",
                                         "w", "b"])


def write_sequences(path, T=3, V=4, n=40, seed=5):
    """``n`` records of T one-hot tokens (T*V floats), label 0 (the steps make their own)."""
    from singa.io.kvfile import KVFileWriter
    from singa.io.record import encode_record
    rng = np.random.default_rng(seed)
    with KVFileWriter(str(path)) as w:
        for i in range(n):
            x = np.eye(V, dtype=np.float32)[rng.integers(0, V, T)].reshape(-1)
            w.insert("%08d" % i, encode_record(label=0, data=x.tolist(), shape=[T * V]))
    return str(path)


def build(tmp_path, T=3, V=4, dtype=np.float32, backend=None, conf=None, phase=job_pb2.kTrain, **kw):
    path = write_sequences(tmp_path / "seq.bin", T=T, V=V)
    job = parse_job_conf((conf or rnn_conf(T=T, V=V, **kw)).replace("PATH", path))
    streams = RandomStreams(1)
    net = NeuralNet(job.neuralnet, phase, backend or Backend(None), streams, dtype=dtype)
    for p in net.owner_params:
        p.init_values(streams.stream("init/" + p.name))
    return net, job


def test_the_runtime_copies_share_values_and_one_gradient_buffer(tmp_path):
    net, _ = build(tmp_path, T=3)
    assert sorted(net.owners) == ["b", "c", "v", "w"]        # checkpoint names: 0#w, ...
    assert sorted(p.name for p in net.owner_params) == ["0#b", "0#c", "0#v", "0#w"]
    w0 = net.owners["w"]
    for i in (1, 2):
        wi = net.by_name["%d#ip" % i].params[0]
        assert wi.name == "%d#w" % i and wi.data is w0.data and wi.grad is w0.grad and wi.unrolled_from is w0
        assert wi not in w0.shares and wi.owner is None
    assert len(w0.shares) == 1 and len(net.params) == 12
    net.forward(job_pb2.kTrain)           # a one-copy data layer feeds all three step copies
    assert [l.name for l in net.srcs["2#step"]] == ["0#data", "1#act"]
    assert net.by_name["2#step"].data.shape == (5, 12)


def test_a_net_without_unroll_len_keeps_its_names(tmp_path):
    conf = rnn_conf(T=1).replace("unroll_len: 1", "").replace(
        'srclayers: "data" srclayers: "act"', 'srclayers: "data"').replace(
        "unroll_conn_type: kUnrollOneToAll unroll_conn_type: kUnrollOneToOne shift: 0 shift: 1", "")
    net, _ = build(tmp_path, T=1, conf=conf)
    assert not net.unrolled and "data" in net.by_name and sorted(p.name for p in net.owner_params) == [
        "b", "c", "v", "w"]


def test_an_unrolled_test_net_reads_the_train_nets_values(tmp_path):
    net, job = build(tmp_path, T=3)
    test = NeuralNet(job.neuralnet, job_pb2.kTest, Backend(None), RandomStreams(1), shared_params=net.owners)
    assert test.by_name["2#ip"].params[0].data is net.owners["w"].data


def test_a_user_share_from_in_an_unrolled_net_shares_values_and_averages_as_before(tmp_path):
    """Copy 0's param with share_from is a share of the owner (values tied, own gradient, the
    update averages the two: SINGA's ShareDataFrom); its copies i > 0 write into that gradient."""
    conf = rnn_conf(T=3, V=4, H=4).replace('param { name: "v"', 'param { name: "v" share_from: "w"')
    net, _ = build(tmp_path, T=3, V=4, conf=conf)
    w, v0, v2 = net.owners["w"], net.by_name["0#out"].params[0], net.by_name["2#out"].params[0]
    assert "v" not in net.owners and v0.owner is w and v0 in w.shares
    assert v2.data is w.data and v2.grad is v0.grad and v2.grad is not w.grad
    w2 = np.random.default_rng(0).normal(size=w.shape).astype(np.float32)
    net.rebind(w, w2)                    # a replica's or another group's values reach every copy
    assert v2.data is w2 and net.by_name["1#ip"].params[0].data is w2
