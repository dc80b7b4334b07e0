# covers: singa/exchange.py, singa/worker.py
"""The gradient-exchange seam (singa.exchange): which strategy a worker gets from what the Driver
gives it, and that a synchronous group of one process (an identity Allreduce) trains exactly as
the same replicas summed locally, on the host and, through the CuPy stand-in, from a device
(CUDA-aware and staged)."""
import numpy as np
import pytest

from singa import exchange
from singa.backends import Backend
from singa.io.kvfile import KVFileWriter
from singa.io.record import encode_record
from singa.neuralnet import NeuralNet
from singa.proto import job_pb2, parse_job_conf
from singa.random import RandomStreams
from singa.updaters import create_updater
from singa.worker import BPWorker
from tests.test_fused_update import NET


class OneRank:
    """A group of one process: the Allreduce leaves the buffer as it is."""

    def __init__(self, cuda_aware=False):
        self.cuda_aware = cuda_aware
        self.calls = 0

    def allreduce_sum(self, buf):
        self.calls += 1
        return buf


class FakeStub:
    stub = type("S", (), {"serve": staticmethod(lambda: None)})()


def test_the_strategy_follows_the_workers_flags():
    assert exchange.create(np, 1) is None
    assert isinstance(exchange.create(np, 3), exchange.LocalSum)
    assert isinstance(exchange.create(object(), 3), exchange.LocalSum)
    assert isinstance(exchange.create(np, 1, comm=OneRank()), exchange.HostAllreduce)
    assert isinstance(exchange.create(object(), 1, comm=OneRank()), exchange.DeviceAllreduce)
    ps = exchange.create(np, 1, comm=OneRank(), ps=FakeStub())
    assert isinstance(ps, exchange.ParameterServer)
    assert ps.between_passes(1) is FakeStub.stub.serve and ps.between_passes(2) is None


def test_a_metric_row_refuses_changed_metrics():
    row = exchange.MetricRow(["acc", "loss"])
    assert row.values({"loss": 1.5, "acc": 0.25}) == [0.25, 1.5]
    assert row.read(np.array([0.25, 1.5], np.float32)) == {"acc": 0.25, "loss": 1.5}
    with pytest.raises(RuntimeError, match="metrics changed between steps"):
        row.values({"loss": 1.5})


def train(records, device, comm=None, steps=4):
    job = parse_job_conf(NET % dict(path=records, type="kSGD", upd="momentum: 0.9", w1="", w2="", tr=""))
    streams = RandomStreams(3)
    net = NeuralNet(job.neuralnet, job_pb2.kTrain, Backend(0 if device else None), streams, dtype=np.float32)
    for p in net.owner_params:
        p.init_values(streams.stream("init/" + p.name))
    worker = BPWorker(net, create_updater(job.updater), comm=comm, slices=[(0, 5), (5, 12)], slice_ids=[0, 1],
                      batch=12)
    metrics = []
    for step in range(steps):
        worker.train_one_batch(step)
        metrics.append(worker.train_metrics.pop())
    return {p.name: net.backend.to_host(p.data).copy() for p in net.owner_params}, metrics, worker


@pytest.mark.parametrize("where", ["host", "device-cuda-aware", "device-staged"])
def test_an_allreduce_of_one_process_equals_the_local_sum(records, monkeypatch, where):
    device = where != "host"
    if device:
        monkeypatch.setenv("SINGA_GPU_STANDIN", "1")
    ref, ref_metrics, local = train(records, device)
    assert isinstance(local.grad_exchange, exchange.LocalSum)
    comm = OneRank(cuda_aware=where == "device-cuda-aware")
    got, metrics, worker = train(records, device, comm)
    kind = exchange.HostAllreduce if where == "host" else exchange.DeviceAllreduce
    assert isinstance(worker.grad_exchange, kind) and comm.calls == 4
    for name in ref:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    # the metrics went through the float32 row of the flat buffer
    for m, r in zip(metrics, ref_metrics):
        assert m.keys() == r.keys()
        for k in m:
            assert m[k] == pytest.approx(r[k], rel=1e-6)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    path = tmp_path_factory.mktemp("exchange") / "train.bin"
    rng = np.random.default_rng(7)
    with KVFileWriter(str(path)) as w:
        for i in range(60):
            c = int(rng.integers(0, 4))
            w.insert("%08d" % i, encode_record(label=c, data=(rng.normal(0, 2, 9) + c).astype(np.float32).tolist(),
                                               shape=[9]))
    return str(path)
