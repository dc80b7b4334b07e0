"""Training across processes with MPI (mpi4py + MPICH): scaling of the seed CNN and the cost of
the gradient exchange, side by side with bare MPI and with torch.distributed (gloo).

    python benchmarks/bench_mpi.py [--repeats 5]      # starts every run below itself

(a) The seed CIFAR-10 CNN, 2 processes x 1 thread vs 1 process x 1 thread, the same batch per
    worker (100): global samples/s of each and their ratio (SINGA_REPLICAS=1,
    OPENBLAS_NUM_THREADS=1 in both).
(b) The seed MLP (11.97M float32 parameters, batch 64 per worker) on 2 processes: the time of
    singa's gradient exchange in a training step (one Allreduce of the flat gradient buffer, plus
    the metrics' tiny one) against a bare Allreduce of the same bytes in the same processes.
(c) torch.distributed's all_reduce (gloo backend, TCP on localhost) of the same bytes.
(d) What overlapping the exchange with the backward pass could save at best, with and without
    MPICH's progress thread (see ``overlap_bound``).
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
from benchmarks.common import mpi_launch  # noqa: E402


def timed(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


# -- inside the processes ----------------------------------------------------------------

def run_cnn(args):
    from benchmarks.bench_cnn import singa_full_net
    from benchmarks.common import steady_rate
    from singa.cluster import mpi
    from singa.worker import BPWorker
    comm = mpi.world()
    rank, size = (comm.rank, comm.size) if comm else (0, 1)
    with tempfile.TemporaryDirectory() as wd:
        worker, net = singa_full_net(args.batch * size, wd, replicas=1)
        B = net.batch_size
        if comm:
            worker = BPWorker(net, worker.updater, comm=comm, slices=[(B * rank // size, B * (rank + 1) // size)],
                              slice_ids=[rank])
        state = {"step": 0}

        def step():
            worker.train_one_batch(state["step"])
            state["step"] += 1
        step(), step()
        rates = [steady_rate(step, B, 2, 8) for _ in range(args.repeats)]
    if rank == 0:
        print(json.dumps({"processes": size, "samples_per_s": statistics.median(rates), "all": rates}))


def run_exchange(args):
    import numpy as np
    from benchmarks.bench_mlp import singa_mlp_net
    from singa.cluster import mpi
    from singa.updaters import create_updater
    from singa.worker import BPWorker
    comm = mpi.world()
    rank, size = comm.rank, comm.size
    spent = []

    class TimedComm:                  # the worker's comm, timing its collectives
        def __init__(self, c):
            self.c, self.rank, self.size = c, c.rank, c.size

        def allreduce_sum(self, buf):
            t = time.perf_counter()
            self.c.allreduce_sum(buf)
            spent[-1] += time.perf_counter() - t
            return buf
    with tempfile.TemporaryDirectory() as wd:
        net, job = singa_mlp_net(args.batch * size, wd)
        B = net.batch_size
        worker = BPWorker(net, create_updater(job.updater), comm=TimedComm(comm),
                          slices=[(B * rank // size, B * (rank + 1) // size)], slice_ids=[rank])
        for step in range(3 + args.steps):
            spent.append(0.0)
            worker.train_one_batch(step)
        exchange = spent[3:]
        nbytes = worker.flat.flat.nbytes
        buf = np.ones(worker.flat.flat.size, np.float32)
        comm.barrier()
        bare = timed(lambda: comm.allreduce_sum(buf), args.steps)
    out = {"bytes": nbytes, "singa_exchange_ms": 1e3 * statistics.median(exchange),
           "bare_allreduce_ms": 1e3 * statistics.median(bare)}
    if args.overlap:
        out.update(overlap_bound(args, worker, comm, buf))
    try:
        import torch
        import torch.distributed as dist
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(29500 + os.getppid() % 1000))
        dist.init_process_group("gloo", rank=rank, world_size=size)
        t = torch.ones(buf.size, dtype=torch.float32)
        dist.barrier()
        gloo = timed(lambda: dist.all_reduce(t), args.steps)
        out["gloo_allreduce_ms"] = 1e3 * statistics.median(gloo)
        dist.destroy_process_group()
    except ImportError:
        pass
    if rank == 0:
        print(json.dumps(out))


def overlap_bound(args, worker, comm, buf):
    """(d) What overlapping the exchange with the backward pass could gain at best: a step whose
    Allreduce (of a separate buffer of the same bytes) runs during the whole forward and
    backward, started before and waited after, against the step with the exchange after the
    backward and the step without any exchange. Run with MPICH's progress thread
    (MPIR_CVAR_ASYNC_PROGRESS=1) the collective can move while Python computes."""
    from singa.updaters import create_updater
    from singa.worker import BPWorker
    from benchmarks.bench_mlp import singa_mlp_net
    import numpy as np
    MPI = comm.MPI
    rank, size = comm.rank, comm.size
    with tempfile.TemporaryDirectory() as wd:
        net, job = singa_mlp_net(args.batch * size, wd)
        B = net.batch_size
        solo = BPWorker(net, create_updater(job.updater), slices=[(B * rank // size, B * (rank + 1) // size)],
                        slice_ids=[rank])
        extra = np.ones_like(buf)
        state = {"step": 0}

        def plain():
            worker.train_one_batch(state["step"])
            state["step"] += 1

        def alone():
            solo.train_one_batch(state["step"])
            state["step"] += 1

        def overlapped():
            req = comm.comm.Iallreduce(MPI.IN_PLACE, extra, op=MPI.SUM)
            solo.train_one_batch(state["step"])
            state["step"] += 1
            req.Wait()
        alone(), overlapped(), plain()
        comm.barrier()
        times = {k: [] for k in ("step", "compute", "overlap")}
        for _ in range(args.steps):           # interleaved
            for k, fn in (("step", plain), ("compute", alone), ("overlap", overlapped)):
                comm.barrier()
                times[k] += timed(fn, 1)
    return {k + "_ms": 1e3 * statistics.median(v) for k, v in times.items()}


# -- the driver --------------------------------------------------------------------------

def launch(args_list, n, **extra_env):
    return mpi_launch(__file__, args_list, n, **extra_env)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", choices=["cnn", "exchange"], help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--overlap", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--only", choices=["a", "b", "d"], help="run one part ((b) includes (c))")
    args = ap.parse_args()
    if args.worker == "cnn":
        args.batch = args.batch or 100
        return run_cnn(args)
    if args.worker == "exchange":
        args.batch = args.batch or 64
        return run_exchange(args)
    rep = ["--repeats", str(args.repeats)]
    if args.only in (None, "a"):
        one, two = [], []
        for _ in range(2):          # alternate, twice
            one.append(launch(["--worker", "cnn"] + rep, 1)["samples_per_s"])
            two.append(launch(["--worker", "cnn"] + rep, 2)["samples_per_s"])
        r1, r2 = statistics.median(one), statistics.median(two)
        print("(a) seed CNN, batch 100 per worker, 1 thread per process: 1 process %.0f samples/s, 2 processes %.0f "
              "samples/s: %.2fx (runs %s | %s)" % (r1, r2, r2 / r1, " ".join("%.0f" % v for v in one),
                                                 " ".join("%.0f" % v for v in two)))
    if args.only in (None, "b"):
        ex = launch(["--worker", "exchange", "--steps", str(args.steps)], 2)
        print("(b) seed MLP gradients, %.1f MB, 2 processes: singa's exchange %.1f ms per step, bare MPI Allreduce "
              "%.1f ms: %.2fx" % (ex["bytes"] / 1e6, ex["singa_exchange_ms"], ex["bare_allreduce_ms"],
                                  ex["singa_exchange_ms"] / ex["bare_allreduce_ms"]))
        if "gloo_allreduce_ms" in ex:
            print("(c) torch.distributed gloo all_reduce of the same bytes: %.1f ms (%.2fx the MPI Allreduce)"
                  % (ex["gloo_allreduce_ms"], ex["gloo_allreduce_ms"] / ex["bare_allreduce_ms"]))
    if args.only in (None, "d"):
        for progress in ("0", "1"):
            d = launch(["--worker", "exchange", "--steps", str(args.steps), "--overlap"], 2,
                       MPIR_CVAR_ASYNC_PROGRESS=progress)
            print("(d) seed MLP step, 2 processes%s: exchange after the backward pass %.1f ms, no exchange %.1f ms, "
                  "the same Allreduce running during forward+backward %.1f ms"
                  % (" with MPICH's progress thread" if progress == "1" else "", d["step_ms"], d["compute_ms"],
                     d["overlap_ms"]))


if __name__ == "__main__":
    main()
