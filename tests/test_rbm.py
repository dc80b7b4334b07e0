# covers: singa/layers/rbm.py, singa/worker.py (CDWorker)
"""kRBMVis / kRBMHid and alg kCD (SINGA-V0.md 6.8): one CD step against a direct NumPy
implementation of the formulas (Bernoulli and Gaussian hidden units, cd_k 1 and 3, the shared
weight's gradient averaged over its two shares), the squared-error metric, that only the RBM's
params move, and clear errors for broken RBM nets."""
import numpy as np
import pytest

from singa.backends import Backend
from singa.driver import Driver
from singa.errors import ConfigError
from singa.io.kvfile import KVFileWriter
from singa.io.record import encode_record
from singa.neuralnet import NeuralNet
from singa.proto import job_pb2, parse_job_conf
from singa.random import RandomStreams, normal, uniform
from singa.updaters import create_updater
from singa.worker import CDWorker

NET = """
name: "rbm"
train_steps: %(steps)d
disp_freq: 1
train_one_batch { alg: kCD cd_conf { cd_k: %(k)d } }
cluster { workspace: "ws" }
updater { type: kSGD %(upd)s learning_rate { type: kFixed base_lr: %(lr)s } }
neuralnet {
  layer { name: "data" type: kRecordInput
          store_conf { backend: "kvfile" path: "%(path)s" batchsize: 5 shape: 12 std_value: 255 } }
  %(below)s
  layer { name: "RBMVis" type: kRBMVis srclayers: "%(vsrc)s" srclayers: "RBMHid" rbm_conf { hdim: 7 }
          param { name: "w2" init { type: kGaussian std: 0.3 } }
          param { name: "b21" init { type: kUniform low: -0.2 high: 0.2 } } }
  layer { name: "RBMHid" type: kRBMHid srclayers: "RBMVis" rbm_conf { hdim: 7 %(gauss)s }
          param { name: "w2_" share_from: "w2" }
          param { name: "b22" init { type: kUniform low: -0.2 high: 0.2 } } }
}
"""
BELOW = """
  layer { name: "Inner1" type: kInnerProduct srclayers: "data" innerproduct_conf { num_output: 9 }
          param { name: "w1" init { type: kGaussian std: 0.4 } }
          param { name: "b12" init { type: kConstant value: 0.1 } } }
  layer { name: "Sigmoid1" type: kSigmoid srclayers: "Inner1" }
"""


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    path = tmp_path_factory.mktemp("rbm") / "train.bin"
    rng = np.random.default_rng(5)
    with KVFileWriter(str(path)) as w:
        for i in range(20):
            w.insert("%08d" % i, encode_record(label=i % 3, pixel=rng.integers(0, 256, 12, dtype=np.uint8).tobytes(),
                                               shape=[12]))
    return str(path)


def job_text(records, k=1, gaussian=False, below=False, upd="", lr="0.1", steps=3):
    return NET % dict(steps=steps, k=k, upd=upd, lr=lr, path=records, below=BELOW if below else "",
                      vsrc="Sigmoid1" if below else "data", gauss="gaussian: true" if gaussian else "")


def build(text, seed=4):
    job = parse_job_conf(text)
    streams = RandomStreams(seed)
    net = NeuralNet(job.neuralnet, job_pb2.kTrain, Backend(None), streams, dtype=np.float64)
    for p in net.owner_params:
        p.init_values(streams.stream("init/" + p.name))
    return job, net, streams


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("gaussian", [False, True])
@pytest.mark.parametrize("below", [False, True])
def test_cd_step_matches_the_formulas(records, k, gaussian, below):
    job, net, _ = build(job_text(records, k=k, gaussian=gaussian, below=below))
    W, b, c = (net.owners[n].data.copy() for n in ("w2", "b21", "b22"))
    lower = {n: net.owners[n].data.copy() for n in ("w1", "b12")} if below else {}
    worker = CDWorker(net, create_updater(job.updater), cd_k=job.train_one_batch.cd_conf.cd_k)
    assert worker.cd_k == k
    assert sorted(p.name for p in worker.cd_params) == ["b21", "b22", "w2"]
    # the same draws as the layer: its named stream, replayed
    noise = RandomStreams(4).stream("train/RBMHid")
    worker.train_one_batch(0)
    data = net.by_name["data"].data.reshape(5, 12)
    v0 = sigmoid(data @ lower["w1"].T + lower["b12"]) if below else data
    def hidden(v):
        a = v @ W.T + c
        return a if gaussian else sigmoid(a)
    def sample(h):
        if gaussian:
            return h + normal(np, noise, h.shape, np.float64)
        return (uniform(np, noise, h.shape, np.float64) < h).astype(float)
    h0 = hidden(v0)
    hs = sample(h0)
    v, h = None, None
    for step in range(k):
        v = sigmoid(hs @ W + b)
        if step == 0:
            se = np.sum((v0 - v) ** 2) / 5
        h = hidden(v)
        hs = sample(h)
    dW = (h.T @ v - h0.T @ v0) / 5
    lr = float(np.float32(0.1))      # base_lr is a proto float
    # the shared weight: RBMHid's share contributes 0 and the owner's gradient is the mean of the two
    np.testing.assert_allclose(net.owners["w2"].data, W - lr * dW / 2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(net.owners["b21"].data, b - lr * (v - v0).mean(0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(net.owners["b22"].data, c - lr * (h - h0).mean(0), rtol=1e-12, atol=1e-14)
    m = worker.train_metrics.pop()
    assert m.keys() == {"se"} and m["se"] == pytest.approx(se, rel=1e-12)
    for n, v in lower.items():       # the layers below are fixed features
        np.testing.assert_array_equal(net.owners[n].data, v)


@pytest.mark.parametrize("upd", ["", "momentum: 0.8", "momentum: 0.8 weight_decay: 0.0002", "weight_decay: 0.01"])
def test_update_fused_into_the_cd_products_equals_the_updater(records, upd):
    runs = []
    for fuse in (True, False):
        job, net, _ = build(job_text(records, upd=upd))
        w0 = net.owners["w2"].data.copy()
        worker = CDWorker(net, create_updater(job.updater), fuse_updates=fuse)
        fused = []
        for step in range(4):
            fused.append(bool(worker.gemm_updates(step)))
            worker.train_one_batch(step)
        runs.append((net, worker, fused))
    (a, wa, fa), (b, wb, fb) = runs
    assert fa == [True] * 4 and fb == [False] * 4
    for pa, pb in zip(a.owner_params, b.owner_params):
        np.testing.assert_allclose(pa.data, pb.data, rtol=1e-12, atol=1e-14, err_msg=pa.name)
        assert pa.version == pb.version
        for k in wa.state[pa.name]:
            np.testing.assert_allclose(wa.state[pa.name][k], wb.state[pb.name][k], rtol=1e-12, atol=1e-14)
    assert not np.allclose(a.owners["w2"].data, w0)


def test_reconstruction_error_falls_and_test_reports_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # three binary prototypes, 10% of the pixels flipped: structure an RBM can learn
    rng = np.random.default_rng(8)
    protos = rng.integers(0, 2, (3, 12))
    records = str(tmp_path / "patterns.bin")
    with KVFileWriter(records) as w:
        for i in range(60):
            x = protos[i % 3] ^ (rng.random(12) < 0.1)
            w.insert("%08d" % i, encode_record(label=i % 3, pixel=(255 * x).astype(np.uint8).tobytes(), shape=[12]))
    text = job_text(records, steps=150, lr="0.2") + "test_steps: 4\ntest_freq: 75\n"
    text = text.replace('store_conf { backend: "kvfile"', 'include: kTrain store_conf { backend: "kvfile"', 1)
    text = text.replace("neuralnet {", 'neuralnet {\n  layer { name: "data" type: kRecordInput include: kTest '
                        'store_conf { backend: "kvfile" path: "%s" batchsize: 5 shape: 12 std_value: 255 } }' % records, 1)
    res = Driver(verbose=False).train(parse_job_conf(text))
    se = [m["se"] for _, m in sorted(res.train.items())]
    assert se[-1] < 0.7 * se[0]
    tests = [m["se"] for _, m in sorted(res.test.items())]
    assert sorted(res.test) == [0, 75, 150] and tests[-1] < 0.7 * tests[0]
    # test-only from the checkpoint reports the same metric
    only = text + 'checkpoint_path: "ws/checkpoint/step150-worker0"\n'
    r = Driver(verbose=False).test(parse_job_conf(only))
    assert r.test[150].keys() == {"se"}


@pytest.mark.parametrize("edit,match", [
    (('srclayers: "data" srclayers: "RBMHid"', 'srclayers: "data"'), "Expected exactly one kRBMHid layer among its sources"),
    (('srclayers: "RBMVis" rbm_conf', 'srclayers: "data" rbm_conf'), "Expected its kRBMVis"),
    (("rbm_conf { hdim: 7 }", "rbm_conf { hdim: 0 }"), "hdim.*positive"),
    (("rbm_conf { hdim: 7  }", "rbm_conf { hdim: 8 }"), "disagree on rbm_conf.hdim"),
    (("alg: kCD cd_conf { cd_k: 1 }", "alg: kBP"), "contrastive divergence"),
    (("cd_k: 1", "cd_k: 0"), "cd_k"),
])
def test_broken_rbm_nets_fail_clearly(records, tmp_path, monkeypatch, edit, match):
    monkeypatch.chdir(tmp_path)
    text = job_text(records)
    assert edit[0] in text
    with pytest.raises(ConfigError, match=match):
        Driver(verbose=False).train(parse_job_conf(text.replace(*edit)))


def test_cd_without_an_rbm_is_an_error(records, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = job_text(records, below=True)
    start = text.index('  layer { name: "RBMVis"')
    text = text[:start] + text[text.index("\n}\n", start):]
    with pytest.raises(ConfigError, match="no kRBMVis/kRBMHid pair"):
        Driver(verbose=False).train(parse_job_conf(text))
