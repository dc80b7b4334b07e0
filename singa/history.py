"""History: the metrics of a training run by step, kept by ``fit`` (``m.history``), saved as CSV
or JSON lines and drawn as loss and accuracy curves (matplotlib, the ``plot`` extra).

    m.fit(X_train, nb_epoch=5000, with_test=True)
    m.evaluate(X_test, test_steps=100, test_freq=500)
    m.history.to_csv('history.csv'); m.history.plot('curves.png')

Phases: 'step' (the metrics of every training batch), 'train' (their averages at display steps,
SINGA's "Train @ step" lines), 'validation' and 'test'.
"""
import collections
import csv
import io
import json
import math

from singa.callbacks import Callback
from singa.errors import ConfigError, DataError

PHASES = ("step", "train", "validation", "test")


class History(Callback):
    def __init__(self):
        self.step, self.train, self.validation, self.test = {}, {}, {}, {}

    def on_step_end(self, run, step, metrics):
        self.step[step] = dict(metrics)

    def on_display(self, run, step, metrics):
        self.train[step] = dict(metrics)

    def on_test_end(self, run, step, phase, metrics):
        getattr(self, phase)[step] = dict(metrics)

    def __repr__(self):
        return "History(%s)" % ", ".join("%s: %d" % (p, len(getattr(self, p))) for p in PHASES)

    def __eq__(self, other):
        return isinstance(other, History) and all(getattr(self, p) == getattr(other, p) for p in PHASES)

    def metrics(self):
        """Every metric name recorded, sorted."""
        return sorted({k for p in PHASES for m in getattr(self, p).values() for k in m})

    def rows(self):
        """(phase, step, metrics) for every record, by phase then step."""
        for p in PHASES:
            for step in sorted(getattr(self, p)):
                yield p, step, getattr(self, p)[step]

    # -- files ---------------------------------------------------------------------------
    def to_csv(self, path):
        """One row per record: phase, step, then a column per metric (empty where a phase lacks it)."""
        keys = self.metrics()
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["phase", "step"] + keys)
            for p, step, m in self.rows():
                w.writerow([p, step] + [repr(float(m[k])) if k in m else "" for k in keys])
        return path

    def to_jsonl(self, path):
        """One JSON object per record: {"phase": ..., "step": ..., metric: value, ...}."""
        with open(path, "w") as f:
            for p, step, m in self.rows():
                rec = {"phase": p, "step": step}
                rec.update({k: _json_float(v) for k, v in m.items()})
                f.write(json.dumps(rec) + "\n")
        return path

    @classmethod
    def from_csv(cls, path):
        """Read a file written by to_csv. Anything else (a wrong header, a ragged row, a value
        that is not a number, bytes that are not UTF-8...) is a DataError naming the file and line."""
        h = cls()
        r = csv.reader(io.StringIO(_read_text(path), newline=""))
        try:
            head = next(r, None)
            if not head or head[:2] != ["phase", "step"]:
                raise DataError("%s is not a History CSV: its header is %r, expected 'phase,step,...'.\nhelp: write "
                                "it with History.to_csv" % (path, head if head is None else ",".join(head)[:80]))
            names = head[2:]
            # a Counter, not names.count(): a header of 10^5 columns must not take minutes
            dup = sorted(k for k, c in collections.Counter(head).items() if c > 1)
            if dup or "" in names:
                raise _bad(path, 1, "the header", "distinct, non-empty metric names after 'phase,step'",
                           "%s%s" % (",".join(head)[:120], " (repeated: %s)" % ", ".join(dup)[:80] if dup else ""))
            for row in r:
                n = r.line_num
                if not row:
                    continue         # a blank line ends no record; editors add them
                if len(row) != len(head):
                    raise _bad(path, n, "the row", "%d fields like the header (%s)" % (len(head), ",".join(head)[:80]),
                               "%d field(s): %s" % (len(row), ",".join(row)[:80]))
                metrics = {k: _metric(path, n, k, v) for k, v in zip(names, row[2:]) if v != ""}
                h._add(path, n, row[0], row[1], metrics)
        except csv.Error as e:
            # a NUL, a stray quote or a field over csv.field_size_limit() (a huge line)
            raise _bad(path, r.line_num, "the CSV text", "rows of comma-separated numbers", str(e)) from None
        return h

    @classmethod
    def from_jsonl(cls, path):
        """Read a file written by to_jsonl: one JSON object a line, blank lines skipped; anything
        else is a DataError naming the file and line."""
        h = cls()
        # split on "\n" only, so line numbers are an editor's (splitlines() also cuts at \x0c, \u2028...)
        for n, line in enumerate(_read_text(path).split("\n"), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("a JSON %s, not an object" % type(rec).__name__)
                phase, step = rec.pop("phase"), rec.pop("step")
            except (ValueError, KeyError, RecursionError) as e:
                # RecursionError: thousands of nested brackets; KeyError: no "phase" or "step"
                raise DataError("%s line %d is not a History record (%s): %r\nhelp: expected a JSON object "
                                "{\"phase\": ..., \"step\": ..., metric: number, ...} as History.to_jsonl writes" % (
                                    path, n, _short(e) if not isinstance(e, KeyError) else "no %s" % e,
                                    line[:80])) from None
            h._add(path, n, phase, step, {k: _metric(path, n, k, v) for k, v in rec.items()})
        return h

    def _add(self, path, n, phase, step, metrics):
        if not isinstance(phase, str) or phase not in PHASES:
            raise DataError("%s line %d: phase %s, expected one of %s" % (path, n, repr(phase)[:60], PHASES))
        getattr(self, phase)[_step(path, n, step)] = metrics

    # -- pictures --------------------------------------------------------------------------
    def plot(self, path, title=None, smooth=None):
        """Every recorded metric (loss, accuracy, perplexity, ...) against the step, a panel each:
        every training batch (light, smoothed over ``smooth`` batches, default about 1/50 of the
        run), the display averages,
        validation and test. Writes a PNG (or any format matplotlib knows by the suffix)."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ConfigError("History.plot needs matplotlib.\nhelp: pip install 'singa[plot]' (or pip install "
                              "matplotlib); to_csv/to_jsonl work without it") from None
        # every metric recorded (a loss layer names its own: 'ppl' of the rnnlm), the loss first
        names = sorted(self.metrics(), key=lambda k: (k != "loss", k))
        if not names:
            raise ConfigError("History.plot: nothing to draw, no metric was recorded.\nhelp: plot after fit()")
        fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
        labels = {"loss": "loss", "acc": "accuracy", "se": "squared error", "ppl": "perplexity"}
        for ax, name in zip(axes[0], names):
            steps = sorted(s for s, m in self.step.items() if name in m)
            if steps:
                vals = [self.step[s][name] for s in steps]
                k = smooth or max(1, len(vals) // 50)
                ax.plot(steps, vals, color="tab:blue", alpha=0.2, lw=0.8, label="train (each batch)")
                if k > 1 and len(vals) > k:
                    ax.plot(steps[k - 1:], _moving_mean(vals, k), color="tab:blue", lw=1.2,
                            label="train (mean of %d)" % k)
            for phase, style in (("train", dict(color="tab:blue", marker="o", ms=3, ls="none")),
                                 ("validation", dict(color="tab:orange", marker="s", ms=4)),
                                 ("test", dict(color="tab:green", marker="D", ms=4))):
                d = getattr(self, phase)
                pts = sorted(s for s, m in d.items() if name in m)
                if pts and not (phase == "train" and steps):     # display averages only without each batch
                    ax.plot(pts, [d[s][name] for s in pts], label=phase, **style)
            ax.set_xlabel("step")
            ax.set_ylabel(labels.get(name, name))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def _moving_mean(vals, k):
    out, acc = [], sum(vals[:k])
    out.append(acc / k)
    for i in range(k, len(vals)):
        acc += vals[i] - vals[i - k]
        out.append(acc / k)
    return out


def _read_text(path):
    """The text of a History file; a missing file or bytes that are not UTF-8 are a DataError."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError("History file %s cannot be read (%s).\nhelp: check the path; History.to_csv and "
                        "to_jsonl write these files" % (path, e.strerror or e)) from None
    try:
        return data.decode("utf-8-sig")       # -sig: a spreadsheet that re-saved the file may add a BOM
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError("%s line %d (byte offset %d) holds byte 0x%02x, which is not UTF-8.\nhelp: History files "
                        "are UTF-8 text as History.to_csv/to_jsonl write them; convert it (iconv -t utf-8)" % (
                            path, line, e.start, data[e.start])) from None


def _bad(path, n, what, expected, received):
    return DataError("%s line %d: %s is not valid. Expected %s. Received: %s\nhelp: History files are read as "
                     "History.to_csv/to_jsonl write them" % (path, n, what, expected, received))


def _short(e):
    return str(e)[:120] or type(e).__name__


def _step(path, n, step):
    """A record's step: a non-negative integer (an int in JSON, decimal digits in CSV)."""
    digits = step.strip(" \t") if isinstance(step, str) else None
    # isascii: str.isdigit() also takes '²'; strip(" \t"): str.strip() drops '\x1d', which int() refuses
    if digits and digits.isdigit() and digits.isascii() and len(digits) < 19:
        return int(digits)
    if isinstance(step, int) and not isinstance(step, bool) and 0 <= step < 2 ** 63:
        return step
    raise DataError("%s line %d: step %r is not a number; expected a non-negative integer" % (path, n, str(step)[:40]))


def _metric(path, n, name, value):
    """A metric's value as float: a number, or the text of one ('nan', 'inf' as to_jsonl writes them)."""
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except (ValueError, OverflowError):
            pass
    raise _bad(path, n, "metric %r" % str(name)[:40], "a number (or 'nan', 'inf')", repr(value)[:80])


def _json_float(v):
    v = float(v)
    return v if math.isfinite(v) else str(v)      # JSON has no NaN/Infinity


__all__ = ["History", "PHASES"]
