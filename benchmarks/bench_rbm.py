"""Training throughput of an RBM with CD-1 (SINGA's rbm1: 784 -> 1000, batch 100, float32) on
singa's engine and on PyTorch CPU, side by side in one run.

    python benchmarks/bench_rbm.py [--batch 100] [--hidden 1000] [--threads 2] [--repeats 7]

Both sides do the same step: h0 = sigmoid(v0 W^T + c), hs ~ Bernoulli(h0), v1 = sigmoid(hs W + b),
h1 = sigmoid(v1 W^T + c), a second sample from h1 (SINGA's RBMHid samples after every pass), the
CD gradients dW = (h1^T v1 - h0^T v0) / B (halved, as SINGA averages the shared weight's two
shares), db, dc, and SGD with momentum 0.8 and weight decay 0.0002 on W (none on the biases).
singa runs SINGA's rbm1 job through its CDWorker on uint8 records read from a kvfile (x/255);
PyTorch runs the same maths with torch ops and torch.optim.SGD on the same images. FLOP per
sample: 5 products of 2*V*H multiply-adds (three passes and two for dW) = 7.84 MFLOP.
"""
import argparse
import os
import statistics
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
from benchmarks.common import start, steady_rate, stepper, train_net  # noqa: E402

JOB = """
name: "bench-rbm"
train_steps: 1000000
train_one_batch { alg: kCD }
updater { type: kSGD momentum: 0.8 weight_decay: 0.0002 learning_rate { base_lr: 0.1 type: kFixed } }
cluster { workspace: "%(ws)s" }
neuralnet {
  layer { name: "data" type: kRecordInput
          store_conf { backend: "kvfile" path: "%(path)s" batchsize: %(batch)d std_value: 255 shape: 784 } }
  layer { name: "RBMVis" type: kRBMVis srclayers: "data" srclayers: "RBMHid" rbm_conf { hdim: %(hid)d }
          param { name: "w1" init { type: kGaussian std: 0.1 } }
          param { name: "b11" wd_scale: 0 init { type: kConstant value: 0 } } }
  layer { name: "RBMHid" type: kRBMHid srclayers: "RBMVis" rbm_conf { hdim: %(hid)d }
          param { name: "w1_" share_from: "w1" }
          param { name: "b12" wd_scale: 0 init { type: kConstant value: 0 } } }
}
"""


def images(n=2000, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    return (rng.random((n, 784)) < 0.2).astype(np.uint8) * 255


def singa_step(batch, hid, workdir):
    import numpy as np
    from singa.io.kvfile import KVFileWriter
    from singa.io.record import encode_record
    from singa.proto import parse_job_conf
    from singa.updaters import create_updater
    from singa.worker import CDWorker
    path = os.path.join(workdir, "rbm_train.bin")
    x = images()
    with KVFileWriter(path) as w:
        for i, img in enumerate(x):
            w.insert("%08d" % i, encode_record(label=0, pixel=img.tobytes(), shape=[784]))
    job = parse_job_conf(JOB % dict(ws=workdir, path=path, batch=batch, hid=hid))
    net = train_net(job, dtype=np.float32)
    return stepper(CDWorker(net, create_updater(job.updater)))


def torch_step(batch, hid):
    import torch
    torch.manual_seed(0)
    x = torch.from_numpy(images().astype("float32") / 255.0)
    W = torch.randn(hid, 784) * 0.1
    b, c = torch.zeros(784), torch.zeros(hid)
    for t in (W, b, c):
        t.grad = torch.zeros_like(t)
    opt = torch.optim.SGD([{"params": [W], "weight_decay": 0.0002}, {"params": [b, c], "weight_decay": 0.0}],
                          lr=0.1, momentum=0.8)
    state = {"i": 0}

    def step():
        i = state["i"]
        state["i"] = (i + batch) % (x.shape[0] - batch)
        v0 = x[i:i + batch]
        with torch.no_grad():
            h0 = torch.sigmoid(torch.addmm(c, v0, W.t()))
            hs = torch.bernoulli(h0)
            v1 = torch.sigmoid(torch.addmm(b, hs, W))
            h1 = torch.sigmoid(torch.addmm(c, v1, W.t()))
            torch.bernoulli(h1)
            torch.mm(h1.t(), v1, out=W.grad)
            W.grad.addmm_(h0.t(), v0, alpha=-1.0)
            W.grad.mul_(0.5 / batch)
            torch.sub(v1.sum(0), v0.sum(0), out=b.grad).div_(batch)
            torch.sub(h1.sum(0), h0.sum(0), out=c.grad).div_(batch)
            opt.step()
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch, gemm = start(args.threads)
    flop = 5 * 2 * 784 * args.hidden
    print("RBM 784 -> %d, CD-1, batch %d: %.2f MFLOP per training sample" % (args.hidden, args.batch, flop / 1e6))
    with tempfile.TemporaryDirectory() as workdir:
        runs = [("singa", singa_step(args.batch, args.hidden, workdir))]
        if torch:
            runs.append(("PyTorch", torch_step(args.batch, args.hidden)))
        for _, step in runs:
            step(), step()
        rates = {name: [] for name, _ in runs}
        for _ in range(args.repeats):
            for name, step in runs:
                rates[name].append(steady_rate(step, args.batch, 5, 45))
    t = statistics.median(rates["PyTorch"]) if torch else None
    for name, _ in runs:
        r = statistics.median(rates[name])
        line = "batch %4d: %-8s %8.0f samples/s (%3.0f%% of GEMM rate; runs %s)" % (
            args.batch, name, r, 100 * r * flop / 1e9 / gemm, " ".join("%.0f" % v for v in rates[name]))
        if t and name != "PyTorch":
            line += " | ratio to PyTorch %.2fx" % (r / t)
        print(line, flush=True)


if __name__ == "__main__":
    main()
