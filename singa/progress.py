"""What a training run prints: ``verbose`` 0 (nothing), 1 (a live progress bar on a terminal,
plain lines otherwise) or 2 (plain lines, one per display step, even on a terminal).

The plain lines are SINGA's ("Train @ step 100: loss = 0.4, accuracy = 0.9 (812 samples/s, ETA
0:01:23)"), printed at display steps (``disp_freq``), so log files and CI output stay readable
and parseable. On a terminal the bar shows the whole run: steps done, samples/s, the running
loss and accuracy since the last display step and the time left; the display-step lines and the
tests still print above it, so the scrollback keeps them. One rank prints (the Driver decides).
"""
import shutil
import sys
import time

from singa.results import MetricSums


# Steps before an ETA is shown.
MIN_STEPS_FOR_ETA = 5


def resolve_verbose(verbose):
    """True/False -> 1/0; a level 0, 1 or 2; anything else is an error."""
    if verbose is True:
        return 1
    if verbose is False or verbose is None:
        return 0
    if isinstance(verbose, int) and verbose in (0, 1, 2):
        return verbose
    from singa.errors import ConfigError
    raise ConfigError("Invalid value for `verbose`. Expected 0 (silent), 1 (a progress bar on a terminal, lines "
                      "otherwise) or 2 (one line per display step). Received: %r" % (verbose,))


def eta(seconds):
    seconds = max(0, int(round(seconds)))
    return "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


class Progress:
    """``bar``: draw the live bar (default: verbose 1 and ``stream`` is a terminal)."""

    def __init__(self, verbose=1, stream=None, bar=None, min_interval=0.1):
        self.verbose = resolve_verbose(verbose)
        self.stream = stream or sys.stdout
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.bar = self.verbose == 1 and isatty if bar is None else bool(bar) and self.verbose > 0
        self.min_interval = min_interval
        self.total = self.start = 0
        self.batch = 0
        self.t0 = None
        self.train_time = 0.0       # seconds spent in training steps (tests excluded)
        self.done = 0               # steps done in this run
        self.running = MetricSums()     # since the last display, averaged as the display line's
        self._drawn = 0.0
        self._shown = False
        self.finished = False

    def begin(self, start, total, batch):
        self.start, self.total, self.batch = start, total, batch
        self.t0 = time.perf_counter()
        self.finished = False

    def print(self, msg):
        """A line above the bar (or just a line)."""
        if not self.verbose:
            return
        if self._shown:
            self.stream.write("\r\x1b[2K")
        self.stream.write(msg + "\n")
        self._shown = False
        if self.bar and self.t0 is not None and not self.finished:
            self._draw(force=True)
        self.stream.flush()

    def step(self, step, metrics, seconds):
        """A training step ended after ``seconds``, with ``metrics``."""
        self.train_time += seconds
        self.done = step + 1 - self.start
        self.running.add(metrics)
        if self.bar:
            self._draw()

    def displayed(self):
        """The running metrics restart at a display step (as the "Train @ step" line's do)."""
        self.running = MetricSums()

    def eta(self):
        """The time left at the pace so far (wall time: tests and checkpoints included)."""
        left = self.total - self.start - self.done
        if self.done < MIN_STEPS_FOR_ETA or not self.t0:   # the first steps (and a test before them) mislead
            return "?"
        return eta(left * (time.perf_counter() - self.t0) / self.done)

    def rate(self):
        return self.done * self.batch / self.train_time if self.train_time > 0 else 0.0

    def _draw(self, force=False):
        now = time.perf_counter()
        if not force and now - self._drawn < self.min_interval and self.done < self.total - self.start:
            return
        self._drawn = now
        cur = self.start + self.done
        width = shutil.get_terminal_size((100, 20)).columns
        frac = min(1.0, cur / self.total) if self.total else 1.0
        metrics = "".join(" %s %.4f" % kv for kv in sorted(self.running.means().items(),
                                                             key=lambda kv: (kv[0] != "loss", kv[0])))
        text = " %d/%d %3d%% %.0f samples/s%s ETA %s" % (cur, self.total, 100 * frac, self.rate(), metrics, self.eta())
        room = max(10, min(40, width - len(text) - 3))
        fill = int(room * frac)
        bar = "[" + "=" * max(0, fill - 1) + (">" if 0 < fill < room else "=" if fill else "") + " " * (room - fill) + "]"
        self.stream.write("\r\x1b[2K" + (bar + text)[:width - 1])
        self.stream.flush()
        self._shown = True

    def end(self):
        self.finished = True
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


__all__ = ["Progress", "resolve_verbose", "eta"]
