"""Batch normalisation (kBM): the layer's speed beside PyTorch's BatchNorm2d, and what it does for
the seed's CIFAR-10 CNN.

    python benchmarks/bench_bn.py layer [--threads 2] [--repeats 7]
    python benchmarks/bench_bn.py accuracy [--steps 1000] [--data-dir DIR]

``layer``: one training pass (forward with the batch's statistics and the running update, then
backward: dx, dγ, dβ) of singa's BMLayer and of torch.nn.BatchNorm2d (autograd, momentum 0.1, the
same running statistics) on the same float32 (N, C, H, W) arrays (``SHAPES``), alternating A B A B, medians of ``--repeats`` timings of 20
passes each. Reported: microseconds per pass, singa / PyTorch (> 1: singa faster), and the memory
traffic the pass needs at the least (read x and the gradient, write y and dx: 4 arrays) in GB/s,
beside the machine's float32 GEMM rate (a memory-bound layer reaches a small fraction of it).

``accuracy``: the seed CNN (examples/cifar10_cnn.py) with and without a BatchNormalization after
each Convolution2D, the same seed and steps, trained on Fashion-MNIST written as CIFAR-10 binary
batches (28x28 zero-padded to 32x32, the grey channel three times; 50,000 training images in five
data_batch files, the 10,000 test images in test_batch.bin) and loaded through
singa.datasets.cifar10 like real CIFAR-10; test accuracy over the 10,000 test images.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchmarks.common import start  # noqa: E402

# the seed CNN's batch norms at its batch 64 (after conv1, conv2, conv3), cudnn_bm.conf's bm1/bm2 at its
# batch 100, and a small one where the fixed cost of the passes shows
SHAPES = [(64, 32, 32, 32), (64, 32, 16, 16), (64, 64, 8, 8), (100, 32, 16, 16), (100, 64, 4, 4)]


# -- the layer ---------------------------------------------------------------------------------
def singa_pass(shape):
    import numpy
    from singa.layers.batchnorm import BMLayer  # noqa: F401  (registers kBM)
    from singa.proto import job_pb2
    from singa.testing.gradcheck import Source, build_layer
    params = "".join('param { name: "s%d" init { type: kConstant value: %g } } ' % (i, v)
                     for i, v in enumerate((1, 0, 0, 0)))
    layer = build_layer('name: "bm" type: kBM srclayers: "src" %s bm_conf { }' % params, [shape],
                        dtype=numpy.float32)
    rng = numpy.random.default_rng(0)
    src = Source("src", rng.standard_normal(shape, dtype=numpy.float32))
    g = rng.standard_normal(shape, dtype=numpy.float32)

    def run():
        layer.forward(job_pb2.kTrain, [src])
        layer.backward(job_pb2.kTrain, [src], g)
    return run


def torch_pass(torch, shape):
    import numpy
    rng = numpy.random.default_rng(0)
    bn = torch.nn.BatchNorm2d(shape[1], eps=1e-5, momentum=0.1)
    x = torch.from_numpy(rng.standard_normal(shape, dtype=numpy.float32)).requires_grad_()
    g = torch.from_numpy(rng.standard_normal(shape, dtype=numpy.float32))

    def run():
        x.grad = None
        bn.zero_grad(set_to_none=True)
        bn(x).backward(g)
    return run


def timed(run, n=20):
    run()
    t = time.perf_counter()
    for _ in range(n):
        run()
    return (time.perf_counter() - t) / n


def layer_main(args):
    torch, gemm = start(args.threads)       # without torch: singa's column only
    print("%-18s %12s %12s %8s %10s %10s" % ("shape", "singa us", "torch us", "ratio", "singa GB/s", "torch GB/s"))
    rows = []
    for shape in SHAPES:
        a = singa_pass(shape)
        b = torch_pass(torch, shape) if torch is not None else None
        ta, tb = [], []
        for _ in range(args.repeats):
            ta.append(timed(a))
            if b is not None:
                tb.append(timed(b))
        sa = statistics.median(ta)
        sb = statistics.median(tb) if tb else float("nan")
        traffic = 4 * 4 * int(numpy_prod(shape)) / 1e9
        rows.append((shape, sa, sb))
        print("%-18s %12.0f %12.0f %7.2fx %10.1f %10.1f" % ("x".join(map(str, shape)), sa * 1e6, sb * 1e6, sb / sa,
                                                             traffic / sa, traffic / sb))
    print("(GEMM rate for scale: %.0f GFLOP/s; the pass is about 14 flops per element, singa's fastest "
          "shape %.1f%% of it)" % (gemm, max(14 * numpy_prod(s) / t / 1e9 for s, t, _ in rows) / gemm * 100))
    return rows


def numpy_prod(shape):
    out = 1
    for s in shape:
        out *= s
    return out


# -- the accuracy ------------------------------------------------------------------------------
def fashion_as_cifar(out_dir, data_dir=None, images=50000):
    """Fashion-MNIST as CIFAR-10's binary batches in ``out_dir``/batches (the first ``images``
    training images in five batches, the first ``images`` / 5 test images), converted by
    singa-create-data's code into SINGA's records in ``out_dir``; returns ``out_dir``."""
    import numpy
    from singa.datasets import fashion_mnist
    from singa.io.create_data import convert_cifar10
    if all(os.path.exists(os.path.join(out_dir, f)) for f in ("train_data.bin", "test_data.bin", "image_mean.bin")):
        return out_dir
    (xtr, ytr), (xte, yte) = fashion_mnist.load_arrays(data_dir=data_dir)
    batches = os.path.join(out_dir, "batches")
    os.makedirs(batches, exist_ok=True)

    def write(path, x, y):
        img = numpy.zeros((len(x), 3, 32, 32), numpy.uint8)
        img[:, :, 2:30, 2:30] = x[:, None]
        numpy.concatenate([y.astype(numpy.uint8)[:, None], img.reshape(len(x), -1)], axis=1).tofile(path)
    per = images // 5
    if not 1 <= per <= 10000:
        raise SystemExit("--images: 5 to 50000 (five CIFAR-10 batches of at most 10,000)")
    for i in range(5):
        write(os.path.join(batches, "data_batch_%d.bin" % (i + 1)), xtr[i * per:(i + 1) * per],
              ytr[i * per:(i + 1) * per])
    write(os.path.join(batches, "test_batch.bin"), xte[:per], yte[:per])
    convert_cifar10(batches, out_dir)
    return out_dir


def seed_cnn(batch_norm, workspace, momentum=0.9):
    """examples/cifar10_cnn.py's model, with a BatchNormalization after each convolution."""
    from singa.model import (Activation, AvgPooling2D, BatchNormalization, Cluster, Convolution2D, Dense, LRN2D,
                             MaxPooling2D, SGD, Sequential)
    from singa.utils.utility import reset_names
    reset_names()
    m = Sequential("cnn-bn" if batch_norm else "cnn", argv=[])

    def conv(*a, **kw):
        m.add(Convolution2D(*a, **kw))
        if batch_norm:
            m.add(BatchNormalization())
    conv(32, 5, 1, 2, w_std=0.0001, b_lr=2)
    m.add(MaxPooling2D(pool_size=(3, 3), stride=2))
    m.add(Activation("relu"))
    m.add(LRN2D(3, alpha=0.00005, beta=0.75))
    conv(32, 5, 1, 2, b_lr=2)
    m.add(Activation("relu"))
    m.add(AvgPooling2D(pool_size=(3, 3), stride=2))
    m.add(LRN2D(3, alpha=0.00005, beta=0.75))
    conv(64, 5, 1, 2)
    m.add(Activation("relu"))
    m.add(AvgPooling2D(pool_size=(3, 3), stride=2))
    m.add(Dense(10, w_wd=250, b_lr=2, b_wd=0, activation="softmax"))
    sgd = SGD(decay=0.004, momentum=momentum, lr_type="manual", step=(0, 60000, 65000),
              step_lr=(0.001, 0.0001, 0.00001))
    m.compile(loss="categorical_crossentropy", updater=sgd, cluster=Cluster(workspace))
    return m


def accuracy_main(args):
    from singa.datasets import cifar10
    data = fashion_as_cifar(os.path.join(args.workdir, "fashion-cifar-%d" % args.images), args.data_dir, args.images)
    out = {}
    for bn in (False, True):
        X_train, X_test, _ = cifar10.load_data(data_dir=data, workspace=os.path.join(args.workdir, "ws-%d" % bn))
        m = seed_cnn(bn, os.path.join(args.workdir, "ws-%d" % bn))
        t = time.perf_counter()
        m.fit(X_train, nb_epoch=args.steps, with_test=True, seed=args.seed, verbose=0)
        r = m.evaluate(X_test, batch_size=args.test_batch, test_steps=args.test_steps, test_freq=args.steps)
        secs = time.perf_counter() - t
        train, test = r.last("train"), r.last("test")
        out[bn] = (train, test, secs)
        print("%-18s %d steps (batch 64, seed %d): train loss %.4f acc %.4f; test (%d x %d) loss %.4f acc %.4f; "
              "%.0f s" % ("with batch norm" if bn else "without", args.steps, args.seed, train["loss"], train["acc"],
                          args.test_steps, args.test_batch, test["loss"], test["acc"], secs), flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    lay = sub.add_parser("layer")
    lay.add_argument("--threads", type=int, default=2)
    lay.add_argument("--repeats", type=int, default=7)
    acc = sub.add_parser("accuracy")
    acc.add_argument("--steps", type=int, default=1000)
    acc.add_argument("--test-steps", type=int, default=10, help="test batches (default: all 10,000 images)")
    acc.add_argument("--test-batch", type=int, default=1000)
    acc.add_argument("--images", type=int, default=50000, help="training images (the test set: a fifth of it)")
    acc.add_argument("--seed", type=int, default=0)
    acc.add_argument("--data-dir", default=None, help="Fashion-MNIST's idx files (default: where singa looks)")
    acc.add_argument("--workdir", default="/tmp/singa-bench-bn")
    args = ap.parse_args(argv)
    return layer_main(args) if args.what == "layer" else accuracy_main(args)


if __name__ == "__main__":
    main()
