"""Training throughput of the seed MLP (784-2500-2000-1500-1000-500-10, scaled tanh, softmax loss,
plain SGD as in the seed) on singa's NumPy engine and on PyTorch CPU, side by side in one run.

    python benchmarks/bench_mlp.py [--batch 64 256] [--threads 2] [--repeats 5]

Both sides: same model, batch, float32, thread count, plain SGD; alternating A B A B, medians of
``--repeats`` measurements after a warm-up, each measurement the steady rate between N0 and N1
steps. Reports samples/s, the ratio singa/PyTorch and the achieved GFLOP/s (training = 3 x forward
= 71.79 MFLOP per sample) as a fraction of the machine's float32 GEMM rate measured here.
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchmarks.common import blas_info, gemm_rate, set_threads, steady_rate  # noqa: E402

SIZES = [784, 2500, 2000, 1500, 1000, 500, 10]
TRAIN_FLOP = 3 * 2 * sum(a * b for a, b in zip(SIZES, SIZES[1:]))


def make_data(n=4096, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 784)).astype(np.uint8)
    y = rng.integers(0, 10, size=n).astype(np.int32)
    return x, y


def singa_step_fn(batch, workdir):
    """A training step of the seed MLP built through singa's Python API and run by its engine."""
    import numpy as np
    from singa.io.kvfile import KVFileWriter
    from singa.io.record import encode_record
    from singa.model import Cluster, Data, Dense, SGD, Sequential, Store
    from singa.neuralnet import NeuralNet
    from singa.backends import Backend
    from singa.random import RandomStreams
    from singa.updaters import create_updater
    from singa.worker import BPWorker
    from singa.proto import job_pb2

    x, y = make_data()
    path = os.path.join(workdir, "bench_train.bin")
    with KVFileWriter(path) as w:
        for i in range(len(y)):
            w.insert("%08d" % i, encode_record(label=int(y[i]), pixel=x[i].tobytes(), shape=[28, 28]))
    m = Sequential("mlp", ["bench"])
    for n in SIZES[1:-1]:
        m.add(Dense(n, init="uniform", activation="stanh"))
    m.add(Dense(10, init="uniform", activation="softmax"))
    m.compile(loss="categorical_crossentropy", optimizer=SGD(lr=0.001), cluster=Cluster(workdir))
    store = Store(path=path, backend="kvfile", batchsize=batch, shape=784, mean_value=127.5, std_value=127.5)
    m._configure_fit(Data(load="recordinput", phase="train", conf=store), nb_epoch=1000)
    job = m.to_jobproto()
    streams = RandomStreams(0)
    net = NeuralNet(job.neuralnet, job_pb2.kTrain, Backend(None), streams)
    for p in net.owner_params:
        p.init_values(streams.stream("init/" + p.name))
    worker = BPWorker(net, create_updater(job.updater))
    state = {"step": 0}

    def step():
        worker.train_one_batch(state["step"])
        state["step"] += 1
    return step


def torch_step_fn(batch):
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
    opt = torch.optim.SGD(model.parameters(), lr=0.001)
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workdir", default="/tmp/singa-bench")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch not installed (pip install torch==2.13.0): singa only")
    set_threads(args.threads)
    print("threads: %d; BLAS: %s; torch: %s" % (args.threads, "; ".join(blas_info()),
                                                 torch.__version__ if torch else "-"))
    gemm = gemm_rate()
    print("float32 GEMM rate (numpy 2048^3, %d threads): %.1f GFLOP/s" % (args.threads, gemm))
    print("training FLOP per sample: %.2f MFLOP" % (TRAIN_FLOP / 1e6))
    for batch in args.batch:
        s_step = singa_step_fn(batch, args.workdir)
        t_step = torch_step_fn(batch) if torch else None
        s_step(), s_step()
        if t_step:
            t_step(), t_step()
        srates, trates = [], []
        for _ in range(args.repeats):
            srates.append(steady_rate(s_step, batch))
            if t_step:
                trates.append(steady_rate(t_step, batch))
        s = statistics.median(srates)
        line = "batch %4d: singa %7.0f samples/s (%.0f%% of GEMM rate)" % (
            batch, s, 100 * s * TRAIN_FLOP / 1e9 / gemm)
        if trates:
            t = statistics.median(trates)
            line += " | PyTorch %7.0f samples/s (%.0f%%) | ratio singa/PyTorch %.2fx" % (
                t, 100 * t * TRAIN_FLOP / 1e9 / gemm, s / t)
        print(line, flush=True)


if __name__ == "__main__":
    main()
