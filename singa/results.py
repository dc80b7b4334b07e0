"""What fit() and evaluate() return: metrics keyed by step, straight from the engine.

``Results`` is a dict ``{step: {'loss': float, 'acc': float, ...}}`` (SINGA's documented shape, with
int steps and float values instead of the strings SINGA parsed from its log) holding the metrics of
the phase the call is about: training metrics for fit(), test metrics for evaluate() (also when
evaluate() runs the training of ``fit(..., with_test=True)``). All three phases are reachable on
every Results as ``.train``, ``.validation`` and ``.test``.

A metric is whatever name a loss layer reports ('loss', 'acc', 'se', the rnnlm's 'ppl', ...): none
is fixed here. Per-batch values average into a display's (or a test's) value with ``MetricSums``:
a plain float counts once per batch; a ``Weighted`` value (a loss layer's per-word figures, whose
batches hold different numbers of words) counts ``weight`` times, and a geometric one (a
perplexity) averages its logarithm, so 'ppl' over a display is exp(the mean per-word loss), as
SINGA's ToString computed it, not the mean of the batches' perplexities.
"""
import math


class Weighted(float):
    """A metric value that says how it averages: over ``weight`` items (e.g. the words of a
    window), arithmetically, or geometrically (``geometric``: a perplexity, exp of a mean)."""

    def __new__(cls, value, weight, geometric=False):
        self = super().__new__(cls, value)
        self.weight, self.geometric = float(weight), bool(geometric)
        return self

    def __reduce__(self):        # pickles (a callback's copy) as the plain value
        return float, (float(self),)


class MetricSums:
    """Running (weighted) sums of per-batch metrics; ``means()`` averages them (see the module doc)."""

    def __init__(self):
        self.sums, self.weights, self.geometric, self.n = {}, {}, {}, 0

    def add(self, metrics):
        for k, v in metrics.items():
            w = getattr(v, "weight", 1.0)
            geo = self.geometric.setdefault(k, getattr(v, "geometric", False))
            x = math.log(v) if geo and v > 0 else (-math.inf if geo else float(v))
            self.sums[k] = self.sums.get(k, 0.0) + w * x
            self.weights[k] = self.weights.get(k, 0.0) + w
        self.n += 1

    def means(self):
        out = {}
        for k, s in self.sums.items():
            m = s / self.weights[k] if self.weights[k] else math.nan
            out[k] = math.exp(m) if self.geometric[k] else m
        return out


class Results(dict):
    """``main``: the phase whose metrics the dict holds. ``cluster``: for jobs with parameter
    servers, the framework and what the servers did ({'framework', 'pushes': {worker group: n},
    'updates': {(server group, id): n}, 'deltas'}). ``stopped``: why training stopped early (a
    callback, a NaN, an interrupt), or None. ``checkpoint``: the newest checkpoint the run wrote.
    ``interrupted``: the signal that stopped the run (Ctrl-C, SIGTERM), or None."""

    def __init__(self, main="train", train=None, validation=None, test=None, cluster=None, stopped=None,
                 checkpoint=None, interrupted=None):
        self.cluster = cluster
        self.train = train if train is not None else {}
        self.validation = validation if validation is not None else {}
        self.test = test if test is not None else {}
        self.phase = main
        self.stopped = stopped
        self.checkpoint = checkpoint
        self.interrupted = interrupted
        super().__init__(getattr(self, main))

    def as_phase(self, main):
        """The same results keyed by the metrics of phase ``main`` ('train', 'validation', 'test')."""
        out = Results(main, self.train, self.validation, self.test, self.cluster, self.stopped, self.checkpoint,
                      self.interrupted)
        for k, v in vars(self).items():     # what a caller added (Model.fit's history, ...)
            if not hasattr(out, k):
                setattr(out, k, v)
        return out

    def last(self, phase=None):
        """Metrics of the last recorded step of ``phase`` (default: this Results' own phase), or {}."""
        d = getattr(self, phase or self.phase)
        return d[max(d)] if d else {}

    def __repr__(self):
        return "Results(%s: %s; train %d steps, validation %d, test %d)" % (
            self.phase, dict.__repr__(self), len(self.train), len(self.validation), len(self.test))
