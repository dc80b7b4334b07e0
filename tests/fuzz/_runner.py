"""Shared runner of the fuzz harnesses in tests/fuzz (see README.md there).

A harness ``fuzz_<reader>.py`` defines ``one_input(data: bytes)`` and ``seeds() -> list[bytes]``
and ends with ``main(one_input, seeds)``. The oracle is the same everywhere: the reader parses
the input or raises ``singa.errors.SingaError``, within a time and a memory bound; any other
exception, a hang or a memory blow-up is a finding.

- ``main``: coverage-guided fuzzing with atheris (libFuzzer flags pass through, e.g.
  ``-max_total_time=60``, ``-runs=10000``); the seeds are written into a fresh corpus dir and
  crash inputs go to a temporary dir (never the repository) unless ``-artifact_prefix`` is given.
- ``replay``: a pure-Python deterministic mutator over the seeds, for a fast pytest test
  without atheris; returns the findings, each with its input (hex) and traceback.
"""
import os
import random
import resource
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))      # the repository root: `import singa`

from singa.errors import SingaError  # noqa: E402

# Bounds of the oracle: one input may take this long and grow the process by this much.
TIME_LIMIT_S = 10
RSS_LIMIT_MB = 2048
HEX_SHOWN = 4096          # bytes of a finding's input printed in hex (the crash file holds all of it)


# libFuzzer's artifacts that are findings. A "slow-unit-" file (an input over -report_slow_units,
# 10 s, but under -timeout) is not: on a loaded machine a stalled process writes them for inputs
# that take a millisecond when run again; run_all lists them apart.
FINDING_PREFIXES = ("crash-", "timeout-", "oom-", "leak-")


def artifacts(directory):
    """(finding files, slow-unit files) that libFuzzer left in ``directory``, sorted."""
    names = sorted(os.listdir(directory))
    return ([os.path.join(directory, n) for n in names if n.startswith(FINDING_PREFIXES)],
            [os.path.join(directory, n) for n in names if n.startswith("slow-unit-")])


def hexdump(data, limit=HEX_SHOWN):
    text = data[:limit].hex()
    return text + ("... (%d bytes in all)" % len(data) if len(data) > limit else "")


# -- atheris ---------------------------------------------------------------------------------
def _flag_given(argv, name):
    return any(a.startswith("-%s=" % name) for a in argv)


def main(one_input, seeds, argv=None):
    """Fuzz ``one_input`` under atheris; exits like libFuzzer (0: no finding)."""
    import atheris
    argv = list(sys.argv if argv is None else argv)
    positional = [a for a in argv[1:] if not a.startswith("-")]
    corpus_dirs = [a for a in positional if os.path.isdir(a)]
    if not positional:
        corpus = tempfile.mkdtemp(prefix="singa-fuzz-corpus-")
        argv.append(corpus)
        corpus_dirs = [corpus]
    # Given only files (crash inputs), libFuzzer runs each once: the way to reproduce a finding.
    if corpus_dirs:
        for i, s in enumerate(seeds()):
            with open(os.path.join(corpus_dirs[0], "seed-%03d" % i), "wb") as f:
                f.write(s)
    if not _flag_given(argv, "artifact_prefix"):
        argv.append("-artifact_prefix=%s/" % tempfile.mkdtemp(prefix="singa-fuzz-crash-"))
    if not _flag_given(argv, "timeout"):
        argv.append("-timeout=%d" % TIME_LIMIT_S)
    if not _flag_given(argv, "rss_limit_mb"):
        argv.append("-rss_limit_mb=%d" % RSS_LIMIT_MB)

    def wrapped(data):
        try:
            one_input(data)
        except SingaError:
            pass
        except BaseException:
            # libFuzzer writes the crash file; print the input too, so a log alone reproduces it.
            sys.stderr.write("\n=== finding: input (%d bytes, hex) ===\n%s\n" % (len(data), hexdump(data)))
            raise

    instrument(atheris)
    atheris.Setup(argv, wrapped)
    atheris.Fuzz()


# Coverage is taken in singa's own code and in the pure-Python parsers it calls. All of Python
# (atheris.instrument_all: ~4700 functions once numpy is in) costs ~45 s of startup per harness,
# which the few-second CI runs cannot afford; SINGA_FUZZ_INSTRUMENT=all asks for it anyway.
INSTRUMENTED_MODULES = ("singa", "google.protobuf.text_format", "json", "csv", "gzip", "_compression",
                        "tarfile", "zipfile", "pickle", "shlex")


def _wanted(module):
    return any(module == m or module.startswith(m + ".") for m in INSTRUMENTED_MODULES)


def instrument(atheris):
    if os.environ.get("SINGA_FUZZ_INSTRUMENT") == "all":
        atheris.instrument_all()
        return
    import gc
    import types
    funcs = [o for o in gc.get_objects()
             if isinstance(o, types.FunctionType) and isinstance(getattr(o, "__module__", None), str)
             and _wanted(o.__module__) and o.__module__ in sys.modules]
    for f in funcs:
        try:
            atheris.instrument_func(f)
        except Exception as e:       # a function atheris cannot patch still runs, uninstrumented
            sys.stderr.write("WARNING: not instrumented: %s (%s)\n" % (f, e))
    sys.stderr.write("INFO: instrumented %d functions of %s\n" % (len(funcs), ", ".join(INSTRUMENTED_MODULES)))


def run_crash_file(one_input, path):
    """Run one saved input (a crash file) through ``one_input``: the traceback shows the bug."""
    with open(path, "rb") as f:
        one_input(f.read())


# -- deterministic replay ----------------------------------------------------------------------
INTERESTING_INTS = (0, 1, -1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff,
                    0x80000000, 0xffffffff, 2 ** 31 + 1, 2 ** 32, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1)
INTERESTING_TOKENS = (b"\x00", b"\xff", b"\xe9", b"\xef\xbb\xbf", b"\n", b"\r\n", b",", b",,", b" ", b'"', b"'",
                      b"#", b"{", b"}", b"[", b"]", b":", b"-", b"nan", b"inf", b"-inf", b"1e309", b"-5",
                      b"0", b"99999999999999999999", b"null", b"true", b"{}", b"[]", b"\\", b"\\u0000", b"\t")


class Finding:
    def __init__(self, data, kind, detail, path=None):
        self.data, self.kind, self.detail, self.path = data, kind, detail, path

    def __str__(self):
        return "%s on input of %d bytes (saved to %s)\ninput hex: %s\n%s" % (
            self.kind, len(self.data), self.path, hexdump(self.data), self.detail)


def _put_int(rng, b):
    v = rng.choice(INTERESTING_INTS)
    width = rng.choice((1, 2, 4, 8))
    raw = (v % (1 << (8 * width))).to_bytes(width, rng.choice(("little", "big")))
    if rng.random() < 0.3:
        raw = str(v if rng.random() < 0.5 else -v).encode()      # the text form, for text readers
    pos = rng.randrange(len(b) + 1)
    if rng.random() < 0.5:
        b[pos:pos + len(raw)] = raw       # overwrite
    else:
        b[pos:pos] = raw
    return b


def mutate(rng, data, pool):
    """One mutant of ``data``: 1-4 of bit flips, byte sets, inserts, deletes, truncations,
    duplications, splices with another pool member, interesting integers and tokens."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        n = len(b)
        if op == 0 and n:
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            b[rng.randrange(n)] = rng.randrange(256)
        elif op == 2:
            pos = rng.randrange(n + 1)
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and n:
            i = rng.randrange(n)
            del b[i:i + rng.randint(1, max(1, min(64, n - i)))]
        elif op == 4 and n:
            del b[rng.randrange(n):]                                  # truncation
        elif op == 5 and n:
            i = rng.randrange(n)
            chunk = b[i:i + rng.randint(1, 256)]
            pos = rng.randrange(n + 1)
            b[pos:pos] = chunk * rng.randint(1, 4)
        elif op == 6 and pool:
            other = rng.choice(pool)
            cut, ocut = rng.randrange(n + 1), rng.randrange(len(other) + 1)
            b = b[:cut] + bytearray(other[ocut:])                    # splice
        elif op == 7:
            b = _put_int(rng, b)
        else:
            tok = rng.choice(INTERESTING_TOKENS)
            pos = rng.randrange(n + 1)
            b[pos:pos] = tok
    return bytes(b)


def _maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def replay(one_input, seeds, n=2000, seed=0, max_seconds=None, crash_dir=None,
           time_limit_s=TIME_LIMIT_S, rss_limit_mb=RSS_LIMIT_MB):
    """Feed the seeds and ``n`` deterministic mutants (``random.Random(seed)``) to ``one_input``.

    Returns a list of Finding: an exception that is not a SingaError, an input slower than
    ``time_limit_s``, or one that raised the process's peak RSS by more than ``rss_limit_mb``.
    ``max_seconds`` stops early (the sequence stays the same, only shorter); each finding's
    input is saved under ``crash_dir`` (a temporary dir by default). ``replay.executed`` holds
    the number of inputs run by the last call.
    """
    rng = random.Random(seed)
    pool = [bytes(s) for s in seeds()]
    findings = []
    start = time.monotonic()
    executed = 0

    def record(data, kind, detail):
        d = crash_dir or tempfile.mkdtemp(prefix="singa-fuzz-replay-")
        path = os.path.join(d, "%s-%06d" % (kind.split()[0], executed))
        with open(path, "wb") as f:
            f.write(data)
        findings.append(Finding(data, kind, detail, path))

    def inputs():
        yield from pool
        for _ in range(n):
            base = rng.choice(pool) if pool else b""
            yield mutate(rng, base, pool)

    for data in inputs():
        if max_seconds is not None and time.monotonic() - start > max_seconds:
            break
        rss0, t0 = _maxrss_mb(), time.monotonic()
        try:
            one_input(data)
        except SingaError:
            pass
        except Exception:
            record(data, "crash", traceback.format_exc())
        took = time.monotonic() - t0
        executed += 1
        if took > time_limit_s:
            record(data, "timeout (%.1f s)" % took, "one input took %.1f s, over the %d s bound" % (took, time_limit_s))
        grew = _maxrss_mb() - rss0
        if grew > rss_limit_mb:
            record(data, "memory (+%d MiB)" % grew, "peak RSS grew by %d MiB, over the %d MiB bound" % (grew, rss_limit_mb))
        if len(findings) >= 10:
            break          # enough to act on; the rest are likely the same bug
    replay.executed = executed
    return findings


replay.executed = 0
