"""Direct calls into the OpenBLAS that NumPy bundles, for what ``numpy.matmul`` cannot do.

* ``gemm(a, b, c, alpha, beta)``: c = alpha * a @ b + beta * c in one BLAS call. With beta = 1
  and c = the weights, a parameter update becomes part of the weight-gradient product (no
  gradient buffer, no separate pass over the weights).
* ``parallel(fn)``: runs ``fn(k, n)`` for k < n on n threads (``singa.backends.parallel``, the
  one pool) with BLAS single-threaded inside, so two independent (or column-split) products run
  side by side on the cores. ctypes releases the GIL during the call, so the threads really overlap.

Everything falls back to plain ``xp`` code when the library or symbol is missing, the arrays are
not NumPy float32/float64, or their layout is not one BLAS takes (``usable`` says which).
Environment: SINGA_NO_BLAS=1 turns the direct calls off, SINGA_OPENBLAS=path picks the library,
SINGA_SPLIT_GEMM=1 makes layers split products over threads (``split_products``).
"""
import ctypes
import glob
import os
import threading

import numpy

from singa import switches
from singa.backends import parallel as threads
from singa.backends.parallel import part, usable_cores  # noqa: F401  (the split and the cores: one policy)
from singa.errors import invalid

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


class _Lib:
    """The loaded library and its symbols (None when absent)."""

    def __init__(self):
        self.path = None
        self.gemm = {}          # numpy dtype -> cblas_?gemm
        self.axpy = {}          # numpy dtype -> cblas_?axpy
        self.set_threads = self.get_threads = None
        self.int_t = ctypes.c_int
        self.error = None
        try:
            self._load()
        except OSError as e:      # a broken or foreign library: run on numpy alone
            self.gemm, self.error = {}, str(e)

    def _candidates(self):
        env = switches.path("SINGA_OPENBLAS")
        if env:
            return [env]
        base = os.path.dirname(numpy.__file__)
        pats = [os.path.join(base, os.pardir, "numpy.libs", "*openblas*"), os.path.join(base, ".libs", "*openblas*"),
                os.path.join(base, os.pardir, "numpy", ".dylibs", "*openblas*")]
        found = [p for pat in pats for p in sorted(glob.glob(pat))]
        try:   # the copy already mapped into this process (numpy imported it), wherever it lies
            with open("/proc/self/maps") as f:
                found += sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and "/" in ln})
        except OSError:
            pass
        return found

    def _load(self):
        for path in self._candidates():
            lib = ctypes.CDLL(path)
            for prefix, suffix, int_t in (("scipy_", "64_", ctypes.c_int64), ("", "64_", ctypes.c_int64),
                                          ("", "", ctypes.c_int)):
                sg = getattr(lib, prefix + "cblas_sgemm" + suffix, None)
                dg = getattr(lib, prefix + "cblas_dgemm" + suffix, None)
                if sg is None or dg is None:
                    continue
                for fn, ct in ((sg, ctypes.c_float), (dg, ctypes.c_double)):
                    fn.restype = None
                    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, int_t, int_t, int_t, ct,
                                   ctypes.c_void_p, int_t, ctypes.c_void_p, int_t, ct, ctypes.c_void_p, int_t]
                self.gemm = {numpy.dtype(numpy.float32): sg, numpy.dtype(numpy.float64): dg}
                self.int_t = int_t
                for dt, ch, ct in ((numpy.float32, "s", ctypes.c_float), (numpy.float64, "d", ctypes.c_double)):
                    fn = getattr(lib, prefix + "cblas_%saxpy" % ch + suffix, None)
                    if fn is not None:
                        fn.restype = None
                        fn.argtypes = [int_t, ct, ctypes.c_void_p, int_t, ctypes.c_void_p, int_t]
                        self.axpy[numpy.dtype(dt)] = fn
                st = getattr(lib, prefix + "openblas_set_num_threads" + suffix, None)
                gt = getattr(lib, prefix + "openblas_get_num_threads" + suffix, None)
                if st is not None and gt is not None:
                    st.restype, st.argtypes = None, [ctypes.c_int]
                    gt.restype, gt.argtypes = ctypes.c_int, []
                    self.set_threads, self.get_threads = st, gt
                self.path = path
                return


_lib = None
_state = {"enabled": not switches.flag("SINGA_NO_BLAS"), "threads": None,
          "split_products": switches.flag("SINGA_SPLIT_GEMM"),
          "active": 0, "saved": 1}
_lock = threading.Lock()


def library():
    """The loaded BLAS (lazily, once)."""
    global _lib
    if _lib is None:
        with _lock:
            if _lib is None:
                _lib = _Lib()
    return _lib


def available():
    """True when direct GEMM calls are possible (library found and not disabled)."""
    return _state["enabled"] and bool(library().gemm)


def set_enabled(flag):
    """Turn the direct BLAS path on or off (off: every function runs its plain xp fallback)."""
    _state["enabled"] = bool(flag)


def blas_threads():
    """OpenBLAS's current thread count (1 when it cannot be asked)."""
    lib = library()
    return int(lib.get_threads()) if lib.get_threads is not None else 1


def num_threads():
    """Threads ``parallel`` uses: set by ``set_num_threads``, else OpenBLAS's own count; 1 inside
    a part of a ``parallel`` call (the cores are taken: nested work runs inline)."""
    if threads.depth():
        return 1
    n = _state["threads"]
    return n if n is not None else (blas_threads() if available() else 1)


def set_num_threads(n):
    """Threads for ``parallel`` (None: follow OpenBLAS's count, which threadpoolctl and
    OPENBLAS_NUM_THREADS set)."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise invalid("num_threads", "an integer >= 1 or None", n)
    _state["threads"] = n


# Variables with which a user (or a launcher) chose OpenBLAS's thread count: share_cores keeps it.
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class CoreShare:
    """What ``share_cores`` decided: ``threads`` (OpenBLAS's count now, None when it cannot be asked),
    ``cores`` and ``ranks`` (processes on this machine), ``user_var`` (the variable that set the
    count, when one did) and ``applied`` (whether share_cores set it)."""

    def __init__(self, threads, cores, ranks, user_var, applied):
        self.threads, self.cores, self.ranks, self.user_var, self.applied = threads, cores, ranks, user_var, applied

    def describe(self):
        """For the training log, e.g. 'OpenBLAS threads per rank: 1 (2 cores / 4 ranks on this node;
        set OPENBLAS_NUM_THREADS to override)'."""
        if self.user_var:
            return "OpenBLAS threads per rank: %s (%s=%s as set)" % (
                self.threads if self.threads is not None else "?", self.user_var, os.environ.get(self.user_var, ""))
        if self.threads is None:
            return ("OpenBLAS threads per rank: not set (no OpenBLAS found; set OPENBLAS_NUM_THREADS=%d or "
                    "OMP_NUM_THREADS=%d)" % ((max(1, self.cores // self.ranks),) * 2))
        return "OpenBLAS threads per rank: %d (%d core%s / %d rank%s on this node; set OPENBLAS_NUM_THREADS to override)" % (
            self.threads, self.cores, "" if self.cores == 1 else "s", self.ranks, "" if self.ranks == 1 else "s")

    def __repr__(self):
        return "CoreShare(%s)" % self.describe()


def share_cores(ranks_per_node):
    """Give this process its share of the machine's cores when ``ranks_per_node`` processes of one
    job run on it: OpenBLAS set to max(1, cores // ranks_per_node) threads, so that N ranks do not
    run N x cores busy-waiting BLAS threads. ``parallel`` and the layers' thread splits follow
    OpenBLAS's count (unless ``set_num_threads`` fixed theirs). Nothing changes when one of
    THREAD_VARS is set (the user's choice) or when OpenBLAS cannot be reached. Returns a CoreShare."""
    cores = usable_cores()
    ranks = max(1, int(ranks_per_node))
    user_var = next((v for v in THREAD_VARS if os.environ.get(v, "").strip()), None)
    lib = library()
    if user_var is not None or lib.set_threads is None:
        return CoreShare(blas_threads() if lib.get_threads is not None else None, cores, ranks, user_var, False)
    n = max(1, cores // ranks)
    with _lock:
        if _state["active"]:          # inside a parallel call: set the count it restores afterwards
            _state["saved"] = n
        else:
            lib.set_threads(n)
            n = blas_threads()        # OpenBLAS caps it at the count it was built for
    return CoreShare(n, cores, ranks, None, True)


def split_products():
    """Whether layers split their big products into one single-threaded call per thread.

    Off by default: next to OpenBLAS's own threading of each call, our split was slower
    (benchmarks/README.md, "What was tried", item 2). SINGA_SPLIT_GEMM=1
    or ``set_split_products(True)`` turns it on.
    """
    return _state["split_products"]


def set_split_products(flag):
    _state["split_products"] = bool(flag)


def parallel(fn, n=None):
    """Run ``fn(k, n)`` for k in range(n) through ``singa.backends.parallel.run`` (k = 0 on this
    thread), with OpenBLAS set to one thread meanwhile (each part is single-threaded; the parts
    share the cores). n defaults to ``num_threads()``. Exceptions of any part are raised here
    after all parts finished.
    """
    n = num_threads() if n is None else n
    if n <= 1:
        fn(0, 1)
        return
    _enter_single()
    try:
        threads.run(fn, n)
    finally:
        _leave_single()


def _enter_single():
    """OpenBLAS to one thread while any ``parallel`` runs (nested or from several threads)."""
    lib = library()
    with _lock:
        if _state["active"] == 0 and lib.set_threads is not None:
            _state["saved"] = blas_threads()
            lib.set_threads(1)
        _state["active"] += 1


def _leave_single():
    lib = library()
    with _lock:
        _state["active"] -= 1
        if _state["active"] == 0 and lib.set_threads is not None:
            lib.set_threads(_state["saved"])


def _operand(x, item):
    """(trans, ld) for a 2-D array BLAS can read as row-major or its transpose, else None."""
    r, c = x.shape
    s0, s1 = x.strides
    if s0 % item or s1 % item:
        return None
    if (s1 == item or c <= 1) and s0 >= max(1, c) * item:
        return _NO_TRANS, s0 // item
    if (s0 == item or r <= 1) and s1 >= max(1, r) * item:
        return _TRANS, s1 // item
    return None


def usable(*arrays):
    """True when ``gemm`` on these arrays goes straight to BLAS (NumPy, one float dtype, 2-D)."""
    if not available():
        return False
    dt = arrays[0].dtype
    return (dt in library().gemm and
            all(type(a) is numpy.ndarray and a.dtype == dt and a.ndim == 2 for a in arrays))


def gemm(a, b, c, alpha=1.0, beta=0.0):
    """``c = alpha * a @ b + beta * c`` for 2-D arrays (c's old values ignored when beta is 0).

    ``a`` and ``b`` may be transposed or column-sliced views; ``c`` must not overlap them.
    Runs one BLAS call for NumPy float32/float64 in a BLAS layout, else plain xp code.
    """
    if a.ndim != 2 or b.ndim != 2 or c.ndim != 2 or a.shape[1] != b.shape[0] or c.shape != (a.shape[0], b.shape[1]):
        raise invalid("gemm operands", "a (m, k), b (k, n) and c (m, n)",
                      "a %s, b %s, c %s" % (tuple(a.shape), tuple(b.shape), tuple(c.shape)))
    a0, b0, out = a, b, c
    if usable(a, b, c) and c.flags.writeable:
        item = c.itemsize
        oc = _operand(c, item)
        if oc is not None and oc[0] == _TRANS:       # c^T = b^T a^T: write c as a row-major c^T
            a, b, c = b.T, a.T, c.T
            oc = _operand(c, item)
        oa, ob = _operand(a, item), _operand(b, item)
        if (oa is not None and ob is not None and oc is not None and
                not numpy.may_share_memory(c, a) and not numpy.may_share_memory(c, b)):
            m, k = a.shape
            n = b.shape[1]
            if m == 0 or n == 0:
                return out
            if k == 0:
                if beta == 0:
                    c[...] = 0
                elif beta != 1:
                    c *= beta
                return out
            library().gemm[c.dtype](_ROW_MAJOR, oa[0], ob[0], m, n, k, alpha, a.ctypes.data, oa[1],
                                    b.ctypes.data, ob[1], beta, c.ctypes.data, oc[1])
            return out
    return _gemm_xp(a0, b0, out, alpha, beta)


def axpy(alpha, x, y):
    """``y += alpha * x`` in place (same shapes). One BLAS call for contiguous NumPy float arrays
    (no temporary, and faster than numpy's add on big arrays), else plain xp code."""
    if x.shape != y.shape:
        raise invalid("axpy operands", "x and y of the same shape", "x %s, y %s" % (tuple(x.shape), tuple(y.shape)))
    fn = library().axpy.get(y.dtype) if available() else None
    if (fn is not None and type(x) is numpy.ndarray and type(y) is numpy.ndarray and x.dtype == y.dtype and
            x.flags.c_contiguous and y.flags.c_contiguous and y.flags.writeable and
            not numpy.may_share_memory(x, y)):
        if y.size:
            fn(y.size, alpha, x.ctypes.data, 1, y.ctypes.data, 1)
        return y
    if alpha == 1:
        y += x
    else:
        y += alpha * x
    return y


def _gemm_xp(a, b, c, alpha, beta):
    xp = _xp(c)
    if beta == 0:
        xp.matmul(a, b, out=c)
        if alpha != 1:
            c *= alpha
        return c
    t = xp.matmul(a, b)
    if alpha != 1:
        t *= alpha
    if beta != 1:
        c *= beta
    c += t
    return c


def _xp(a):
    if isinstance(a, numpy.ndarray):
        return numpy
    from singa.backends import get_array_module
    return get_array_module(a)


__all__ = ["gemm", "axpy", "parallel", "part", "usable", "available", "set_enabled", "num_threads", "set_num_threads",
           "blas_threads", "library", "split_products", "set_split_products", "share_cores",
           "usable_cores", "CoreShare", "THREAD_VARS"]
