"""No silent hang in a multi-process job: every rank's watchdog thread heartbeats its peers and
ends the job, with a message, when a rank it waits for can no longer answer.

Each rank sends every peer a tiny message (a BEAT) every ``HEARTBEAT_S`` seconds from a thread
of its own (MPI_THREAD_MULTIPLE; mpi4py releases the GIL inside MPI calls, so it runs while the
main thread is blocked in a collective) and drains what the peers sent. Two things end the job
(MPI_Abort, after the message):

- a peer not heard from for the stall timeout (a network partition, a hung or frozen host): the
  message names the silent ranks, what this rank waits in, the last checkpoint and the command
  that resumes from it. The timeout is ``SINGA_STALL_TIMEOUT`` seconds (default 20), and at
  least 5 times the longest training step measured so far, so a slow step is never mistaken for
  a dead peer;
- a peer that has left (its script returned or called ``sys.exit``: it sent EXIT from its
  ``atexit`` handler) while this rank waits for it in a collective: without this the others
  would wait for it forever, and the leaving rank in MPI_Finalize.

A rank that ends normally sends EXIT to every peer and keeps heartbeating until it has EXIT from
all of them, so no rank enters MPI_Finalize while another may still wait for it, and every
message sent was received (MPI's messages from one sender do not overtake each other) before
any rank finalizes.

``SINGA_STALL_TIMEOUT=off`` turns the watchdog off. The heartbeats use the world communicator
with a tag of their own (``TAG``), which a script's own MPI traffic must not receive with
ANY_TAG.
"""
import os
import socket
import sys
import threading
import time

import numpy

from singa import switches
from singa.cluster import runstatus
from singa.errors import invalid

HEARTBEAT_S = 0.5          # between two BEATs to a peer
POLL_S = 0.1               # between two looks at the inbox
EXIT_GRACE_S = 3.0         # a collective the leaving peer finished may take this long to return here
DEFAULT_STALL_S = 20.0     # a peer silent this long stops the job (SINGA_STALL_TIMEOUT)
STEP_FACTOR = 5.0          # ... or this many times the longest step, if longer
ABORT_FALLBACK_S = 5.0     # MPI_Abort that cannot reach the process manager: exit anyway
TAG = 0x5161               # the watchdog's messages on the world communicator

BEAT, EXIT = 1, 2
_HOST_WORDS = 8            # the sender's host name, in up to 64 bytes
_WORDS = 6 + _HOST_WORDS   # kind, step, checkpoint step, exit code, pid, host length, host


def stall_timeout_from_env():
    """SINGA_STALL_TIMEOUT as seconds (None: the watchdog is off)."""
    env = switches.raw("SINGA_STALL_TIMEOUT")
    if not env:
        return DEFAULT_STALL_S
    if env.lower() in ("off", "0"):
        return None
    try:
        value = float(env)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise invalid("SINGA_STALL_TIMEOUT", "a number of seconds > 0, or `off`", env,
                      "unset it for the default (%g s, and at least %g times the longest step)"
                      % (DEFAULT_STALL_S, STEP_FACTOR))
    return value


def _pack_host(name):
    raw = name.encode("utf-8", "replace")[:8 * _HOST_WORDS]
    words = numpy.zeros(_HOST_WORDS, numpy.int64)
    words.view(numpy.uint8)[:len(raw)] = numpy.frombuffer(raw, numpy.uint8)
    return len(raw), words


def _unpack_host(n, words):
    return words.view(numpy.uint8)[:max(0, min(int(n), 8 * _HOST_WORDS))].tobytes().decode("utf-8", "replace")


class Peer:
    """What this rank knows of another: when it was last heard, its step, whether it left."""

    def __init__(self, rank, now):
        self.rank = rank
        self.heard = None          # time of the last message (None: never heard yet)
        self.since = now           # counts as heard at the start, so a late starter has a timeout too
        self.step = -1
        self.pid = None
        self.host = "?"
        self.exited = None         # the time its EXIT came
        self.exit_code = None
        self.exit_step = -1
        self.sends = []            # [(request, buffer)] sent to it and not yet complete

    def describe(self):
        if self.pid is None:
            return "rank %d" % self.rank
        return "rank %d (pid %d on host %s)" % (self.rank, self.pid, self.host)


class Watchdog:
    """The heartbeat thread of one rank of ``comm`` (an mpi4py intracommunicator)."""

    def __init__(self, comm, MPI, stall_timeout=DEFAULT_STALL_S, abort=None):
        self.comm, self.MPI = comm, MPI
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.base_timeout = float(stall_timeout)
        self.host = socket.gethostname()
        now = time.monotonic()
        self.peers = {r: Peer(r, now) for r in range(self.size) if r != self.rank}
        self.step = -1
        self.longest_step = 0.0
        self._step_started = None
        self.checkpoint_step = -1         # rank 0: the step of its last checkpoint
        self.checkpoint_of = None         # step -> that checkpoint's path (every rank knows the workspace)
        self.resume_command = None
        self.exit_code = None             # sys.exit's code when abort_on_error saw it leave training
        self._beat_now = False
        self._ranks_reported = False
        self._wait = None                 # (what, since, peers) while the main thread waits in a collective
        self._leaving = False             # this rank sent EXIT
        self._all_left = threading.Event()
        self._stop = threading.Event()
        self._aborting = False
        self._abort = abort or self._mpi_abort
        self._inbox = numpy.zeros(_WORDS, numpy.int64)
        self._thread = threading.Thread(target=self._run, name="singa-watchdog", daemon=True)

    # -- what the main thread tells it ------------------------------------------
    def start(self):
        self._thread.start()
        return self

    def note_step(self, step, now=None):
        """The training loop is at ``step`` (the time between two notes is a step's length)."""
        now = time.monotonic() if now is None else now
        if self._step_started is not None and step == self.step + 1:
            self.longest_step = max(self.longest_step, now - self._step_started)
        self.step, self._step_started = step, now

    def note_run(self, checkpoint_of, resume_command):
        """``checkpoint_of(step)``: the path of rank 0's checkpoint of that step; the command that resumes."""
        self.checkpoint_of, self.resume_command = checkpoint_of, resume_command

    def note_checkpoint(self, step):
        self.checkpoint_step = step
        self._beat_now = True         # the others learn it at once, in case this rank dies next

    def waiting(self, what, peers=None):
        """A context manager around a blocking collective: ``what`` it is (for the message) and
        the world ranks it waits for (None: all)."""
        return _Waiting(self, what, peers)

    @property
    def timeout(self):
        return max(self.base_timeout, STEP_FACTOR * self.longest_step)

    def leave(self, timeout=None):
        """This rank is ending normally: EXIT to every peer, then wait until every peer has sent
        its EXIT (heartbeating meanwhile; a peer silent past the stall timeout aborts the job).
        Called once, from ``atexit``, before MPI_Finalize."""
        if self._leaving or not self._thread.is_alive():
            return
        self._leaving = True       # the thread sends EXIT on its next round
        self._all_left.wait(timeout)
        self.stop()

    def stop(self):
        self._stop.set()
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            self._thread.join(2.0)

    # -- the thread --------------------------------------------------------------
    def _run(self):
        try:
            last_beat = 0.0
            sent_exit = False
            while not self._stop.is_set():
                now = time.monotonic()
                self._drain(now)
                if self._leaving and not sent_exit:
                    self._send_all(EXIT, now, force=True)
                    sent_exit = True
                elif not sent_exit and (now - last_beat >= HEARTBEAT_S or self._beat_now):
                    force, self._beat_now = self._beat_now, False
                    self._send_all(BEAT, now, force=force)
                    last_beat = now
                if sent_exit and all(p.exited is not None for p in self.peers.values()):
                    self._finish_sends(now)
                    self._all_left.set()
                    return
                self._check(now)
                self._stop.wait(POLL_S)
        except BaseException as e:      # noqa: BLE001  a broken watchdog must not hang the rank at exit
            self._all_left.set()
            try:
                os.write(2, ("singa: rank %d: the MPI watchdog stopped: %s: %s\n"
                             % (self.rank, type(e).__name__, e)).encode("utf-8", "replace"))
            except OSError:
                pass

    def _message(self, kind):
        buf = numpy.zeros(_WORDS, numpy.int64)
        n, words = _pack_host(self.host)
        code = self.exit_code if isinstance(self.exit_code, int) and self.exit_code >= 0 else -1   # -1: not known
        buf[:6] = (kind, self.step, self.checkpoint_step, code, os.getpid(), n)
        buf[6:] = words
        return buf

    def _send_all(self, kind, now, force=False):
        for p in self.peers.values():
            p.sends = [s for s in p.sends if not s[0].Test()]
            if p.sends and not force:
                continue      # at most one BEAT in flight to a peer: a cut link piles none up
            buf = self._message(kind)
            p.sends.append((self.comm.Isend(buf, dest=p.rank, tag=TAG), buf))

    def _finish_sends(self, now):
        """Every peer has sent EXIT, so it drains until it has ours: what we sent completes."""
        deadline = now + 5.0
        for p in self.peers.values():
            while p.sends and time.monotonic() < deadline:
                p.sends = [s for s in p.sends if not s[0].Test()]
                time.sleep(0.001)

    def _drain(self, now):
        MPI, st, buf = self.MPI, self.MPI.Status(), self._inbox
        while self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG, status=st):
            src = st.Get_source()
            self.comm.Recv(buf, source=src, tag=TAG)
            p = self.peers.get(src)
            if p is None:
                continue
            p.heard = now
            p.step = int(buf[1])
            p.pid = int(buf[4])
            p.host = _unpack_host(buf[5], buf[6:])
            if src == 0:      # rank 0 writes the checkpoints
                self.checkpoint_step = max(self.checkpoint_step, int(buf[2]))
            if int(buf[0]) == EXIT and p.exited is None:
                p.exited, p.exit_code, p.exit_step = now, int(buf[3]), int(buf[1])
        if self.rank == 0 and not self._ranks_reported and all(p.pid is not None for p in self.peers.values()):
            self._ranks_reported = True     # singa-run names a rank that mpiexec reports killed by its pid
            ranks = {str(p.rank): [p.pid, p.host] for p in self.peers.values()}
            ranks["0"] = [os.getpid(), self.host]
            runstatus.update(size=self.size, ranks=ranks)

    def _check(self, now):
        if self._aborting:
            return
        timeout = self.timeout
        silent = [p for p in self.peers.values() if p.exited is None and now - (p.heard or p.since) > timeout]
        wait = self._wait
        if silent:
            self._fail(self._silent_text(silent, now, timeout, wait))
            return
        if wait is not None:
            what, since, ranks = wait
            gone = [p for p in self.peers.values() if p.exited is not None and (ranks is None or p.rank in ranks)
                    and now - max(since, p.exited) > EXIT_GRACE_S]
            if gone:
                self._fail(self._exited_text(gone, what))

    # -- the messages ------------------------------------------------------------
    def _where(self):
        wait = self._wait
        place = "waits in %s" % wait[0] if wait is not None else "is ending (waiting for every rank to end)" \
            if self._leaving else "runs"
        return "%s%s" % (place, " at step %d" % self.step if self.step >= 0 else "")

    def _resume_text(self):
        """Lines naming the last checkpoint rank 0 reported and the command that resumes from it."""
        ck = self.checkpoint_step
        if ck < 0 or self.checkpoint_of is None:
            return "Last checkpoint: none written in this run yet (checkpoint_freq sets how often)\n"
        how = "Resume with: %s\n" % self.resume_command if self.resume_command else ""
        return "Last checkpoint: %s (step %d)\n%s" % (self.checkpoint_of(ck), ck, how)

    def _silent_text(self, silent, now, timeout, wait):
        names = ", ".join("%s for %.1f s%s" % (
            p.describe(), now - (p.heard or p.since), "" if p.heard else " (never heard from: did it start?)")
            for p in silent)
        return ("singa: rank %d of %d (host %s) stops the job: no heartbeat from %s (the stall timeout is %.3g s) "
                "while rank %d %s.\n%shelp: the network between the hosts may be down or a "
                "host hung or overloaded; fix it, then resume. SINGA_STALL_TIMEOUT=<seconds> sets the timeout (it is "
                "at least %g times the longest step, %.2f s so far)\n" % (
                    self.rank, self.size, self.host, names, timeout, self.rank, self._where(), self._resume_text(),
                    STEP_FACTOR, self.longest_step))

    def _exited_text(self, gone, what):
        names = ", ".join("%s ended%s%s" % (
            p.describe(), " (sys.exit(%d) in training)" % p.exit_code if p.exit_code >= 0 else
            " (its script returned or called sys.exit)",
            " after step %d" % p.exit_step if p.exit_step >= 0 else " before training") for p in gone)
        return ("singa: rank %d of %d stops the job: %s while rank %d %s, which needs it: the job cannot go on.\n"
                "%shelp: every rank must run to the same end: stop training on all ranks together (a callback "
                "setting run.stop_training stops every rank at one step) instead of sys.exit on one rank, and "
                "call fit/evaluate on every rank\n" % (
                    self.rank, self.size, names, self.rank, self._where(), self._resume_text()))

    def _fail(self, text):
        self._aborting = True
        try:
            sys.stderr.flush()
            os.write(2, text.encode("utf-8", "replace"))
        except OSError:
            pass
        self._abort()

    def _mpi_abort(self):
        """MPI_Abort; if it cannot reach the process manager (a cut link), exit anyway."""
        from singa.cluster import mpi
        time.sleep(mpi.ABORT_GRACE_S)
        t = threading.Thread(target=self.comm.Abort, args=(1,), daemon=True)
        t.start()
        t.join(ABORT_FALLBACK_S)
        os._exit(1)


class _Waiting:
    def __init__(self, dog, what, peers):
        self.dog, self.what, self.peers = dog, what, peers

    def __enter__(self):
        self.saved = self.dog._wait
        self.dog._wait = (self.what, time.monotonic(), None if self.peers is None else frozenset(self.peers))
        return self

    def __exit__(self, *exc):
        self.dog._wait = self.saved
        return False


__all__ = ["Watchdog", "stall_timeout_from_env", "TAG", "HEARTBEAT_S", "DEFAULT_STALL_S"]
