# covers: singa/netbuild.py, singa/layer.py (from_proto, the way back from a LayerProto)
"""NetProto assembly as a pure function (singa.netbuild): SINGA's example job.confs round trip through
layer objects of their types, wired nets keep their sources, and the name checks follow the phases."""
import glob
import os

import pytest
from google.protobuf import text_format

from singa.errors import ConfigError
from singa.layer import Activation, Data, Dense, Layer, Loss, RBM, from_proto
from singa.model import Store
from singa.netbuild import build_net, check_names, layers_of, phases
from singa.proto import job_pb2, parse_job_conf, read_job_conf

from tests.conftest import CONF_DIR

CONFS = sorted(glob.glob(os.path.join(CONF_DIR, "*.conf")))


def template_of(net):
    t = job_pb2.NetProto()
    t.CopyFrom(net)
    t.ClearField("layer")
    return t


# SINGA's recurrent confs: rnnlm's and char-rnn-sample's are chains of recurrent layer types, and
# char-rnn-job's names its sources (its label layer branches off the data)
RECURRENT = {"char-rnn-job.conf", "char-rnn-sample.conf", "rnnlm-job.conf"}
# no chains: cudnn_bm.conf's conv3 reads relu2, leaving pool2 dangling (as SINGA shipped it); the
# other cuDNN confs test through a softmax and an accuracy layer beside the training loss
BRANCHED = {"cifar10-cudnn_bm.conf", "cifar10-cudnn.conf", "alexnet-cudnn.conf"}
FEED_FORWARD = [c for c in CONFS if os.path.basename(c) not in RECURRENT | BRANCHED]


@pytest.mark.parametrize("path", CONFS, ids=[os.path.basename(c) for c in CONFS])
def test_example_confs_round_trip_through_layer_objects(path):
    net = read_job_conf(path).neuralnet
    assert build_net(layers_of(net), template=template_of(net)) == net


def test_char_rnn_job_conf_keeps_its_wiring():
    layers = layers_of(read_job_conf(os.path.join(CONF_DIR, "char-rnn-job.conf")).neuralnet)
    assert [(l.layer.name, list(l.layer.srclayers)) for l in layers] == [
        ("data", []), ("onehot", ["data"]), ("label", ["data"]), ("gru1", ["onehot"]), ("ip1", ["gru1"]),
        ("loss", ["ip1", "label"])]


def test_cudnn_bm_conf_keeps_its_wiring():
    layers = layers_of(read_job_conf(os.path.join(CONF_DIR, "cifar10-cudnn_bm.conf")).neuralnet)
    wiring = {l.layer.name: list(l.layer.srclayers) for l in layers}
    assert wiring["conv3"] == ["relu2"] and wiring["pool2"] == ["relu2"] and wiring["bm1"] == ["pool1"]
    assert [l.layer.type for l in layers if l.layer.name.startswith("bm")] == [job_pb2.kCudnnBM] * 3


@pytest.mark.parametrize("path", FEED_FORWARD, ids=[os.path.basename(c) for c in FEED_FORWARD])
def test_example_confs_are_chains_of_real_layers(path):
    net = read_job_conf(path).neuralnet
    layers = layers_of(net)
    # every layer is unwired: build_net's chain gives back the conf's srclayers
    assert not any(l.layer.srclayers for l in layers)
    assert build_net(layers, template=template_of(net)) == net
    kinds = {type(l) for l in layers}
    assert Data in kinds and (Dense in kinds or RBM in kinds)
    assert sum(l.is_datalayer for l in layers) == 2
    for l in layers:
        if isinstance(l, RBM):
            assert l.bidirect.type == job_pb2.kRBMHid and not l.bidirect.srclayers


def test_from_proto_picks_the_class_that_makes_the_type():
    cases = {
        'name: "d" type: kRecordInput include: kTrain': Data,
        'name: "fc" type: kInnerProduct innerproduct_conf { num_output: 3 }': Dense,
        'name: "t" type: kSTanh': Activation,
        'name: "l" type: kSoftmaxLoss': Loss,
        'name: "s" type: kSigmoid': Layer,            # an old type no user-API class makes
        'name: "d2" type: kRecordInput srclayers: "x"': Layer,   # an input type with sources is no data layer
    }
    for text, cls in cases.items():
        lp = job_pb2.LayerProto()
        text_format.Parse(text, lp)
        layer = from_proto(lp)
        assert type(layer) is cls and layer.layer == lp and layer.layer is not lp
        assert layer.is_datalayer == (cls is Data)


def test_a_net_that_is_no_chain_keeps_its_wiring():
    net = parse_job_conf("""name: "branch" neuralnet {
      layer { name: "data" type: kRecordInput include: kTrain store_conf { path: "t.bin" batchsize: 8 shape: 4 } }
      layer { name: "a" type: kInnerProduct srclayers: "data" innerproduct_conf { num_output: 3 } param { name: "wa" } }
      layer { name: "b" type: kInnerProduct srclayers: "data" innerproduct_conf { num_output: 3 } param { name: "wb" } }
      layer { name: "loss" type: kEuclideanLoss srclayers: "a" srclayers: "b" } }""", check_required=False).neuralnet
    layers = layers_of(net)
    assert [list(l.layer.srclayers) for l in layers] == [[], ["data"], ["data"], ["a", "b"]]
    assert build_net(layers, template=template_of(net)) == net


def test_names_may_repeat_only_across_phases():
    train = job_pb2.LayerProto(name="x", type=job_pb2.kInnerProduct, include=[job_pb2.kTrain])
    test = job_pb2.LayerProto(name="x", type=job_pb2.kInnerProduct, include=[job_pb2.kTest])
    everywhere = job_pb2.LayerProto(name="x", type=job_pb2.kSTanh)
    not_test = job_pb2.LayerProto(name="x", type=job_pb2.kSTanh, exclude=[job_pb2.kTest])
    assert phases(not_test) == {job_pb2.kTrain, job_pb2.kVal}
    check_names([train, test])
    check_names([test, not_test])
    with pytest.raises(ConfigError, match="Expected a name no other layer of the net has"):
        check_names([train, everywhere])
    with pytest.raises(ConfigError, match="Expected a name no other layer of the net has"):
        check_names([train, not_test])
    p1 = job_pb2.LayerProto(name="a", type=job_pb2.kInnerProduct, include=[job_pb2.kTrain])
    p1.param.add(name="w")
    p2 = job_pb2.LayerProto(name="b", type=job_pb2.kInnerProduct, include=[job_pb2.kTest])
    p2.param.add(name="w")
    check_names([p1, p2])                      # train and test versions share their param
    p2.ClearField("include")
    with pytest.raises(ConfigError, match="Expected a name no other param has"):
        check_names([p1, p2])
    p2.param[0].share_from = "w"               # a sharing param owns no values: the engine takes its name
    check_names([p1, p2])


def test_build_net_is_pure():
    d = Data(load="recordinput", phase="train", conf=Store(path="t.bin", batchsize=8, shape=4))
    fc = Dense(3, activation="relu", name="fc")
    loss = Loss("softmaxloss", name="loss")
    before = [l.layer.SerializeToString() for l in (d, fc, loss)]
    net = build_net([d, fc, loss])
    assert build_net([d, fc, loss]) == net
    assert [l.layer.SerializeToString() for l in (d, fc, loss)] == before
    assert [(l.name, list(l.srclayers)) for l in net.layer] == [
        (d.name, []), ("fc", [d.name]), (fc.mask.name, ["fc"]), ("loss", [fc.mask.name, d.name])]
    with pytest.raises(ConfigError, match="no layers"):
        build_net([])
