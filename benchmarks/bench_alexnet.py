"""Training throughput of SINGA's AlexNet (examples/singa-v0/alexnet-job.conf, its net unchanged) on
singa's NumPy engine and on PyTorch CPU, side by side in one run, and each side's peak memory.

    python benchmarks/bench_alexnet.py [--batch 16] [--threads 2] [--repeats 3] [--no-memory]

singa runs the conf's train net (kRecordInput of 3x256x256 records with a mean file ->
kImagePreprocess random 227 crops and mirrors -> conv1 96 k11 s4 ... ip8 1000 -> softmax loss;
kSGD momentum 0.9, weight decay 5e-4, the conf's lr 0.01) through BPWorker as the Driver does, on a
seeded kvfile of ``--records`` images written here. PyTorch runs the same net (no groups, as the
conf: Conv2d/ReLU/MaxPool2d(3, 2)/LocalResponseNorm(5, 1e-4, 0.75, 1), Linear 9216-4096-4096-1000,
Dropout 0.5) with the same SGD on the same images, already cropped to 227 (so singa's step also
does the record decoding, the mean subtraction and the cropping PyTorch skips). Both sides:
float32, same batch and thread count, alternating A B A B, medians of ``--repeats`` steady rates
(between step 2 and step 8 of each measurement). "% of GEMM rate": 3 x the forward FLOP of the
convolutions and dense layers (2.27 GFLOP forward per 227 image, so 6.8 trained) over numpy's 2048^3
float32 matmul in the same run. Peak memory: each side's VmHWM in a process of its own (import,
build, 4 steps).
"""
import argparse
import os
import statistics
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
from benchmarks.common import peak_memory, start, steady_rate, stepper, torch_step, train_net  # noqa: E402

CONF = os.path.join(ROOT, "examples", "singa-v0", "alexnet-job.conf")
SIDE, CROP = 256, 227
# (name, in channels, out channels, kernel, stride, pad, output side) of the conf's convolutions
CONVS = [("conv1", 3, 96, 11, 4, 0, 55), ("conv2", 96, 256, 5, 1, 2, 27), ("conv3", 256, 384, 3, 1, 1, 13),
         ("conv4", 384, 384, 3, 1, 1, 13), ("conv5", 384, 256, 3, 1, 1, 13)]
DENSE = [(9216, 4096), (4096, 4096), (4096, 1000)]


def forward_flop():
    conv = sum(2 * cin * k * k * cout * s * s for _, cin, cout, k, _, _, s in CONVS)
    return conv + sum(2 * a * b for a, b in DENSE)


def write_images(path, n, seed=0, side=SIDE, classes=1000):
    """A kvfile of ``n`` RecordProto images (3 x side x side pixel bytes, keys "%08d", as SINGA's
    im2rec wrote them) whose brightness follows the label's parity, and its mean file (a kvfile
    with the key "mean"); returns the mean file's path."""
    import numpy
    from singa.io.kvfile import KVFileWriter
    from singa.io.record import encode_record
    rng = numpy.random.default_rng(seed)
    total = numpy.zeros(3 * side * side)
    with KVFileWriter(str(path)) as w:
        for i in range(n):
            label = int(rng.integers(0, classes))
            px = numpy.clip(rng.normal(60 + 120 * (label % 2), 40, 3 * side * side), 0, 255).astype(numpy.uint8)
            total += px
            w.insert("%08d" % i, encode_record(label=label, pixel=px.tobytes(), shape=[3, side, side]))
    mean = str(path) + ".mean"
    with KVFileWriter(mean) as w:
        w.insert("mean", encode_record(data=(total / n).astype(numpy.float32).tolist(), shape=[3, side, side]))
    return mean


def conf_text(train, test, mean, batch, source=CONF):
    """The conf with its ImageNet paths and batch sizes replaced."""
    text = open(source).read()
    for old, new in (("/data/dataset/imagenet/train_record.bin", train),
                     ("/data/dataset/imagenet/val_record.bin", test),
                     ("/data/dataset/imagenet/image_mean.bin", mean)):
        if old not in text:
            raise SystemExit("%s: no %s to replace" % (source, old))
        text = text.replace(old, str(new))
    return text.replace("batchsize: 256", "batchsize: %d" % batch).replace("batchsize: 100", "batchsize: %d" % batch)


def records(workdir, n):
    path = os.path.join(workdir, "alexnet_%d.bin" % n)
    if not os.path.exists(path + ".mean"):
        os.makedirs(workdir, exist_ok=True)
        write_images(path, n)
    return path, path + ".mean"


def singa_step(batch, workdir, n):
    from singa.proto import parse_job_conf
    from singa.updaters import create_updater
    from singa.worker import BPWorker
    path, mean = records(workdir, n)
    job = parse_job_conf(conf_text(path, path, mean, batch))
    net = train_net(job)
    return stepper(BPWorker(net, create_updater(job.updater)))


def torch_model():
    import torch
    nn = torch.nn
    convs = []
    for i, (_, cin, cout, k, s, p, _) in enumerate(CONVS):
        convs += [nn.Conv2d(cin, cout, k, stride=s, padding=p), nn.ReLU()]
        if i in (0, 1, 4):
            convs.append(nn.MaxPool2d(3, 2))
        if i in (0, 1):
            convs.append(nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0))
    return nn.Sequential(*convs, nn.Flatten(), nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, 1000))


def torch_train_step(batch, workdir, n):
    import numpy
    import torch
    from singa.io.record import load_record_file
    path, _ = records(workdir, n)
    values, labels = load_record_file(path, 3 * SIDE * SIDE)
    x = numpy.asarray(values, dtype=numpy.float32).reshape(-1, 3, SIDE, SIDE)
    x -= x.mean(axis=0)
    xt = torch.from_numpy(numpy.ascontiguousarray(x[:, :, :CROP, :CROP]))
    yt = torch.from_numpy(numpy.asarray(labels, numpy.int64))
    model = torch_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    return torch_step(model, opt, xt, yt, batch)


def make_step(side, batch, workdir, n):
    return singa_step(batch, workdir, n) if side == "singa" else torch_train_step(batch, workdir, n)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--records", type=int, default=64)
    ap.add_argument("--steps", type=int, nargs=2, default=(2, 8), metavar=("N0", "N1"),
                    help="the steady rate: time N0 steps, then N1, use the difference")
    ap.add_argument("--workdir", default="/tmp/singa-bench-alexnet")
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args(argv)
    torch, gemm = start(args.threads)
    flop = 3 * forward_flop()
    print("AlexNet (alexnet-job.conf), batch %d, %d x %d crops of %d x %d records; %.2f GFLOP per image trained"
          % (args.batch, CROP, CROP, SIDE, SIDE, flop / 1e9))
    sides = ["singa"] + (["torch"] if torch is not None else [])
    steps = {s: make_step(s, args.batch, args.workdir, args.records) for s in sides}
    rates = {s: [] for s in sides}
    n0, n1 = args.steps
    if not 0 <= n0 < n1:
        raise SystemExit("--steps N0 N1: 0 <= N0 < N1")
    for _ in range(args.repeats):
        for s in sides:
            rates[s].append(steady_rate(steps[s], args.batch, n0, n1))
    med = {s: statistics.median(v) for s, v in rates.items()}
    for s in sides:
        print("%-6s %7.1f images/s (runs: %s), %.0f%% of the GEMM rate" % (
            s, med[s], ", ".join("%.1f" % r for r in rates[s]), med[s] * flop / 1e9 / gemm * 100))
    if torch is not None:
        print("singa / PyTorch: %.2fx" % (med["singa"] / med["torch"]))
    if not args.no_memory:
        for s in sides:
            mem = peak_memory("bench_alexnet", s, args.threads, (args.batch, args.workdir, args.records), 4)
            print("peak memory %-6s %s" % (s, mem))
    return med


if __name__ == "__main__":
    main()
