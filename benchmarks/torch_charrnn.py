"""char-rnn in PyTorch, as SINGA's char-rnn-job.conf trains it: the reference side of the char-rnn
comparisons (held-out loss in the issue-16 tests and notes, throughput in bench_rnn.py).

Everything follows the job.conf and SINGA-V0-REST.md, so only the random draws differ from singa's:

* batches as kCharRNN cuts them (3.2, with the FIX that keeps reads inside each segment): the text
  split into B segments of ``len(text) // B`` chars, each step the next U + 1 chars of every
  segment (consecutive steps overlap by one char), wrapping to the segment's start;
* the GRU of 2.2 (linear-before-reset: ``c = tanh(r * (h W_ch^T) + x W_cx^T + b_c)``,
  ``h' = z h + (1 - z) c``), h0 = 0 in every window (SINGA carried no state across batches), then
  an affine layer to the vocabulary and the softmax loss of every step, each averaged over the
  batch and summed over the U steps (BPTT's sum, 1.5);
* RMSProp as singa.updaters.rules.RMSPropUpdater: ``g = clip(g, -5, 5)``,
  ``h = rho h + (1 - rho) g^2``, ``w -= lr g / sqrt(h + delta)``; lr ``0.002 * 0.97^(step // 2000)``.

``cell='singa'`` runs the hand-written cell above (exact formulas); ``cell='nn.GRU'`` runs
torch.nn.GRU with its hidden-side biases held at zero, which is the same function
(torch's n = tanh(W_in x + b_in + r * (W_hn h + b_hn)) with b_hn = 0), for speed.
"""
import math

import numpy

# SINGA's char-rnn-job.conf
UNROLL, BATCH, HIDDEN = 50, 50, 512
INIT = 0.08
RHO, DELTA, CLIP = 0.95, 1e-8, 5.0
BASE_LR, GAMMA, CHANGE_FREQ = 0.002, 0.97, 2000


def encode(text, vocab):
    """The text as int64 indices: a char's index is its position in vocab (as kCharRNN reads vocab.txt)."""
    index = {c: i for i, c in enumerate(vocab)}
    missing = sorted(set(text) - set(index))
    if missing:
        raise ValueError("characters %r of the text are not in the vocabulary" % "".join(missing[:10]))
    return numpy.fromiter((index[c] for c in text), dtype=numpy.int64, count=len(text))


class Batches:
    """kCharRNN's batches: (U + 1, B) index arrays, segment b starting at b * (len // B)."""

    def __init__(self, ids, batch=BATCH, unroll=UNROLL):
        self.ids, self.batch, self.unroll = ids, batch, unroll
        self.seg = len(ids) // batch
        if self.seg <= unroll:
            raise ValueError("text of %d chars is too short for %d segments of more than %d chars"
                             % (len(ids), batch, unroll))
        self.offset = 0

    def __next__(self):
        if self.offset + self.unroll > self.seg - 1:
            self.offset = 0
        starts = numpy.arange(self.batch) * self.seg + self.offset
        out = self.ids[starts[None, :] + numpy.arange(self.unroll + 1)[:, None]]
        self.offset += self.unroll
        return out

    def __iter__(self):
        return self


def make_model(vocab_size, cell="singa", hidden=HIDDEN, seed=0):
    """(step function, params): ``forward(window)`` -> summed loss of a (U + 1, B) index window."""
    import torch
    g = torch.Generator().manual_seed(seed)

    def uniform(*shape):
        return torch.nn.Parameter((torch.rand(*shape, generator=g) * 2 - 1) * INIT)

    V, H = vocab_size, hidden
    out_w, out_b = uniform(V, H), uniform(V)
    eye = torch.eye(V)
    if cell == "singa":
        W = {k: uniform(H, V) for k in ("zx", "rx", "cx")}
        W.update({k: uniform(H, H) for k in ("zh", "rh", "ch")})
        b = {k: uniform(H) for k in ("z", "r", "c")}
        params = list(W.values()) + list(b.values()) + [out_w, out_b]

        def hiddens(xs):
            h = torch.zeros(xs.shape[1], H)
            out = []
            for x in xs:
                z = torch.sigmoid(x @ W["zx"].T + b["z"] + h @ W["zh"].T)
                r = torch.sigmoid(x @ W["rx"].T + b["r"] + h @ W["rh"].T)
                c = torch.tanh(r * (h @ W["ch"].T) + x @ W["cx"].T + b["c"])
                h = z * h + (1 - z) * c
                out.append(h)
            return torch.stack(out)
    elif cell == "nn.GRU":
        gru = torch.nn.GRU(V, H)
        with torch.no_grad():
            for name, p in gru.named_parameters():
                if name.startswith("bias_hh"):
                    p.zero_()
                    p.requires_grad_(False)
                else:
                    p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * INIT)
        params = [p for p in gru.parameters() if p.requires_grad] + [out_w, out_b]

        def hiddens(xs):
            return gru(xs)[0]
    else:
        raise ValueError("cell must be 'singa' or 'nn.GRU', not %r" % (cell,))

    def loss_of(window):
        w = torch.from_numpy(window)
        xs = eye[w[:-1]]                                   # kOneHot of every step: (U, B, V)
        logits = hiddens(xs) @ out_w.T + out_b              # (U, B, V)
        per_step = torch.nn.functional.cross_entropy(logits.reshape(-1, V), w[1:].reshape(-1),
                                                     reduction="none").reshape(w.shape[0] - 1, -1)
        return per_step.mean(dim=1).sum()                  # each step /B, summed over the steps
    return loss_of, params


class SingaRMSProp:
    """singa's kRMSProp with the conf's clipping and kStep schedule, on torch tensors."""

    def __init__(self, params):
        import torch
        self.params = params
        self.hist = [torch.zeros_like(p) for p in params]

    def step(self, step):
        import torch
        lr = BASE_LR * GAMMA ** (step // CHANGE_FREQ)
        with torch.no_grad():
            for p, h in zip(self.params, self.hist):
                g = p.grad.clamp(-CLIP, CLIP)
                h.mul_(RHO).add_((1 - RHO) * g * g)
                p.sub_(lr * g / torch.sqrt(h + DELTA))
                p.grad.zero_()


def train(text, vocab, steps, cell="singa", seed=0, batch=BATCH, unroll=UNROLL, hidden=HIDDEN):
    """Train ``steps`` BPTT steps on ``text``; returns (loss_of, the mean training loss per char of the
    last 10 steps)."""
    loss_of, params = make_model(len(vocab), cell, hidden, seed)
    opt = SingaRMSProp(params)
    batches = Batches(encode(text, vocab), batch, unroll)
    recent = []
    for step in range(steps):
        loss = loss_of(next(batches))
        loss.backward()
        opt.step(step)
        recent = (recent + [loss.item() / unroll])[-10:]
    return loss_of, sum(recent) / len(recent)


def heldout_bits_per_char(loss_of, text, vocab, batch=BATCH, unroll=UNROLL, windows=None):
    """Mean cross-entropy in bits per char over held-out ``text``, cut as kCharRNN cuts it (one pass
    over each segment unless ``windows`` caps it)."""
    import torch
    batches = Batches(encode(text, vocab), batch, unroll)
    n = (batches.seg - 1) // unroll
    n = n if windows is None else min(n, windows)
    total = 0.0
    with torch.no_grad():
        for _ in range(n):
            total += loss_of(next(batches)).item() / unroll
    return total / n / math.log(2)
