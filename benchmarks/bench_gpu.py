"""Training throughput and peak device memory on a GPU: singa's CuPy engine against PyTorch CUDA on
the same GPU, side by side in one run.

    python benchmarks/bench_gpu.py [--device 0] [--models mlp cnn] [--repeats 5]
    SINGA_GPU_STANDIN=1 python benchmarks/bench_gpu.py --steps 3 --repeats 1   # smoke run, no GPU

Models (the same nets as bench_mlp.py and bench_cnn.py, built the same way through singa's Python
API, float32, data in device memory on both sides):

* ``mlp``: the seed MLP 784-2500-2000-1500-1000-500-10, scaled tanh, softmax loss, plain SGD lr
  0.001, batch 64 (``--mlp-batch``);
* ``cnn``: the seed CIFAR-10 CNN (conv/pool/LRN x3, dense 10), SGD lr 0.001 momentum 0.9 weight
  decay 0.004, batch 100 (``--cnn-batch``).

Each step ends with a device synchronisation on both sides (singa reads its loss every step
anyway); alternating A B A B, medians of ``--repeats`` measurements of the steady rate between
step 3 and step 13 (or ``--steps``). Peak device memory: singa's is the most CuPy's memory pool
held (``total_bytes``, sampled after each step: the pool keeps freed blocks, so it is the peak
of what the run needed, block rounding included) and PyTorch's the most its caching allocator
reserved (``max_memory_reserved``; ``max_memory_allocated`` in brackets), the like-for-like
numbers of two caching allocators. With ``SINGA_GPU_STANDIN=1`` the singa side runs on the CuPy
stand-in: it proves the script runs, its numbers mean nothing.
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchmarks import bench_cnn, bench_mlp  # noqa: E402
from benchmarks.common import steady_rate, torch_step as make_torch_step  # noqa: E402


def singa_step(model, batch, workdir, backend):
    """A step function of singa's engine on ``backend`` (synchronised at the end), and a probe of
    the bytes its device memory pool holds."""
    xp = backend.xp
    if model == "mlp":
        from singa.updaters import create_updater
        from singa.worker import BPWorker
        net, job = bench_mlp.singa_mlp_net(batch, workdir, 0.0, backend=backend)
        worker = BPWorker(net, create_updater(job.updater))
    else:
        worker, net = bench_cnn.singa_full_net(batch, workdir, replicas=1, backend=backend)
    state = {"step": 0, "peak": 0}
    pool = xp.get_default_memory_pool()

    def step():
        worker.train_one_batch(state["step"])
        state["step"] += 1
        xp.cuda.Device(backend.device).synchronize()
        state["peak"] = max(state["peak"], pool.total_bytes())
    return step, lambda: state["peak"]


def torch_step(model, batch, dev):
    """A step function of PyTorch CUDA on the same model (data in device memory, synchronised at
    the end), and a probe of its allocator's peaks (reserved, allocated)."""
    import torch
    torch.manual_seed(0)
    if model == "mlp":
        net, xt, yt = bench_mlp.torch_mlp()
        opt_args = dict(lr=0.001)
    else:
        net, xt, yt = bench_cnn.torch_cnn()
        opt_args = dict(lr=0.001, momentum=0.9, weight_decay=0.004)
    net = net.to(dev)
    opt = torch.optim.SGD(net.parameters(), **opt_args)
    inner = make_torch_step(net, opt, xt.to(dev), yt.to(dev), batch)
    torch.cuda.reset_peak_memory_stats(dev)

    def step():
        inner()
        torch.cuda.synchronize(dev)
    return step, lambda: (torch.cuda.max_memory_reserved(dev), torch.cuda.max_memory_allocated(dev))


def mib(n):
    return n / 2 ** 20


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", type=int, default=0)
    ap.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    ap.add_argument("--mlp-batch", type=int, default=64)
    ap.add_argument("--cnn-batch", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=13, help="steps per measurement (the first 3 are not counted)")
    ap.add_argument("--workdir", default="/tmp/singa-bench-gpu")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    from singa.backends import Backend
    backend = Backend(args.device).use()
    torch_ok = False
    try:
        import torch
        torch_ok = torch.cuda.is_available()
        tinfo = "%s, %s" % (torch.__version__, torch.cuda.get_device_name(args.device) if torch_ok else "no CUDA")
    except ImportError:
        tinfo = "not installed"
    xp = backend.xp
    print("singa on %r (%s); PyTorch: %s" % (backend, "CuPy %s" % xp.__version__ if backend.name == "cupy" else
                                             "the CuPy stand-in: numbers mean nothing", tinfo))
    if not torch_ok:
        print("PyTorch CUDA is not available: singa only (pip install torch with CUDA on the GPU machine)")
    n0 = min(3, args.steps - 1)
    for model in args.models:
        batch = args.mlp_batch if model == "mlp" else args.cnn_batch
        runs = [("singa", *singa_step(model, batch, args.workdir, backend))]
        if torch_ok:
            runs.append(("PyTorch", *torch_step(model, batch, torch.device("cuda", args.device))))
        for _, step, _ in runs:
            step(), step()
        rates = {name: [] for name, _, _ in runs}
        for _ in range(args.repeats):
            for name, step, _ in runs:
                rates[name].append(steady_rate(step, batch, n0, args.steps))
        t = statistics.median(rates["PyTorch"]) if torch_ok else None
        for name, _, memory in runs:
            r = statistics.median(rates[name])
            m = memory()
            if name == "singa":
                mem = "peak pool %.1f MiB" % mib(m)
            else:
                mem = "peak reserved %.1f MiB (allocated %.1f MiB)" % (mib(m[0]), mib(m[1]))
            line = "%s batch %d: %-8s %8.0f samples/s, %s" % (model, batch, name, r, mem)
            if t and name != "PyTorch":
                line += " | ratio to PyTorch %.2fx" % (r / t)
            print(line, flush=True)


if __name__ == "__main__":
    main()
