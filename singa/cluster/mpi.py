"""The MPI side of a job started with ``mpiexec -n N`` (mpi4py): the world communicator, buffer
collectives for gradients and parameters, and the rule that an exception on any rank ends the
whole job (MPI Abort) instead of leaving the others waiting in a collective, and so does a rank
that leaves early or stops answering (``singa.cluster.watchdog``).

Without mpiexec (or with one process) ``world()`` is None and everything runs in-process; mpi4py
is only imported when the environment says a process manager started this process.
"""
import atexit
import contextlib
import ctypes
import os
import socket
import sys
import time
import traceback

import numpy

from singa import switches
from singa.cluster import runstatus
from singa.errors import ConfigError, invalid

# Variables a process manager (MPICH's hydra, Open MPI's orterun, PMIx, Slurm) sets in every rank.
_LAUNCH_VARS = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS", "HYDRA_CONTROL_FD")

_world = {}


def launched_by_mpiexec():
    return any(v in os.environ for v in _LAUNCH_VARS)


class Comm:
    """A communicator of a multi-process job (the world, or a part of it split off): ``rank``,
    ``size`` and the few calls the engine uses. Arrays go by buffer (one flat array per call);
    pickled objects only for small metadata (``*_object``). Nothing outside this class touches
    mpi4py's communicator: the parts split off are Comms too, waited on through the world's
    watchdog, and ``free()``'d by whoever split them."""

    def __init__(self, comm, watchdog=None, MPI=None):
        if MPI is None:
            from mpi4py import MPI
        self.MPI = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.watchdog = watchdog
        self._cuda_aware = None
        self._status = None        # reused by probe_source: it runs in the servers' serving loop

    # -- parts of the job ---------------------------------------------------------------
    def split_shared(self, what="the split of the ranks by machine"):
        """The ranks on this machine (MPI's shared-memory split), in the order of their ranks here.
        Collective."""
        with self.waiting(what):
            node = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED, key=self.rank)
        return Comm(node, self.watchdog, self.MPI)

    def split(self, color, what="a split of the ranks"):
        """The ranks that give the same ``color``, in the order of their ranks here; None on a rank
        that gives None (it joins no part). Collective."""
        with self.waiting(what):
            sub = self.comm.Split(self.MPI.UNDEFINED if color is None else color, self.rank)
        return None if color is None else Comm(sub, self.watchdog, self.MPI)

    def dup(self):
        """A communicator of the same ranks whose messages never meet this one's. Collective."""
        return Comm(self.comm.Dup(), self.watchdog, self.MPI)

    def free(self):
        self.comm.Free()

    def waiting(self, what, peers=None):
        """Around a blocking collective: the watchdog ends the job if a rank it waits for
        (``peers``: world ranks, None for all) has left or stopped answering."""
        return self.watchdog.waiting(what, peers) if self.watchdog is not None else contextlib.nullcontext()

    @property
    def cuda_aware(self):
        """True when every rank's MPI takes GPU buffers (then gradients are reduced on the device).
        Asked once, collectively: call it on every rank at the same point."""
        if self._cuda_aware is None:
            with self.waiting("the Allreduce that asks whether MPI is CUDA-aware"):
                self._cuda_aware = bool(self.comm.allreduce(int(cuda_aware_mpi()), op=self.MPI.MIN))
        return self._cuda_aware

    def allreduce_sum(self, buf):
        """buf = the sum of every rank's buf, in place (one Allreduce of the whole buffer). A
        device buffer (CUDA-aware MPI only) is synchronised first: MPI does not follow streams."""
        _sync_device(buf)
        with self.waiting("the Allreduce of the gradients"):
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        return buf

    def allreduce_max(self, buf, what="an Allreduce (MAX)"):
        """buf = the elementwise maximum over the ranks, in place."""
        with self.waiting(what):
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.MAX)
        return buf

    def bcast(self, buf, root=0, what=None):
        """buf = root's buf, in place."""
        with self.waiting(what or "a Bcast from rank %d" % root):
            self.comm.Bcast(buf, root=root)
        return buf

    def bcast_object(self, obj, root=0, what=None):
        """A small picklable object (metadata such as results) from ``root``."""
        with self.waiting(what or "a broadcast of rank %d's results" % root):
            return self.comm.bcast(obj, root=root)

    def gather_object(self, obj, root=0, what=None):
        """Every rank's small picklable ``obj``, as a list on ``root`` (None elsewhere)."""
        with self.waiting(what or "a gather to rank %d" % root):
            return self.comm.gather(obj, root=root)

    def allgather_object(self, obj, what=None):
        """Every rank's small picklable ``obj``, as a list in rank order on every rank."""
        with self.waiting(what or "an allgather"):
            return self.comm.allgather(obj)

    def barrier(self, what="a Barrier"):
        with self.waiting(what):
            self.comm.Barrier()

    # -- non-blocking calls (the parameter servers' transport waits on them while serving) --
    def iallreduce_sum(self, buf):
        """Start buf = the sum of every rank's buf, in place; returns the request."""
        return self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)

    def ibcast(self, buf, root=0):
        return self.comm.Ibcast(buf, root=root)

    def ibarrier(self):
        return self.comm.Ibarrier()

    def isend(self, buf, dest, tag):
        return self.comm.Isend(buf, dest=dest, tag=tag)

    def irecv(self, buf, source, tag):
        return self.comm.Irecv(buf, source=source, tag=tag)

    def recv(self, buf, source, tag):
        self.comm.Recv(buf, source=source, tag=tag)

    def probe_source(self, tag):
        """The rank that sent a message with ``tag`` now waiting to be received, or None."""
        if self._status is None:
            self._status = self.MPI.Status()
        if self.comm.Iprobe(source=self.MPI.ANY_SOURCE, tag=tag, status=self._status):
            return self._status.Get_source()
        return None

    def abort(self, code=1):
        self.comm.Abort(code)


def cuda_aware_mpi():
    """Whether this process's MPI library takes CUDA device buffers: ``MPIX_Query_cuda_support()``
    (Open MPI, MPICH 4 and newer), unless ``SINGA_CUDA_AWARE_MPI`` says 1 or 0. False when the
    library does not have the query."""
    env = switches.raw("SINGA_CUDA_AWARE_MPI")
    if env:
        if env not in ("0", "1"):
            raise invalid("SINGA_CUDA_AWARE_MPI", "0 or 1", env, "unset it to ask the MPI library")
        return env == "1"
    try:
        from mpi4py import MPI
        query = ctypes.CDLL(MPI.__file__).MPIX_Query_cuda_support
    except (ImportError, OSError, AttributeError):
        return False
    query.restype, query.argtypes = ctypes.c_int, []
    return query() == 1


def _sync_device(buf):
    """Wait for the device work that writes ``buf`` (nothing for a host array)."""
    if not isinstance(buf, numpy.ndarray):
        from singa.backends import get_array_module
        get_array_module(buf).cuda.get_current_stream().synchronize()


def world():
    """The job's Comm when started by mpiexec with more than one process, else None."""
    if "comm" in _world:
        return _world["comm"]
    comm = None
    if launched_by_mpiexec():
        try:
            from mpi4py import MPI
        except ImportError:
            raise ConfigError("this process was started by mpiexec but mpi4py is not installed.\nhelp: pip install "
                              "'singa[mpi]' (mpi4py and MPICH from PyPI), or run without mpiexec") from None
        if MPI.COMM_WORLD.Get_size() > 1:
            comm = Comm(MPI.COMM_WORLD, start_watchdog(MPI))
            runstatus.note_rank(comm.rank, comm.size, os.getpid(), socket.gethostname())
            install_abort_hook(comm)
            _world["share"] = share_node_cores(comm)
    _world["comm"] = comm
    return comm


def start_watchdog(MPI):
    """This rank's heartbeat thread (``singa.cluster.watchdog``), started before the first
    collective, with its ``atexit`` handshake; None when SINGA_STALL_TIMEOUT=off or the MPI
    library is not thread-safe (MPI_THREAD_MULTIPLE)."""
    from singa.cluster.watchdog import Watchdog, stall_timeout_from_env
    timeout = stall_timeout_from_env()
    if timeout is None:
        return None
    if MPI.Query_thread() < MPI.THREAD_MULTIPLE:
        print("singa: warning: this MPI library gives no MPI_THREAD_MULTIPLE, so the watchdog is off: a rank "
              "that leaves early or stops answering can leave the others waiting", file=sys.stderr)
        return None
    dog = Watchdog(MPI.COMM_WORLD, MPI, timeout).start()
    atexit.register(dog.leave)       # runs before mpi4py's MPI_Finalize (registered at its import, earlier)
    return dog


def watchdog():
    """This rank's Watchdog in a multi-process job, else None."""
    comm = _world.get("comm")
    return comm.watchdog if comm is not None else None


def share_node_cores(comm):
    """Each rank gets its share of this machine's cores for OpenBLAS (``blas.share_cores``): the
    ranks per node are the size of MPI's shared-memory split of ``comm``. Collective: every rank
    of ``comm`` calls it (``world()`` does, once, when the job joins)."""
    from singa.backends import blas
    node = comm.split_shared("the split of the ranks by machine, as the job starts")
    ranks = node.size
    node.free()
    return blas.share_cores(ranks)


def core_share():
    """What ``world()`` decided for this rank's BLAS threads (a ``blas.CoreShare``), or None outside
    a multi-process job."""
    return _world.get("share")


def _report_and_abort(comm, text, code=1):
    """Write ``text`` to stderr, give the process manager a moment to forward it (an abort
    tears the job down at once and can drop output still in flight), then abort every rank
    (exit status ``code``: USER_ERROR_CODE for a user's error, which a restart would only repeat)."""
    try:
        sys.stderr.flush()
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass
    time.sleep(ABORT_GRACE_S)
    comm.abort(code)


# Seconds between a failing rank's message and MPI_Abort.
ABORT_GRACE_S = 0.5
# The job's exit status for a configuration, data or usage error (singa-run's own usage errors
# too): singa-run --max-restarts does not restart those.
USER_ERROR_CODE = 2


def _exit_code_of(error):
    from singa.errors import ConfigError, DataError
    return USER_ERROR_CODE if isinstance(error, (ConfigError, DataError)) else 1


def install_abort_hook(comm):
    """An uncaught exception on this rank prints it with the rank and aborts every rank."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        from singa.interrupt import TrainingInterrupted
        if isinstance(value, TrainingInterrupted):    # a clean Ctrl-C/SIGTERM stop: every rank stopped together
            return previous(kind, value, tb)
        try:
            _report_and_abort(comm, "singa: rank %d of %d failed:\n%s" % (
                comm.rank, comm.size, "".join(traceback.format_exception(kind, value, tb))), _exit_code_of(value))
        finally:
            previous(kind, value, tb)
    sys.excepthook = hook


def abort_on_error(comm, fn, *args, **kwargs):
    """fn(*args, **kwargs); an exception on this rank is printed with the rank and aborts the job
    (the other ranks may be blocked in a collective and would never see it). A clean Ctrl-C or
    SIGTERM never gets here: the Driver's handler only flags it, every rank stops at the same
    step and Driver.train raises TrainingInterrupted after ``fn`` returns."""
    try:
        return fn(*args, **kwargs)
    except BaseException as e:  # noqa: BLE001  (KeyboardInterrupt and SystemExit end the job too)
        if comm is None:
            raise
        if isinstance(e, SystemExit) and not e.code:
            if comm.watchdog is not None:      # leaving: the watchdog's EXIT tells the others how
                comm.watchdog.exit_code = 0
            raise
        from singa.errors import ConfigError, DataError
        detail = "" if isinstance(e, (ConfigError, DataError)) else traceback.format_exc()   # user errors: the message
        _report_and_abort(comm, "singa: rank %d of %d failed: %s: %s\n%s" % (comm.rank, comm.size, type(e).__name__,
                                                                           e, detail), _exit_code_of(e))
        raise


class FlatBuffer:
    """One contiguous float array holding several arrays end to end, with views of each: the
    gradients of all params exchanged by one collective per step (on ``xp``'s device)."""

    def __init__(self, shapes, dtype, xp=numpy):
        sizes = [int(numpy.prod(s)) for s in shapes]
        self.flat = xp.zeros(sum(sizes), dtype=dtype)
        self.views, off = [], 0
        for shape, n in zip(shapes, sizes):
            self.views.append(self.flat[off:off + n].reshape(shape))
            off += n


__all__ = ["Comm", "world", "launched_by_mpiexec", "install_abort_hook", "abort_on_error", "FlatBuffer",
           "cuda_aware_mpi", "share_node_cores", "core_share", "watchdog", "start_watchdog"]
