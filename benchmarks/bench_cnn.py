"""Training throughput of the seed CIFAR-10 CNN on singa's NumPy engine and on PyTorch CPU, side by
side in one run, with a per-layer breakdown of singa's step and each side's peak memory.

    python benchmarks/bench_cnn.py [--batch 100] [--threads 2] [--repeats 5] [--no-memory]

The net (the seed's cifar10 example, SINGA's examples/cifar10/job.conf): conv 32 k5 p2 -> max pool
k3 s2 -> relu -> LRN 3 -> conv 32 k5 p2 -> relu -> avg pool k3 s2 -> LRN 3 -> conv 64 k5 p2 -> relu
-> avg pool k3 s2 -> dense 10 -> softmax loss, on 3x32x32 images (pooling floors: 32 -> 15 -> 7 ->
3, so the dense layer gets 64*3*3 = 576 values). singa builds it through its Python API
(``Sequential`` + ``compile(loss='categorical_crossentropy', optimizer=SGD(lr=0.001, momentum=0.9,
decay=0.004))``) and reads random uint8 images from a kvfile of RecordProtos with a mean file, as
SINGA's CIFAR-10 data; PyTorch runs the same net (floor pooling, LocalResponseNorm(3, alpha, 0.75,
k=1), which also divides alpha by the size) with the same SGD on the same images. Both sides:
float32, same batch and thread count, alternating A B A B, medians of ``--repeats`` measurements,
each the steady rate between step 3 and step 13.

"% of GEMM rate": achieved GFLOP/s (3 x the forward FLOP of the convolutions and the dense layer,
counted from the net's shapes) over numpy's 2048^3 float32 matmul measured in the same run. Peak
memory is each side's peak resident set (VmHWM) in a process of its own (import, build, 5 steps).

Until singa has pooling and LRN layers (singa.layers.pooling, singa.layers.lrn), only the three
convolution layers are timed (forward + backward of each, same shapes as in the net) against
torch's conv2d.
"""
import argparse
import importlib.util
import json
import os
import statistics
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
from benchmarks.common import peak_memory as common_peak_memory  # noqa: E402
from benchmarks.common import start, steady_rate, stepper, torch_step, train_net  # noqa: E402

# (name, in channels, in size, filters) of the convolutions (all k5 p2 s1) and the dense layer.
CONVS = [("conv1", 3, 32, 32), ("conv2", 32, 15, 32), ("conv3", 32, 7, 64)]
DENSE_IN, CLASSES = 64 * 3 * 3, 10
FWD_FLOP = sum(2 * f * c * 25 * s * s for _, c, s, f in CONVS) + 2 * DENSE_IN * CLASSES
TRAIN_FLOP = 3 * FWD_FLOP
LRN_ALPHA, LRN_BETA = 0.00005, 0.75


def have_full_net():
    return all(importlib.util.find_spec(m) is not None for m in ("singa.layers.pooling", "singa.layers.lrn"))


def make_images(n=1000, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 3 * 32 * 32)).astype(np.uint8), rng.integers(0, 10, size=n).astype(np.int32)


def write_store(workdir, n=1000):
    """train_data.bin and image_mean.bin as SINGA's create_data wrote them for CIFAR-10."""
    import numpy as np
    from singa.io.kvfile import KVFileWriter
    from singa.io.record import encode_record
    x, y = make_images(n)
    path, mean_path = os.path.join(workdir, "cnn_train.bin"), os.path.join(workdir, "cnn_mean.bin")
    with KVFileWriter(path) as w:
        for i in range(n):
            w.insert("%05d" % i, encode_record(label=int(y[i]), pixel=x[i].tobytes(), shape=[3, 32, 32]))
    with KVFileWriter(mean_path) as w:
        w.insert("mean", encode_record(shape=[3, 32, 32], data=x.mean(axis=0, dtype=np.float64).astype(np.float32)))
    return path, mean_path


# -- singa ---------------------------------------------------------------------------------

def singa_full_net(batch, workdir, replicas=None, backend=None):
    """(worker, net) of the seed CNN built through singa's Python API; ``replicas`` as for
    BPWorker (None: the engine's automatic choice, one per thread for a conv net)."""
    from singa.model import (Activation, AvgPooling2D, Cluster, Convolution2D, Data, Dense, LRN2D, MaxPooling2D,
                             SGD, Sequential, Store)
    from singa.updaters import create_updater
    from singa.worker import BPWorker
    path, mean_path = write_store(workdir)
    m = Sequential("cnn", ["bench"])
    m.add(Convolution2D(32, 5, 1, 2, w_std=0.0001, b_lr=2))
    m.add(MaxPooling2D(pool_size=(3, 3), stride=2))
    m.add(Activation("relu"))
    m.add(LRN2D(3, alpha=LRN_ALPHA, beta=LRN_BETA))
    m.add(Convolution2D(32, 5, 1, 2, b_lr=2))
    m.add(Activation("relu"))
    m.add(AvgPooling2D(pool_size=(3, 3), stride=2))
    m.add(LRN2D(3, alpha=LRN_ALPHA, beta=LRN_BETA))
    m.add(Convolution2D(64, 5, 1, 2))
    m.add(Activation("relu"))
    m.add(AvgPooling2D(pool_size=(3, 3), stride=2))
    m.add(Dense(10, w_wd=250, b_lr=2, b_wd=0, activation="softmax"))
    m.compile(loss="categorical_crossentropy", optimizer=SGD(lr=0.001, momentum=0.9, decay=0.004),
              cluster=Cluster(workdir))
    store = Store(path=path, mean_file=mean_path, backend="kvfile", batchsize=batch, shape=(3, 32, 32))
    m._configure_fit(Data(load="recordinput", phase="train", conf=store), nb_epoch=1000)
    job = m.to_jobproto()
    net = train_net(job, backend)
    return BPWorker(net, create_updater(job.updater), replicas=replicas), net


def singa_full_step(batch, workdir, replicas=None):
    return stepper(singa_full_net(batch, workdir, replicas)[0])


def singa_conv_layers(batch, dtype="float32"):
    """The three convolution layers alone, with random inputs and output gradients."""
    import numpy as np
    from singa.backends import Backend
    from singa.layers.base import create_layer
    from singa.proto import LayerProto, parse_job_conf
    rng = np.random.default_rng(0)
    out = []
    for name, c, s, f in CONVS:
        conf = parse_job_conf('name: "%s" type: kCConvolution convolution_conf { num_filters: %d kernel: 5 pad: 2 } '
                              'param { name: "w%s" } param { name: "b%s" }' % (name, f, name, name),
                              message=LayerProto())
        layer = create_layer(conf, Backend(None), dtype)
        layer.setup([(batch, c, s, s)])
        for p in layer.params:
            p.set_values(rng.standard_normal(p.shape) * 0.05)
        src = _Src(name + "_src", rng.standard_normal((batch, c, s, s)).astype(dtype), is_data=(name == "conv1"))
        grad = rng.standard_normal(layer.out_shape).astype(dtype)
        out.append((layer, src, grad))
    return out


class _Src:
    def __init__(self, name, data, is_data):
        self.name, self.data, self.is_data = name, data, is_data


def singa_conv_step(batch):
    from singa.proto import job_pb2
    layers = singa_conv_layers(batch)

    def step():
        for layer, src, grad in layers:
            layer.forward(job_pb2.kTrain, [src])
            layer.backward(job_pb2.kTrain, [src], grad)
    return step


def per_layer_times(step, layers, steps=10):
    """Median ms of forward and backward of each layer over ``steps`` calls of ``step``."""
    times = {l.name: ([], []) for l in layers}
    saved = []
    for l in layers:
        f, b = l.forward, l.backward

        def fwd(flag, srcs, _f=f, _t=times[l.name][0]):
            t = time.perf_counter()
            r = _f(flag, srcs)
            _t.append(time.perf_counter() - t)
            return r

        def bwd(flag, srcs, grad, _b=b, _t=times[l.name][1]):
            t = time.perf_counter()
            r = _b(flag, srcs, grad)
            _t.append(time.perf_counter() - t)
            return r
        l.forward, l.backward = fwd, bwd
        saved.append(l)
    try:
        for _ in range(steps):
            step()
    finally:
        for l in saved:
            del l.forward, l.backward
    return {n: (1e3 * statistics.median(f) if f else 0.0, 1e3 * statistics.median(b) if b else 0.0)
            for n, (f, b) in times.items()}


# -- PyTorch --------------------------------------------------------------------------------

def torch_cnn():
    """(model, inputs, labels) of the seed CNN in PyTorch, on the same images (mean subtracted)."""
    import numpy as np
    import torch
    nn = torch.nn
    x, y = make_images()
    xt = torch.from_numpy(x.astype(np.float32).reshape(-1, 3, 32, 32))
    xt -= xt.mean(dim=0, keepdim=True)
    yt = torch.from_numpy(y.astype(np.int64))
    def lrn():     # alpha divided by the size, k = 1: SINGA's kLRN
        return nn.LocalResponseNorm(3, LRN_ALPHA, LRN_BETA, 1.0)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2), nn.MaxPool2d(3, 2), nn.ReLU(), lrn(),
        nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2), lrn(),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2), nn.Flatten(), nn.Linear(DENSE_IN, CLASSES))
    return model, xt, yt


def torch_full_step(batch):
    import torch
    model, xt, yt = torch_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, weight_decay=0.004)
    return torch_step(model, opt, xt, yt, batch)


def torch_conv_step(batch):
    import torch
    rng = torch.Generator().manual_seed(0)
    layers = []
    for name, c, s, f in CONVS:
        x = torch.randn(batch, c, s, s, generator=rng).requires_grad_(name != "conv1")
        conv = torch.nn.Conv2d(c, f, 5, padding=2)
        g = torch.randn(batch, f, s, s, generator=rng)
        layers.append((conv, x, g))

    def step():
        for conv, x, g in layers:
            conv.zero_grad(set_to_none=False)
            if x.grad is not None:
                x.grad = None
            conv(x).backward(g)
    return step


# -- memory (each side in its own process) --------------------------------------------------

def peak_memory(side, batch, threads, workdir, full):
    """Peak resident memory of one side building the net and running 5 steps, in a process of its
    own (benchmarks.common.peak_memory)."""
    return common_peak_memory("bench_cnn", side, threads, (batch, workdir, full), 5)


def make_step(side, batch, workdir, full):
    if side.startswith("singa"):
        replicas = 1 if side in ("singa-1pass", "singa-split") else None
        step = singa_full_step(batch, workdir, replicas) if full else singa_conv_step(batch)
        if side == "singa-split":       # im2col/col2im and dW split over threads by the layer
            from singa.layers import conv

            def split():
                conv.set_split_lowering(True)
                try:
                    step()
                finally:
                    conv.set_split_lowering(False)
            return split
        return step
    return torch_full_step(batch) if full else torch_conv_step(batch)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workdir", default="/tmp/singa-bench")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--conv-only", action="store_true", help="time the three convolutions alone")
    ap.add_argument("--json", help="also write the numbers to this file")
    ap.add_argument("--split", action="store_true",
                    help="also time singa with im2col/col2im and dW split over threads (singa-split, "
                         "SINGA_CONV_SPLIT=1)")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    full = have_full_net() and not args.conv_only
    torch, gemm = start(args.threads)
    flop = TRAIN_FLOP if full else TRAIN_FLOP - 3 * 2 * DENSE_IN * CLASSES
    print("%s; training FLOP per sample: %.2f MFLOP (3 x forward)" % (
        "the seed CIFAR-10 CNN" if full else "the three convolutions alone (forward + backward, as in the net)",
        flop / 1e6))
    batch = args.batch
    runs = [("singa", make_step("singa", batch, args.workdir, full))]
    if full:
        runs.append(("singa-1pass", make_step("singa-1pass", batch, args.workdir, full)))
    if args.split:
        runs.append(("singa-split", make_step("singa-split", batch, args.workdir, full)))
    if torch:
        runs.append(("PyTorch", make_step("torch", batch, args.workdir, full)))
    for _, step in runs:
        step(), step()
    rates = {name: [] for name, _ in runs}
    for _ in range(args.repeats):
        for name, step in runs:          # alternating A B A B
            rates[name].append(steady_rate(step, batch))
    result = {"batch": batch, "threads": args.threads, "gemm_gflops": gemm, "train_flop": flop, "full_net": full}
    t = statistics.median(rates["PyTorch"]) if torch else None
    for name, _ in runs:
        r = statistics.median(rates[name])
        result[name] = {"samples_per_s": r, "all": rates[name], "pct_gemm": 100 * r * flop / 1e9 / gemm}
        line = "batch %4d: %-12s %7.0f samples/s (%3.0f%% of GEMM rate; runs %s)" % (
            batch, name, r, 100 * r * flop / 1e9 / gemm, " ".join("%.0f" % v for v in rates[name]))
        if t and name != "PyTorch":
            line += " | ratio to PyTorch %.2fx" % (r / t)
            result[name]["ratio"] = r / t
        print(line, flush=True)

    # Per-layer breakdown of singa's step: the whole batch in one pass, and (the default) one
    # replica's layers while both replicas run side by side.
    if full:
        breakdowns = []
        for replicas in (1, None):
            worker, net = singa_full_net(batch, args.workdir, replicas)
            step = stepper(worker)
            step(), step()
            if worker.replicas:
                rnet = worker.replicas[0][0]
                title = "replica 1 of %d (batch %d, beside the other%s)" % (
                    len(worker.replicas), rnet.batch_size, "s" if len(worker.replicas) > 2 else "")
                breakdowns.append(("replicas", title, step, rnet.layers, "singa"))
            else:
                breakdowns.append(("1pass", "one pass over the batch (batch %d, OpenBLAS threads)" % batch, step,
                                   net.layers, "singa-1pass"))
    else:
        triples = singa_conv_layers(batch)
        from singa.proto import job_pb2

        def step():
            for layer, src, grad in triples:
                layer.forward(job_pb2.kTrain, [src])
                layer.backward(job_pb2.kTrain, [src], grad)
        step()
        breakdowns = [("conv", "the convolutions (batch %d)" % batch, step, [l for l, _, _ in triples], "singa")]
    result["per_layer_ms"] = {}
    for key, title, step, layers, side in breakdowns:
        times = per_layer_times(step, [l for l in layers if hasattr(l, "backward")])
        total = sum(f + b for f, b in times.values())
        print("singa per layer (median ms), %s: forward / backward" % title)
        for name, (f, b) in times.items():
            print("  %-12s %7.2f / %7.2f" % (name, f, b))
        whole = 1e3 * batch / result[side]["samples_per_s"]
        print("  %-12s %7.2f ms in layers; whole step %.2f ms" % ("sum", total, whole))
        result["per_layer_ms"][key] = times
    if not args.no_memory:
        for side in ("singa", "torch") if torch else ("singa",):
            mem = peak_memory(side, batch, args.threads, args.workdir, full)
            result["peak_" + side] = mem
            print("peak memory (VmHWM, own process, 5 steps) %-8s %s" % (side, mem), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
