# covers: singa/worker.py (threaded replicas), singa/param.py (shares)
"""Data-parallel replicas inside one process (BPWorker(replicas=n)): each batch trained as n
slices on threads, gradients summed by the slices' shares. Same params and metrics as one pass
over the batch (float64, to rounding), params shared with share_from, dropout reproducible, the
automatic choice, and exact resume of a replicated conv net through the Driver."""
import os

import numpy as np
import pytest

from singa import worker as worker_mod
from singa.backends import Backend, blas, parallel
from singa.driver import Driver
from singa.errors import ConfigError
from singa.io import checkpoint as ckpt
from singa.io.kvfile import KVFileWriter
from singa.io.record import encode_record
from singa.neuralnet import NeuralNet
from singa.proto import job_pb2, parse_job_conf
from singa.random import RandomStreams
from singa.updaters import create_updater
from singa.worker import BPWorker, auto_replicas

CONV_NET = """
name: "replicas"
train_steps: %(steps)d
disp_freq: 1
cluster { workspace: "%(ws)s" }
updater { type: kSGD momentum: 0.9 weight_decay: 0.004 learning_rate { type: kFixed base_lr: 0.05 } }
train_one_batch { alg: kBP }
neuralnet {
  layer { name: "data" type: kRecordInput
          store_conf { backend: "kvfile" path: "%(path)s" batchsize: %(batch)d shape: 3 shape: 6 shape: 6
                       std_value: 2 random_skip: 5 } }
  layer { name: "conv1" type: kCConvolution srclayers: "data" convolution_conf { num_filters: 4 kernel: 3 pad: 1 }
          param { name: "w1" init { type: kGaussian std: 0.3 } }
          param { name: "b1" init { type: kConstant value: 0.1 } } }
  layer { name: "pool1" type: kCPooling srclayers: "conv1" pooling_conf { pool: MAX kernel: 3 stride: 2 } }
  layer { name: "relu1" type: kReLU srclayers: "pool1" }
  layer { name: "norm1" type: kLRN srclayers: "relu1" lrn_conf { local_size: 3 alpha: 0.1 beta: 0.75 } }
  %(extra)s
  layer { name: "fc" type: kInnerProduct srclayers: "%(top)s" innerproduct_conf { num_output: 3 }
          param { name: "w3" init { type: kGaussian std: 0.3 } }
          param { name: "b3" init { type: kConstant value: 0 } } }
  layer { name: "loss" type: kSoftmaxLoss srclayers: "fc" srclayers: "data" }
}
"""
DROPOUT = 'layer { name: "drop" type: kDropout srclayers: "norm1" dropout_conf { dropout_ratio: 0.5 } }'

SHARED_NET = """
neuralnet {
  layer { name: "data" type: kRecordInput
          store_conf { backend: "kvfile" path: "%(path)s" batchsize: 7 shape: 108 std_value: 2 } }
  layer { name: "fc1" type: kInnerProduct srclayers: "data" innerproduct_conf { num_output: 12 }
          param { name: "w1" init { type: kGaussian std: 0.1 } } param { name: "b1" init { type: kConstant value: 0.01 } } }
  layer { name: "act1" type: kSTanh srclayers: "fc1" }
  layer { name: "fc2" type: kInnerProduct srclayers: "act1" innerproduct_conf { num_output: 108 transpose: true }
          param { name: "w2" share_from: "w1" } param { name: "b2" init { type: kConstant value: 0 } } }
  layer { name: "loss" type: kEuclideanLoss srclayers: "fc2" srclayers: "data" }
}
updater { type: kSGD momentum: 0.5 learning_rate { type: kFixed base_lr: 0.01 } }
"""


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    path = tmp_path_factory.mktemp("replicas") / "train.bin"
    rng = np.random.default_rng(11)
    with KVFileWriter(str(path)) as w:
        for i in range(40):
            c = int(rng.integers(0, 3))
            x = rng.normal(0, 2, 108) + c
            w.insert("%08d" % i, encode_record(label=c, data=x.astype(np.float32).tolist(), shape=[3, 6, 6]))
    return str(path)


def conv_job(records, steps=4, batch=6, dropout=False, ws="ws"):
    return parse_job_conf(CONV_NET % dict(steps=steps, ws=ws, path=records, batch=batch,
                                          extra=DROPOUT if dropout else "", top="drop" if dropout else "norm1"))


def train(job, replicas, steps=4, seed=3, dtype=np.float64):
    streams = RandomStreams(seed)
    net = NeuralNet(job.neuralnet, job_pb2.kTrain, Backend(None), streams, dtype=dtype)
    for p in net.owner_params:
        p.init_values(streams.stream("init/" + p.name))
    w = BPWorker(net, create_updater(job.updater), replicas=replicas)
    metrics = []
    for step in range(steps):
        w.train_one_batch(step)
        metrics.append(w.train_metrics.pop())
    return net, w, metrics


@pytest.mark.parametrize("replicas", [2, 3, 6])
def test_replicas_equal_one_pass(records, replicas):
    one, w1, m1 = train(conv_job(records), 1)
    many, wn, mn = train(conv_job(records), replicas)
    assert w1.replicas == [] and len(wn.replicas) == replicas
    assert [rn.batch_size for rn, _ in wn.replicas] == [6 // replicas] * replicas
    for pa, pb in zip(one.owner_params, many.owner_params):
        np.testing.assert_allclose(pb.data, pa.data, rtol=1e-11, atol=1e-12, err_msg=pa.name)
        assert pa.version == pb.version == 4
    for a, b in zip(m1, mn):
        assert a.keys() == b.keys() == {"loss", "acc"}
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-11)
        assert b["acc"] == pytest.approx(a["acc"], rel=1e-11)
    # and training moved the params
    assert not np.allclose(one.owners["w1"].data, train(conv_job(records), 1, steps=0)[0].owners["w1"].data)


def test_uneven_slices_are_weighted_by_their_share(records):
    one, _, m1 = train(conv_job(records, batch=7), 1)
    many, w, mn = train(conv_job(records, batch=7), 3)
    assert [rn.batch_size for rn, _ in w.replicas] == [2, 2, 3]
    for pa, pb in zip(one.owner_params, many.owner_params):
        np.testing.assert_allclose(pb.data, pa.data, rtol=1e-11, atol=1e-12, err_msg=pa.name)
    assert mn[-1]["loss"] == pytest.approx(m1[-1]["loss"], rel=1e-11)


def test_shared_params_sum_over_replicas(records):
    job = parse_job_conf(SHARED_NET % dict(path=records))
    one, _, m1 = train(job, 1, steps=3)
    many, _, mn = train(job, 2, steps=3)
    assert [p.name for p in one.owner_params] == [p.name for p in many.owner_params]
    for pa, pb in zip(one.owner_params, many.owner_params):
        np.testing.assert_allclose(pb.data, pa.data, rtol=1e-11, atol=1e-12, err_msg=pa.name)
    assert mn[-1]["loss"] == pytest.approx(m1[-1]["loss"], rel=1e-11)


def test_dropout_replicas_are_reproducible_and_draw_their_own_masks(records):
    a, _, ma = train(conv_job(records, dropout=True), 2, dtype=np.float32)
    b, _, mb = train(conv_job(records, dropout=True), 2, dtype=np.float32)
    for pa, pb in zip(a.owner_params, b.owner_params):
        np.testing.assert_array_equal(pa.data, pb.data)
    assert ma == mb
    net, w, _ = train(conv_job(records, dropout=True), 2, steps=1)
    m0, m1 = (rn.by_name["drop"].rng for rn, _ in w.replicas)
    assert m0 is not m1 and m0.random() != m1.random()


def test_auto_choice(records, monkeypatch):
    monkeypatch.delenv("SINGA_REPLICAS", raising=False)
    job = conv_job(records, batch=20)
    net = NeuralNet(job.neuralnet, job_pb2.kTrain, Backend(None), RandomStreams(0))
    blas.set_num_threads(2)
    try:
        assert auto_replicas(net) == (2 if blas.available() else 1)
        blas.set_num_threads(4)
        assert auto_replicas(net) == (2 if blas.available() else 1)      # at least 8 samples each
        blas.set_num_threads(1)
        assert auto_replicas(net) == 1
    finally:
        blas.set_num_threads(None)
    dense = NeuralNet(parse_job_conf(SHARED_NET % dict(path=records)).neuralnet, job_pb2.kTrain, Backend(None),
                      RandomStreams(0))
    assert auto_replicas(dense) == 1        # dense nets keep OpenBLAS's threads and fused updates
    monkeypatch.setenv("SINGA_REPLICAS", "3")
    assert auto_replicas(dense) == 3
    for bad in ("0", "two"):
        monkeypatch.setenv("SINGA_REPLICAS", bad)
        with pytest.raises(ConfigError, match="SINGA_REPLICAS.*Expected a number of replicas >= 1.*%s" % bad):
            auto_replicas(dense)


def test_nested_parallel_parts_run_inline():
    seen = []

    def outer(k, n):
        seen.append((k, blas.num_threads()))
        blas.parallel(lambda kk, nn: seen.append(("inner", kk, nn)))
    blas.set_num_threads(2)
    try:
        blas.parallel(outer)
    finally:
        blas.set_num_threads(None)
    assert sorted(x for x in seen if x[0] != "inner") == [(0, 1), (1, 1)]
    assert sorted(x for x in seen if x[0] == "inner") == [("inner", 0, 1)] * 2


def test_resume_of_a_replicated_conv_net_is_exact(records, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SINGA_REPLICAS", "2")
    job = conv_job(records, steps=12, dropout=True)
    job.checkpoint_freq = 6
    Driver(verbose=False).train(job)
    path = tmp_path / "ws" / "checkpoint" / "step12-worker0"
    full = {n: v for n, v, _ in ckpt.read_checkpoint(str(path))}
    os.remove(path)
    os.remove(str(path) + ".state.npz")
    res = Driver(verbose=False).train(job, resume=True)
    assert min(res) == 6
    again = {n: v for n, v, _ in ckpt.read_checkpoint(str(path))}
    assert full.keys() == again.keys() == {"w1", "b1", "w3", "b3"}
    assert all(np.array_equal(full[n], again[n]) for n in full)


def test_no_blas_call_outside_the_replicas_threads(records, monkeypatch):
    """Between steps OpenBLAS must stay asleep: a BLAS call on the main thread outside the
    parallel part wakes its thread pool, whose spinning then slows the next step's replicas (it
    did: the seed CNN's step went from 70 to 104 ms)."""
    net, w, _ = train(conv_job(records), 2, steps=1, dtype=np.float32)
    outside = []
    for name in ("gemm", "axpy"):
        real = getattr(blas, name)

        def spy(*a, _real=real, _name=name, **k):
            if not parallel.depth():
                outside.append(_name)
            return _real(*a, **k)
        monkeypatch.setattr(blas, name, spy)
    for step in range(1, 3):
        w.train_one_batch(step)
    assert outside == []
