# covers: singa/neuralnet.py
"""NeuralNet: phases, ordering, wiring errors, and whole-net gradients (float64) incl. tied weights."""
import numpy as np
import pytest

from singa.backends import Backend
from singa.errors import ConfigError
from singa.io.kvfile import KVFileWriter
from singa.io.record import encode_record
from singa.neuralnet import NeuralNet, layers_in_phase, topological_order
from singa.proto import job_pb2, parse_job_conf
from singa.random import RandomStreams

CPU = Backend(None)


def net_proto(text):
    return parse_job_conf("neuralnet { %s }" % text).neuralnet


def write_data(path, n=12, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    with KVFileWriter(str(path)) as w:
        for i in range(n):
            w.insert("%08d" % i, encode_record(label=int(rng.integers(0, 3)),
                                               data=rng.uniform(0, 1, dim).astype(np.float32).tolist(), shape=[dim]))


DATA = ('layer { name: "data" type: kRecordInput store_conf { backend: "kvfile" path: "d.bin" batchsize: 4 '
        'shape: 6 } }')


def build(text, phase=job_pb2.kTrain, seed=0):
    streams = RandomStreams(seed)
    net = NeuralNet(net_proto(text), phase, CPU, streams, dtype=np.float64)
    for p in net.owner_params:
        p.init_values(streams.stream("init/" + p.name))
    return net


def test_phases_and_order():
    proto = net_proto('layer { name: "b" type: kSTanh srclayers: "a" } '
                      'layer { name: "a" type: kSTanh include: kTrain } '
                      'layer { name: "t" type: kSTanh exclude: kTrain }')
    assert [l.name for l in layers_in_phase(proto, job_pb2.kTrain)] == ["b", "a"]
    assert [l.name for l in layers_in_phase(proto, job_pb2.kTest)] == ["b", "t"]
    assert [l.name for l in topological_order(layers_in_phase(proto, job_pb2.kTrain))] == ["a", "b"]


@pytest.mark.parametrize("text,match", [
    ('layer { name: "a" type: kSTanh srclayers: "b" } layer { name: "b" type: kSTanh srclayers: "a" }', "cycle"),
    ('layer { name: "a" type: kSTanh } layer { name: "a" type: kSTanh }', "two layers are named 'a'"),
    ('layer { name: "a" type: kSTanh srclayers: "zz" }', "zz"),
    ('layer { name: "a" type: kSTanh include: kTest exclude: kTrain }', "both `include` and `exclude`"),
])
def test_wiring_errors(text, match):
    with pytest.raises(ConfigError, match=match):
        topological_order(layers_in_phase(net_proto(text), job_pb2.kTrain))


def fd_check(net, objective, params, eps=1e-6, analytic=None):
    """Central differences of ``objective()`` w.r.t. every entry of each owner param."""
    for p in params:
        num = np.zeros(p.shape)
        flat = p.data.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            hi = objective()
            flat[i] = old - eps
            lo = objective()
            flat[i] = old
            num.reshape(-1)[i] = (hi - lo) / (2 * eps)
        got = analytic(p) if analytic else p.owner_grad()
        np.testing.assert_allclose(got, num, rtol=1e-5, atol=1e-8, err_msg=p.name)


def loss_of(net):
    def objective():
        for l in net.data_layers:
            l.pos = 0
        net.forward(job_pb2.kTrain)
        return net.metrics()["loss"]
    return objective


def test_whole_mlp_gradients_float64(in_tmp):
    write_data(in_tmp / "d.bin")
    net = build(DATA + """
      layer { name: "fc1" type: kInnerProduct srclayers: "data" innerproduct_conf { num_output: 5 }
              param { name: "w1" init { type: kGaussian std: 0.5 } } param { name: "b1" init { type: kUniform } } }
      layer { name: "act" type: kSTanh srclayers: "fc1" }
      layer { name: "drop" type: kActivation srclayers: "act" activation_conf { type: SIGMOID } }
      layer { name: "fc2" type: kInnerProduct srclayers: "drop" innerproduct_conf { num_output: 3 }
              param { name: "w2" init { type: kGaussian std: 0.5 } } param { name: "b2" init { type: kUniform } } }
      layer { name: "loss" type: kSoftmaxLoss srclayers: "fc2" srclayers: "data" }""")
    objective = loss_of(net)
    objective()
    net.backward(job_pb2.kTrain)
    grads = {p.name: p.owner_grad().copy() for p in net.owner_params}
    fd_check(net, objective, net.owner_params, analytic=lambda p: grads[p.name])


def test_tied_transposed_weights_average_their_shares(in_tmp):
    """SINGA averages the gradients of a param's shares (grad_scale = 1/num_shares, SINGA-V0.md 6.8)."""
    write_data(in_tmp / "d.bin")
    net = build(DATA + """
      layer { name: "enc" type: kInnerProduct srclayers: "data" innerproduct_conf { num_output: 3 }
              param { name: "w1" init { type: kGaussian std: 0.5 } } param { name: "b12" init { type: kUniform } } }
      layer { name: "sig" type: kSigmoid srclayers: "enc" }
      layer { name: "dec" type: kInnerProduct srclayers: "sig" innerproduct_conf { num_output: 6 transpose: true }
              param { name: "w2" share_from: "w1" } param { name: "b11" init { type: kUniform } } }
      layer { name: "loss" type: kEuclideanLoss srclayers: "dec" srclayers: "data" }""")
    w1 = net.owners["w1"]
    assert len(w1.shares) == 2 and net.by_name["dec"].params[0].data is w1.data
    objective = loss_of(net)
    objective()
    net.backward(job_pb2.kTrain)
    grads = {p.name: p.owner_grad().copy() for p in net.owner_params}
    # Euclidean loss: reported value sum((x-r)^2)/B, gradient (r-x)/B, i.e. of half the value;
    # the tied weight's applied gradient is the mean of its two shares' gradients.
    half = lambda: 0.5 * objective()  # noqa: E731
    fd_check(net, half, [w1], analytic=lambda p: 2 * grads[p.name])
    fd_check(net, half, [net.owners["b12"], net.owners["b11"]], analytic=lambda p: grads[p.name])


def test_test_net_reads_train_net_values(in_tmp):
    write_data(in_tmp / "d.bin")
    text = DATA + """
      layer { name: "fc" type: kInnerProduct srclayers: "data" innerproduct_conf { num_output: 3 }
              param { name: "w" init { type: kGaussian } } param { name: "b" init { type: kConstant value: 0 } } }
      layer { name: "loss" type: kSoftmaxLoss srclayers: "fc" srclayers: "data" }"""
    train = build(text)
    test = NeuralNet(net_proto(text), job_pb2.kTest, CPU, RandomStreams(0), dtype=np.float64,
                     shared_params=train.owners)
    assert test.owners["w"].data is train.owners["w"].data and test.owner_params == []
    with pytest.raises(ConfigError, match="share_from"):
        build(text.replace('name: "b" init', 'name: "b" share_from: "nope" init'))
