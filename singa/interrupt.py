"""Ctrl-C (SIGINT) and SIGTERM during training: stop cleanly after the step, checkpoint, say how to resume.

While ``Driver.train`` runs (in the main thread) the first SIGINT or SIGTERM only sets a flag:
the step in progress finishes, the loop stops (every rank of a synchronous MPI job at the same
step), rank 0 writes the checkpoint (atomically, as every checkpoint) and ``train`` raises
``TrainingInterrupted`` with the checkpoint's path. A second signal interrupts at once (a plain
KeyboardInterrupt, no checkpoint of the step in progress). The previous handlers are restored
when training ends.

What the user sees: a script (``python mnist_mlp.py``, ``singa-run``) prints one message (no
traceback) and exits with status 130 (SIGINT) or 143 (SIGTERM): the exception raised there is
``TrainingInterruptedExit``, both a TrainingInterrupted and a SystemExit with that code. In an
interactive session (the REPL, ``python -i``, IPython, Jupyter) it is a plain TrainingInterrupted,
a KeyboardInterrupt that ends the cell but not the kernel or the interpreter, and shows just its
message in IPython/Jupyter. ``except KeyboardInterrupt`` catches both.
"""
import os
import shlex
import signal
import sys
import threading

from singa import switches

# The signals that stop training cleanly, and their conventional exit status (128 + number).
SIGNALS = {"SIGINT": (signal.SIGINT, 130, "Ctrl-C"), "SIGTERM": (signal.SIGTERM, 143, "SIGTERM")}
# The stop flag's values in the per-step Allreduce (MAX) of a synchronous MPI job: 1 is a callback's stop.
FLAG_CODES = {"SIGINT": 2, "SIGTERM": 3}


def signal_name(signum):
    for name, (num, _, _) in SIGNALS.items():
        if num == signum:
            return name
    return signal.Signals(signum).name


class StopSignals:
    """A context manager: while active (main thread only), the first SIGINT/SIGTERM sets
    ``received`` ('SIGINT' or 'SIGTERM') and returns; a second raises KeyboardInterrupt at once.
    A signal that was ignored (SIG_IGN, e.g. under nohup) or handled outside Python is left alone."""

    def __init__(self):
        self.received = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        for num, _, _ in SIGNALS.values():
            try:
                prev = signal.getsignal(num)
            except (ValueError, OSError):
                continue
            if prev is signal.SIG_IGN or prev is None:
                continue
            self._previous[num] = prev
            signal.signal(num, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.received is None:
            self.received = signal_name(signum)
            return
        self.restore()
        raise KeyboardInterrupt("second %s: training interrupted at once, without a checkpoint of the step in "
                                "progress" % SIGNALS[signal_name(signum)][2])

    def restore(self):
        for num, prev in self._previous.items():
            signal.signal(num, prev)
        self._previous = {}

    def __exit__(self, *exc):
        self.restore()
        return False


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped cleanly on Ctrl-C (SIGINT) or SIGTERM. ``signal``: 'SIGINT' or 'SIGTERM';
    ``step``: the step the checkpoint resumes at (the steps before it are done); ``checkpoint``:
    its path (None if none was written, e.g. a diverged run); ``exit_code``: 130 or 143;
    ``resume``: how to resume; ``results``: the Results of the steps done."""

    def __init__(self, message, signal="SIGINT", step=None, checkpoint=None, resume=None, results=None):
        super().__init__(message)
        self.message = message
        self.signal, self.step, self.checkpoint, self.resume, self.results = signal, step, checkpoint, resume, results
        self.exit_code = SIGNALS.get(signal, (0, 130, ""))[1]

    def __str__(self):
        return self.message

    def _render_traceback_(self):      # IPython / Jupyter show these lines instead of a traceback
        return ["%s: %s" % (type(self).__name__, self.message)]


class TrainingInterruptedExit(TrainingInterrupted, SystemExit):
    """The TrainingInterrupted of a script: also a SystemExit(exit_code), so left uncaught it ends
    the process with status 130/143 and no traceback (the Driver printed the message)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.code = self.exit_code


def interactive():
    """Whether Python runs interactively: the REPL, ``python -i``, IPython or a Jupyter kernel."""
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return True
    get = getattr(sys.modules.get("IPython"), "get_ipython", None)
    try:
        return get is not None and get() is not None
    except Exception:       # noqa: BLE001  (a half-imported IPython)
        return False


def resume_command(argv=None, nprocs=1):
    """The command line that resumes this process's run (``-resume`` added), or None when it is
    not a script's: ``python script.py ARGS -resume``, ``singa-run ARGS -resume``; started with
    ``mpiexec -n N`` first when ``nprocs`` > 1 (an MPI job)."""
    argv = list(sys.argv if argv is None else argv)
    if not argv or not argv[0] or argv[0] == "-c":
        return None
    prog, args = argv[0], [a for a in argv[1:] if a != "-resume"]
    base = os.path.basename(prog)
    if base == "singa-run":
        cmd = ["singa-run"] + args
    elif base == "__main__.py" and os.path.basename(os.path.dirname(os.path.abspath(prog))) == "singa":
        if switches.raw("SINGA_RUN_LAUNCHED"):     # singa-run started mpiexec for the cluster: it will again
            return shlex.join(["singa-run"] + args + ["-resume"])
        cmd = ["python", "-m", "singa"] + args
    elif prog.endswith(".py") or os.path.isfile(prog):
        cmd = ["python", prog] + args
    else:
        return None
    return shlex.join((["mpiexec", "-n", str(nprocs)] if nprocs > 1 else []) + cmd + ["-resume"])


__all__ = ["StopSignals", "TrainingInterrupted", "TrainingInterruptedExit", "interactive", "resume_command",
           "signal_name", "SIGNALS", "FLAG_CODES"]
