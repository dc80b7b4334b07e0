"""Held-out loss of char-rnn trained by singa and by PyTorch: same net, text, RMSProp and steps.

    python benchmarks/compare_charrnn.py [--steps 300] [--workdir /tmp/charrnn-compare]
                                         [--cell nn.GRU|singa] [--threads 2] [--seed 0]

singa: char-rnn-job.conf unchanged but for ``train_steps`` (and ``-cpu``), trained by the Driver on
the fortunes train text (singa-create-data fortunes, then char-rnn -vocab_size 101), its final
checkpoint tested on out/fortunes-test.txt by singa.heldout (one pass of kCharRNN windows).
PyTorch: benchmarks/torch_charrnn.py (kCharRNN's batches, the GRU of SINGA-V0-REST 2.2, singa's
RMSProp with clip and kStep schedule) for the same steps on the same bytes, the same held-out pass.
Both are printed as the mean loss per character (the per-step mean: BPTT's summed loss / 50) in
nats and bits, first at step 0 (both should be ln 101 = 4.615 nats give or take the init), then
held out after training, and their ratio (issue 16: singa within 3% of PyTorch).
"""
import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchmarks.common import set_threads  # noqa: E402

CONF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "singa-v0", "char-rnn-job.conf")


def prepare(workdir, vocab_size=101):
    """The fortunes parts in workdir/out and the conf's examples/char-rnn/{linux_input,vocab}.txt."""
    from singa.datasets.fortunes import write_parts
    from singa.io.create_data import convert_char_rnn
    out = os.path.join(workdir, "out")
    if not os.path.isfile(os.path.join(out, "fortunes-test.txt")):
        write_parts(out)
    data = os.path.join(workdir, "examples", "char-rnn")
    if not os.path.isfile(os.path.join(data, "vocab.txt")):
        convert_char_rnn(os.path.join(out, "fortunes-train.txt"), data, vocab_size=vocab_size)


def run_singa(conf, steps, seed):
    """(step-0 training loss per char, held-out result of singa.heldout, seconds) in the cwd."""
    from singa.driver import Driver
    from singa.heldout import heldout_loss
    from singa.proto import read_job_conf
    job = read_job_conf(conf)
    job.train_steps, job.disp_freq = steps, max(steps // 10, 1)
    job.ClearField("gpu")
    t = time.perf_counter()
    res = Driver(seed=seed, verbose=True).train(job)
    secs = time.perf_counter() - t
    ckpt = os.path.join(job.cluster.workspace or "examples/char-rnn/", "checkpoint", "step%d-worker0" % steps)
    return res.train[0]["loss"], heldout_loss(job, ckpt, "out/fortunes-test.txt"), secs


def run_torch(steps, cell, seed):
    """(step-0 loss per char, held-out bits per char, seconds) of torch_charrnn on the same bytes."""
    import torch
    from benchmarks import torch_charrnn as tc
    with open("examples/char-rnn/vocab.txt", "rb") as f:
        vocab = f.read().decode("latin-1")         # bytes as chars: kCharRNN indexes bytes
    with open("examples/char-rnn/linux_input.txt", "rb") as f:
        text = f.read().decode("latin-1")
    with open("out/fortunes-test.txt", "rb") as f:
        test = f.read().decode("latin-1")
    loss_of, _ = tc.make_model(len(vocab), cell, seed=seed)
    with torch.no_grad():
        first = loss_of(next(tc.Batches(tc.encode(text, vocab)))).item() / tc.UNROLL
    t = time.perf_counter()
    loss_of, last = tc.train(text, vocab, steps, cell, seed)
    secs = time.perf_counter() - t
    print("torch: %d steps in %.1f s, training loss per char (last 10 steps) %.4f" % (steps, secs, last))
    return first, tc.heldout_bits_per_char(loss_of, test, vocab), secs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--workdir", default="/tmp/charrnn-compare")
    p.add_argument("--conf", default=CONF)
    p.add_argument("--cell", default="nn.GRU", choices=["nn.GRU", "singa"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    set_threads(a.threads)
    conf = os.path.abspath(a.conf)
    os.makedirs(a.workdir, exist_ok=True)
    os.chdir(a.workdir)                  # the conf's paths are relative, as singa-run runs it
    prepare(a.workdir)
    s0, sh, ssec = run_singa(conf, a.steps, a.seed)
    t0, tbits, tsec = run_torch(a.steps, a.cell, a.seed)
    ln2 = math.log(2)
    print("step 0 loss per char: singa %.4f nats, torch %.4f nats (ln 101 = %.4f)" % (s0, t0, math.log(101)))
    print("held-out after %d steps (%d windows of out/fortunes-test.txt): singa %.4f bits (%.4f nats), "
          "torch (%s) %.4f bits (%.4f nats); singa / torch = %.4f"
          % (a.steps, sh["steps"], sh["bits"], sh["nats"], a.cell, tbits, tbits * ln2, sh["bits"] / tbits))
    print("training time: singa %.1f s, torch %.1f s" % (ssec, tsec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
