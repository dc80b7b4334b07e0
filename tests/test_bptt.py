# covers: singa/worker.py (BPTTWorker), singa/driver.py (alg kBPTT), singa/training_setup.py (kBPTT checks)
"""alg kBPTT (SINGA-V0-REST.md 1.5): the gradient of a whole unrolled net, summed over its time
steps, against float64 finite differences (NumPy and the device stand-in); training that
learns a task only recurrence solves; the gradient exchanges; bit-identical resume; the
test-mode rewiring of ``dynamic_srclayer``; fit(alg='bptt'); the errors."""
import re

import numpy as np
import pytest

from singa import exchange
from singa.backends import Backend
from singa.driver import Driver
from singa.errors import ConfigError
from singa.io import checkpoint as ckpt
from singa.layers import Layer, register
from singa.neuralnet import NeuralNet
from singa.proto import job_pb2, parse_job_conf
from singa.random import RandomStreams
from singa.testing.gradcheck import device_backends
from singa.updaters import create_updater
from singa.worker import BPTTWorker
from tests.conftest import retrain_last_checkpoint
from tests.test_exchange import OneRank
from tests.test_unroll import build, rnn_conf, write_sequences

JOB = """name: "bptt" train_steps: %(steps)d disp_freq: 10 %(extra)s
train_one_batch { alg: %(alg)s }
updater { type: kSGD momentum: 0.9 learning_rate { type: kFixed base_lr: 0.05 } }
cluster { workspace: "%(ws)s" %(cluster)s }
"""


def job_text(tmp_path, steps=150, alg="kBPTT", ws="ws", extra="", cluster="", T=3):
    path = write_sequences(tmp_path / "seq.bin", T=T, n=40)
    return (JOB % dict(steps=steps, alg=alg, ws=tmp_path / ws, extra=extra, cluster=cluster)
            + rnn_conf(T=T).replace("PATH", path))


def total_loss(net):
    means, counts = net.metric_means()
    return means["loss"] * counts["loss"]


@pytest.mark.parametrize("backend", [None] + device_backends()[:1], ids=["numpy", "device"])
def test_the_bptt_gradient_of_a_whole_unrolled_net_matches_finite_differences(tmp_path, backend):
    """T = 4 steps of h_t = stanh(W (x_t + h_{t-1}) + b), y_t = V h_t + c, a loss per step: the
    accumulated gradient of the copies' shared params is d(sum_t loss_t)/d(param)."""
    net, _ = build(tmp_path, T=4, dtype=np.float64, backend=backend or Backend(None))
    worker = BPTTWorker(net, None, replicas=1)
    for layer in net.data_layers:                       # one fixed batch for every pass
        layer.forward(job_pb2.kTrain, [])
        layer.forward = lambda flag, srcs, layer=layer: layer.data
    worker._passes(net)
    host = net.backend.to_host
    grads = {k: host(p.grad).copy() for k, p in net.owners.items()}
    assert all(np.abs(g).max() > 1e-3 for g in grads.values())
    eps, rng = 1e-6, np.random.default_rng(0)
    for name, p in net.owners.items():
        values = host(p.data).copy()
        for idx in [np.unravel_index(i, p.shape) for i in rng.choice(p.size, min(p.size, 6), replace=False)]:
            f = []
            for d in (eps, -eps):
                v = values.copy()
                v[idx] += d
                p.set_values(v)
                net.forward(job_pb2.kTrain)
                f.append(total_loss(net))
            p.set_values(values)
            num = (f[0] - f[1]) / (2 * eps)
            assert grads[name][idx] == pytest.approx(num, rel=1e-6, abs=1e-9), (name, idx)


def test_the_copies_gradients_sum_and_one_update_applies(tmp_path):
    net, _ = build(tmp_path, T=3, dtype=np.float64)
    worker = BPTTWorker(net, None, replicas=1)
    worker._passes(net)
    w = net.owners["w"]
    first = w.grad.copy()
    worker._passes(net)                 # the next batch: zeroed first, not added to the last
    assert not np.array_equal(first, w.grad) and np.abs(w.grad).max() < 10 * np.abs(first).max()


def test_bptt_training_learns_a_task_that_needs_the_recurrence(tmp_path, capsys):
    res = Driver().train(parse_job_conf(job_text(tmp_path, steps=200)))
    first, last = res.train[min(res.train)]["loss"], res.train[max(res.train)]["loss"]
    assert first > 1.2 and last < 0.5 * first              # chance is ln 4 = 1.39 per step
    # the per-step mean, in Results: above 1/3 + 2/3 * 1/4 = 0.5, what copy 0 (its own input) and
    # chance on the other copies give, so the recurrence carries the previous input
    assert res.train[max(res.train)]["acc"] > 0.7
    out = capsys.readouterr().out
    m = re.search(r"Train @ step 199: loss = ([\d.]+), accuracy = ([\d.]+);.*summed over the 3 unrolled copies "
                  r"\(SINGA's log\): loss = ([\d.]+), accuracy = ([\d.]+)", out)
    assert m, out
    assert float(m.group(3)) == pytest.approx(3 * float(m.group(1)), rel=1e-5)
    assert float(m.group(4)) == pytest.approx(3 * float(m.group(2)), rel=1e-5)
    names = {n for n, _, _ in ckpt.read_checkpoint(str(tmp_path / "ws/checkpoint/step200-worker0"), strip=False)}
    assert names == {"0#w", "0#b", "0#v", "0#c"}           # SINGA's checkpoint names; no copy i > 0


def test_an_unrolled_net_resumes_bit_identically(tmp_path):
    text = job_text(tmp_path, steps=30, extra="checkpoint_freq: 15")
    full, res, again = retrain_last_checkpoint(text, tmp_path / "ws/checkpoint/step30-worker0")
    assert min(res.train) >= 15
    assert full.keys() == again.keys() and all(np.array_equal(full[n], again[n]) for n in full)


def trained(tmp_path, steps=4, backend=None, **kw):
    net, job = build(tmp_path, T=3, dtype=np.float32, backend=backend)
    updater = parse_job_conf(JOB % dict(steps=1, alg="kBPTT", ws="w", extra="", cluster="")).updater
    worker = BPTTWorker(net, create_updater(updater), **kw)
    metrics = []
    for step in range(steps):
        worker.train_one_batch(step)
        metrics.append(worker.train_metrics.pop())
    return {k: net.backend.to_host(p.data).copy() for k, p in net.owners.items()}, metrics, worker


def test_bptt_through_the_gradient_exchanges(tmp_path):
    ref, ref_m, plain = trained(tmp_path, replicas=1)
    assert plain.grad_exchange is None
    local, local_m, w2 = trained(tmp_path, slices=[(0, 2), (2, 5)], slice_ids=[0, 1], batch=5)
    assert isinstance(w2.grad_exchange, exchange.LocalSum)
    for k in ref:          # two slices of the batch: the same sum, up to float32 rounding
        np.testing.assert_allclose(local[k], ref[k], rtol=1e-4, atol=1e-5, err_msg=k)
    comm = OneRank()
    got, got_m, w3 = trained(tmp_path, slices=[(0, 2), (2, 5)], slice_ids=[0, 1], batch=5, comm=comm)
    assert isinstance(w3.grad_exchange, exchange.HostAllreduce) and comm.calls == 4
    for k in ref:
        np.testing.assert_array_equal(got[k], local[k], err_msg=k)
    for m, r in zip(got_m, ref_m):
        assert m.keys() == r.keys() == {"loss", "acc"} and m["loss"] == pytest.approx(r["loss"], rel=1e-5)


@pytest.mark.parametrize("cuda_aware", [True, False], ids=["cuda-aware", "staged"])
def test_bptt_through_the_device_allreduce(tmp_path, monkeypatch, cuda_aware):
    monkeypatch.setenv("SINGA_GPU_STANDIN", "1")
    kw = dict(slices=[(0, 2), (2, 5)], slice_ids=[0, 1], batch=5)
    local, _, _ = trained(tmp_path, backend=Backend(0), **kw)
    got, _, w = trained(tmp_path, backend=Backend(0), comm=OneRank(cuda_aware=cuda_aware), **kw)
    assert isinstance(w.grad_exchange, exchange.DeviceAllreduce)
    for k in local:
        np.testing.assert_array_equal(got[k], local[k], err_msg=k)


def test_bptt_with_parameter_servers(tmp_path):
    """Two worker groups in this process (Downpour) pushing their summed BPTT gradients."""
    text = job_text(tmp_path, steps=60, cluster="nworker_groups: 2 nworkers_per_procs: 2")
    res = Driver(verbose=False).train(parse_job_conf(text))
    assert res.cluster is not None
    assert res.train[max(res.train)]["loss"] < res.train[min(res.train)]["loss"]


def test_fit_alg_bptt_reaches_the_bptt_worker(in_tmp, monkeypatch):
    """The Python API's fit(X_train, alg='bptt') (SINGA's API, a Data layer) trains with BPTTWorker;
    on a net without unroll_len it is plain back-propagation."""
    from singa import driver
    from singa.io.kvfile import KVFileWriter
    from singa.io.record import encode_record
    from singa.model import SGD, Cluster, Data, Dense, Sequential, Store
    calls = []

    class Spy(BPTTWorker):
        def train_one_batch(self, step):
            calls.append(step)
            return super().train_one_batch(step)
    monkeypatch.setattr(driver, "BPTTWorker", Spy)
    rng = np.random.default_rng(0)
    with KVFileWriter("train.bin") as w:
        for i in range(40):
            w.insert("%08d" % i, encode_record(label=int(i % 3), data=rng.normal(size=5).tolist(), shape=[5]))
    m = Sequential("bptt")
    m.add(Dense(3, init="uniform", activation="softmax"))
    m.compile(loss="categorical_crossentropy", optimizer=SGD(), cluster=Cluster(str(in_tmp / "ws")))
    res = m.fit(Data(load="recordinput", phase="train", conf=Store(backend="kvfile", path="train.bin", batchsize=10,
                                                                   shape=5)), alg="bptt", nb_epoch=4)
    assert calls == [0, 1, 2, 3] and set(res.train[3]) == {"loss", "acc"}


def test_an_unrolled_net_refuses_kbp(tmp_path):
    with pytest.raises(ConfigError, match=r"(?s)`train_one_batch.alg`.*kBPTT for a net that sets `unroll_len`.*"
                                          r"Received: kBP.*help:"):
        Driver(verbose=False).train(parse_job_conf(job_text(tmp_path, alg="kBP")))


def test_an_unknown_alg_is_still_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"Expected kBP.*kCD.*kBPTT.*Received: kUserAlg"):
        Driver(verbose=False).train(parse_job_conf(job_text(tmp_path, alg="kUserAlg")))


# -- test mode: dynamic_srclayer ----------------------------------------------------------------

@register("kTestDummy")
class DummyStandIn(Layer):
    """kRNNDummy's contract as far as the rewiring needs it: zeros of shape (1, 1) with no
    source, else its source's output."""

    def setup(self, src_shapes):
        self.out_shape = (1, 1)
        return self.out_shape

    def forward(self, flag, srcs):
        self.data = srcs[0].data.copy() if srcs else self.xp.zeros((1, 1), self.dtype)
        return self.data


@register("kTestPlus")
class PlusOne(Layer):
    def setup(self, src_shapes):
        self.out_shape = tuple(src_shapes[0])
        return self.out_shape

    def forward(self, flag, srcs):
        self.data = srcs[0].data + 1 + self.conf.unroll_index * 10
        return self.data


def sampler(unroll="", dyn="next"):
    return parse_job_conf("""neuralnet { %s
      layer { name: "dummy" user_type: "kTestDummy" rnn_dummy_conf { dynamic_srclayer: "%s" } }
      layer { name: "next" user_type: "kTestPlus" srclayers: "dummy" } }""" % (unroll, dyn)).neuralnet


@pytest.mark.parametrize("unroll", ["", "unroll_len: 2"])
def test_the_dummy_reads_its_dynamic_source_from_test_step_1_on(unroll):
    net = NeuralNet(sampler(unroll), job_pb2.kTest, Backend(None), RandomStreams(0))
    first = "0#next" if unroll else "next"
    for _ in range(2):                        # each test round starts again from the dummy's own input
        BPTTWorker.test(net, 3, job_pb2.kTest)
        assert float(net.by_name[first].data[0, 0]) == 3      # 0 -> 1 -> 2 -> 3: fed back twice
        assert all(net.srcs[n] == [] for n in net.srcs if n.endswith("dummy"))
    if unroll:                                # copy 1 reads 1#next: 0 -> 11 -> 22 -> 33
        assert float(net.by_name["1#next"].data[0, 0]) == 33
    BPTTWorker.test(net, 2, job_pb2.kVal)     # not in kVal (SINGA: kTest only)
    assert float(net.by_name[first].data[0, 0]) == 1


def test_a_dynamic_source_that_is_not_in_the_net_is_a_clear_error():
    net = NeuralNet(sampler(dyn="argsort"), job_pb2.kTest, Backend(None), RandomStreams(0))
    with pytest.raises(ConfigError, match=r"`rnn_dummy_conf.dynamic_srclayer` of layer 'dummy'.*'argsort'"):
        BPTTWorker.test(net, 2, job_pb2.kTest)


def test_test_rounds_of_a_bptt_job_report_per_step_means(tmp_path):
    """The test net of a kBPTT job is unrolled too: its rounds (in training and in a test-only
    run, Driver.test) take BPTTWorker.test's per-step means."""
    text = job_text(tmp_path, steps=20, extra="test_steps: 2")
    res = Driver(verbose=False).train(parse_job_conf(text))
    assert set(res.test[20]) == {"loss", "acc"} and 0 < res.test[20]["loss"] < 3
    job = parse_job_conf(text + 'checkpoint_path: "%s"' % (tmp_path / "ws/checkpoint/step20-worker0"))
    again = Driver(verbose=False).test(job)
    assert again.test[20]["loss"] == pytest.approx(res.test[20]["loss"], rel=1e-6)


MPI_SCRIPT = """
import sys
import tests.test_unroll  # noqa: F401  (registers the kTestStep stand-in)
from singa.driver import Driver
from singa.proto import parse_job_conf
Driver(sys.argv).train(parse_job_conf(open(sys.argv[1]).read()))
"""


def one_and_two_mpi_processes(in_tmp, conf_of, steps):
    """Params after ``steps``: the job conf ``conf_of(ws)`` trained in this process (ws 'one') and
    by 2 synchronous MPI processes (ws 'two')."""
    from tests.test_mpi import MPIEXEC, mpirun
    if MPIEXEC is None:
        pytest.skip("no mpiexec (pip install 'singa[mpi]')")
    for ws in ("one", "two"):
        (in_tmp / (ws + ".conf")).write_text(conf_of(ws))
    (in_tmp / "job.py").write_text(MPI_SCRIPT)
    Driver(verbose=False, comm=None).train(parse_job_conf((in_tmp / "one.conf").read_text()))
    r, _ = mpirun(2, ["job.py", "two.conf"], in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "2 processes x 1 worker(s) (MPI, synchronous: AllReduce)" in r.stdout
    last = "checkpoint/step%d-worker0" % steps
    return tuple({n: v for n, v, _ in ckpt.read_checkpoint(str(in_tmp / ws / last))} for ws in ("one", "two"))


def test_two_synchronous_mpi_processes_equal_one(in_tmp):
    a, b = one_and_two_mpi_processes(in_tmp, lambda ws: job_text(in_tmp, steps=12, ws=ws), 12)
    assert a.keys() == b.keys() == {"w", "b", "v", "c"}
    for k in a:      # the gradient sum's order differs: equal to float32 rounding
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=2e-6, err_msg=k)


CHAR_RNN = """name: "c" train_steps: 2 disp_freq: 1
train_one_batch { alg: kBPTT }
updater { type: kRMSProp rmsprop_conf { rho: 0.95 } learning_rate { type: kFixed base_lr: 0.01 }
          clip_low: -5 clip_high: 5 }
cluster { workspace: "ws" }
neuralnet {
  unroll_len: 3
  layer { name: "data" type: kCharRNN unroll_len: 1
          char_rnn_conf { path: "%(text)s" vocab_path: "%(vocab)s" batchsize: 4 unroll_len: 3 } }
  layer { name: "onehot" type: kOneHot srclayers: "data" unroll_conn_type: kUnrollOneToAll
          onehot_conf { vocab_size: %(V)d } }
  layer { name: "label" type: kRNNLabel srclayers: "data" unroll_conn_type: kUnrollOneToAll }
  layer { name: "gru1" type: kGRU srclayers: "onehot" gru_conf { dim_hidden: 5 }
          %(gru_params)s }
  layer { name: "ip1" type: kInnerProduct srclayers: "gru1" innerproduct_conf { num_output: %(V)d }
          param { name: "w" init { type: kUniform low: -0.3 high: 0.3 } }
          param { name: "b" init { type: kUniform low: -0.3 high: 0.3 } } }
  layer { name: "loss" type: kSoftmaxLoss srclayers: "ip1" srclayers: "label" }
}
"""


def char_rnn_conf(tmp_path, ws="ws", steps=2, biases=True, cluster=""):
    """CHAR_RNN on a short text (files in tmp_path), its workspace tmp_path/ws, ``cluster`` fields added."""
    text = "the quick brown fox jumps over the lazy dog\n" * 8
    vocab = "".join(sorted(set(text)))
    (tmp_path / "t.txt").write_text(text)
    (tmp_path / "v.txt").write_text(vocab)
    names = ("z_hx", "r_hx", "c_hx", "z_hh", "r_hh", "c_hh") + (("z_b", "r_b", "c_b") if biases else ())
    gru_params = " ".join('param { name: "%s" init { type: kUniform low: -0.3 high: 0.3 } }' % n for n in names)
    conf = CHAR_RNN % dict(text=tmp_path / "t.txt", vocab=tmp_path / "v.txt", V=len(vocab), gru_params=gru_params)
    return conf.replace("train_steps: 2", "train_steps: %d" % steps).replace(
        'cluster { workspace: "ws" }', 'cluster { workspace: "%s" %s}' % (tmp_path / ws, cluster))


def char_rnn_trained(tmp_path, replicas):
    job = parse_job_conf(char_rnn_conf(tmp_path))
    streams = RandomStreams(3)
    net = NeuralNet(job.neuralnet, job_pb2.kTrain, Backend(None), streams, dtype=np.float64)
    for p in net.owner_params:
        p.init_values(streams.stream("init/" + p.name))
    worker = BPTTWorker(net, create_updater(job.updater), replicas=replicas)
    for step in range(3):
        worker.train_one_batch(step)
    return {k: p.data.copy() for k, p in net.owners.items()}, worker.train_metrics.pop()


def test_char_rnn_replicas_slice_every_time_steps_blob(tmp_path):
    # a replica's slice of kCharRNN carries all unroll_len + 1 blobs (DataSlice.datavec), so two
    # threaded replicas of a char-rnn train as one pass over the batch does
    one, m1 = char_rnn_trained(tmp_path, 1)
    two, m2 = char_rnn_trained(tmp_path, 2)
    assert sorted(one) == ["b", "c_b", "c_hh", "c_hx", "r_b", "r_hh", "r_hx", "w", "z_b", "z_hh", "z_hx"]
    for k in one:
        np.testing.assert_allclose(two[k], one[k], rtol=1e-9, atol=1e-12, err_msg=k)
    assert m2["loss"] == pytest.approx(m1["loss"], rel=1e-9)


def test_char_rnn_under_parameter_servers_is_a_clear_error(tmp_path):
    conf = char_rnn_conf(tmp_path, biases=False, cluster="nworker_groups: 2 nworkers_per_procs: 2 ")
    with pytest.raises(ConfigError, match=r"(?s)data layer '0#data' \(kCharRNN\) cannot share its batches.*"
                                          r"help: train it with one worker group"):
        Driver(verbose=False).train(parse_job_conf(conf))




def test_char_rnn_on_two_synchronous_mpi_processes_equals_one(in_tmp):
    a, b = one_and_two_mpi_processes(in_tmp, lambda ws: char_rnn_conf(in_tmp, ws, steps=8), 8)
    assert len(a) == 11 and a.keys() == b.keys()
    for k in a:      # each process BPTTs half the batch's rows; the sums' order differs: float32 rounding
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=2e-6, err_msg=k)


def test_char_rnn_resumes_bit_identically(tmp_path):
    # the params, RMSProp's history and kCharRNN's read position all come back from the checkpoint
    text = char_rnn_conf(tmp_path, "ws", steps=12) + "checkpoint_freq: 6\n"
    full, res, again = retrain_last_checkpoint(text, tmp_path / "ws/checkpoint/step12-worker0")
    assert min(res.train) >= 6
    assert len(full) == 11 and full.keys() == again.keys()
    assert all(np.array_equal(full[n], again[n]) for n in full)
