"""char-rnn through the Python API: train SINGA's char-rnn-job.conf net on the fortunes text, then sample.

    python examples/char_rnn.py [--steps 100] [--hidden 512] [--lr 0.002] [--temperature 1.0 | --greedy]

The net is char-rnn-job.conf's (CharRNN -> OneHot -> GRU -> Dense -> softmax loss, RNNLabel the labels,
unrolled 50 steps, RMSProp, BPTT), built with singa.model's classes. The text is made on the first run
(singa-create-data fortunes + char-rnn, into examples/char-rnn/). After training, ``--length`` characters
are sampled from the checkpoint by a small NumPy GRU on the trained params: with ``--temperature T``
(default 1.0) each character is drawn from softmax(logits / T); ``--greedy`` takes the argmax instead,
which is what char-rnn-sample.conf's kArgSort (topk 1) -> kCharRNNOutput net does (SINGA-compatible, but
it soon repeats itself). Seeded: the same flags print the same text.
"""
import argparse
import os
import sys

import numpy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from singa.io.checkpoint import read_checkpoint  # noqa: E402
from singa.io.create_data import main as create_data  # noqa: E402
from singa.model import (CharRNN, Cluster, Dense, GRU, OneHot, RMSProp, RNNLabel, Sequential)  # noqa: E402

WORKSPACE = "examples/char-rnn"
TEXT = "fortunes-train.txt"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=100, help="training steps (mini-batches of 50 x 50 chars)")
    p.add_argument("--hidden", type=int, default=512, help="GRU units (char-rnn-job.conf: 512)")
    p.add_argument("--lr", type=float, default=0.002, help="RMSProp base learning rate")
    p.add_argument("--unroll", type=int, default=50, help="characters a step is unrolled over")
    p.add_argument("--batchsize", type=int, default=50)
    p.add_argument("--length", type=int, default=200, help="characters to sample")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (> 0)")
    p.add_argument("--greedy", action="store_true", help="argmax sampling, as char-rnn-sample.conf")
    p.add_argument("--start", default="T", help="the text the sample starts from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workspace", default=WORKSPACE)
    a = p.parse_args(argv)
    if a.temperature <= 0:
        p.error("--temperature must be > 0 (use --greedy for argmax)")
    return a


def prepare_text(workspace):
    """The fortunes text and its vocab.txt (101 characters, as char-rnn-job.conf's onehot_conf)."""
    text = os.path.join(workspace, TEXT)
    vocab = os.path.join(workspace, "vocab.txt")
    if not (os.path.isfile(text) and os.path.isfile(vocab)):
        raw = os.path.join(workspace, "fortunes")
        if create_data(["fortunes", raw]) or create_data(["char-rnn", os.path.join(raw, TEXT), workspace, "-name",
                                                          TEXT, "-vocab_size", "101"]):
            sys.exit("could not make the fortunes text (is Debian's fortunes installed?)")
    return text, vocab


def build_model(a, text, vocab):
    m = Sequential("char-rnn")
    m.add(CharRNN(text, vocab, batchsize=a.batchsize, unroll_len=a.unroll))
    m.add(OneHot(101))
    m.add(RNNLabel())
    m.add(GRU(a.hidden))
    m.add(Dense(101, init="uniform", w_scale=0.08, b_scale=0.08))
    rmsprop = RMSProp(lr=a.lr, rho=0.95, lr_type="step", gamma=0.97, change_freq=2000, clip_low=-5, clip_high=5)
    m.compile(loss="categorical_crossentropy", optimizer=rmsprop, cluster=Cluster(a.workspace))
    return m


def _sigmoid(v):
    return 0.5 * numpy.tanh(0.5 * v) + 0.5


def gru_step(g, x, h):
    """One GRU step (singa/layers/gru.py's equations, SINGA's linear-before-reset GRU) on character
    index ``x``: ``g`` the params in SINGA's order (W_zx, W_rx, W_cx (H, V), W_zh, W_rh, W_ch (H, H)[, b_z,
    b_r, b_c]), ``h`` the previous state (H,); returns the new state."""
    wzx, wrx, wcx, wzh, wrh, wch = g[:6]
    bz, br, bc = [b.reshape(-1) for b in g[6:9]] if len(g) == 9 else [0.0] * 3
    z = _sigmoid(wzx[:, x] + bz + wzh @ h)
    r = _sigmoid(wrx[:, x] + br + wrh @ h)
    c = numpy.tanh(r * (wch @ h) + wcx[:, x] + bc)
    return (h - c) * z + c


def sample(params, gru, ip, vocab, start, length, temperature=1.0, greedy=False, seed=0):
    """``length`` characters after ``start``, from the GRU and the InnerProduct (logits W h + b) of
    checkpoint ``params`` ({name: array})."""
    g = [params[p.name].astype(numpy.float64) for p in gru.layer.param]
    w, b = (params[p.name].astype(numpy.float64) for p in ip.layer.param)
    rng = numpy.random.default_rng(seed)
    h = numpy.zeros(g[3].shape[0])
    index = {c: i for i, c in enumerate(vocab)}
    out = bytearray()
    seq = [index[c] for c in start.encode() if c in index] or [0]
    for k in range(len(seq) + length - 1):
        x = seq[k] if k < len(seq) else index[out[-1]]
        h = gru_step(g, x, h)
        if k < len(seq) - 1:
            continue
        logits = w @ h + b.reshape(-1)
        if greedy:
            nxt = int(numpy.argmax(logits))
        else:
            p = numpy.exp((logits - logits.max()) / temperature)
            nxt = int(rng.choice(len(p), p=p / p.sum()))
        out.append(vocab[nxt])
    return start + out.decode("utf-8", "replace")


def main(argv=None):
    a = parse_args(argv)
    text, vocab_path = prepare_text(a.workspace)
    m = build_model(a, text, vocab_path)
    result = m.fit(alg="bptt", nb_epoch=a.steps, seed=a.seed, disp_freq=max(1, a.steps // 5))
    final = result.last()
    print("Final training metrics (per character): %s"
          % ", ".join("%s = %.4f" % (k, v) for k, v in sorted(final.items()) if isinstance(v, float)))
    params = {name: arr for name, arr, _ in read_checkpoint(m.last_checkpoint_path)}
    gru = next(l for l in m.layers if isinstance(l, GRU))
    ip = next(l for l in m.layers if isinstance(l, Dense))
    with open(vocab_path, "rb") as f:
        vocab = f.read()
    how = "greedy (argmax)" if a.greedy else "temperature %g" % a.temperature
    print("Sample (%s, from %s):" % (how, m.last_checkpoint_path))
    print(sample(params, gru, ip, vocab, a.start, a.length, a.temperature, a.greedy, a.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
