"""rnnlm through the Python API (SINGA v0.3's binding): train SINGA's rnnlm-job.conf net on the fortunes words.

    python examples/rnnlm.py [--steps 200] [--vocab 3720] [--nclass 100] [--word-dim 15] [--lr 0.1]

The net is rnnlm-job.conf's, built as SINGA's binding built it: Data(load='kData') for train and
validation, Embedding(V, 15), RNNLM(15) and compile(loss='user_loss_rnnlm', nclass=100, in_dim=V),
SGD with a kFixedStep schedule (the conf's rates at its fractions of the run), alg 'bp' (as the conf:
the recurrence is inside the kHidden layer, over max_window words). The WordRecord files are made on the
first run (singa-create-data fortunes -vocab_size V, then rnnlm, into examples/rnnlm/). Prints the
training and validation loss and perplexity (ppl).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from singa.datasets.fortunes import write_parts  # noqa: E402
from singa.io.rnnlm_data import create_rnnlm_data  # noqa: E402
from singa.model import Cluster, Data, Embedding, RNNLM, SGD, Sequential  # noqa: E402

WORKSPACE = "examples/rnnlm"
# rnnlm-job.conf's kFixedStep schedule: step 0, 48810, 56945, 65080, 73215 of 81350 steps
FRACTIONS = (0.0, 0.6, 0.7, 0.8, 0.9)
RATES = (1.0, 0.5, 0.25, 0.125, 0.0625)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=200, help="training steps (one word window each)")
    p.add_argument("--vocab", type=int, default=3720, help="vocabulary size V (rnnlm-job.conf: 3720)")
    p.add_argument("--nclass", type=int, default=100, help="word classes (rnnlm-job.conf: 100)")
    p.add_argument("--word-dim", type=int, default=15, help="embedding width (rnnlm-job.conf: 15)")
    p.add_argument("--window", type=int, default=10, help="max_window: words a record window holds")
    p.add_argument("--lr", type=float, default=0.1, help="the first learning rate (then halved 4 times)")
    p.add_argument("--validate-steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workspace", default=WORKSPACE)
    return p.parse_args(argv)


def prepare_data(a):
    """The WordRecord kvfiles and the vocabulary size they hold (kept in summary.json)."""
    summary = os.path.join(a.workspace, "summary.json")
    if os.path.isfile(summary):
        with open(summary) as f:
            s = json.load(f)
        if s.get("vocab") == a.vocab and s.get("nclass") == a.nclass:
            return s["vocab_size"]
    raw = os.path.join(a.workspace, "fortunes")
    write_parts(raw, vocab_size=a.vocab)
    texts = [os.path.join(raw, "fortunes-words-%s.txt" % p) for p in ("train", "valid", "test")]
    s = create_rnnlm_data(*texts, class_size=a.nclass, out_dir=a.workspace)
    with open(summary, "w") as f:
        json.dump({"vocab": a.vocab, "nclass": a.nclass, "vocab_size": s["vocab_size"]}, f)
    return s["vocab_size"]


def build_model(a, vocab_size):
    m = Sequential("rnnlm")
    m.add(Data(load="kData", phase="train", path=os.path.join(a.workspace, "train_data.bin"),
               max_window=a.window, backend="kvfile"))
    m.add(Data(load="kData", phase="val", path=os.path.join(a.workspace, "valid_data.bin"), max_window=a.window))
    m.add(Embedding(vocab_size, a.word_dim))
    m.add(RNNLM(a.word_dim))
    steps = [int(f * a.steps) for f in FRACTIONS]
    sgd = SGD(lr_type="fixedstep", step=steps, step_lr=[a.lr * r for r in RATES])
    m.compile(loss="user_loss_rnnlm", nclass=a.nclass, in_dim=vocab_size, optimizer=sgd, cluster=Cluster(a.workspace))
    return m


def _metrics(d):
    return ", ".join("%s = %.4f" % (k, v) for k, v in sorted(d.items()) if isinstance(v, float))


def main(argv=None):
    a = parse_args(argv)
    vocab_size = prepare_data(a)
    print("rnnlm: %d words in %d classes" % (vocab_size, a.nclass))
    m = build_model(a, vocab_size)
    result = m.fit(alg="bp", nb_epoch=a.steps, seed=a.seed, validate_steps=a.validate_steps,
                   disp_freq=max(1, a.steps // 5))
    print("Final training metrics: %s" % _metrics(result.last()))
    val = result.last("validation")
    if val:
        print("Final validation metrics: %s" % _metrics(val))
    return 0


if __name__ == "__main__":
    sys.exit(main())
