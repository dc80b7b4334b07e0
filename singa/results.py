"""What fit() and evaluate() return: metrics keyed by step, straight from the engine.

``Results`` is a dict ``{step: {'loss': float, 'acc': float, ...}}`` (SINGA's documented shape, with
int steps and float values instead of the strings SINGA parsed from its log) holding the metrics of
the phase the call is about: training metrics for fit(), test metrics for evaluate(). All three
phases are reachable on every Results as ``.train``, ``.validation`` and ``.test``.
"""


class Results(dict):
    def __init__(self, main="train", train=None, validation=None, test=None, cluster=None):
        # ``cluster``: for jobs with parameter servers, the framework and what the servers did
        # ({'framework', 'pushes': {worker group: n}, 'updates': {(server group, id): n}, 'deltas'})
        self.cluster = cluster
        self.train = train if train is not None else {}
        self.validation = validation if validation is not None else {}
        self.test = test if test is not None else {}
        self.phase = main
        super().__init__(getattr(self, main))

    def last(self, phase=None):
        """Metrics of the last recorded step of ``phase`` (default: this Results' own phase), or {}."""
        d = getattr(self, phase or self.phase)
        return d[max(d)] if d else {}

    def __repr__(self):
        return "Results(%s: %s; train %d steps, validation %d, test %d)" % (
            self.phase, dict.__repr__(self), len(self.train), len(self.validation), len(self.test))
