"""What fit() and evaluate() return: metrics keyed by step, straight from the engine.

``Results`` is a dict ``{step: {'loss': float, 'acc': float, ...}}`` (SINGA's documented shape, with
int steps and float values instead of the strings SINGA parsed from its log) holding the metrics of
the phase the call is about: training metrics for fit(), test metrics for evaluate() (also when
evaluate() runs the training of ``fit(..., with_test=True)``). All three phases are reachable on
every Results as ``.train``, ``.validation`` and ``.test``.
"""


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
