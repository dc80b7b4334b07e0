"""Every ``SINGA_*`` environment switch, in one table, with one way to read each kind.

The environment is the one source of truth: a switch is read when the code it steers runs, so a child
process (an mpiexec rank, a restart) sees what its parent set, and ``using(...)`` sets switches for a
block (tests, a notebook). A value a switch cannot take is a ConfigError naming the switch, what it
takes and how to fix it; it is never silently ignored. ``tests/test_switches.py`` fails when the source
reads a ``SINGA_*`` name that is not in this table, or when README's table differs from ``markdown()``.
"""
import contextlib
import os
from collections import namedtuple

from singa.errors import invalid

Switch = namedtuple("Switch", "name kind default area reader meaning")

# kind: flag (unset or 0: off; 1: on), int (>= 1), 01 (0 or 1; unset: ask), seconds, path, internal
# (set by singa-run for its children; a user does not set it), script (read by run.sh or the tests).
TABLE = (
    # -- speed
    Switch("SINGA_REPLICAS", "int", "auto", "speed", "singa/worker.py",
           "replicas of the net in one process, one thread each (1: off); auto: one per BLAS thread for "
           "convolution nets on NumPy, else 1"),
    Switch("SINGA_PARTITION_SEQUENTIAL", "flag", "off", "speed", "singa/worker.py",
           "a net split among a group's workers (partition_dim 1) runs its partitions one after the other on "
           "one thread (BLAS threaded), not one thread each"),
    Switch("SINGA_UPDATER_THREADS", "int", "1", "speed", "singa/updaters/base.py",
           "threads the NumPy update of one big param may use"),
    Switch("SINGA_CONV_SPLIT", "flag", "off", "speed", "singa/layers/conv.py",
           "convolution layers split im2col/col2im and the weight-gradient product over the BLAS threads"),
    Switch("SINGA_SPLIT_GEMM", "flag", "off", "speed", "singa/backends/blas.py",
           "layers split their matrix products over threads themselves"),
    Switch("SINGA_NO_BLAS", "flag", "off", "speed", "singa/backends/blas.py",
           "no direct OpenBLAS calls (fused GEMM updates, threaded products): plain numpy only"),
    Switch("SINGA_OPENBLAS", "path", "numpy's bundled OpenBLAS", "speed", "singa/backends/blas.py",
           "the OpenBLAS shared library to call directly"),
    # -- devices
    Switch("SINGA_GPU_STANDIN", "int0", "off", "devices", "singa/backends/__init__.py, singa/testing/standin.py",
           "N >= 1: the strict CPU stand-in for CuPy plays N devices (tests and CPU-only checks of the device "
           "paths); 0 or unset: off"),
    Switch("SINGA_NVRTC", "path", "the nvidia-cuda-nvrtc-cu12 wheel, else the library path", "devices",
           "singa/testing/cuda_compile.py", "NVRTC's libnvrtc.so, to compile the device kernels to PTX without a GPU "
           "(tests; nvcc on PATH is used first)"),
    Switch("SINGA_KERNEL_CACHE", "path", "~/.cache/singa/standin-kernels", "devices",
           "singa/testing/standin_kernels.py", "where the stand-in keeps its compiled elementwise kernels"),
    Switch("SINGA_CUDA_AWARE_MPI", "01", "ask the MPI library", "devices", "singa/cluster/mpi.py",
           "whether MPI takes device buffers (1: Allreduce on the device; 0: staged through the host)"),
    # -- cluster
    Switch("SINGA_STALL_TIMEOUT", "seconds", "20 (and >= 5 x the longest step)", "cluster",
           "singa/cluster/watchdog.py", "a peer not heard from for this long ends the job; off: no watchdog"),
    Switch("SINGA_RUN_LAUNCHED", "internal", "unset", "cluster", "singa/__main__.py, singa/interrupt.py",
           "set by singa-run for the mpiexec it starts: the ranks do not launch again, and leave restarts to it"),
    Switch("SINGA_RUN_STATUS", "internal", "unset", "cluster", "singa/cluster/runstatus.py",
           "set by singa-run: the JSON file where the ranks note how far they got"),
    Switch("SINGA_RESTART_COUNT", "internal", "unset", "cluster", "singa/cluster/launch.py",
           "set by singa-run: 0 on the first try, k on the k-th restart"),
    Switch("SINGA_RESUME_FROM", "internal", "unset", "cluster", "singa/driver.py",
           "set by singa-run on a restart: the checkpoint the job resumes from"),
    # -- data
    Switch("SINGA_MNIST_DIR", "path", "unset", "data", "singa/datasets/mnist.py",
           "a folder holding MNIST's four idx files"),
    Switch("SINGA_FASHION_MNIST_DIR", "path", "unset", "data", "singa/datasets/fashion_mnist.py",
           "a folder holding Fashion-MNIST's four idx files"),
    Switch("SINGA_CIFAR10_DIR", "path", "unset", "data", "singa/datasets/cifar10.py",
           "a folder holding cifar-10-binary.tar.gz or cifar-10-batches-bin/"),
    Switch("SINGA_FORTUNES_DIR", "path", "/usr/share/games/fortunes", "data", "singa/datasets/fortunes.py",
           "a folder holding fortune files (Debian's package fortunes), the text for char-rnn and rnnlm"),
    Switch("SINGA_CACHE", "path", "$XDG_CACHE_HOME/singa or ~/.cache/singa", "data", "singa/datasets/_idx.py, singa/datasets/cifar10.py",
           "where converted data sets are kept"),
    Switch("SINGA_STORE_MB", "int", "a quarter of the memory, at most 4096", "data", "singa/io/stream.py",
           "a record file larger than this many MiB is streamed from disk (decoded ahead on a thread), not "
           "loaded into memory"),
    # -- scripts
    Switch("SINGA_REINSTALL", "script", "0", "scripts", "run.sh", "1: reinstall singa into .venv"),
    Switch("SINGA_FUZZ_SECONDS", "script", "3 (slow runs: 120)", "scripts", "tests/fuzz/test_fuzz.py",
           "seconds each fuzz harness runs under atheris"),
    Switch("SINGA_FUZZ_INSTRUMENT", "script", "singa's parsers", "scripts", "tests/fuzz/_runner.py",
           "all: atheris instruments every module, not only singa's parsers"),
)
BY_NAME = {s.name: s for s in TABLE}
_KIND_EXPECTED = {"flag": "0 or 1", "01": "0 or 1", "int": "an integer >= 1", "int0": "an integer >= 0",
                  "seconds": "a number of seconds > 0, or `off`"}


def _switch(name):
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError("%s is not a switch of singa.switches.TABLE (add it there, with its meaning)" % name) from None


def raw(name):
    """The switch's text from the environment, stripped; '' when unset."""
    _switch(name)
    return os.environ.get(name, "").strip()


def _refuse(name, value, hint=None):
    s = _switch(name)
    return invalid(name, _KIND_EXPECTED.get(s.kind, "a value"), value,
                   hint or "unset it for the default (%s)" % s.default)


def flag(name):
    """A ``flag`` switch: False unset or 0, True for 1 (also: yes/true/on), else a ConfigError."""
    v = raw(name).lower()
    if v in ("", "0", "no", "false", "off"):
        return False
    if v in ("1", "yes", "true", "on"):
        return True
    raise _refuse(name, v)


def integer(name, minimum=1, hint=None):
    """An integer switch >= ``minimum``, or None when unset."""
    v = raw(name)
    if not v:
        return None
    try:
        n = int(v)
    except ValueError:
        raise _refuse(name, v, hint) from None
    if n < minimum:
        raise _refuse(name, v, hint)
    return n


def path(name):
    """A path switch (``~`` expanded), or None when unset."""
    v = raw(name)
    return os.path.expanduser(v) if v else None


@contextlib.contextmanager
def using(**values):
    """Set switches for a block: ``with switches.using(SINGA_REPLICAS=1): ...``; None unsets one. The
    environment is restored afterwards."""
    for name in values:
        _switch(name)
    before = {name: os.environ.get(name) for name in values}
    try:
        for name, v in values.items():
            if v is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = str(v)
        yield
    finally:
        for name, v in before.items():
            if v is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = v


def markdown():
    """The table as README shows it."""
    rows = ["| switch | takes | default | read by | what it does |", "|---|---|---|---|---|"]
    takes = dict(_KIND_EXPECTED, path="a path", internal="(set by singa-run)", script="(run.sh / tests)")
    for area in ("speed", "devices", "cluster", "data", "scripts"):
        for s in TABLE:
            if s.area == area:
                rows.append("| `%s` | %s | %s | `%s` | %s |" % (s.name, takes[s.kind], s.default,
                                                                 s.reader.replace(", ", "`, `"), s.meaning))
    return "\n".join(rows)
