"""``singa-run`` as the parent of the job it starts: ``mpiexec -n N`` (or one child process),
watched to its end. A rank killed by a signal is named by its rank (MPICH's mpiexec names only
its pid and host), and with ``--max-restarts N`` a failed job is started again from its last
checkpoint, up to N times, as torchrun's elastic restarts do.

The job tells this process its ranks' pids and its checkpoints through a status file
(``singa.cluster.runstatus``). A job that failed for a reason a restart would only repeat (a
configuration, data or usage error: exit status 2) or was stopped by the user (Ctrl-C: 130,
SIGTERM: 143) is not restarted.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from singa.cluster import runstatus
from singa.errors import ConfigError

USER_ERROR_CODE = 2
NO_RESTART = {0: "it finished", USER_ERROR_CODE: "a configuration, data or usage error (a restart would repeat it)",
              130: "stopped by Ctrl-C", 143: "stopped by SIGTERM"}
RESTART_ENV = "SINGA_RESTART_COUNT"      # 0 on the first try, k on the k-th restart (torchrun's RESTART_COUNT)
RESUME_FROM_ENV = "SINGA_RESUME_FROM"    # the checkpoint a restart resumes from (read by Driver.train)
MAX_BACKOFF_S = 30.0

# what MPICH's hydra prints when a process of the job ends badly
_PID_LINE = re.compile(rb"PID (\d+) RUNNING AT (\S+)")
_CODE_LINE = re.compile(rb"EXIT CODE: (-?\d+)")
_SIGNAL_LINE = re.compile(rb"EXIT STRING: .*\(signal (\d+)\)")


def find_mpiexec():
    return shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")


def _signal_name(num):
    try:
        return signal.Signals(num).name
    except ValueError:
        return "signal %d" % num


class _Forwarder(threading.Thread):
    """Copies one of the child's streams to ours (``to``) as it comes, noting what mpiexec says
    of a process that ended badly (its pid, host, exit code, signal; hydra says it on stdout)."""

    def __init__(self, stream, to, bad):
        super().__init__(daemon=True)
        self.stream, self.to, self.bad = stream, to, bad

    def run(self):
        out = getattr(self.to, "buffer", None)
        for line in iter(self.stream.readline, b""):
            for key, pattern in (("pid", _PID_LINE), ("code", _CODE_LINE), ("signal", _SIGNAL_LINE)):
                found = pattern.search(line)
                if found and key not in self.bad:
                    self.bad[key] = found.groups()
            try:
                if out is not None:
                    out.write(line)
                    out.flush()
                else:
                    self.to.write(line.decode("utf-8", "replace"))
            except (OSError, ValueError):
                pass


def _wait_forwarding_signals(child):
    """The exit code of ``child`` (mpiexec), waited for through Ctrl-C and SIGTERM: a Ctrl-C at the
    terminal reaches mpiexec itself (it forwards it to the ranks, which stop cleanly and
    checkpoint); a SIGTERM sent to this process is passed on to mpiexec (which forwards it too)."""
    handlers = {signal.SIGINT: lambda s, f: None, signal.SIGTERM: lambda s, f: child.send_signal(signal.SIGTERM)}
    previous = {}
    for num, handler in handlers.items():
        try:
            previous[num] = signal.signal(num, handler)
        except (ValueError, OSError):       # not the main thread
            pass
    try:
        code = child.wait()
        return 128 - code if code < 0 else code     # killed by signal N: the shell's 128 + N
    finally:
        for num, prev in previous.items():
            signal.signal(num, prev if prev is not None else signal.SIG_DFL)


def _run_once(cmd, env, watch_stdout):
    """Run ``cmd`` to its end (Ctrl-C and SIGTERM passed on); its exit code and what mpiexec said
    of a process that ended badly. ``watch_stdout``: read its stdout too (mpiexec's: the ranks'
    output reaches it through pipes anyway; one process keeps our terminal)."""
    child = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE if watch_stdout else None)
    bad = {}
    forwards = [_Forwarder(child.stderr, sys.stderr, bad)]
    if watch_stdout:
        forwards.append(_Forwarder(child.stdout, sys.stdout, bad))
    for f in forwards:
        f.start()
    code = _wait_forwarding_signals(child)
    for f in forwards:
        f.join(5.0)
    return code, bad, child.pid


def killed_text(bad, status, nprocs, code, child_pid):
    """The line naming the rank mpiexec reported by pid (or the one process killed), or None."""
    if nprocs == 1:
        if code > 128 and code - 128 in {s.value for s in signal.Signals}:
            return "singa-run: the job's process (pid %d) was killed by %s" % (child_pid, _signal_name(code - 128))
        return None
    if "pid" not in bad:
        return None
    pid, host = int(bad["pid"][0]), bad["pid"][1].decode("utf-8", "replace")
    how = ("was killed by %s" % _signal_name(int(bad["signal"][0])) if "signal" in bad
           else "ended with exit status %s" % bad["code"][0].decode() if "code" in bad else "ended")
    ranks = status.get("ranks") or {}
    rank = next((int(r) for r, (p, _) in ranks.items() if p == pid), None) if isinstance(ranks, dict) else None
    if rank is None:
        return ("singa-run: a process of the job (pid %d on host %s) %s; its rank is not known (it ended before "
                "every rank had reported); mpiexec ended the other ranks" % (pid, host, how))
    return "singa-run: rank %d of %d (pid %d on host %s) %s; mpiexec ended the other ranks" % (
        rank, status.get("size", nprocs), pid, host, how)


def run(argv, nprocs, max_restarts=0):
    """Run ``python -m singa ARGV`` (under ``mpiexec -n NPROCS`` when NPROCS > 1) to its end,
    restarting a failed job from its last checkpoint up to ``max_restarts`` times; its exit code."""
    mpiexec = find_mpiexec() if nprocs > 1 else None
    if nprocs > 1 and mpiexec is None:
        raise ConfigError("the job needs %d processes but no mpiexec was found.\nhelp: pip install 'singa[mpi]' "
                          "(mpi4py and MPICH), or start it yourself with `mpiexec -n %d singa-run ...`"
                          % (nprocs, nprocs))
    folder = tempfile.mkdtemp(prefix="singa-run-")
    status_path = os.path.join(folder, "status.json")
    args = list(argv)
    resume_from = None          # the checkpoint a restart resumes from (the workspace may hold newer ones)
    try:
        for attempt in range(max_restarts + 1):
            # SINGA_RUN_LAUNCHED: the ranks' "resume with" hint says `singa-run ... -resume` (it starts mpiexec again)
            env = dict(os.environ, SINGA_RUN_LAUNCHED="1", **{runstatus.ENV: status_path, RESTART_ENV: str(attempt)},
                       **({RESUME_FROM_ENV: resume_from} if resume_from else {}))
            cmd = ([mpiexec, "-n", str(nprocs)] if mpiexec else []) + [sys.executable, "-m", "singa"] + args
            code, bad, pid = _run_once(cmd, env, watch_stdout=mpiexec is not None)
            status = runstatus.read(status_path)
            line = killed_text(bad, status, nprocs, code, pid)
            if line:
                print(line, file=sys.stderr, flush=True)
            if code in NO_RESTART or max_restarts == 0:
                return code
            if attempt == max_restarts:
                print("singa-run: the job failed (exit status %d) and was restarted %d time(s), the most "
                      "--max-restarts allows; giving up" % (code, max_restarts), file=sys.stderr, flush=True)
                return code
            checkpoint = status.get("checkpoint")
            if checkpoint and os.path.isfile(checkpoint):
                where = "its last checkpoint, %s (step %s)" % (checkpoint, status.get("step"))
                resume_from = checkpoint
                if "-resume" not in args:
                    args.append("-resume")     # the script's argv when -exec: fit reads it there
            else:
                where = ("its start (no checkpoint written yet)" if "-resume" not in args else
                         "the checkpoint it was started from")
            delay = min(MAX_BACKOFF_S, 2.0 ** attempt)
            print("singa-run: the job failed (exit status %d); restart %d of %d in %.0f s, from %s" % (
                code, attempt + 1, max_restarts, delay, where), file=sys.stderr, flush=True)
            time.sleep(delay)
        return code
    finally:
        shutil.rmtree(folder, ignore_errors=True)


__all__ = ["run", "find_mpiexec", "killed_text", "NO_RESTART", "RESTART_ENV"]
