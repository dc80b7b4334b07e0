"""SINGA's rnnlm (examples/singa-v0/rnnlm-job.conf) in PyTorch CPU: the reference side of the rnnlm
throughput comparison in bench_rnn.py (``--nets rnnlm``), and a seeded WordRecord file to run both on.

The maths is singa/layers/rnnlm.py's (SINGA-V0-REST.md 4.3-4.7), only written with torch ops:

* a batch is one window of the word stream, cut as kData cuts it (``windows``): row 0 is the last
  row of the previous window (record 0 at first), then up to ``max_window`` more records, stopping
  after a ``</s>`` (word 0), wrapping to record 0 at the end of the file; inputs are rows
  0..w-1, targets rows 1..w;
* kEmbedding: ``x_t = E[word_t]`` (nn.Embedding, dense gradient as singa's);
* kHidden: ``h_0 = sigmoid(x_0)``, ``h_t = sigmoid(h_{t-1} W + x_t)`` (no bias), written as a loop;
* kLoss: for the target (word, class, start, end) of step t,
  ``-log_softmax(h_t Wc^T)[class] - log_softmax(h_t Ww[start:end]^T)[word - start]``, summed over
  the window (singa's gradient is of the sum; its reported 'loss' is the sum / w). The word part is
  vectorised: each step's class range is gathered, padded to the window's widest class and masked
  (padding gets -inf), so only the class's words are multiplied. singa's clamp of p at FLT_MIN is
  left out (it changes nothing unless a word's probability underflows);
* kSGD with kFixedStep: ``w -= lr g`` (lr 0.1 up to step 48810, as the conf).
"""
import numpy

VOCAB, NCLASS, WORD_DIM, MAX_WINDOW = 3720, 100, 15, 10
STEPS, STEP_LRS = (0, 48810, 56945, 65080, 73215), (0.1, 0.05, 0.025, 0.0125, 0.00625)


def lr_at(step):
    """kFixedStep of rnnlm-job.conf."""
    lr = STEP_LRS[0]
    for s, r in zip(STEPS, STEP_LRS):
        if step >= s:
            lr = r
    return lr


def zipf_tokens(n, vocab=VOCAB, sentence=12.0, seed=0):
    """A seeded token stream: words w1..w{vocab-1} with Zipf(1) frequencies, every word at least
    once, and ``</s>`` about once per ``sentence`` tokens (fortunes-like lines)."""
    rng = numpy.random.default_rng(seed)
    p = 1.0 / numpy.arange(1, vocab)
    p /= p.sum()
    ids = numpy.concatenate([numpy.arange(1, vocab), 1 + rng.choice(vocab - 1, size=n, p=p)])
    rng.shuffle(ids)
    ends = rng.random(len(ids)) < 1.0 / sentence
    toks, eos = [], b"</s>"
    names = [b"w%d" % i for i in range(vocab)]
    for i, e in zip(ids.tolist(), ends.tolist()):
        toks.append(names[i])
        if e:
            toks.append(eos)
    toks.append(eos)
    return toks


def write_word_records(path, n=60000, class_size=NCLASS, seed=0):
    """A WordRecord kvfile of ``zipf_tokens`` with singa.io.rnnlm_data's vocabulary (sorted by count)
    and classes (rnnlmlib's cumulative-frequency ranges): what singa-create-data rnnlm writes for
    such a text. Returns (vocab_size, records written)."""
    from singa.io.rnnlm_data import assign_classes, build_vocab, write_records
    toks = zipf_tokens(n, seed=seed)
    words, counts = build_vocab(toks)
    cls, start, end = assign_classes(counts, class_size)
    written, _ = write_records(path, toks, {w: i for i, w in enumerate(words)}, cls, start, end)
    return len(words), written


def windows(rows, max_window=MAX_WINDOW):
    """kData's windows of the (N, 4) records ``rows``: an endless iterator of (w + 1, 4) arrays."""
    n, pos = len(rows), 0
    while True:
        if pos == 0:
            out, pos = [rows[0]], 1
        else:
            out = [rows[pos - 1]]
        for _ in range(max_window):
            if pos == n:
                pos = 0
            out.append(rows[pos])
            pos += 1
            if rows[pos - 1, 0] == 0:
                break
        yield numpy.array(out)


class Model:
    """The rnnlm net: params E (vocab, d), W (d, d), Ww (vocab, d), Wc (nclass, d), float32."""

    def __init__(self, params):
        import torch
        self.E, self.W, self.Ww, self.Wc = (torch.nn.Parameter(torch.as_tensor(numpy.asarray(p, numpy.float32)))
                                            for p in params)
        self.params = [self.E, self.W, self.Ww, self.Wc]

    def loss(self, window):
        """The summed loss of a (w + 1, 4) window (a 0-d tensor)."""
        import torch
        import torch.nn.functional as F
        rows = torch.from_numpy(window)
        x = F.embedding(rows[:-1, 0], self.E)                      # (w, d)
        hs, h = [], None
        for t in range(x.shape[0]):
            h = torch.sigmoid(x[t] if h is None else h @ self.W + x[t])
            hs.append(h)
        H = torch.stack(hs)                                         # (w, d)
        wid, cid, lo, hi = rows[1:, 0], rows[1:, 1], rows[1:, 2], rows[1:, 3]
        lc = F.log_softmax(H @ self.Wc.T, dim=1).gather(1, cid[:, None])
        width = int((hi - lo).max())
        k = torch.arange(width)
        idx = lo[:, None] + k                                       # (w, width): each step's class words
        valid = idx < hi[:, None]
        z = torch.bmm(F.embedding(idx.clamp(max=self.Ww.shape[0] - 1), self.Ww), H[:, :, None])[:, :, 0]
        lw = F.log_softmax(z.masked_fill(~valid, float("-inf")), dim=1).gather(1, (wid - lo)[:, None])
        return -(lc.sum() + lw.sum())

    def sgd(self, step):
        import torch
        lr = lr_at(step)
        with torch.no_grad():
            for p in self.params:
                if p.grad is not None:          # W has none in a one-word window
                    p.sub_(lr * p.grad)
                    p.grad = None


def train_step_fn(rows, params, max_window=MAX_WINDOW):
    """step() -> (summed loss, words) of the next window, after SGD on it."""
    model = Model(params)
    it = windows(rows, max_window)
    state = {"step": 0}

    def step():
        w = next(it)
        loss = model.loss(w)
        loss.backward()
        model.sgd(state["step"])
        state["step"] += 1
        return loss.item(), len(w) - 1
    return step, model
