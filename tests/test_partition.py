# covers: singa/partition.py, singa/partition_worker.py, singa/bridge.py, singa/layers/connection.py,
#         singa/neuralnet.py, singa/driver.py, benchmarks/bench_partition.py
"""Model and hybrid partitioning (SINGA-V0-REST.md 5): the partitioner's net, the connection
layers, and partitioned nets computing the function of the unpartitioned one."""
import os
import re

import numpy as np
import pytest

from singa.backends import Backend
from singa.driver import Driver
from singa.errors import ConfigError
from singa.io import checkpoint as ckpt
from singa.io.kvfile import KVFileWriter
from singa.io.record import encode_record
from singa.neuralnet import NeuralNet, layers_in_phase
from singa.partition import as_conf_text, partition
from singa.partition_worker import PartitionWorker
from singa.proto import job_pb2, parse_job_conf, read_job_conf
from singa.random import RandomStreams
from singa.testing.gradcheck import check_layer_gradients
from singa.updaters import create_updater
from singa.worker import BPWorker
from tests.conftest import CONF_DIR
from tests.test_cli import BIN, run, singa_run

HYBRID = os.path.join(CONF_DIR, "cifar10-hybrid.conf")


def node(out, name):
    return next(lp for lp in out if lp.name == name)


def test_hybrid_conf_partitions_as_singa_builds_it():
    job = read_job_conf(HYBRID)
    out, slots = partition(layers_in_phase(job.neuralnet, job_pb2.kTrain), 2, job.neuralnet.partition_dim)
    assert len(out) == 44           # SINGA's 44 nodes (SINGA-V0-REST.md 5.9)
    names = {lp.name for lp in out}
    assert {"split(pool3)@0", "concate(split(pool3))@1", "slice(ip1)@0", "concate(slice(ip1))@1"} <= names
    assert sum(lp.type == job_pb2.kBridgeSrc for lp in out) == sum(lp.type == job_pb2.kBridgeDst for lp in out) == 4
    # ip1@j reads the whole batch gathered, and owns a slice of w4 and b4 under SINGA's names
    cc = node(out, "concate(split(pool3))@1")
    assert list(cc.srclayers) == ["bridge_dst(split(pool3)@0->concate(split(pool3))@1)", "split(pool3)@1"]
    assert (cc.concate_conf.concate_dim, cc.partition_dim, cc.partition_id) == (0, 1, 1)
    bs = node(out, "bridge_src(split(pool3)@0->concate(split(pool3))@1)")
    assert (bs.partition_id, list(bs.srclayers)) == (0, ["split(pool3)@0"])
    ip = node(out, "ip1@1")
    assert list(ip.srclayers) == ["concate(split(pool3))@1"] and [p.name for p in ip.param] == ["w4", "b4"]
    assert not any(p.share_from for p in ip.param)
    # the loss of partition j reads its rows of every ip1 slice: piece j of each kSlice (FIX of SINGA's order)
    sl = node(out, "slice(ip1)@0")
    assert (sl.slice_conf.slice_dim, sl.slice_conf.num_slices, sl.partition_dim) == (0, 2, 1)
    assert slots == {("concate(slice(ip1))@0", "slice(ip1)@0"): 0,
                     ("bridge_src(slice(ip1)@1->concate(slice(ip1))@0)", "slice(ip1)@1"): 0,
                     ("bridge_src(slice(ip1)@0->concate(slice(ip1))@1)", "slice(ip1)@0"): 1,
                     ("concate(slice(ip1))@1", "slice(ip1)@1"): 1}
    loss = node(out, "loss@1")
    assert list(loss.srclayers) == ["concate(slice(ip1))@1", "data@1"]
    # batch-split copies share copy 0's params
    assert [(p.name, p.share_from) for p in node(out, "conv1@1").param] == [("w1", "w1"), ("b1", "b1")]
    assert [p.share_from for p in node(out, "conv1@0").param] == ["", ""]
    # the net that runs, as job.conf text, parses back to the same layers
    net = parse_job_conf(as_conf_text(out), message=job_pb2.NetProto())
    assert list(net.layer) == out


def write_cifar_like(path, n=40, seed=0):
    rng = np.random.default_rng(seed)
    with KVFileWriter(str(path)) as w:
        for i in range(n):
            c = int(rng.integers(0, 10))
            x = rng.normal(0, 30, 3 * 32 * 32) + 5 * c
            w.insert("%08d" % i, encode_record(label=c, data=x.astype(np.float32).tolist(), shape=[3, 32, 32]))


def train(job, n, dtype, steps):
    """The train net split among ``n`` workers (1: unpartitioned) after ``steps`` BPWorker steps
    from the same seeded values; returns (whole params by name, the metrics of each step)."""
    streams = RandomStreams(3)
    net = NeuralNet(job.neuralnet, job_pb2.kTrain, Backend(None), streams, dtype=dtype, npartitions=n)
    for name, p in sorted(net.owners.items()):
        p.init_values(np.random.default_rng(sum(map(ord, name))))
    upd = create_updater(job.updater)
    worker = PartitionWorker(net, upd) if n > 1 else BPWorker(net, upd, replicas=1)
    metrics = []
    for step in range(steps):
        worker.train_one_batch(step)
        metrics.append(worker.train_metrics.last)
    return {k: np.array(p.data, dtype=np.float64) for k, p in net.owners.items()}, metrics


def assert_same_training(a, b, rtol, atol):
    (pa, ma), (pb, mb) = a, b
    assert sorted(pa) == sorted(pb)
    for name in pa:
        assert pa[name].shape == pb[name].shape, name
        np.testing.assert_allclose(pb[name], pa[name], rtol=rtol, atol=atol, err_msg=name)
    for x, y in zip(ma, mb):
        assert x.keys() == y.keys() and all(abs(x[k] - y[k]) <= rtol * 10 + atol for k in x)


@pytest.fixture(scope="module")
def hybrid_job(tmp_path_factory):
    path = tmp_path_factory.mktemp("hybrid") / "train.bin"
    write_cifar_like(path)
    text = open(HYBRID).read()
    text = text.replace('path: "examples/cifar10/train_data.bin"', 'path: "%s"' % path)
    text = text.replace('mean_file: "examples/cifar10/image_mean.bin"', "").replace("batchsize: 100", "batchsize: 10")
    job = parse_job_conf(text)
    job.updater.learning_rate.fixedstep_conf.step_lr[0] = 0.01    # steps that move the params visibly
    return job


@pytest.mark.parametrize("dtype,rtol,atol", [(np.float64, 1e-10, 1e-13), (np.float32, 2e-4, 1e-6)])
def test_hybrid_conf_on_two_workers_trains_as_one(hybrid_job, dtype, rtol, atol):
    one = train(hybrid_job, 1, dtype, 3)
    two = train(hybrid_job, 2, dtype, 3)
    moved = max(float(np.max(np.abs(v))) for v in one[0].values())
    assert moved > 0
    assert_same_training(one, two, rtol, atol)


MLP = """name: "wide" train_steps: 4 train_one_batch { alg: kBP }
updater { type: kSGD momentum: 0.9 weight_decay: 0.001 learning_rate { type: kFixed base_lr: 0.1 } }
neuralnet {
  layer { name: "data" type: kRecordInput store_conf { backend: "kvfile" path: "%(path)s" batchsize: 8 shape: 20 } }
  layer { name: "fc1" type: kInnerProduct srclayers: "data" partition_dim: 1 innerproduct_conf { num_output: 24 }
          param { name: "w1" init { type: kGaussian std: 0.2 } } param { name: "b1" init { type: kUniform low: -0.1 high: 0.1 } } }
  layer { name: "t1" type: kSTanh srclayers: "fc1" partition_dim: 1 }
  layer { name: "fc2" type: kInnerProduct srclayers: "t1" partition_dim: 1 innerproduct_conf { num_output: 16 %(transpose)s }
          param { name: "w2" init { type: kGaussian std: 0.2 } } param { name: "b2" init { type: kUniform low: -0.1 high: 0.1 } } }
  layer { name: "r2" type: kReLU srclayers: "fc2" partition_dim: 1 }
  layer { name: "fc3" type: kInnerProduct srclayers: "r2" innerproduct_conf { num_output: 4 }
          param { name: "w3" init { type: kGaussian std: 0.2 } } param { name: "b3" init { type: kConstant value: 0 } } }
  layer { name: "loss" type: kSoftmaxLoss srclayers: "fc3" srclayers: "data" }
}
"""


@pytest.fixture(scope="module")
def mlp_records(tmp_path_factory):
    path = tmp_path_factory.mktemp("mlp") / "train.bin"
    rng = np.random.default_rng(5)
    with KVFileWriter(str(path)) as w:
        for i in range(48):
            c = int(rng.integers(0, 4))
            w.insert("%08d" % i, encode_record(label=c, data=(rng.normal(0, 1, 20) + c).astype(np.float32).tolist(),
                                               shape=[20]))
    return str(path)


@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("transpose", ["", "transpose: true"])
def test_deep_mlp_with_wide_layers_split_by_features_trains_as_one(mlp_records, n, transpose):
    job = parse_job_conf(MLP % dict(path=mlp_records, transpose=transpose))
    one = train(job, 1, np.float64, 4)
    assert_same_training(one, train(job, n, np.float64, 4), 1e-10, 1e-13)
    assert_same_training(train(job, 1, np.float32, 4), train(job, n, np.float32, 4), 2e-4, 1e-6)


def test_feature_split_params_are_views_of_the_whole(mlp_records):
    job = parse_job_conf(MLP % dict(path=mlp_records, transpose="transpose: true"))
    net = NeuralNet(job.neuralnet, job_pb2.kTrain, Backend(None), RandomStreams(0), npartitions=2)
    w2 = net.owners["w2"]
    assert w2.shape == (24, 16) and w2.grad_scale == 0.5 and [p.shape for p in w2.slices] == [(24, 8), (24, 8)]
    w2.data[...] = np.arange(w2.size).reshape(w2.shape)
    np.testing.assert_array_equal(net.by_name["fc2@1"].weight.data, w2.data[:, 8:])
    assert np.shares_memory(net.by_name["fc1@0"].weight.data, net.owners["w1"].data)
    assert np.shares_memory(net.by_name["fc1@1"].bias.grad, net.owners["b1"].grad)
    assert net.batch_size == 8 and net.by_name["data@1"].out_shape == (4, 20)
    assert {"w1", "b1", "w2", "b2", "w3", "b3"} == set(net.owners) == {p.name for p in net.owner_params}


# -- the connection layers -------------------------------------------------------------------
@pytest.mark.parametrize("conf,shapes", [
    ('name: "s" type: kSplit split_conf { num_splits: 2 }', [(3, 4)]),
    ('name: "s" type: kSlice slice_conf { slice_dim: 0 num_slices: 2 }', [(4, 3)]),
    ('name: "s" type: kSlice slice_conf { slice_dim: 1 num_slices: 3 }', [(2, 6, 2)]),
    ('name: "c" type: kConcate concate_conf { concate_dim: 0 num_concates: 2 }', [(2, 3), (3, 3)]),
    ('name: "c" type: kConcate concate_conf { concate_dim: 1 num_concates: 3 }', [(2, 1, 2), (2, 3, 2), (2, 2, 2)]),
    ('name: "b" type: kBridgeSrc', [(3, 5)]),
    ('name: "b" type: kBridgeDst', [(3, 5)]),
])
def test_connection_layer_gradients(conf, shapes):
    check_layer_gradients(conf, shapes)


EXPLICIT = """name: "explicit" train_steps: 3
updater { type: kSGD learning_rate { type: kFixed base_lr: 0.2 } }
neuralnet {
  layer { name: "data" type: kRecordInput store_conf { backend: "kvfile" path: "%(path)s" batchsize: 8 shape: 20 } }
  layer { name: "fc1" type: kInnerProduct srclayers: "data" innerproduct_conf { num_output: 6 }
          param { name: "w1" init { type: kGaussian std: 0.3 } } param { name: "b1" init { type: kConstant value: 0 } } }
  %(middle)s
  layer { name: "fc2" type: kInnerProduct srclayers: "%(last)s" innerproduct_conf { num_output: 4 }
          param { name: "w2" init { type: kGaussian std: 0.3 } } param { name: "b2" init { type: kConstant value: 0 } } }
  layer { name: "loss" type: kSoftmaxLoss srclayers: "fc2" srclayers: "data" }
}
"""
PLAIN = 'layer { name: "t" type: kSTanh srclayers: "fc1" }'
PIECES = """layer { name: "sl" type: kSlice srclayers: "fc1" slice_conf { slice_dim: %(dim)d num_slices: 2 } }
  layer { name: "ta" type: kSTanh srclayers: "sl" }
  layer { name: "tb" type: kSTanh srclayers: "sl" }
  layer { name: "sp" type: kSplit srclayers: "tb" split_conf { num_splits: 1 } }
  layer { name: "cc" type: kConcate srclayers: "ta" srclayers: "sp" concate_conf { concate_dim: %(dim)d num_concates: 2 } }"""


@pytest.mark.parametrize("dim", [0, 1])
def test_explicit_slice_split_and_concate_in_a_conf_compute_the_plain_net(mlp_records, dim):
    plain = parse_job_conf(EXPLICIT % dict(path=mlp_records, middle=PLAIN, last="t"))
    pieces = parse_job_conf(EXPLICIT % dict(path=mlp_records, middle=PIECES % dict(dim=dim), last="cc"))
    assert_same_training(train(plain, 1, np.float64, 3), train(pieces, 1, np.float64, 3), 1e-12, 1e-14)


def test_a_slice_read_by_more_layers_than_it_has_slots_is_refused(mlp_records):
    text = EXPLICIT % dict(path=mlp_records, middle=PIECES % dict(dim=1) + '\n layer { name: "tc" type: kSTanh '
                           'srclayers: "sl" }', last="cc")
    with pytest.raises(ConfigError, match=r"num_slices` of layer 'sl' \(kSlice\). Expected one slot per layer that "
                                          r"reads it \(3: ta, tb, tc\). Received: 2"):
        NeuralNet(parse_job_conf(text).neuralnet, job_pb2.kTrain, Backend(None), RandomStreams(0))


# -- bad input -------------------------------------------------------------------------------
def _job(mlp_records, ws, edit=lambda t: t, cluster="nworkers_per_group: 2 nworkers_per_procs: 2"):
    text = edit(MLP % dict(path=mlp_records, transpose="")) + 'cluster { workspace: "%s" %s }\n' % (ws, cluster)
    return parse_job_conf(text)


@pytest.mark.parametrize("edit,cluster,message", [
    (lambda t: t.replace('name: "r2" type: kReLU srclayers: "fc2" partition_dim: 1',
                         'name: "r2" type: kReLU srclayers: "fc2" partition_dim: 2'), None,
     r"`partition_dim` of layer 'r2' \(kReLU\). Expected 0 \(split by the batch\), 1 \(by the features\) or -1"),
    (lambda t: t, "nworkers_per_group: 5 nworkers_per_procs: 5",
     r"`innerproduct_conf.num_output` of layer 'fc1' \(kInnerProduct\). Expected a multiple of the 5 workers.*"
     r"Received: 24.*help: use 20 or 25"),
    (lambda t: t.replace('srclayers: "fc3" srclayers: "data" }', 'srclayers: "fc3" srclayers: "data" '
                         'partition_dim: 1 }'), None,
     r"`partition_dim` of layer 'loss' \(kSoftmaxLoss\). Expected 0 .*every output of a sample.*Received: 1"),
    (lambda t: t.replace("neuralnet {", "neuralnet { partition_dim: 1"), None,
     r"`partition_dim` of layer 'data' \(kRecordInput\). Expected 0 .*a data layer reads whole records"),
    (lambda t: t.replace("batchsize: 8", "batchsize: 9"), None,
     r"`store_conf.batchsize` of layer 'data'. Expected a multiple of the 2 workers.*Received: 9"),
    (lambda t: t, "nworker_groups: 2 nworkers_per_group: 2 nworkers_per_procs: 4",
     r"split by features \(partition_dim 1\) among the 2 workers of a group cannot train with 2 worker groups"),
    (lambda t: t.replace("neuralnet {", "neuralnet { partition_dim: 3"), None,
     r"`neuralnet.partition_dim`. Expected 0 .* or 1 .*Received: 3"),
])
def test_bad_partitioning_is_refused_clearly(mlp_records, tmp_path, edit, cluster, message):
    kw = {} if cluster is None else dict(cluster=cluster)
    job = _job(mlp_records, tmp_path / "ws", edit, **kw)
    with pytest.raises(ConfigError, match="(?s)" + message):
        Driver(verbose=False, comm=None).train(job)


def test_lrn_split_by_channels_is_refused(hybrid_job):
    job = job_pb2.JobProto()
    job.CopyFrom(hybrid_job)
    for lp in job.neuralnet.layer:
        if lp.name in ("conv2", "norm1", "relu1", "pool1", "conv1"):
            lp.partition_dim = 1
    with pytest.raises(ConfigError, match=r"layer 'norm1' \(kLRN\). Expected 0 .*mixes neighbouring channels"):
        NeuralNet(job.neuralnet, job_pb2.kTrain, Backend(None), RandomStreams(0), npartitions=2)


def test_one_worker_ignores_partition_dim(mlp_records, tmp_path):
    # SINGA: with one worker per group nothing is split (and nothing inserted)
    job = _job(mlp_records, tmp_path / "ws", cluster="")
    job.train_steps = 2
    res = Driver(verbose=False, comm=None).train(job)
    assert res.train


# -- the original conf, end to end -----------------------------------------------------------
def test_singa_run_trains_cifar10_hybrid_conf_unchanged(in_tmp):
    from tests.test_cifar10_data import write_batches
    write_batches(in_tmp / "raw", n=40)
    r = run([os.path.join(BIN, "singa-create-data"), "cifar10", str(in_tmp / "raw"), "examples/cifar10"], in_tmp)
    assert r.returncode == 0, r.stderr
    text = open(HYBRID).read()
    (in_tmp / "job.conf").write_text(text)
    r = singa_run("-conf", "job.conf", "-set", "train_steps=4", "-set", "disp_freq=1", cwd=in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "split among the group's 2 workers" in r.stdout
    losses = [float(x) for x in re.findall(r"Train @ step \d+: loss = ([\d.]+)", r.stdout)]
    assert len(losses) == 4 and all(np.isfinite(losses))
    # the checkpoint holds the whole params (w4 reassembled from the two workers' slices)
    path = in_tmp / "examples/cifar10/checkpoint/step4-worker0"
    blobs = dict((name, values.shape) for name, values, _ in ckpt.read_checkpoint(str(path)))
    assert blobs["w4"] == (10, 576) and blobs["b4"] == (10,) and blobs["w1"] == (32, 75)
    # and training resumes from it, partitioned again
    r = singa_run("-conf", "job.conf", "-set", "train_steps=6", "-set", "disp_freq=1", "-resume", cwd=in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "6 steps from step 4" in r.stdout and os.path.isfile(in_tmp / "examples/cifar10/checkpoint/step6-worker0")


# -- the partitions on threads ---------------------------------------------------------------
def test_partitions_on_threads_equal_them_one_after_the_other(hybrid_job):
    from singa import switches
    threaded = train(hybrid_job, 2, np.float64, 2)
    with switches.using(SINGA_PARTITION_SEQUENTIAL=1):
        sequential = train(hybrid_job, 2, np.float64, 2)
    assert_same_training(sequential, threaded, 1e-12, 1e-15)


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_a_failing_partition_stops_the_step_without_a_hang(mlp_records, where):
    import time
    job = parse_job_conf(MLP % dict(path=mlp_records, transpose=""))
    net = NeuralNet(job.neuralnet, job_pb2.kTrain, Backend(None), RandomStreams(0), npartitions=2)
    for p in net.owner_params:
        p.init_values(np.random.default_rng(0))
    worker = PartitionWorker(net, create_updater(job.updater))
    worker.train_one_batch(0)
    victim = net.by_name["fc2@1"]       # partition 1; partition 0 waits on its bridges

    def boom(*a, **k):
        raise FloatingPointError("partition 1 broke")
    setattr(victim, where, boom)
    t = time.time()
    with pytest.raises(FloatingPointError, match="partition 1 broke"):
        worker.train_one_batch(1)
    assert time.time() - t < 10
    del victim.__dict__[where]           # and the next step runs again
    worker.train_one_batch(2)


# -- the partitions on processes -------------------------------------------------------------
def test_hybrid_net_on_two_processes_equals_one_process(in_tmp):
    from tests.test_mpi import JOB, MPIEXEC, mpirun, params, write_records
    if MPIEXEC is None:
        pytest.skip("no mpiexec")
    write_records(in_tmp / "train.bin")
    hybrid = JOB.replace('name: "fc1" type: kInnerProduct', 'name: "fc1" type: kInnerProduct partition_dim: 1')
    hybrid = hybrid.replace('name: "act1" type: kSTanh', 'name: "act1" type: kSTanh partition_dim: 1')
    (in_tmp / "one.conf").write_text(JOB % dict(steps=8, ws="one", cluster=""))
    (in_tmp / "threads.conf").write_text(hybrid % dict(steps=8, ws="threads", cluster="nworkers_per_group: 2 "
                                                                                     "nworkers_per_procs: 2"))
    (in_tmp / "procs.conf").write_text(hybrid % dict(steps=8, ws="procs", cluster="nworkers_per_group: 2"))
    for conf in ("one.conf", "threads.conf"):
        Driver(verbose=False, comm=None).train(parse_job_conf((in_tmp / conf).read_text()))
    r, _ = mpirun(2, ["-m", "singa", "-conf", "procs.conf"], in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "split among the group's 2 workers (partition_dim 1 layers by features, the others by the batch; one " \
           "per process (MPI))" in r.stdout
    # stopped at step 4 and resumed: the same values, to the bit (slices, updater state, data positions)
    (in_tmp / "resumed.conf").write_text(hybrid % dict(steps=4, ws="resumed", cluster="nworkers_per_group: 2"))
    for extra in ([], ["-set", "train_steps=8", "-resume"]):
        r, _ = mpirun(2, ["-m", "singa", "-conf", "resumed.conf"] + extra, in_tmp)
        assert r.returncode == 0, r.stderr + r.stdout
    resumed, procs = params(in_tmp / "resumed/checkpoint/step8-worker0"), params(in_tmp / "procs/checkpoint/step8-worker0")
    assert all(np.array_equal(resumed[k], procs[k]) for k in procs)
    one = params(in_tmp / "one/checkpoint/step8-worker0")
    for ws in ("threads", "procs"):
        got = params(in_tmp / ws / "checkpoint/step8-worker0")
        assert sorted(got) == sorted(one)
        for name in one:
            np.testing.assert_allclose(got[name], one[name], rtol=2e-5, atol=2e-6, err_msg="%s %s" % (ws, name))


# -- the Python API ---------------------------------------------------------------------------
def test_python_api_splits_layers_by_partition_dim(in_tmp, mlp_records):
    from singa.model import SGD, Cluster, Data, Dense, Sequential, Store

    def fit(ws, split, **cluster):
        m = Sequential("api", ["x"])
        kw = dict(partition_dim=1) if split else {}
        m.add(Dense(24, init="uniform", activation="stanh", **kw))
        m.add(Dense(16, init="uniform", activation="relu", **kw))
        m.add(Dense(4, init="uniform", activation="softmax"))
        m.compile(loss="categorical_crossentropy", optimizer=SGD(lr=0.1, momentum=0.9),
                  cluster=Cluster(ws, **cluster), partition_dim=0)
        X = Data(load="recordinput", phase="train", conf=Store(backend="kvfile", path=mlp_records, batchsize=8,
                                                               shape=20))
        result = m.fit(X, nb_epoch=6, seed=3)
        return m, result, {n: v for n, v, _ in ckpt.read_checkpoint(m.last_checkpoint_path)}

    m, split, got = fit("split", True, nworkers_per_group=2, nworkers_per_procs=2)
    net = m.jobconf.neuralnet
    assert net.partition_dim == 0 and net.HasField("partition_dim")
    pds = {lp.name: (lp.partition_dim if lp.HasField("partition_dim") else None) for lp in net.layer}
    assert sorted(v for v in pds.values() if v == 1) == [1, 1, 1, 1]       # two Dense and their activations
    _, plain, want = fit("plain", False)
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=2e-5, atol=2e-6, err_msg=name)
    assert split.last("train")["loss"] == pytest.approx(plain.last("train")["loss"], rel=1e-4)
    with pytest.raises(ConfigError, match=r"Invalid value for `partition_dim` of compile\(\)\. Expected 0 .* or 1"):
        Sequential("bad", ["x"]).compile(optimizer=SGD(lr=0.1), cluster=Cluster("ws"), partition_dim=2)


# -- checkpoints in SINGA's layout ---------------------------------------------------------------
def test_singa_layout_checkpoints_load_into_partitioned_and_whole_nets(mlp_records, tmp_path):
    """SINGA's workers each wrote their own slices of a feature-split param under the same name
    (step<N>-worker<k>); listing every worker's file gives the whole param, split or not here."""
    job = parse_job_conf(MLP % dict(path=mlp_records, transpose="transpose: true"))
    rng = np.random.default_rng(1)
    whole = {"w1": rng.normal(size=(24, 20)), "b1": rng.normal(size=24), "w2": rng.normal(size=(24, 16)),
             "b2": rng.normal(size=16), "w3": rng.normal(size=(4, 16)), "b3": rng.normal(size=4)}
    whole = {k: v.astype(np.float32) for k, v in whole.items()}
    halves = {0: [("w3", whole["w3"], 7), ("b3", whole["b3"], 7)], 1: []}
    for k in (0, 1):
        halves[k] += [("w1", whole["w1"][12 * k:12 * (k + 1)], 7), ("b1", whole["b1"][12 * k:12 * (k + 1)], 7),
                      ("w2", whole["w2"][:, 8 * k:8 * (k + 1)], 7), ("b2", whole["b2"][8 * k:8 * (k + 1)], 7)]
    paths = [str(tmp_path / ("step7-worker%d" % k)) for k in (0, 1)]
    for k, path in enumerate(paths):
        ckpt.write_checkpoint(path, halves[k])
    for n in (1, 2):
        net = NeuralNet(job.neuralnet, job_pb2.kTrain, Backend(None), RandomStreams(0), npartitions=n)
        loaded = ckpt.load_params(paths, net)
        assert sorted(loaded) == sorted(whole)
        for name, v in whole.items():
            np.testing.assert_array_equal(net.owners[name].host_values(), v)
            assert net.owners[name].version == 7
    net = NeuralNet(job.neuralnet, job_pb2.kTrain, Backend(None), RandomStreams(0), npartitions=2)
    with pytest.raises(Exception, match=r"hold param 'w1' in pieces of shapes \[\(12, 20\)\] \(workers \[0\]\), "
                                        r"which do not make up its shape \(24, 20\)"):
        ckpt.load_params(paths[:1], net)


# -- the partitions on devices of their own ----------------------------------------------------
def test_cudnn_hybrid_conf_on_two_devices_equals_the_cpu(in_tmp, monkeypatch):
    """cudnn_hybrid.conf unchanged: worker k on gpu k in one process (the strict CuPy stand-in with
    two devices here; real GPUs when lent), equal to the same conf on the CPU (-cpu), and resumed."""
    from tests.test_cifar10_data import write_batches
    write_batches(in_tmp / "raw", n=40)
    r = run([os.path.join(BIN, "singa-create-data"), "cifar10", str(in_tmp / "raw"), "examples/cifar10"], in_tmp)
    assert r.returncode == 0, r.stderr
    (in_tmp / "job.conf").write_text(open(os.path.join(CONF_DIR, "cifar10-cudnn_hybrid.conf")).read())
    monkeypatch.setenv("SINGA_GPU_STANDIN", "2")
    short = ("-set", "train_steps=3", "-set", "disp_freq=1")
    r = singa_run("-conf", "job.conf", *short, "-set", 'cluster.workspace="gpu"', cwd=in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "threads of this process on Backend(standin:0), Backend(standin:1))" in r.stdout
    r = singa_run("-conf", "job.conf", "-set", "train_steps=5", "-set", 'cluster.workspace="gpu"', "-resume",
                  cwd=in_tmp)
    assert r.returncode == 0 and "5 steps from step 3" in r.stdout, r.stderr + r.stdout
    r = singa_run("-conf", "job.conf", "-cpu", "-set", "train_steps=5", "-set", 'cluster.workspace="cpu"', cwd=in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    got = {n: v for n, v, _ in ckpt.read_checkpoint(str(in_tmp / "gpu/checkpoint/step5-worker0"))}
    want = {n: v for n, v, _ in ckpt.read_checkpoint(str(in_tmp / "cpu/checkpoint/step5-worker0"))}
    assert sorted(got) == sorted(want) and got["w4"].shape == (10, 576)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-7, err_msg=name)


def test_bench_partition_runs(tmp_path):
    """benchmarks/bench_partition.py end to end, few steps (its numbers: benchmarks/README.md)."""
    import subprocess
    import sys
    from tests.conftest import ROOT
    from tests.test_mpi import MPIEXEC
    if MPIEXEC is None:
        pytest.skip("no mpiexec")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_partition.py"), "--batches", "8",
                        "--repeats", "1", "--steps", "2"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    row = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("8 "))
    model_mb, data_mb = [float(x) for x in re.findall(r"([\d.]+) MB/step", row)]
    assert data_mb > 47 and model_mb < data_mb / 3, row


def test_hybrid_conf_on_two_processes_equals_one_worker(in_tmp):
    """SINGA's cifar10-hybrid.conf (batch and paths shortened) on `mpiexec -n 2`, one worker per
    process, against the same conf with one worker."""
    from tests.test_mpi import MPIEXEC, mpirun, params
    if MPIEXEC is None:
        pytest.skip("no mpiexec")
    write_cifar_like(in_tmp / "train.bin")
    text = open(HYBRID).read().replace('path: "examples/cifar10/train_data.bin"', 'path: "train.bin"')
    text = text.replace('mean_file: "examples/cifar10/image_mean.bin"', "").replace("batchsize: 100", "batchsize: 10")
    text = text.replace("step_lr:0.001", "step_lr:0.01")
    (in_tmp / "hybrid.conf").write_text(text)
    short = ["-set", "train_steps=4", "-set", "disp_freq=2"]
    r, _ = mpirun(2, ["-m", "singa", "-conf", "hybrid.conf", "-set", "cluster.nworkers_per_procs=1",
                      "-set", 'cluster.workspace="procs"'] + short, in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "one per process (MPI)" in r.stdout
    r = singa_run("-conf", "hybrid.conf", "-set", "cluster.nworkers_per_group=1", "-set", "cluster.nworkers_per_procs=1",
                  "-set", 'cluster.workspace="one"', *short, cwd=in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    got, want = params(in_tmp / "procs/checkpoint/step4-worker0"), params(in_tmp / "one/checkpoint/step4-worker0")
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=2e-5, atol=1e-7, err_msg=name)


def test_singa_run_shows_the_net_that_runs(tmp_path):
    r = singa_run("-conf", HYBRID, "-show-net", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    head, _, text = r.stdout.partition("\n")
    assert head == "# the training net of cifar10-convnet: 44 layers, split among 2 workers"
    net = parse_job_conf(text, message=job_pb2.NetProto())
    assert len(net.layer) == 44 and net.layer[0].name == "data@0"
    # an unrolled net: SINGA's 251 layers of char-rnn-job.conf (SINGA-V0-REST.md 1.6)
    r = singa_run("-conf", os.path.join(CONF_DIR, "char-rnn-job.conf"), "-show-net", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("# the training net of char-rnn: 251 layers\n"), r.stderr
