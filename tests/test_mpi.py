# covers: singa/cluster/mpi.py, singa/driver.py, singa/exchange.py (synchronous groups under mpiexec)
"""Training across processes under a real mpiexec (MPICH from PyPI, mpi4py): synchronous worker
groups give the parameters of one process on the same global batch, a wrong process count and
a failing or killed rank end the whole job quickly with a clear message, and the seed's CIFAR-10
script runs unchanged on 4 processes."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from singa.driver import Driver
from singa.errors import ConfigError
from singa.io import checkpoint as ckpt
from singa.io.kvfile import KVFileWriter
from singa.io.record import encode_record
from singa.proto import parse_job_conf
from tests.conftest import ROOT

MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'singa[mpi]')")

JOB = """
name: "mpi"
train_steps: %(steps)d
disp_freq: 5
train_one_batch { alg: kBP }
cluster { workspace: "%(ws)s" %(cluster)s }
updater { type: kSGD momentum: 0.9 weight_decay: 0.001 learning_rate { type: kFixed base_lr: 0.05 } }
neuralnet {
  layer { name: "data" type: kRecordInput
          store_conf { backend: "kvfile" path: "train.bin" batchsize: 12 shape: 2 shape: 5 shape: 5 std_value: 2 } }
  layer { name: "conv" type: kCConvolution srclayers: "data" convolution_conf { num_filters: 3 kernel: 3 pad: 1 }
          param { name: "w0" init { type: kGaussian std: 0.3 } } param { name: "b0" init { type: kConstant value: 0 } } }
  layer { name: "relu" type: kReLU srclayers: "conv" }
  layer { name: "fc1" type: kInnerProduct srclayers: "relu" innerproduct_conf { num_output: 16 }
          param { name: "w1" init { type: kGaussian std: 0.3 } } param { name: "b1" init { type: kConstant value: 0 } } }
  layer { name: "act1" type: kSTanh srclayers: "fc1" }
  layer { name: "fc2" type: kInnerProduct srclayers: "act1" innerproduct_conf { num_output: 3 }
          param { name: "w2" init { type: kGaussian std: 0.3 } } param { name: "b2" init { type: kConstant value: 0 } } }
  layer { name: "loss" type: kSoftmaxLoss srclayers: "fc2" srclayers: "data" }
}
"""


def write_records(path, n=60):
    rng = np.random.default_rng(3)
    with KVFileWriter(str(path)) as w:
        for i in range(n):
            c = int(rng.integers(0, 3))
            x = rng.normal(0, 2, 50) + c
            w.insert("%08d" % i, encode_record(label=c, data=x.astype(np.float32).tolist(), shape=[2, 5, 5]))


def mpirun(n, args, cwd, timeout=120, env=None):
    """mpiexec -n n python args, in a session of its own that is killed whole afterwards: no rank
    outlives its test (an orphan busy-polling in a collective would slow every later test).
    A variable given as None in ``env`` is removed."""
    t = time.time()
    env = dict(dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1"), **(env or {}))
    p = subprocess.Popen([MPIEXEC, "-n", str(n), sys.executable] + args, cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env={k: v for k, v in env.items() if v is not None})
    timed_out = False
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if timed_out:
        out, err = p.communicate()
        err += "\n[test] timed out after %d s" % timeout
    return subprocess.CompletedProcess(p.args, p.returncode, out, err), time.time() - t


def params(path):
    return {n: v for n, v, _ in ckpt.read_checkpoint(str(path))}


def test_synchronous_training_matches_one_process(in_tmp):
    write_records(in_tmp / "train.bin")
    for ws in ("one", "two", "four"):
        (in_tmp / (ws + ".conf")).write_text(JOB % dict(steps=20, ws=ws, cluster=""))
    Driver(verbose=False, comm=None).train(parse_job_conf((in_tmp / "one.conf").read_text()))
    outs = {}
    for n, ws in ((2, "two"), (4, "four")):
        r, _ = mpirun(n, ["-m", "singa", "-conf", ws + ".conf"], in_tmp)
        assert r.returncode == 0, r.stderr + r.stdout
        assert "%d processes x 1 worker(s) (MPI, synchronous: AllReduce)" % n in r.stdout
        assert r.stdout.count("Checkpoint written") == 1          # one rank prints and writes
        outs[n] = r.stdout
    a = params(in_tmp / "one/checkpoint/step20-worker0")
    for ws in ("two", "four"):
        b = params(in_tmp / ws / "checkpoint/step20-worker0")
        assert a.keys() == b.keys()
        for k in a:     # the gradient sum's order differs: equal to float32 rounding
            np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=2e-6, err_msg="%s %s" % (ws, k))
    # the metrics are the global batch's
    one = Driver(verbose=False, comm=None).train(parse_job_conf((in_tmp / "one.conf").read_text()))
    loss = float(re.findall(r"Train @ step 19: loss = ([\d.]+)", outs[4])[0])
    assert loss == pytest.approx(one.train[19]["loss"], rel=1e-4)


def test_in_process_workers_of_one_group_match_one_worker(in_tmp):
    write_records(in_tmp / "train.bin")
    one = Driver(verbose=False, comm=None).train(parse_job_conf(JOB % dict(steps=10, ws="a", cluster="")))
    two = Driver(verbose=False, comm=None).train(parse_job_conf(JOB % dict(
        steps=10, ws="b", cluster="nworkers_per_group: 2 nworkers_per_procs: 2")))
    a, b = params(in_tmp / "a/checkpoint/step10-worker0"), params(in_tmp / "b/checkpoint/step10-worker0")
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=2e-6, err_msg=k)
    assert two.train[9]["loss"] == pytest.approx(one.train[9]["loss"], rel=1e-5)


def test_wrong_process_count_says_which_n(in_tmp):
    write_records(in_tmp / "train.bin")
    (in_tmp / "job.conf").write_text(JOB % dict(steps=5, ws="ws", cluster="nworkers_per_group: 2 nservers_per_group: 2"))
    r, secs = mpirun(3, ["-m", "singa", "-conf", "job.conf"], in_tmp)
    assert r.returncode != 0 and secs < 60
    assert "needs 2 process(es)" in r.stderr and "started with 3" in r.stderr and "mpiexec -n 2" in r.stderr


FAIL = """
import os, signal, sys, time
from singa.cluster import mpi
comm = mpi.world()
if comm.rank == 1:
    time.sleep(0.5)
    if sys.argv[1] == "raise":
        raise RuntimeError("boom on purpose")
    os.kill(os.getpid(), signal.SIGKILL)
comm.barrier()      # rank 0 waits here for a rank that never comes
print("not reached")
"""


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failing_or_killed_rank_ends_the_job(in_tmp, how):
    (in_tmp / "fail.py").write_text(FAIL)
    r, secs = mpirun(2, ["fail.py", how], in_tmp, timeout=60)
    assert r.returncode != 0 and secs < 30, (r.returncode, secs)
    assert "not reached" not in r.stdout
    if how == "raise":
        assert "rank 1 of 2 failed" in r.stderr and "boom on purpose" in r.stderr


def test_seed_cifar10_script_on_four_processes(in_tmp):
    from tests.test_cifar10_data import write_batches
    write_batches(in_tmp / "raw", n=40)
    r, _ = mpirun(4, [os.path.join(ROOT, "examples", "cifar10_cnn.py"), "--data-dir", str(in_tmp / "raw"), "--steps",
                      "3", "--test-steps", "1", "--test-freq", "2", "--test-batch", "20"], in_tmp, timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "4 processes x 1 worker(s)" in r.stdout
    assert r.stdout.count("Final test metrics") == 4      # fit/evaluate return the results on every rank


def test_singa_run_starts_mpiexec_for_the_clusters_process_count(in_tmp):
    write_records(in_tmp / "train.bin")
    (in_tmp / "job.conf").write_text(JOB % dict(steps=6, ws="ws", cluster="nworkers_per_group: 2 nservers_per_group: 2"))
    r = subprocess.run([sys.executable, "-m", "singa", "-conf", "job.conf"], cwd=in_tmp, capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr + r.stdout
    assert "starting 2 processes" in r.stderr and "2 processes x 1 worker(s)" in r.stdout
    assert os.path.isfile(in_tmp / "ws/checkpoint/step6-worker0")
    # a script with a cluster-only conf
    (in_tmp / "cluster.conf").write_text("cluster { nworkers_per_group: 2 nservers_per_group: 2 }\n")
    (in_tmp / "hello.py").write_text("from singa.cluster import mpi\nc = mpi.world()\nprint('rank %d of %d' % "
                                     "(c.rank, c.size))\n")
    r = subprocess.run([sys.executable, "-m", "singa", "-conf", "cluster.conf", "-exec", "hello.py"], cwd=in_tmp,
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr
    assert sorted(re.findall(r"rank (\d) of 2", r.stdout)) == ["0", "1"]


def test_a_script_failing_before_training_aborts_the_job(in_tmp):
    # rank 1 fails while "loading data", before any Driver exists: importing the API joined the
    # MPI world, so the failure aborts rank 0, which would otherwise wait for it forever
    (in_tmp / "early.py").write_text(
        "import sys\nfrom singa.model import *\nfrom singa.cluster import mpi\n"
        "if mpi.world().rank == 1:\n    raise FileNotFoundError('no data here')\n"
        "mpi.world().barrier()\nprint('not reached')\n")
    r, secs = mpirun(2, ["early.py"], in_tmp, timeout=60)
    assert r.returncode != 0 and secs < 30 and "not reached" not in r.stdout
    assert "rank 1 of 2 failed" in r.stderr and "no data here" in r.stderr


def test_rbm_contrastive_divergence_on_two_processes(in_tmp):
    # CD with the batch split between two processes gives the values of the same two workers as
    # threads of one process (each worker samples from its own stream, named by its id)
    from tests.test_rbm import job_text
    rng = np.random.default_rng(8)
    protos = rng.integers(0, 2, (3, 12))
    with KVFileWriter(str(in_tmp / "patterns.bin")) as w:
        for i in range(60):
            x = protos[i % 3] ^ (rng.random(12) < 0.1)
            w.insert("%08d" % i, encode_record(label=i % 3, pixel=(255 * x).astype(np.uint8).tobytes(), shape=[12]))
    text = job_text("patterns.bin", steps=40, lr="0.2", upd="momentum: 0.8", below=True)
    (in_tmp / "mpi.conf").write_text(text.replace('workspace: "ws"', 'workspace: "mpi"'))
    inproc = Driver(verbose=False, comm=None).train(parse_job_conf(text.replace(
        'workspace: "ws"', 'workspace: "threads" nworkers_per_group: 2 nworkers_per_procs: 2')))
    r, _ = mpirun(2, ["-m", "singa", "-conf", "mpi.conf"], in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "2 processes x 1 worker(s)" in r.stdout
    a, b = params(in_tmp / "threads/checkpoint/step40-worker0"), params(in_tmp / "mpi/checkpoint/step40-worker0")
    assert a.keys() == b.keys() == {"w1", "b12", "w2", "b21", "b22"}
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=2e-6, err_msg=k)
    se = [m["se"] for _, m in sorted(inproc.train.items())]
    assert se[-1] < 0.8 * se[0]
    mpi_se = [float(x) for x in re.findall(r"Squared Error = ([\d.]+)", r.stdout)]
    assert mpi_se[-1] == pytest.approx(se[-1], rel=1e-4)


def test_gpu_ids_are_mapped_and_checked_before_training_under_mpiexec(in_tmp):
    # device=[0, 1] on 2 processes: one id per worker of the machine, accepted; then CuPy is
    # missing here (or, with CuPy, an id is checked): the job ends before any training
    pytest.importorskip("mpi4py")
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy installed: the missing-CuPy error cannot be shown here")
    except ImportError:
        pass
    write_records(in_tmp / "train.bin")
    for ids, match in (("gpu: 0 gpu: 1", "CuPy is not installed"),
                       ("gpu: 0 gpu: 1 gpu: 2", r"per worker of this machine \(2\). Received: \[0, 1, 2\]")):
        (in_tmp / "job.conf").write_text(JOB % dict(steps=5, ws="ws", cluster="") + ids + "\n")
        r, secs = mpirun(2, ["-m", "singa", "-conf", "job.conf"], in_tmp, timeout=60)
        assert r.returncode != 0 and secs < 30
        assert re.search(match, r.stderr), r.stderr
        assert not os.path.exists(in_tmp / "ws" / "checkpoint")


STOP_ON_RANK0 = """
import sys
from singa.callbacks import Callback
from singa.driver import Driver
from singa.proto import parse_job_conf

class StopOnRank0(Callback):
    def on_step_end(self, run, step, metrics):
        if run.rank == 0 and step == 5:
            run.stop_training = True

r = Driver().train(parse_job_conf(open(sys.argv[1]).read()), callbacks=[StopOnRank0()])
print("rank done, last step %d, stopped: %s" % (max(r.train), r.stopped))
"""


def test_a_stop_on_one_rank_stops_every_rank_of_a_synchronous_job(in_tmp):
    write_records(in_tmp / "train.bin")
    (in_tmp / "job.conf").write_text(JOB % dict(steps=500, ws="ws", cluster=""))
    (in_tmp / "stop.py").write_text(STOP_ON_RANK0)
    r, secs = mpirun(2, ["stop.py", "job.conf"], in_tmp, timeout=60)
    assert r.returncode == 0, r.stderr + r.stdout
    assert r.stdout.count("rank done, last step 5, stopped: a callback asked to stop (after step 5)") == 2
    assert os.path.isfile(in_tmp / "ws/checkpoint/step6-worker0")


BLAS_THREADS = """
import json
from singa.backends import blas
before = blas.blas_threads()
import singa.model                       # under mpiexec this joins the world
from singa.cluster import mpi
share = mpi.core_share()
print(json.dumps(dict(rank=mpi.world().rank if mpi.world() else 0, before=before, after=blas.blas_threads(),
                      engine=blas.num_threads(), share=share.describe() if share else None)))
"""


def _blas_reports(out):
    # each rank's JSON object (mpiexec may forward one rank's line and another's newline interleaved)
    return sorted((json.loads(m) for m in re.findall(r"\{[^{}]*\}", out)), key=lambda d: d["rank"])


def test_each_rank_gets_its_share_of_the_cores_unless_the_user_set_threads(in_tmp):
    from singa.backends import blas
    (in_tmp / "threads.py").write_text(BLAS_THREADS)
    unset = {v: None for v in blas.THREAD_VARS}
    cores = blas.usable_cores()
    want = max(1, cores // 2)
    r, _ = mpirun(2, ["threads.py"], in_tmp, timeout=60, env=unset)
    assert r.returncode == 0, r.stderr + r.stdout
    reports = _blas_reports(r.stdout)
    assert [d["rank"] for d in reports] == [0, 1]
    for d in reports:
        assert d["after"] == d["engine"] == want
        assert d["share"] == ("OpenBLAS threads per rank: %d (%d core%s / 2 ranks on this node; set "
                              "OPENBLAS_NUM_THREADS to override)" % (d["after"], cores, "" if cores == 1 else "s"))
    r, _ = mpirun(2, ["threads.py"], in_tmp, timeout=60, env=dict(unset, OPENBLAS_NUM_THREADS="2"))
    assert r.returncode == 0, r.stderr + r.stdout
    for d in _blas_reports(r.stdout):
        assert d["before"] == d["after"] == 2 and d["share"] == "OpenBLAS threads per rank: 2 (OPENBLAS_NUM_THREADS=2 as set)"
    # one process, no mpiexec: OpenBLAS keeps its own count
    r = subprocess.run([sys.executable, "threads.py"], cwd=in_tmp, capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in dict(os.environ, PYTHONPATH=ROOT).items() if k not in blas.THREAD_VARS})
    assert r.returncode == 0, r.stderr
    (d,) = _blas_reports(r.stdout)
    assert d["after"] == d["before"] and d["share"] is None


def test_the_training_line_says_the_threads_per_rank(in_tmp):
    from singa.backends import blas
    write_records(in_tmp / "train.bin")
    (in_tmp / "job.conf").write_text(JOB % dict(steps=2, ws="ws", cluster=""))
    r, _ = mpirun(2, ["-m", "singa", "-conf", "job.conf"], in_tmp, env={v: None for v in blas.THREAD_VARS})
    assert r.returncode == 0, r.stderr + r.stdout
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("Training "))
    assert "2 processes x 1 worker(s) (MPI, synchronous: AllReduce), OpenBLAS threads per rank: " in line, line
    assert "/ 2 ranks on this node; set OPENBLAS_NUM_THREADS to override)" in line, line


def test_feature_partitioning_with_several_workers_per_process_is_refused_clearly(in_tmp):
    # a group's partitions all in one process, or one per process, train (tests/test_partition.py)
    write_records(in_tmp / "train.bin")
    (in_tmp / "job.conf").write_text((JOB % dict(steps=3, ws="ws", cluster="nworkers_per_group: 4 "
                                                                           "nworkers_per_procs: 2"))
                                     .replace('name: "fc1" type: kInnerProduct',
                                              'name: "fc1" type: kInnerProduct partition_dim: 1'))
    r, took = mpirun(2, ["-m", "singa", "-conf", "job.conf"], in_tmp)
    assert r.returncode != 0 and took < 60
    assert re.search(r"(?s)split by features \(partition_dim 1\) among the 4 workers of a group cannot train with "
                     r"the group's 4 workers on 2 processes, 2 per process.*help: one worker group, in one process",
                     r.stderr), r.stderr


def test_devices_across_processes_on_the_cupy_stand_in(in_tmp):
    # device=[0, 1] on 2 processes of one machine: rank r trains on (stand-in) GPU r, the gradients
    # cross through host buffers, and the values equal one process on the CPU
    write_records(in_tmp / "train.bin")
    (in_tmp / "cpu.conf").write_text(JOB % dict(steps=12, ws="cpu", cluster=""))
    (in_tmp / "gpu.conf").write_text(JOB % dict(steps=12, ws="gpu", cluster="") + "gpu: 0 gpu: 1\n")
    (in_tmp / "ps.conf").write_text(JOB % dict(steps=12, ws="ps", cluster="nworker_groups: 2 server_worker_separate: "
                                               "true") + "gpu: 0 gpu: 1\n")
    Driver(verbose=False, comm=None).train(parse_job_conf((in_tmp / "cpu.conf").read_text()))
    r, _ = mpirun(2, ["-m", "singa", "-conf", "gpu.conf"], in_tmp, env={"SINGA_GPU_STANDIN": "2"})
    assert r.returncode == 0, r.stderr + r.stdout
    assert "Backend(standin:0)" in r.stdout
    a, b = params(in_tmp / "cpu/checkpoint/step12-worker0"), params(in_tmp / "gpu/checkpoint/step12-worker0")
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=2e-6, err_msg=k)
    # Downpour: 2 worker processes on the 2 devices, the server process on the CPU
    r, _ = mpirun(3, ["-m", "singa", "-conf", "ps.conf"], in_tmp, env={"SINGA_GPU_STANDIN": "2"})
    assert r.returncode == 0, r.stderr + r.stdout
    assert "24 updates applied for 24 pushes" in r.stdout


TRANSFERS = """
import json, os, sys
from singa.testing import standin
from singa.callbacks import Callback
from singa.driver import Driver
from singa.proto import parse_job_conf

class Transfers(Callback):
    seen = []
    def on_step_end(self, run, step, metrics):
        self.seen.append(dict(standin.transfers))

t = Transfers()
Driver().train(parse_job_conf(open(sys.argv[1]).read()), callbacks=[t])
# steady state: bytes moved per step, between the ends of steps 3 and 9
a, b = t.seen[3], t.seen[9]
# one write: the two ranks' print() pieces can interleave in mpiexec's output
sys.stdout.flush()
os.write(1, ("PER-STEP %s\\n" % json.dumps({k: (b[k] - a[k]) / 6 for k in a})).encode())
"""


@pytest.mark.parametrize("cuda_aware", ["1", "0"], ids=["cuda-aware", "staged"])
def test_gpu_gradients_cross_mpi_once_per_step_or_not_at_all(in_tmp, cuda_aware):
    # CUDA-aware MPI: the Allreduce takes the flat GPU buffer itself (the stand-in hands MPI its
    # pointer, and refuses while device work is in flight); otherwise one staged copy each way
    write_records(in_tmp / "train.bin")
    (in_tmp / "cpu.conf").write_text(JOB % dict(steps=12, ws="cpu", cluster=""))
    (in_tmp / "gpu.conf").write_text(JOB % dict(steps=12, ws="gpu", cluster="") + "gpu: 0 gpu: 1\n")
    (in_tmp / "transfers.py").write_text(TRANSFERS)
    Driver(verbose=False, comm=None).train(parse_job_conf((in_tmp / "cpu.conf").read_text()))
    r, _ = mpirun(2, ["transfers.py", "gpu.conf"], in_tmp,
                  env={"SINGA_GPU_STANDIN": "2", "SINGA_CUDA_AWARE_MPI": cuda_aware})
    assert r.returncode == 0, r.stderr + r.stdout
    assert ("reduced in GPU buffers (CUDA-aware MPI)" if cuda_aware == "1" else "staged through the host") in r.stdout
    a, b = params(in_tmp / "cpu/checkpoint/step12-worker0"), params(in_tmp / "gpu/checkpoint/step12-worker0")
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=2e-6, err_msg=k)
    grad_bytes = 4 * sum(v.size for v in a.values())
    per_step = json.loads(r.stdout.split("PER-STEP ")[1].splitlines()[0])   # rank 0
    if cuda_aware == "1":
        assert per_step["to_host_bytes"] < grad_bytes / 2 and per_step["to_device_bytes"] < grad_bytes / 2, per_step
    else:
        assert grad_bytes <= per_step["to_host_bytes"] < 1.5 * grad_bytes, per_step
        assert grad_bytes <= per_step["to_device_bytes"] < 1.5 * grad_bytes, per_step


def test_cuda_aware_setting_is_checked(monkeypatch):
    from singa.cluster.mpi import cuda_aware_mpi
    monkeypatch.setenv("SINGA_CUDA_AWARE_MPI", "yes")
    with pytest.raises(ConfigError, match=r"SINGA_CUDA_AWARE_MPI.*0 or 1.*'yes'"):
        cuda_aware_mpi()
    monkeypatch.setenv("SINGA_CUDA_AWARE_MPI", "1")
    assert cuda_aware_mpi() is True
    monkeypatch.delenv("SINGA_CUDA_AWARE_MPI")
    from mpi4py import MPI
    version = MPI.Get_library_version()
    if "MPICH" in version and "cuda" not in version.lower():
        assert cuda_aware_mpi() is False      # MPICH built without CUDA: MPIX_Query_cuda_support() == 0
    else:
        assert isinstance(cuda_aware_mpi(), bool)


COMM_SELF = """
import numpy as np
from mpi4py import MPI
from singa.cluster.mpi import Comm
c = Comm(MPI.COMM_SELF)
node = c.split_shared()
assert (node.rank, node.size) == (0, 1)
node.free()
assert c.split(None) is None
part = c.split(3)
assert part.size == 1 and part.allgather_object({"n": 2}) == [{"n": 2}]
part.free()
d = c.dup()
assert d.probe_source(7) is None
send, got = np.arange(4.0), np.zeros(4)
req = d.isend(send, 0, 7)
assert d.probe_source(7) == 0
d.recv(got, 0, 7)
req.Wait()
buf = np.ones(3)
d.iallreduce_sum(buf).Wait()
d.ibcast(buf).Wait()
d.ibarrier().Wait()
r = d.irecv(got, 0, 8)
d.isend(send * 2, 0, 8).Wait()
r.Wait()
d.free()
print("ok", got.tolist(), buf.tolist())
"""


def test_the_comm_wrapper_splits_and_sends_without_reaching_through(in_tmp):
    # the calls driver.py and cluster/stub.py make, on one process (COMM_SELF)
    r = subprocess.run([sys.executable, "-c", COMM_SELF], cwd=in_tmp, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr + r.stdout
    assert r.stdout.split("\n")[0] == "ok [0.0, 2.0, 4.0, 6.0] [1.0, 1.0, 1.0]"
