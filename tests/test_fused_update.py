# covers: singa/updaters/fused.py, singa/worker.py, singa/layers/dense.py (the GEMM-fused update)
"""Updates fused into kInnerProduct's weight-gradient GEMM (BPWorker fuse_updates): the same
weights, history and versions as the ordinary updater path, for every SGD variant, in float32
and float64, split over threads or not; and the cases that must take the ordinary path."""
import numpy as np
import pytest

from singa.backends import Backend, blas, parallel
from singa.io.kvfile import KVFileWriter
from singa.io.record import encode_record
from singa.neuralnet import NeuralNet
from singa.param import Param
from singa.proto import job_pb2, parse_job_conf
from singa.random import RandomStreams
from singa.updaters import create_updater
from singa.updaters.rules import GemmUpdate
from singa.worker import BPWorker

NET = """
updater { type: %(type)s %(upd)s learning_rate { type: kStep base_lr: 0.05 step_conf { gamma: 0.5 change_freq: 2 } } }
neuralnet {
  layer { name: "data" type: kRecordInput
          store_conf { backend: "kvfile" path: "%(path)s" batchsize: 12 shape: 9 std_value: 4 } }
  layer { name: "fc1" type: kInnerProduct srclayers: "data" innerproduct_conf { num_output: 37 }
          param { name: "w1" %(w1)s init { type: kGaussian std: 0.2 } }
          param { name: "b1" init { type: kConstant value: 0.1 } } }
  layer { name: "act1" type: kSTanh srclayers: "fc1" }
  layer { name: "fc2" type: kInnerProduct srclayers: "act1" innerproduct_conf { num_output: 21 %(tr)s }
          param { name: "w2" %(w2)s init { type: kUniform low: -0.3 high: 0.3 } }
          param { name: "b2" init { type: kConstant value: 0 } } }
  layer { name: "act2" type: kSTanh srclayers: "fc2" }
  layer { name: "fc3" type: kInnerProduct srclayers: "act2" innerproduct_conf { num_output: 4 }
          param { name: "w3" init { type: kUniform low: -0.3 high: 0.3 } }
          param { name: "b3" init { type: kConstant value: 0 } } }
  layer { name: "loss" type: kSoftmaxLoss srclayers: "fc3" srclayers: "data" }
}
"""


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    path = tmp_path_factory.mktemp("fused") / "train.bin"
    rng = np.random.default_rng(7)
    with KVFileWriter(str(path)) as w:
        for i in range(60):
            c = int(rng.integers(0, 4))
            x = rng.normal(0, 2, 9) + c
            w.insert("%08d" % i, encode_record(label=c, data=x.astype(np.float32).tolist(), shape=[9]))
    return str(path)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request, monkeypatch):
    """Split every product (threshold 0) over 2 threads, or none."""
    monkeypatch.setitem(parallel.MIN_SPLIT, "gemm", 0)
    blas.set_num_threads(request.param)
    blas.set_split_products(True)
    yield request.param
    blas.set_num_threads(None)
    blas.set_split_products(False)


def build(records, dtype, fuse, type="kSGD", upd="", w1="", w2="", tr=""):
    job = parse_job_conf(NET % dict(path=records, type=type, upd=upd, w1=w1, w2=w2, tr=tr))
    streams = RandomStreams(3)
    net = NeuralNet(job.neuralnet, job_pb2.kTrain, Backend(None), streams, dtype=dtype)
    for p in net.owner_params:
        p.init_values(streams.stream("init/" + p.name))
    return net, BPWorker(net, create_updater(job.updater), fuse_updates=fuse)


def train(records, dtype, fuse, steps=5, **kw):
    net, worker = build(records, dtype, fuse, **kw)
    fused_counts = []
    for step in range(steps):
        fused_counts.append(len(worker.gemm_updates(step) or {}))
        worker.train_one_batch(step)
    return net, worker, fused_counts


UPDATES = {
    "plain": "",
    "weight_decay": "weight_decay: 0.01",
    "momentum": "momentum: 0.9",
    "momentum_wd": "momentum: 0.8 weight_decay: 0.02",
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("upd", sorted(UPDATES))
def test_fused_sgd_matches_the_updater_path(records, threads, dtype, upd):
    kw = dict(upd=UPDATES[upd], w2="lr_scale: 0.5 wd_scale: 3")
    ref_net, ref_w, ref_counts = train(records, dtype, False, **kw)
    net, worker, counts = train(records, dtype, True, **kw)
    assert ref_counts == [0] * 5 and counts == [3] * 5          # the three weights, every step
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for p, q in zip(net.owner_params, ref_net.owner_params):
        assert p.name == q.name and p.version == q.version == 5
        np.testing.assert_allclose(p.data, q.data, rtol=tol, atol=tol, err_msg=p.name)
        for k, h in worker.state[p.name].items():
            np.testing.assert_allclose(h, ref_w.state[p.name][k], rtol=tol, atol=tol, err_msg=p.name + k)


def test_fused_transposed_weight_matches(records, threads):
    ref_net, _, _ = train(records, np.float64, False, upd=UPDATES["momentum"], tr="transpose: true")
    net, _, counts = train(records, np.float64, True, upd=UPDATES["momentum"], tr="transpose: true")
    assert counts == [3] * 5
    for p, q in zip(net.owner_params, ref_net.owner_params):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-12, atol=1e-12, err_msg=p.name)


@pytest.mark.parametrize("case", ["clipping", "nesterov", "adam", "frozen"])
def test_rules_that_cannot_fuse_take_the_updater_path(records, case):
    kw = {"clipping": dict(upd="clip_low: -0.01 clip_high: 0.01"),
          "nesterov": dict(type="kNesterov", upd="momentum: 0.9"),
          "adam": dict(type="kAdam"),
          "frozen": dict(w1="lr_scale: 0")}[case]
    ref_net, _, _ = train(records, np.float64, False, **kw)
    net, _, counts = train(records, np.float64, True, **kw)
    assert counts == ([2] * 5 if case == "frozen" else [0] * 5)
    for p, q in zip(net.owner_params, ref_net.owner_params):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-12, atol=1e-12, err_msg=p.name)


def test_shared_weights_are_not_fused(records):
    # A param with shares needs the averaged gradient of all of them, so its update stays apart.
    net, worker = build(records, np.float64, True)
    w1 = net.by_name["fc1"].weight
    assert w1 in net.fusable_params()
    Param(w1.proto, w1.shape, Backend(None), np.float64, "tied").share_from(w1)   # a second user of w1
    try:
        assert w1 not in net.fusable_params()
        assert w1 not in (worker.gemm_updates(0) or {})
    finally:
        w1.shares.pop()


def test_a_plan_lives_for_one_backward_only(records):
    net, worker = build(records, np.float64, True)
    net.forward(job_pb2.kTrain)
    plans = worker.gemm_updates(0)
    w_before = {p.name: p.data.copy() for p in plans}
    net.backward(job_pb2.kTrain, plans)
    assert all(p.applied for p in plans.values())
    # the layers' sinks are their gradient buffers again
    sinks = [(p, p.grad_sink()) for l in net.layers if hasattr(l, "fusable_params") for p in l.params]
    assert all(s[0] is p.grad and s[1:3] == (1.0, 0.0) for p, s in sinks)
    changed = {p.name: not np.array_equal(p.data, w_before[p.name]) for p in plans}
    assert all(changed.values())
    # a plain backward afterwards writes gradients and leaves the weights alone
    w_now = {p.name: p.data.copy() for p in plans}
    net.backward(job_pb2.kTrain)
    for p in plans:
        np.testing.assert_array_equal(p.data, w_now[p.name])
        assert np.abs(p.grad).max() > 0


def test_gemm_update_scalars_follow_the_sgd_formulas():
    proto = job_pb2.UpdaterProto(type=job_pb2.kSGD, weight_decay=0.1)
    proto.learning_rate.type = job_pb2.kFixed
    proto.learning_rate.base_lr = 0.2
    w = np.ones((2, 3))
    plan = create_updater(proto).gemm_update(0, w, {}, lr_scale=0.5, wd_scale=2.0)
    assert plan.target is w and plan.alpha == pytest.approx(-0.1) and plan.beta == pytest.approx(1 - 0.1 * 0.2)
    proto.momentum = 0.9
    u = create_updater(proto)
    state = u.init_state(w)
    plan = u.gemm_update(0, w, state)
    assert plan.target is state["history"] and plan.beta == pytest.approx(0.9)
    assert plan.wd_lr == pytest.approx(0.2 * 0.1)
    state["history"][...] = 0.5
    plan.finish()                              # h -= lr*wd*w; w += h
    np.testing.assert_allclose(state["history"], 0.5 - 0.02)
    np.testing.assert_allclose(w, 1.48)
    assert isinstance(plan, GemmUpdate) and not plan.applied
