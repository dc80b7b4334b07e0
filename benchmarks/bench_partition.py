"""Model partitioning against data parallelism on 2 processes: the seed MLP (784-2500-2000-1500-
1000-500-10, scaled tanh, SGD) with its three widest layers (2500, 2000, 1500 and their
activations) at ``partition_dim: 1``, against the same net with every layer split by the batch,
the same global batch, one thread per process.

    python benchmarks/bench_partition.py [--batches 16 64 256] [--repeats 3] [--steps 20]

Per step and per process: the bytes it hands to MPI (model: the bridges' blobs and gradients it
sends plus the Allreduce of the batch-split params' gradients; data: the Allreduce of every
param's gradient) and the global samples/s (median step time over ``--steps`` steps after 3 of
warm-up, both ranks stepping together). The runs alternate model, data, model, data, ...;
medians of ``--repeats``. SINGA's argument for model partitioning: a wide dense layer's params
cost more to exchange than its activations, the more so the smaller the batch.
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
WIDE = (2500, 2000, 1500)


def model_partitioned(job):
    """``job`` with the three widest kInnerProduct layers and the activations after them split by
    their features."""
    from singa.proto import job_pb2
    layers = list(job.neuralnet.layer)
    wide = {lp.name for lp in layers if lp.type == job_pb2.kInnerProduct and lp.innerproduct_conf.num_output in WIDE}
    for lp in layers:
        if lp.name in wide or any(s in wide for s in lp.srclayers) and lp.type != job_pb2.kInnerProduct:
            lp.partition_dim = 1
    return sorted(wide)


def run_worker(args):
    import numpy as np
    from benchmarks.bench_mlp import singa_mlp_net
    from singa.backends import Backend
    from singa.cluster import mpi
    from singa.neuralnet import NeuralNet
    from singa.partition_worker import PartitionWorker
    from singa.proto import job_pb2
    from singa.random import RandomStreams
    from singa.updaters import create_updater
    from singa.worker import BPWorker
    comm = mpi.world()
    rank, size = comm.rank, comm.size
    with tempfile.TemporaryDirectory() as wd:
        net, job = singa_mlp_net(args.batch, wd)
        if args.worker == "model":
            split = model_partitioned(job)
            streams = RandomStreams(0)
            net = NeuralNet(job.neuralnet, job_pb2.kTrain, Backend(None), streams, npartitions=size)
            for p in net.owner_params:
                p.init_values(streams.stream("init/" + p.name))
            worker = PartitionWorker(net, create_updater(job.updater), comm=comm)
        else:
            split = []
            B = net.batch_size
            worker = BPWorker(net, create_updater(job.updater), comm=comm,
                              slices=[(B * rank // size, B * (rank + 1) // size)], slice_ids=[rank])
        times, moved = [], []
        for step in range(3 + args.steps):
            comm.barrier()
            t = time.perf_counter()
            worker.train_one_batch(step)
            times.append(time.perf_counter() - t)
            moved.append(worker.moved if args.worker == "model" else worker.flat.flat.nbytes)
        loss = worker.train_metrics.last.get("loss")
    t = np.array(comm.gather_object(times[3:]))
    if rank == 0:
        step_s = float(np.median(t.max(axis=0)))       # a step ends when both ranks are done
        print(json.dumps({"mode": args.worker, "batch": args.batch, "split": split, "step_ms": 1e3 * step_s,
                          "samples_per_s": args.batch / step_s, "bytes_per_step": int(statistics.median(moved[3:])),
                          "loss": loss}))


def launch(args_list, n=2):
    return mpi_launch(__file__, args_list, n)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", choices=["model", "data"], help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    if args.worker:
        return run_worker(args)
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        cpu = "?"
    print("CPU: %s; 2 processes x 1 thread; seed MLP, float32, SGD" % cpu)
    print("%6s  %-34s  %-34s  %s" % ("batch", "model partitioning (3 widest at pd 1)", "data parallelism",
                                     "model / data"))
    for batch in args.batches:
        runs = {"model": [], "data": []}
        for _ in range(args.repeats):
            for mode in ("model", "data"):
                runs[mode].append(launch(["--worker", mode, "--batch", str(batch), "--steps", str(args.steps)]))
        rate = {m: statistics.median(r["samples_per_s"] for r in v) for m, v in runs.items()}
        moved = {m: statistics.median(r["bytes_per_step"] for r in v) for m, v in runs.items()}
        print("%6d  %8.0f samples/s %8.2f MB/step    %8.0f samples/s %8.2f MB/step    %.2fx speed, %.2fx bytes  "
              "(runs: %s | %s)" % (batch, rate["model"], moved["model"] / 1e6, rate["data"], moved["data"] / 1e6,
                                   rate["model"] / rate["data"], moved["model"] / moved["data"],
                                   " ".join("%.0f" % r["samples_per_s"] for r in runs["model"]),
                                   " ".join("%.0f" % r["samples_per_s"] for r in runs["data"])))


if __name__ == "__main__":
    main()
