# covers: singa/server.py, singa/cluster/stub.py, singa/cluster/param_servers.py, singa/cluster/topology.py
#         (Downpour, Hogwild, Sandblaster)
"""Parameter servers (singa.server, singa.cluster.stub): Downpour, Distributed Hogwild and
Sandblaster under a real mpiexec, and the servers' arithmetic in-process.

The invariant that catches a lost or doubled message: with plain SGD (no momentum, no weight
decay, a fixed rate) every applied gradient moves the values by -lr * gradient, whatever values
it was computed on, so the job's final values must be ``init - lr * (sum of every gradient any
worker group pushed)``; for Hogwild that also checks the deltas between server groups."""
import os
import re

import numpy as np
import pytest

from singa.cluster.stub import Stub
from singa.cluster.topology import Topology
from singa.driver import Driver
from singa.errors import ConfigError
from singa.param import Param
from singa.proto import job_pb2, parse_job_conf
from singa.server import Server
from singa.updaters import create_updater
from tests.test_mpi import JOB, MPIEXEC, mpirun, params, write_records

pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'singa[mpi]')")

PLAIN_SGD = "updater { type: kSGD learning_rate { type: kFixed base_lr: 0.05 } }"
MOMENTUM = "updater { type: kSGD momentum: 0.9 weight_decay: 0.001 learning_rate { type: kFixed base_lr: 0.05 } }"

# Runs a job and records, per rank, the sum of the gradients its group leader pushed, and on
# rank 0 the initial values the servers started from (the flat layout: owner params in order).
RECORD = """
import sys
import numpy as np
from singa.cluster import mpi, stub
from singa.driver import Driver
from singa.proto import parse_job_conf

got = {}
push_pull, load = stub.WorkerStub.push_pull, stub.Stub.load

def recording_push_pull(self, step, flat):
    if self.leader:
        got["grads"] = got.get("grads", 0) + flat.flat[:self.stub.total].astype(np.float64)
    return push_pull(self, step, flat)

def recording_load(self, flat):
    got["init"] = flat.astype(np.float64)
    return load(self, flat)

stub.WorkerStub.push_pull, stub.Stub.load = recording_push_pull, recording_load
r = Driver().train(parse_job_conf(open(sys.argv[1]).read()))
rank = mpi.world().rank
np.save("grads-%d.npy" % rank, got.get("grads", np.zeros_like(got["init"])))
if rank == 0:
    np.save("init.npy", got["init"])
print("rank %d cluster %r" % (rank, r.cluster))
"""

CASES = {
    # name: (cluster, processes)
    "downpour": ("nworker_groups: 2 server_worker_separate: true", 3),
    "downpour-2x2-2servers": ("nworker_groups: 2 nworkers_per_group: 2 nservers_per_group: 2 "
                              "server_worker_separate: true", 6),
    "downpour-colocated": ("nworker_groups: 2 nservers_per_group: 2", 2),
    "hogwild": ("nworker_groups: 2 nserver_groups: 2", 2),
    "hogwild-3-sync3": ("nworker_groups: 3 nserver_groups: 3 sync_freq: 3", 3),
    "hogwild-2servers": ("nworker_groups: 2 nserver_groups: 2 nservers_per_group: 2 nservers_per_procs: 2", 2),
    "hogwild-separate": ("nworker_groups: 2 nserver_groups: 2 server_worker_separate: true", 4),
    "hogwild-2-groups-per-server-group": ("nworker_groups: 4 nserver_groups: 2 sync_freq: 2", 4),
}


def flat_params(path, names):
    p = params(path)
    return np.concatenate([p[n].ravel() for n in names]).astype(np.float64)


@pytest.mark.parametrize("case", sorted(CASES))
def test_servers_apply_every_pushed_gradient_exactly_once(in_tmp, case):
    cluster, n = CASES[case]
    write_records(in_tmp / "train.bin")
    (in_tmp / "job.conf").write_text((JOB % dict(steps=15, ws="ws", cluster=cluster)).replace(MOMENTUM, PLAIN_SGD))
    (in_tmp / "record.py").write_text(RECORD)
    r, secs = mpirun(n, ["record.py", "job.conf"], in_tmp, timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    topo = Topology(parse_job_conf((in_tmp / "job.conf").read_text()).cluster)
    groups = topo.nworker_groups
    # every group trained every step and each server applied each push once
    m = re.search(r"Servers \((.*?)\): (\d+) updates applied for (\d+) pushes", r.stdout)
    assert m and m.group(1) == topo.framework() and int(m.group(3)) == 15 * groups, r.stdout
    assert int(m.group(2)) == 15 * groups * topo.nservers_per_group
    assert r.stdout.count("Checkpoint written") == 1
    assert len(re.findall(r"rank \d+ cluster \{", r.stdout)) == n      # results on every rank
    init = np.load(in_tmp / "init.npy")
    grads = sum(np.load(in_tmp / ("grads-%d.npy" % k)) for k in range(n))
    final = flat_params(in_tmp / "ws/checkpoint/step15-worker0", ["w0", "b0", "w1", "b1", "w2", "b2"])
    assert np.abs(grads).max() > 0.1
    np.testing.assert_allclose(final, init - 0.05 * grads, rtol=0, atol=2e-5)
    # the groups trained on different data, and the job moved the values
    assert np.abs(final - init).max() > 0.01


def test_sandblaster_matches_one_process(in_tmp):
    # one worker group of 2 on 2 processes, 2 servers on 2 more: synchronous, so the values
    # (momentum and weight decay in the servers' updater state) equal one process's
    write_records(in_tmp / "train.bin")
    (in_tmp / "one.conf").write_text(JOB % dict(steps=20, ws="one", cluster=""))
    (in_tmp / "sand.conf").write_text(JOB % dict(steps=20, ws="sand", cluster=(
        "nworkers_per_group: 2 nservers_per_group: 2 server_worker_separate: true")))
    one = Driver(verbose=False, comm=None).train(parse_job_conf((in_tmp / "one.conf").read_text()))
    r, _ = mpirun(4, ["-m", "singa", "-conf", "sand.conf"], in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "4 processes: Sandblaster" in r.stdout and "40 updates applied for 20 pushes" in r.stdout
    a, b = params(in_tmp / "one/checkpoint/step20-worker0"), params(in_tmp / "sand/checkpoint/step20-worker0")
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=2e-6, err_msg=k)
    loss = float(re.findall(r"Train @ step 19: loss = ([\d.]+)", r.stdout)[0])
    assert loss == pytest.approx(one.train[19]["loss"], rel=1e-4)


FAIL_IN_TRAINING = """
import sys
from singa.cluster import mpi, stub
from singa.driver import Driver
from singa.proto import parse_job_conf
push_pull = stub.WorkerStub.push_pull
def failing(self, step, flat):
    if step == 4 and mpi.world().rank == int(sys.argv[2]):
        raise RuntimeError("worker failed on purpose")
    return push_pull(self, step, flat)
stub.WorkerStub.push_pull = failing
Driver().train(parse_job_conf(open(sys.argv[1]).read()))
print("finished")
"""


@pytest.mark.parametrize("rank", [0, 1])
def test_a_failing_worker_ends_a_downpour_job(in_tmp, rank):
    write_records(in_tmp / "train.bin")
    (in_tmp / "job.conf").write_text(JOB % dict(steps=200, ws="ws", cluster="nworker_groups: 2 "
                                                "server_worker_separate: true"))
    (in_tmp / "fail.py").write_text(FAIL_IN_TRAINING)
    r, secs = mpirun(3, ["fail.py", "job.conf", str(rank)], in_tmp, timeout=60)
    assert r.returncode != 0 and secs < 30, (r.returncode, secs)
    assert "rank %d of 3 failed" % rank in r.stderr and "worker failed on purpose" in r.stderr
    assert "finished" not in r.stdout


@pytest.mark.parametrize("cluster", [
    "nworker_groups: 2 nworkers_per_procs: 2",                                           # in-memory Downpour
    "nworker_groups: 2 nserver_groups: 2 nworkers_per_procs: 2 nservers_per_procs: 2",   # in-memory Hogwild
    "nworker_groups: 2 nworkers_per_procs: 2 share_memory: false"])
def test_several_groups_in_one_process(in_tmp, monkeypatch, cluster):
    # SINGA's quick-start: worker groups as parts of one process (no mpiexec), every push applied once
    from singa.cluster import stub
    write_records(in_tmp / "train.bin")
    got = {"grads": 0}
    push_pull, load = stub.WorkerStub.push_pull, stub.Stub.load

    def recording_push_pull(self, step, flat):
        got["grads"] = got["grads"] + flat.flat[:self.stub.total].astype(np.float64)
        return push_pull(self, step, flat)

    def recording_load(self, flat):
        got["init"] = flat.astype(np.float64)
        return load(self, flat)
    from singa.layers.input import RecordInputLayer
    forward, starts = RecordInputLayer.forward, {}

    def recording_forward(self, flag, srcs):
        if self.stride != self.batchsize:            # the train nets' layers (groups stride over 2 batches)
            starts.setdefault(id(self), []).append(self.pos)
        return forward(self, flag, srcs)
    monkeypatch.setattr(stub.WorkerStub, "push_pull", recording_push_pull)
    monkeypatch.setattr(stub.Stub, "load", recording_load)
    monkeypatch.setattr(RecordInputLayer, "forward", recording_forward)
    job = parse_job_conf((JOB % dict(steps=12, ws="ws", cluster=cluster)).replace(MOMENTUM, PLAIN_SGD))
    r = Driver(verbose=False, comm=None).train(job)
    assert r.cluster["pushes"] == {0: 12, 1: 12}
    # the groups take the batches of the record stream in turn: group g reads batches g, g+2, ...
    assert sorted(v[:3] for v in starts.values()) == [[0, 24, 48], [12, 36, 0]]
    final = flat_params(in_tmp / "ws/checkpoint/step12-worker0", ["w0", "b0", "w1", "b1", "w2", "b2"])
    np.testing.assert_allclose(final, got["init"] - 0.05 * got["grads"], rtol=0, atol=2e-5)


# -- in-process: the servers' arithmetic ------------------------------------------------------
def make_params(sizes, seed=0):
    from singa.backends import Backend
    out = []
    for k, n in enumerate(sizes):
        proto = job_pb2.ParamProto(name="p%d" % k, lr_scale=1.0 + k, wd_scale=0.5)
        p = Param(proto, (n,), Backend(None), dtype=np.float64)
        p.set_values(np.random.default_rng(seed + k).normal(size=n))
        out.append(p)
    return out


def test_server_update_is_the_updaters_update_of_its_pieces():
    ps = make_params([7, 5, 9])
    upd = create_updater(job_pb2.UpdaterProto(type=job_pb2.kSGD, momentum=0.9, weight_decay=0.01,
                                              learning_rate=job_pb2.LRGenProto(type=job_pb2.kFixed, base_lr=0.1)))
    ref_upd = create_updater(job_pb2.UpdaterProto(type=job_pb2.kSGD, momentum=0.9, weight_decay=0.01,
                                                  learning_rate=job_pb2.LRGenProto(type=job_pb2.kFixed, base_lr=0.1)))
    flat = np.concatenate([p.data for p in ps])
    srv = Server(0, 0, 4, 18, ps, upd, {0: (4, 18)})      # the end of p0, p1, most of p2
    srv.load(flat)
    rng = np.random.default_rng(1)
    ref = flat.copy()
    states = [ref_upd.init_state(ref[a:b]) for a, b in ((4, 7), (7, 12), (12, 18))]
    for step in range(3):
        g = rng.normal(size=14)
        for (a, b), st, k in zip(((4, 7), (7, 12), (12, 18)), states, range(3)):
            ref_upd.apply(step, ref[a:b], g[a - 4:b - 4].copy(), st, lr_scale=1.0 + k, wd_scale=0.5)
        srv.update(step, g.copy(), worker_group=step % 2)
    np.testing.assert_allclose(srv.values, ref[4:18], rtol=1e-12)
    assert srv.updates == 3 and srv.pushes == {0: 2, 1: 1}
    with pytest.raises(ValueError, match="owns 14 values but a gradient of 3"):
        srv.update(0, np.zeros(3))


@pytest.mark.parametrize("sync_freq", [1, 2, 5])
def test_hogwild_groups_in_one_process_end_with_every_update(sync_freq):
    # 3 worker groups, 3 server groups x 2 servers, all in one process: the stub's local paths
    ps = make_params([6, 10, 4, 8])
    c = job_pb2.ClusterProto(nworker_groups=3, nserver_groups=3, nservers_per_group=2, nworkers_per_procs=3,
                             nservers_per_procs=6, sync_freq=sync_freq)
    topo = Topology(c)
    upd = create_updater(job_pb2.UpdaterProto(type=job_pb2.kSGD, learning_rate=job_pb2.LRGenProto(type=job_pb2.kFixed, base_lr=0.1)))
    stub = Stub(None, topo, ps, upd)
    stub.expect_finals()
    init = np.concatenate([p.data for p in ps])
    stub.load(init)
    rng = np.random.default_rng(2)
    total = np.zeros_like(init)
    reply = np.empty_like(init)
    for step in range(7):
        for g in range(3):
            grad = rng.normal(size=init.size)
            total += grad
            for sid in range(2):
                lo, hi = stub.server_range[sid]
                stub.push(step, g, sid, grad[lo:hi].copy(), reply[lo:hi], lambda: None)
            # what group g sees: its server group's replica, which holds its own updates
            assert np.all(np.isfinite(reply))
    for g in range(3):
        stub.done(g)
    stub.finish()
    assert stub.all_done()
    # sgd with lr_scale 1 + k per param, no weight decay: init - 0.1 * (1 + k) * sum of grads
    scale = np.concatenate([np.full(p.size, 1.0 + k) for k, p in enumerate(ps)])
    np.testing.assert_allclose(stub.final, init - float(np.float32(0.1)) * scale * total, rtol=1e-12, atol=1e-12)
    st = stub.stats()
    assert sum(v[0] for v in st.values()) == 7 * 3 * 2
    assert sum(v[2] for v in st.values()) > 0


def test_slices_are_consecutive_ranges_per_server():
    ps = make_params([100, 3, 50, 7, 40])
    for nsg, nspg in ((1, 1), (1, 3), (2, 2), (3, 2), (4, 3)):
        c = job_pb2.ClusterProto(nworker_groups=nsg, nserver_groups=nsg, nservers_per_group=nspg,
                                 nworkers_per_procs=nsg, nservers_per_procs=nsg * nspg)
        stub = Stub(None, Topology(c), ps, None)
        ranges = sorted(r for r in stub.server_range.values() if r[1] > r[0])
        assert ranges[0][0] == 0 and ranges[-1][1] == 200
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        for sid in range(nspg):
            lo, hi = stub.server_range[sid]
            parts = sorted(stub.master_range[(sid, g)] for g in range(nsg))
            covered = sum(b - a for a, b in parts)
            assert covered == hi - lo


KILL_SERVER = """
import os, signal, sys
from singa.cluster import stub
from singa.driver import Driver
from singa.proto import parse_job_conf
on_push, seen = stub.Stub._on_push, []
def dying(self, *args):
    seen.append(1)
    if len(seen) == 6:
        os.kill(os.getpid(), signal.SIGKILL)
    return on_push(self, *args)
stub.Stub._on_push = dying
Driver().train(parse_job_conf(open(sys.argv[1]).read()))
print("finished")
"""


def test_a_killed_server_process_ends_the_job(in_tmp):
    write_records(in_tmp / "train.bin")
    (in_tmp / "job.conf").write_text(JOB % dict(steps=500, ws="ws", cluster="nworker_groups: 2 "
                                                "server_worker_separate: true"))
    (in_tmp / "kill.py").write_text(KILL_SERVER)
    r, secs = mpirun(3, ["kill.py", "job.conf"], in_tmp, timeout=60)
    assert r.returncode != 0 and secs < 30, (r.returncode, secs, r.stderr[-2000:])
    assert "finished" not in r.stdout
