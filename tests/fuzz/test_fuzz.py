"""Every fuzz harness in tests/fuzz (fuzz_*.py, found by glob) against the oracle: the reader
parses or raises singa.errors.SingaError, within a time and memory bound.

(a) a deterministic replay of the seeds and a few thousand mutants, in-process, no atheris;
(b) the harness under atheris as a subprocess for SINGA_FUZZ_SECONDS (default 3) seconds;
(c) ``pytest -m slow``: the same for SINGA_FUZZ_SECONDS (default 120) seconds per harness.
A finding prints the input (hex), where it was saved (a temporary dir) and the traceback.
"""
import glob
import importlib.util
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _runner  # noqa: E402

HARNESSES = sorted(glob.glob(os.path.join(HERE, "fuzz_*.py")))
REPLAY_INPUTS = 3000
REPLAY_SECONDS = 1.0        # the mutant sequence is fixed; a slow reader only runs a shorter prefix


def _name(path):
    return os.path.basename(path)[len("fuzz_"):-len(".py")]


def load(path):
    spec = importlib.util.spec_from_file_location("fuzz_" + _name(path), path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fuzz_seconds(default):
    return int(os.environ.get("SINGA_FUZZ_SECONDS", default))


@pytest.mark.parametrize("path", HARNESSES, ids=_name)
def test_harness_follows_the_convention(path):
    mod = load(path)
    seeds = mod.seeds()
    assert callable(mod.one_input) and seeds and all(isinstance(s, bytes) for s in seeds)
    for s in seeds:
        mod.one_input(s)        # seeds are valid inputs: they must parse, not only fail cleanly


@pytest.mark.parametrize("path", HARNESSES, ids=_name)
def test_replay_finds_nothing(path, tmp_path):
    mod = load(path)
    findings = _runner.replay(mod.one_input, mod.seeds, n=REPLAY_INPUTS, seed=0,
                              max_seconds=REPLAY_SECONDS, crash_dir=str(tmp_path))
    assert _runner.replay.executed > len(mod.seeds())
    assert not findings, "\n\n".join(str(f) for f in findings)


def run_atheris(path, seconds, tmp_path):
    """Run one harness under atheris; returns (returncode, finding files, output tail)."""
    crashes = tmp_path / "crashes"
    crashes.mkdir()
    cmd = [sys.executable, path, "-max_total_time=%d" % seconds, "-artifact_prefix=%s/" % crashes,
           "-timeout=%d" % _runner.TIME_LIMIT_S, "-rss_limit_mb=%d" % _runner.RSS_LIMIT_MB, "-print_final_stats=1"]
    try:
        p = subprocess.run(cmd, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=seconds + 120)
    except subprocess.TimeoutExpired as e:
        return "hang", _runner.artifacts(crashes)[0], (e.output or b"").decode(errors="replace")[-6000:]
    return p.returncode, _runner.artifacts(crashes)[0], p.stdout.decode(errors="replace")[-6000:]


@pytest.mark.parametrize("path", HARNESSES, ids=_name)
def test_atheris_finds_nothing(path, tmp_path):
    pytest.importorskip("atheris")
    rc, crashes, out = run_atheris(path, _fuzz_seconds(3), tmp_path)
    assert rc == 0 and not crashes, "atheris: rc %s, crash files %s in %s\n%s" % (rc, crashes, tmp_path, out)


@pytest.mark.slow
@pytest.mark.parametrize("path", HARNESSES, ids=_name)
def test_atheris_long_run_finds_nothing(path, tmp_path):
    pytest.importorskip("atheris")
    rc, crashes, out = run_atheris(path, _fuzz_seconds(120), tmp_path)
    assert rc == 0 and not crashes, "atheris: rc %s, crash files %s in %s\n%s" % (rc, crashes, tmp_path, out)


# -- the runner itself -------------------------------------------------------------------------
def _crashes_on_x(data):
    if b"X" in data:
        raise ValueError("a foreign exception")
    if data[:1] == b"S":
        from singa.errors import DataError
        raise DataError("the oracle's own error")


def test_replay_is_deterministic_and_reports_input_traceback_and_file(tmp_path):
    seen = [], []
    for out in seen:
        _runner.replay(out.append, lambda: [b"SINGA", b"abc"], n=200, seed=7)
    assert seen[0] == seen[1] and len(seen[0]) == 202 and len(set(seen[0])) > 150
    findings = _runner.replay(_crashes_on_x, lambda: [b"S..", b"abc"], n=500, seed=1, crash_dir=str(tmp_path))
    assert findings and all(f.kind == "crash" for f in findings)
    text = str(findings[0])
    assert "ValueError: a foreign exception" in text and "input hex: " + findings[0].data.hex() in text
    assert open(findings[0].path, "rb").read() == findings[0].data and findings[0].path.startswith(str(tmp_path))


def test_atheris_run_of_a_crashing_harness_fails_with_the_input_and_a_crash_file(tmp_path):
    pytest.importorskip("atheris")
    harness = tmp_path / "fuzz_bad.py"
    harness.write_text("import sys\nsys.path.insert(0, %r)\n"
                       "def one_input(data):\n    if data[:1] == b'X':\n        raise ValueError('boom')\n"
                       "def seeds():\n    return [b'ok', b'Xbad']\n"
                       "if __name__ == '__main__':\n    from _runner import main\n    main(one_input, seeds)\n" % HERE)
    rc, crashes, out = run_atheris(str(harness), 10, tmp_path)
    assert rc != 0 and crashes, out
    assert "ValueError: boom" in out and "=== finding: input (4 bytes, hex) ===\n" + b"Xbad".hex() in out
    # the crash file given back to the harness reproduces the finding
    p = subprocess.run([sys.executable, str(harness), crashes[0]],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert p.returncode != 0 and b"ValueError: boom" in p.stdout
