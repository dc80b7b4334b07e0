"""Every job.conf SINGA shipped (examples/singa-v0/ and v0.1/), run through singa-run with its
steps shortened on the command line: a markdown table of the command, the first and last training
loss shown, and the wall time (issue 18's table).

    python benchmarks/conf_table.py [--workdir /tmp/singa-confs] [--only mnist-job cifar10-job ...]

The data is made as a user would, with singa-create-data, in the working directory the confs'
relative paths expect: Fashion-MNIST (Debian's dataset-fashion-mnist) as examples/mnist/*.bin and
as v0.1 shards, the same images written as CIFAR-10 binary batches (28x28 padded to 3x32x32,
--cifar-images of them) for examples/cifar10/, Debian's fortunes for char-rnn and rnnlm, and for
AlexNet (whose conf reads /data/dataset/imagenet/...) a file of seeded 3x256x256 records whose
brightness follows the label, its paths and batch replaced in a copy of the conf (the only confs
changed beyond -set). Each stage of the RBM chains loads the checkpoint the stage before wrote
(-set checkpoint_path). Confs that name a GPU run with -cpu.
"""
import argparse
import os
import re
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
CONFS = os.path.join(ROOT, "examples", "singa-v0")
BIN = os.path.dirname(sys.executable)
FASHION = "/usr/share/datasets/fashion-mnist"


def sh(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("failed: %s\n%s%s" % (" ".join(cmd), r.stdout[-2000:], r.stderr[-2000:]))
    return r.stdout


def make_data(work, cifar_images):
    tool = os.path.join(BIN, "singa-create-data")
    tr = [os.path.join(FASHION, f) for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")]
    te = [os.path.join(FASHION, f) for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")]
    if not os.path.exists(os.path.join(work, "examples/mnist/test_data.bin")):
        sh([tool, "mnist"] + tr + ["examples/mnist/train_data.bin"], work)
        sh([tool, "mnist"] + te + ["examples/mnist/test_data.bin"], work)
        sh([tool, "mnist-shard"] + tr + ["examples/mnist/mnist_train_shard"], work)
        sh([tool, "mnist-shard"] + te + ["examples/mnist/mnist_test_shard"], work)
    if not os.path.exists(os.path.join(work, "examples/cifar10/image_mean.bin")):
        from benchmarks.bench_bn import fashion_as_cifar
        raw = os.path.join(work, "fashion-cifar")
        fashion_as_cifar(raw, images=cifar_images)
        sh([tool, "cifar10", os.path.join(raw, "batches"), "examples/cifar10"], work)
        v01 = os.path.join(work, "v01-cifar")
        sh([tool, "cifar10-shard", os.path.join(raw, "batches"), v01], work)
        for name in ("cifar10_train_shard", "cifar10_test_shard"):    # beside v0.3's records; kRGBImage
            os.replace(os.path.join(v01, name), os.path.join(work, "examples/cifar10", name))   # reads their mean
    if not os.path.exists(os.path.join(work, "examples/char-rnn/vocab.txt")):
        sh([tool, "fortunes", "out"], work)
        sh([tool, "char-rnn", "out/fortunes-train.txt", "examples/char-rnn", "-vocab_size", "101"], work)
    if not os.path.exists(os.path.join(work, "examples/rnnlm/train_data.bin")):
        sh([tool, "fortunes", "out3720", "-vocab_size", "3720"], work)
        sh([tool, "rnnlm", "-train", "out3720/fortunes-words-train.txt", "-valid", "out3720/fortunes-words-valid.txt",
            "-test", "out3720/fortunes-words-test.txt", "-out", "examples/rnnlm"], work)
    if not os.path.exists(os.path.join(work, "alexnet_train.bin.mean")):
        from benchmarks.bench_alexnet import write_images
        write_images(os.path.join(work, "alexnet_train.bin"), 96, classes=10)
        write_images(os.path.join(work, "alexnet_val.bin"), 32, seed=1, classes=10)


def short(steps, disp, extra=()):
    out = ["-set", "train_steps=%d" % steps, "-set", "disp_freq=%d" % disp]
    for s in extra:
        out += ["-set", s]
    return out


def ck(stage, steps):
    return "checkpoint_path=examples/rbm/%s/checkpoint/step%d-worker0" % (stage, steps)


ALEX_LR = "updater.learning_rate.base_lr=0.001"


def runs(work):
    """(name, conf path, singa-run arguments) in the order they must run (the RBM chains)."""
    c = lambda name: os.path.join(CONFS, name)      # noqa: E731
    v = lambda name: os.path.join(CONFS, "v0.1", name)      # noqa: E731
    rbm = 300
    test = ["test_freq=0"]
    out = [
        ("mnist-job.conf", c("mnist-job.conf"), short(300, 50, test)),
        ("mnist-conv.conf", c("mnist-conv.conf"), short(300, 50, test)),
        ("cifar10-job.conf", c("cifar10-job.conf"), short(200, 40, test)),
        ("cifar10-cudnn.conf", c("cifar10-cudnn.conf"), ["-cpu"] + short(200, 40, test)),
        ("cifar10-cudnn_bm.conf", c("cifar10-cudnn_bm.conf"), ["-cpu"] + short(200, 40, test)),
        ("cifar10-hybrid.conf", c("cifar10-hybrid.conf"), short(200, 40, test)),
        ("cifar10-cudnn_hybrid.conf", c("cifar10-cudnn_hybrid.conf"), ["-cpu"] + short(200, 40, test)),
        ("rbm1.conf", c("rbm1.conf"), short(rbm, 50, test)),
        ("rbm2.conf", c("rbm2.conf"), short(rbm, 50, test + [ck("rbm1", rbm)])),
        ("rbm3.conf", c("rbm3.conf"), short(rbm, 50, test + [ck("rbm2", rbm), ck("rbm1", rbm)])),
        ("rbm4.conf", c("rbm4.conf"), short(rbm, 50, test + [ck("rbm3", rbm), ck("rbm2", rbm), ck("rbm1", rbm)])),
        ("autoencoder.conf", c("autoencoder.conf"),
         short(rbm, 50, test + [ck("rbm%d" % k, rbm) for k in (4, 3, 2, 1)])),
        ("char-rnn-job.conf", c("char-rnn-job.conf"), ["-cpu"] + short(100, 20, ["checkpoint_freq=100"])),
        ("char-rnn-sample.conf (1 GRU)", c("char-rnn/char-rnn-sample-1gru.conf"),
         ["-cpu", "-test", "-set", "checkpoint_path=examples/char-rnn/checkpoint/step100-worker0"]),
        ("rnnlm-job.conf", c("rnnlm-job.conf"), short(3000, 500, test)),
        # the conf's base_lr 0.01 is for batch 256 on ImageNet: at batch 16 on these records it diverges, in
        # PyTorch too (the same net, init and SGD: NaN by step 26), so the short run takes 0.001
        ("alexnet-job.conf", os.path.join(work, "alexnet-job.conf"), short(30, 5, test + [ALEX_LR, "test_steps=2"])),
        ("alexnet-cudnn.conf", os.path.join(work, "alexnet-cudnn.conf"), ["-cpu"] + short(30, 5, test + [ALEX_LR, "test_steps=2"])),
        ("v0.1/mnist-job.conf", v("mnist-job.conf"), short(100, 20, test)),
        ("v0.1/mnist-conv.conf", v("mnist-conv.conf"), short(300, 50, test)),
        ("v0.1/cifar10-job.conf", v("cifar10-job.conf"), short(200, 40, test)),
        ("v0.1/rbm-rbm1.conf", v("rbm-rbm1.conf"), short(rbm, 50, test)),
        ("v0.1/rbm-rbm2.conf", v("rbm-rbm2.conf"), short(rbm, 50, test + [ck("rbm1", rbm)])),
        ("v0.1/rbm-rbm3.conf", v("rbm-rbm3.conf"), short(rbm, 50, test + [ck("rbm2", rbm)])),
        ("v0.1/rbm-rbm4.conf", v("rbm-rbm4.conf"), short(rbm, 50, test + [ck("rbm3", rbm)])),
        ("v0.1/rbm-autoencoder.conf", v("rbm-autoencoder.conf"),
         short(rbm, 50, test + [ck("rbm%d" % k, rbm) for k in (1, 2, 3, 4)])),
    ]
    return out


def rewritten_confs(work, alex_batch):
    from benchmarks.bench_alexnet import conf_text
    for name in ("alexnet-job.conf", "alexnet-cudnn.conf"):
        with open(os.path.join(work, name), "w") as f:
            f.write(conf_text(os.path.join(work, "alexnet_train.bin"), os.path.join(work, "alexnet_val.bin"),
                              os.path.join(work, "alexnet_train.bin.mean"), alex_batch,
                              source=os.path.join(CONFS, name)))


LOSS = re.compile(r"Train @ step (\d+): (?:loss|[A-Za-z ]*[Ee]rror) = ([\d.]+)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/singa-confs")
    ap.add_argument("--cifar-images", type=int, default=10000)
    ap.add_argument("--alexnet-batch", type=int, default=16)
    ap.add_argument("--only", nargs="*", help="names (or parts of names) of the runs to do")
    args = ap.parse_args(argv)
    work = os.path.abspath(args.workdir)
    os.makedirs(work, exist_ok=True)
    make_data(work, args.cifar_images)
    rewritten_confs(work, args.alexnet_batch)
    print("| conf | command (in the data's folder) | first -> last training loss (step) | time |")
    print("|---|---|---|---|")
    for name, conf, extra in runs(work):
        if args.only and not any(o in name for o in args.only):
            continue
        cmd = [os.path.join(BIN, "singa-run"), "-conf", conf] + extra
        t = time.time()
        r = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        secs = time.time() - t
        shown = "singa-run -conf %s %s" % (os.path.relpath(conf, ROOT) if conf.startswith(CONFS) else
                                           os.path.basename(conf) + " (paths replaced)", " ".join(extra))
        if r.returncode != 0:
            print("| %s | `%s` | FAILED: %s | %.0f s |" % (name, shown, (r.stderr.strip().splitlines() or ["?"])[-1],
                                                         secs), flush=True)
            continue
        losses = LOSS.findall(r.stdout)
        if losses:
            (s0, l0), (s1, l1) = losses[0], losses[-1]
            what = "%s (%s) -> %s (%s)%s" % (l0, s0, l1, s1, "" if float(l1) < float(l0) else " NOT FALLING")
        else:
            sample = re.sub(r"\s+", " ", r.stdout.strip())[-80:]
            what = "no training (samples text: \"...%s\")" % sample.replace("|", "/")
        print("| %s | `%s` | %s | %.0f s |" % (name, shown, what, secs), flush=True)


if __name__ == "__main__":
    main()
