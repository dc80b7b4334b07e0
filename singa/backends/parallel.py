"""The one thread policy of the NumPy engine: one pool, one way to run parts, one way to split.

* ``run(fn, n)``: ``fn(k, n)`` for k < n, k > 0 on the shared pool and k = 0 on the calling
  thread; every part finishes before an exception of any part is raised. Work started inside a
  part runs inline (n = 1): the cores are already taken, and a part waiting on parts queued
  behind it in the same pool could wait forever.
* ``part(size, k, n)``: the k-th of n nearly equal contiguous ranges, the split every caller uses
  (layers by rows or columns, updaters by chunks), so a split is the same whatever the caller.
* ``parts(kind, work, threads, most)``: how many parts a piece of work is split into; the smallest
  work worth splitting, per kind of work, is the table ``MIN_SPLIT`` (below it, handing work to
  another thread costs more than it saves; measured, see benchmarks/README.md).
* ``usable_cores()``: the cores this process may use (affinity, capped by a cgroup quota).

How many parts a caller asks for is its own measured choice (``blas.num_threads`` for BLAS and the
layers, ``singa.updaters.get_num_threads`` for updates); how they run is decided here. NumPy's
loops and ctypes' BLAS calls release the GIL, so the threads really overlap.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

# The smallest work split between threads, per kind (in the unit the caller counts).
MIN_SPLIT = {
    "gemm": 1 << 21,        # multiply-adds of a matrix product (dense, conv's weight gradient)
    "ufunc": 1 << 15,       # values of an elementwise op (activations, dropout)
    "lrn": 1 << 17,         # values of a local response normalisation
    "copy": 1 << 18,        # values copied by im2col/col2im
    "blocks": 2,            # cache-sized blocks of images (pooling): split once there are two
}

# The smallest pool made: 7 helpers + the caller cover 8 cores without regrowing.
MIN_POOL = 7

_state = {"pool": None, "size": 0, "pid": None}
_lock = threading.Lock()
_inside = threading.local()      # depth of parts running on this thread


def depth():
    """How many ``run`` parts enclose the calling thread (0 outside any)."""
    return getattr(_inside, "depth", 0)


def pool(helpers):
    """The shared pool, with at least ``helpers`` threads (grown when asked for more; made anew in a
    forked child, whose copy has no threads)."""
    pid = os.getpid()
    st = _state
    if st["pool"] is None or st["pid"] != pid or st["size"] < helpers:
        with _lock:
            if st["pool"] is None or st["pid"] != pid or st["size"] < helpers:
                old = st["pool"] if st["pid"] == pid else None
                size = max(MIN_POOL, helpers, st["size"] if st["pid"] == pid else 0)
                st.update(pool=ThreadPoolExecutor(size, thread_name_prefix="singa"), size=size, pid=pid)
                if old is not None:
                    old.shutdown(wait=False)     # its running parts finish; new parts go to the new pool
    return st["pool"]


def run(fn, n):
    """Run ``fn(k, n)`` for k in range(n) on n threads (see the module's doc); on this thread alone
    when n <= 1 or when called from inside a part."""
    if n <= 1:
        fn(0, 1)                   # one part is no split: nested work may still use the cores
        return
    if depth():                    # the same n parts, one after another on this thread
        for k in range(n):
            _part(fn, k, n)
        return
    futures = [pool(n - 1).submit(_part, fn, k, n) for k in range(1, n)]
    try:
        _part(fn, 0, n)
    finally:
        for f in futures:
            f.exception()          # wait for all before raising
    for f in futures:
        f.result()


def _part(fn, k, n):
    d = depth()
    _inside.depth = d + 1
    try:
        fn(k, n)
    finally:
        _inside.depth = d


def worth_splitting(kind, work):
    """Whether ``work`` (in the unit of ``kind``, see MIN_SPLIT) is big enough to split at all."""
    return work >= MIN_SPLIT[kind]


def parts(kind, work, threads, most=None):
    """Parts to split ``work`` of ``kind`` into: 1 when it is too small, else ``threads`` (at most
    ``most``, e.g. the number of rows)."""
    if not worth_splitting(kind, work):
        return 1
    return threads if most is None else max(1, min(threads, most))


def part(size, k, n):
    """The k-th of n nearly equal contiguous ranges of range(size), as a slice."""
    return slice(size * k // n, size * (k + 1) // n)


def usable_cores():
    """Cores this process may run on: its CPU affinity (taskset, cpusets), capped by a cgroup CPU
    quota (containers' --cpus) when there is one."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(n, quota) if quota else n)


def _cgroup_cpu_quota():
    """ceil(quota / period) of this process's cgroup (v2 cpu.max, v1 cfs files), else None."""
    paths = []
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                parts = line.strip().split(":", 2)
                if len(parts) == 3 and parts[0] == "0":
                    paths.append(os.path.join("/sys/fs/cgroup", parts[2].lstrip("/"), "cpu.max"))
    except OSError:
        pass
    for p in paths + ["/sys/fs/cgroup/cpu.max"]:
        try:
            quota, period = open(p).read().split()[:2]
        except (OSError, ValueError):
            continue
        return -(-int(quota) // int(period)) if quota != "max" and int(period) > 0 else None
    try:
        quota = int(open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read())
        period = int(open("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read())
    except (OSError, ValueError):
        return None
    return -(-quota // period) if quota > 0 and period > 0 else None
