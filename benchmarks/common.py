"""Shared benchmark helpers: thread pinning, the machine's float32 GEMM rate, medians."""
import os
import statistics
import time


def set_threads(n):
    """Pin BLAS (and OpenMP) threads to ``n`` for numpy and, if loaded, torch."""
    os.environ["OPENBLAS_NUM_THREADS"] = str(n)
    import numpy  # noqa: F401  (threadpoolctl only sees libraries already loaded)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(n)
    except ImportError:  # then only the environment variable, which works if numpy was not loaded
        pass
    try:
        import torch
        torch.set_num_threads(n)
    except ImportError:
        pass


def blas_info():
    try:
        from threadpoolctl import threadpool_info
        return ["%s %s (%s, %s threads)" % (i.get("internal_api"), i.get("version"), i.get("architecture"),
                                            i.get("num_threads")) for i in threadpool_info()]
    except ImportError:
        return []


def gemm_rate(n=2048, repeats=7):
    """Median float32 GFLOP/s of numpy's n x n x n matmul (the machine's GEMM rate, as PERFORMANCE.md)."""
    import numpy as np
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=c)
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        np.matmul(a, b, out=c)
        rates.append(2.0 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return statistics.median(rates)


def start(threads):
    """A side-by-side run's opening: torch if installed (else None, said), ``threads`` pinned, the
    BLAS and torch versions and the machine's GEMM rate printed; returns (torch, GEMM GFLOP/s)."""
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch not installed (pip install torch==2.13.0): singa only")
    set_threads(threads)
    print("threads: %d; BLAS: %s; torch: %s" % (threads, "; ".join(blas_info()), torch.__version__ if torch else "-"))
    gemm = gemm_rate()
    print("float32 GEMM rate (numpy 2048^3, %d threads): %.1f GFLOP/s" % (threads, gemm))
    return torch, gemm


def train_net(job, backend=None, seed=0, dtype=None):
    """The kTrain NeuralNet of JobProto ``job``, its params initialised from the named streams of
    ``seed`` (as the Driver does)."""
    from singa.backends import Backend
    from singa.neuralnet import NeuralNet
    from singa.proto import job_pb2
    from singa.random import RandomStreams
    streams = RandomStreams(seed)
    kw = {} if dtype is None else {"dtype": dtype}
    net = NeuralNet(job.neuralnet, job_pb2.kTrain, backend or Backend(None), streams, **kw)
    for p in net.owner_params:
        p.init_values(streams.stream("init/" + p.name))
    return net


def stepper(worker):
    """step(): ``worker`` trains one batch, the step number counting from 0."""
    state = {"step": 0}

    def step():
        worker.train_one_batch(state["step"])
        state["step"] += 1
    return step


def steady_rate(step, batch, n0=3, n1=13):
    """Samples/s in steady state: time n0 and n1 steps, use (n1 - n0) * batch / (t1 - t0)."""
    t = time.perf_counter()
    for _ in range(n0):
        step()
    t0 = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(n1):
        step()
    t1 = time.perf_counter() - t
    return (n1 - n0) * batch / (t1 - t0)


def torch_step(model, opt, xt, yt, batch):
    """A step function training ``model`` with ``opt`` on consecutive batches of (xt, yt), cycling."""
    import torch
    lossf = torch.nn.CrossEntropyLoss()
    state = {"i": 0}

    def step():
        i = state["i"] % (len(yt) // batch)
        state["i"] += 1
        xb, yb = xt[i * batch:(i + 1) * batch], yt[i * batch:(i + 1) * batch]
        opt.zero_grad(set_to_none=False)
        loss = lossf(model(xb), yb)
        loss.backward()
        opt.step()
    return step


def peak_memory(module, side, threads, make_args, steps):
    """VmHWM (peak resident set) of a fresh process that runs ``steps`` steps of
    ``benchmarks.<module>.make_step(side, *make_args)``. Not ru_maxrss: Linux carries that over
    from the parent across exec. A side other than 'torch' never imports torch (threads are set
    through the environment)."""
    import subprocess
    import sys
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    code = ("import sys; sys.path.insert(0, %r)\n"
            "if %r == 'torch':\n    import torch; torch.set_num_threads(%d)\n"
            "from benchmarks import %s as b\n"
            "s = b.make_step(%r, *%r)\nfor _ in range(%d): s()\n"
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
            % (root, side, threads, module, side, tuple(make_args), steps))
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1200, env=env)
    if r.returncode != 0:
        return "failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    return "%.0f MiB" % (int(r.stdout.split()[-1]) / 1024)


def mpi_launch(script, args_list, n, **extra_env):
    """Run ``python script args_list`` on ``n`` MPI processes (one process without mpiexec when n is
    1), one BLAS thread each and no replicas; returns the JSON of its last output line."""
    import json
    import subprocess
    import sys
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", SINGA_REPLICAS="1", PYTHONPATH=root,
               **extra_env)
    cmd = [sys.executable, os.path.abspath(script)] + list(args_list)
    if n > 1:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        cmd = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", str(n)] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if r.returncode != 0:
        raise SystemExit("run failed: %s\n%s" % (" ".join(cmd), r.stderr[-3000:]))
    return json.loads(r.stdout.strip().splitlines()[-1])
