"""Training throughput of the seed MLP (784-2500-2000-1500-1000-500-10, scaled tanh, softmax loss,
plain SGD as in the seed) on singa's NumPy engine and on PyTorch CPU, side by side in one run.

    python benchmarks/bench_mlp.py [--batch 64 256] [--threads 2] [--repeats 5] [--momentum]
                                   [--variants default blas fused+split split numpy]

Both sides: same model, batch, float32, thread count, plain SGD (or SGD with momentum 0.9 on both
with ``--momentum``); alternating A B A B, medians of ``--repeats`` measurements after a warm-up,
each measurement the steady rate between N0 and N1 steps. Reports samples/s, the ratio to PyTorch
and the achieved GFLOP/s (training = 3 x forward = 71.79 MFLOP per sample) as a fraction of the
machine's float32 GEMM rate measured here.

singa variants: ``default`` the engine as it runs (direct BLAS, updates fused into the weight-
gradient GEMM, OpenBLAS threads each product); ``blas`` direct BLAS without fusion (a separate
update pass); ``fused+split`` fused, and products and element-wise layers split over the threads
as single-threaded calls; ``split`` the same without fusion; ``numpy`` plain numpy.matmul and a
separate update pass (the engine before singa.backends.blas).
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchmarks.common import start, steady_rate, torch_step, train_net  # noqa: E402

SIZES = [784, 2500, 2000, 1500, 1000, 500, 10]
TRAIN_FLOP = 3 * 2 * sum(a * b for a, b in zip(SIZES, SIZES[1:]))


def make_data(n=4096, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 784)).astype(np.uint8)
    y = rng.integers(0, 10, size=n).astype(np.int32)
    return x, y


# name: (direct BLAS, fused updates, products and element-wise layers split over threads)
VARIANTS = {"default": (True, True, False), "blas": (True, False, False), "fused+split": (True, True, True),
            "split": (True, False, True), "numpy": (False, False, False)}


def singa_step_fn(batch, workdir, momentum=0.0, variant="default"):
    """A training step of the seed MLP built through singa's Python API and run by its engine."""
    from singa.backends import blas
    from singa.updaters import create_updater
    from singa.worker import BPWorker
    net, job = singa_mlp_net(batch, workdir, momentum)
    use_blas, fuse, split = VARIANTS[variant]
    worker = BPWorker(net, create_updater(job.updater), fuse_updates=fuse)
    state = {"step": 0}

    def step():
        blas.set_enabled(use_blas)
        blas.set_split_products(split)       # off: one BLAS call per product, OpenBLAS threads it
        try:
            worker.train_one_batch(state["step"])
        finally:
            blas.set_enabled(True)
            blas.set_split_products(False)
        state["step"] += 1
    return step


def singa_mlp_net(batch, workdir, momentum=0.0, backend=None):
    """(net, job) of the seed MLP built through singa's Python API, params initialised."""
    from singa.io.kvfile import KVFileWriter
    from singa.io.record import encode_record
    from singa.model import Cluster, Data, Dense, SGD, Sequential, Store

    x, y = make_data()
    path = os.path.join(workdir, "bench_train.bin")
    with KVFileWriter(path) as w:
        for i in range(len(y)):
            w.insert("%08d" % i, encode_record(label=int(y[i]), pixel=x[i].tobytes(), shape=[28, 28]))
    m = Sequential("mlp", ["bench"])
    for n in SIZES[1:-1]:
        m.add(Dense(n, init="uniform", activation="stanh"))
    m.add(Dense(10, init="uniform", activation="softmax"))
    m.compile(loss="categorical_crossentropy", optimizer=SGD(lr=0.001, momentum=momentum), cluster=Cluster(workdir))
    store = Store(path=path, backend="kvfile", batchsize=batch, shape=784, mean_value=127.5, std_value=127.5)
    m._configure_fit(Data(load="recordinput", phase="train", conf=store), nb_epoch=1000)
    job = m.to_jobproto()
    return train_net(job, backend), job


def torch_mlp():
    """(model, inputs, labels) of the seed MLP in PyTorch, weights uniform in [-0.05, 0.05]."""
    import numpy as np
    import torch
    x, y = make_data()
    xt = torch.from_numpy((x.astype(np.float32) - 127.5) / 127.5)
    yt = torch.from_numpy(y.astype(np.int64))

    class STanh(torch.nn.Module):
        def forward(self, v):
            return 1.7159047 * torch.tanh(0.66666667 * v)

    layers = []
    for a, b in zip(SIZES[:-2], SIZES[1:-1]):
        layers += [torch.nn.Linear(a, b), STanh()]
    layers.append(torch.nn.Linear(SIZES[-2], SIZES[-1]))
    model = torch.nn.Sequential(*layers)
    for p in model.parameters():
        torch.nn.init.uniform_(p, -0.05, 0.05)
    return model, xt, yt


def torch_step_fn(batch, momentum=0.0):
    import torch
    model, xt, yt = torch_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=momentum)
    return torch_step(model, opt, xt, yt, batch)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workdir", default="/tmp/singa-bench")
    ap.add_argument("--momentum", action="store_true", help="SGD momentum 0.9 on both sides (default plain SGD)")
    ap.add_argument("--variants", nargs="+", default=["default"], choices=sorted(VARIANTS),
                    help="singa engine variants to measure side by side (default: the engine's defaults)")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    torch, gemm = start(args.threads)
    print("training FLOP per sample: %.2f MFLOP" % (TRAIN_FLOP / 1e6))
    mom = 0.9 if args.momentum else 0.0
    print("optimizer: SGD lr 0.001%s" % (", momentum 0.9" if mom else ""))
    for batch in args.batch:
        runs = [(v, singa_step_fn(batch, args.workdir, mom, v)) for v in args.variants]
        if torch:
            runs.append(("PyTorch", torch_step_fn(batch, mom)))
        for _, step in runs:
            step(), step()
        rates = {name: [] for name, _ in runs}
        for _ in range(args.repeats):
            for name, step in runs:          # alternating A B A B
                rates[name].append(steady_rate(step, batch))
        t = statistics.median(rates["PyTorch"]) if torch else None
        for name, _ in runs:
            r = statistics.median(rates[name])
            line = "batch %4d: %-12s %7.0f samples/s (%3.0f%% of GEMM rate)" % (
                batch, name, r, 100 * r * TRAIN_FLOP / 1e9 / gemm)
            if t and name != "PyTorch":
                line += " | ratio to PyTorch %.2fx" % (r / t)
            print(line, flush=True)


if __name__ == "__main__":
    main()
