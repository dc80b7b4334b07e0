# covers: singa/progress.py, singa/results.py
"""What a training run prints (singa.progress): a bar on terminals, lines in files, nothing at 0."""
import io
import re

import pytest

from singa.driver import Driver
from singa.errors import ConfigError
from singa.progress import Progress, eta, resolve_verbose
from tests.test_driver import job_dir, make_job  # noqa: F401  (fixture)


class Terminal(io.StringIO):
    def isatty(self):
        return True


def run_with(stream, verbose, monkeypatch, steps=30):
    monkeypatch.setattr("sys.stdout", stream)
    Driver(verbose=verbose).train(make_job(steps=steps, disp=10, test_freq=15))
    return stream.getvalue()


def test_a_file_gets_singas_lines_with_rate_and_eta(job_dir, monkeypatch):
    out = run_with(io.StringIO(), 1, monkeypatch)
    assert "\r" not in out and "\x1b" not in out
    lines = out.splitlines()
    assert lines[0].startswith("Training 'tiny': 30 steps")
    train = [l for l in lines if l.startswith("Train @ step")]
    assert [int(re.match(r"Train @ step (\d+)", l).group(1)) for l in train] == [0, 10, 20, 29]
    assert re.search(r"\(\d+ samples/s, ETA \?\)$", train[0])        # no ETA from one step
    assert all(re.search(r"\(\d+ samples/s, ETA \d:\d\d:\d\d\)$", l) for l in train[1:-1])
    assert [l for l in lines if l.startswith("Test @ step")] == [l for l in lines if "Test @" in l]
    assert lines[-1].startswith("Checkpoint written to")


def test_a_terminal_gets_a_bar_and_the_same_lines_above_it(job_dir, monkeypatch):
    out = run_with(Terminal(), 1, monkeypatch)
    assert "\r\x1b[2K[" in out
    bars = re.findall(r"\[[=> ]+\] +(\d+)/30 +(\d+)% [\d.]+ samples/s loss [\d.]+ acc [\d.]+ ETA \d:\d\d:\d\d", out)
    assert bars and bars[-1] == ("30", "100")
    # what stays on the screen: every line of the file output, in order, and the final bar
    screen = [l.split("\r\x1b[2K")[-1] for l in out.split("\n") if l.split("\r\x1b[2K")[-1]]
    text = [l for l in screen if not l.startswith("[")]
    plain = run_with(io.StringIO(), 2, monkeypatch).splitlines()
    strip = re.compile(r" \(\d+ samples/s, ETA [\d:?]+\)$")
    assert [strip.sub("", l) for l in text] == [strip.sub("", l) for l in plain]


def test_verbose_2_prints_lines_on_a_terminal_and_0_nothing(job_dir, monkeypatch):
    out = run_with(Terminal(), 2, monkeypatch)
    assert "\r" not in out and "Train @ step 10" in out
    assert run_with(Terminal(), 0, monkeypatch) == ""
    assert run_with(io.StringIO(), False, monkeypatch) == ""


def test_progress_unit():
    s = Terminal()
    p = Progress(1, stream=s, min_interval=0)
    p.begin(10, 20, 4)
    p.step(10, {"loss": 2.0, "acc": 0.5}, 0.1)
    p.step(11, {"loss": 1.0, "acc": 1.0}, 0.1)
    assert "12/20  60% 40 samples/s loss 1.5000 acc 0.7500 ETA ?" in s.getvalue()
    for k in range(12, 15):
        p.step(k, {"loss": 1.0, "acc": 1.0}, 0.1)
    assert re.search(r"15/20  75% 40 samples/s loss 1.2000 acc 0.9000 ETA 0:00:\d\d", s.getvalue())
    p.print("hello")
    assert s.getvalue().endswith("\r\x1b[2Khello\n" + s.getvalue().split("hello\n")[-1])
    p.displayed()
    p.end()
    assert s.getvalue().endswith("\n")
    assert eta(3725) == "1:02:05" and eta(-1) == "0:00:00"
    assert [resolve_verbose(v) for v in (True, False, None, 0, 1, 2)] == [1, 0, 0, 0, 1, 2]
    with pytest.raises(ConfigError, match="Invalid value for `verbose`.*Received: 3"):
        resolve_verbose(3)


def test_the_bar_shows_any_metric_averaged_as_the_display_line():
    import math
    from singa.results import Weighted
    p = Progress(verbose=1, stream=Terminal(), min_interval=0)
    p.begin(0, 10, 11)
    p.step(0, {"loss": Weighted(1.0, 1), "ppl": Weighted(math.e, 1, geometric=True)}, 0.1)
    p.step(1, {"loss": Weighted(3.0, 9), "ppl": Weighted(math.e ** 3, 9, geometric=True)}, 0.1)
    shown = p.stream.getvalue().split("\r\x1b[2K")[-1]
    assert " loss 2.8000 ppl %.4f " % math.exp(2.8) in shown         # by words, as SINGA's display
    p.displayed()
    p.step(2, {"loss": 0.5, "se": 2.0}, 0.1)
    assert " loss 0.5000 se 2.0000 " in p.stream.getvalue().split("\r\x1b[2K")[-1]
