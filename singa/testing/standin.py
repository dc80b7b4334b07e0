"""A strict stand-in for CuPy on machines without a GPU: proves that the training step never mixes
host (NumPy) and device arrays.

Its ``ndarray`` wraps a NumPy array and behaves like ``cupy.ndarray`` where it matters:

* implicit conversion to NumPy raises TypeError, as CuPy's does (``numpy.asarray(a)``,
  ``numpy.add(a, host)``, a NumPy function given a device array, a device array stored into a NumPy
  array, ...); the only ways to the host are ``a.get()``, ``xp.asnumpy(a)`` and scalars
  (``float(a)``, ``a.item()``, which synchronise on a GPU too);
* the only way from the host is explicit: ``xp.asarray(host)`` / ``xp.array(host)``;
* operations mixing a device array and a NumPy array (not a Python or NumPy scalar) raise
  TypeError, as CuPy refuses them;
* every transfer is counted (``transfers``), so a test can check that a training step moves
  nothing but what it must (a batch in, metrics out); ufunc calls (one kernel launch each on a
  GPU) are counted in ``launches``;
* ``ElementwiseKernel`` runs its CUDA C body, compiled as C++ (``standin_kernels``).

The module mirrors the parts of the ``cupy`` namespace the engine uses: creation functions, ufuncs
and NumPy functions (through NEP 18 / NEP 13 dispatch, so the engine's generic ``xp`` code runs
unchanged), ``cuda.Device`` and ``cuda.runtime.getDeviceCount``. It computes with NumPy, so the
numbers equal NumPy's up to the order of operations.
"""
import threading
import weakref

import numpy
from numpy.lib.mixins import NDArrayOperatorsMixin

from singa import switches

IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy "
            "array explicitly.")

transfers = {"to_device": 0, "to_host": 0, "to_device_bytes": 0, "to_host_bytes": 0}


# kernels a GPU would launch: one per ufunc call; ElementwiseKernel calls are counted in standin_kernels
launches = {"ufunc": 0}
# device work launched since the last synchronisation: a consumer that does not follow CUDA streams
# (MPI through __cuda_array_interface__) must not read a device buffer before it is synchronised
_pending = [False]


def launched():
    _pending[0] = True


class _MemoryPool:
    """cupy.get_default_memory_pool(): device bytes in use (arrays that own their memory, not
    views) and ``total_bytes``, which like CuPy's pool (it keeps freed blocks for reuse) only
    grows: the peak of the bytes in use, the device memory a run needs."""

    def __init__(self):
        self._used = self._peak = 0
        self._owners = set()        # ids of the NumPy arrays counted (an array may be wrapped twice)

    def _alloc(self, a):
        if id(a) in self._owners or not a.nbytes:
            return
        self._owners.add(id(a))
        self._used += a.nbytes
        self._peak = max(self._peak, self._used)
        weakref.finalize(a, self._free, id(a), a.nbytes)

    def _free(self, key, nbytes):
        self._owners.discard(key)
        self._used -= nbytes

    def used_bytes(self):
        return self._used

    def total_bytes(self):
        return self._peak

    def free_all_blocks(self):
        self._peak = self._used


_pool = _MemoryPool()


def get_default_memory_pool():
    return _pool


def reset_transfers():
    for k in transfers:
        transfers[k] = 0


def _mixing(what):
    return TypeError("Unsupported type %s: a device array (the CuPy stand-in) cannot be mixed with a NumPy "
                     "array; move it explicitly with xp.asarray(...) or .get()" % what)


def _unwrap(x):
    """Our arrays -> their NumPy arrays; host NumPy arrays (not scalars) -> TypeError; containers
    recursively; anything else as is."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, numpy.ndarray):
        if x.ndim == 0:
            return x
        raise _mixing("numpy.ndarray of shape %s" % (x.shape,))
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _wrap(x):
    if isinstance(x, numpy.ndarray):
        return ndarray(x)
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


class _CurrentDevice(threading.local):
    """The current device of the calling thread, 0 until it binds one (CuPy's is per thread too):
    ``_current[0]``, set by cupy.cuda.Device(i).use() / with Device(i)."""

    def __init__(self):
        self.id = 0

    def __getitem__(self, i):
        return self.id

    def __setitem__(self, i, v):
        self.id = v


_current = _CurrentDevice()


def device_count():
    """SINGA_GPU_STANDIN=N stands in for N devices (1 by default)."""
    return max(1, switches.integer("SINGA_GPU_STANDIN", minimum=0) or 1)


def _same_device(arrays, what):
    devs = {a._dev for a in arrays if isinstance(a, ndarray)}
    if len(devs) > 1 or (devs and devs != {_current[0]}):
        raise ValueError("%s: arrays on devices %s used while device %d is current (the CuPy stand-in, like "
                         "CuPy, does not move arrays between devices implicitly; bind the worker's device with "
                         "cupy.cuda.Device(i).use() before allocating)" % (what, sorted(devs), _current[0]))


class ndarray(NDArrayOperatorsMixin):
    """A device array of the stand-in (a NumPy array inside, unreachable implicitly), on the device
    that was current when it was made."""
    __slots__ = ("_a", "_dev")
    __array_priority__ = 100

    def __init__(self, a, dev=None):
        self._a = a
        self._dev = _current[0] if dev is None else dev
        if a.base is None:
            _pool._alloc(a)

    # -- what CuPy refuses -------------------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError(IMPLICIT)

    def __iter__(self):
        raise TypeError("iterating over a device array (the CuPy stand-in) moves every element to the host; "
                        "use .get() explicitly")

    # -- NumPy dispatch ------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        launches["ufunc"] += 1
        launched()
        out = kwargs.get("out")
        _same_device(list(inputs) + list(out or ()), ufunc.__name__)
        args = _unwrap(inputs)
        if out is not None:
            kwargs["out"] = _unwrap(out)
        if "where" in kwargs:
            kwargs["where"] = _unwrap(kwargs["where"])
        result = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        for t in types:
            if t is not ndarray and issubclass(t, numpy.ndarray):
                raise _mixing(t.__name__)
        out = kwargs.get("out")
        _same_device([a for a in _flat(list(args)) + list(kwargs.values()) if isinstance(a, ndarray)], func.__name__)
        launched()
        result = func(*_unwrap(args), **_unwrap(kwargs))
        if out is not None:
            return out
        return _wrap(result)

    # -- attributes ------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray(self._a.T, self._dev))
    base = property(lambda self: None if self._a.base is None else ndarray(self._a.base, self._dev))

    @property
    def device(self):
        return _Device(self._dev)

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return "standin.ndarray(shape=%s, dtype=%s)" % (self.shape, self.dtype)

    @property
    def __cuda_array_interface__(self):
        """The device pointer, for CUDA-aware consumers (mpi4py with a CUDA-aware MPI). Like a real
        GPU, the data is only complete once the device work on it has been waited for: reading
        it with work in flight is refused here (a race on a GPU)."""
        if _pending[0]:
            raise RuntimeError("a device buffer was handed to a consumer that does not follow CUDA streams "
                               "(__cuda_array_interface__) while device work was in flight; synchronise first "
                               "(cupy.cuda.get_current_stream().synchronize())")
        if not self._a.flags.c_contiguous:
            raise ValueError("the stand-in hands out contiguous device buffers only")
        return {"shape": self._a.shape, "typestr": self._a.dtype.str, "data": (self._a.ctypes.data, False),
                "strides": None, "version": 3, "stream": None}

    # -- the explicit ways between host and device -----------------------------------------
    def set(self, arr, stream=None):
        """Host -> this device array, in place (cupy.ndarray.set)."""
        if not isinstance(arr, numpy.ndarray) or arr.shape != self._a.shape:
            raise ValueError("set: expected a NumPy array of shape %s, received %r" % (self._a.shape, arr))
        transfers["to_device"] += 1
        transfers["to_device_bytes"] += arr.nbytes
        self._a[...] = arr
        launched()

    def get(self, stream=None, out=None):
        _pending[0] = False       # get() waits for the stream, as CuPy's does
        transfers["to_host"] += 1
        transfers["to_host_bytes"] += self._a.nbytes
        if out is not None:
            out[...] = self._a
            return out
        return self._a.copy()

    def item(self):
        transfers["to_host"] += 1
        return self._a.item()

    def tolist(self):
        transfers["to_host"] += 1
        return self._a.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        return bool(self.item())

    def __index__(self):
        return int(self.item())

    # -- indexing ------------------------------------------------------------------------
    def __getitem__(self, key):
        r = self._a[_unwrap(key)]
        return ndarray(r if isinstance(r, numpy.ndarray) else numpy.asarray(r), self._dev)

    def __setitem__(self, key, value):
        _same_device([self, value], "__setitem__")
        launched()
        self._a[_unwrap(key)] = _unwrap(value)

    # -- methods (views stay device arrays) -----------------------------------------------
    def reshape(self, *shape, **kw):
        return ndarray(self._a.reshape(*shape, **kw), self._dev)

    def ravel(self):
        return ndarray(self._a.ravel(), self._dev)

    def transpose(self, *axes):
        return ndarray(self._a.transpose(*axes), self._dev)

    def swapaxes(self, a, b):
        return ndarray(self._a.swapaxes(a, b), self._dev)

    def astype(self, dtype, copy=True, **kw):
        return ndarray(self._a.astype(dtype, copy=copy, **kw), self._dev)

    def copy(self, order="C"):
        return ndarray(self._a.copy(order=order), self._dev)

    def fill(self, value):
        self._a.fill(_unwrap(value))

    def view(self, dtype=None):
        return ndarray(self._a.view() if dtype is None else self._a.view(dtype), self._dev)

    def dot(self, other, out=None):
        return dot(self, other, out=out)

    def _reduce(name):     # noqa: N805  (builds the reductions below)
        def method(self, axis=None, dtype=None, out=None, keepdims=False, **kw):
            f = getattr(self._a, name)
            kwargs = dict(axis=axis, keepdims=keepdims, **kw)
            if dtype is not None:
                kwargs["dtype"] = dtype
            if out is not None:
                f(out=_unwrap(out), **kwargs)
                return out
            return _wrap(numpy.asarray(f(**kwargs)))
        method.__name__ = name
        return method

    sum = _reduce("sum")
    mean = _reduce("mean")
    var = _reduce("var")

    def _reduce_nodtype(name):     # noqa: N805
        def method(self, axis=None, out=None, keepdims=False):
            f = getattr(self._a, name)
            if out is not None:
                f(axis=axis, out=_unwrap(out), keepdims=keepdims)
                return out
            return _wrap(numpy.asarray(f(axis=axis, keepdims=keepdims)))
        method.__name__ = name
        return method

    max = _reduce_nodtype("max")
    min = _reduce_nodtype("min")
    all = _reduce_nodtype("all")
    any = _reduce_nodtype("any")
    del _reduce, _reduce_nodtype

    def argmax(self, axis=None, out=None):
        return argmax(self, axis=axis, out=out)

    def argmin(self, axis=None, out=None):
        return argmin(self, axis=axis, out=out)

    def clip(self, a_min=None, a_max=None, out=None):
        return clip(self, a_min, a_max, out=out)


# -- the module's namespace -------------------------------------------------------------------
float16, float32, float64 = numpy.float16, numpy.float32, numpy.float64
int8, int16, int32, int64, bool_ = numpy.int8, numpy.int16, numpy.int32, numpy.int64, numpy.bool_
uint8, uint16, uint32, uint64 = numpy.uint8, numpy.uint16, numpy.uint32, numpy.uint64
dtype, finfo, iinfo, newaxis, pi, inf, nan, e = numpy.dtype, numpy.finfo, numpy.iinfo, None, numpy.pi, numpy.inf, \
    numpy.nan, numpy.e


def asarray(a, dtype=None, order=None):
    """Host -> device (explicit), or a device array as is."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == numpy.dtype(dtype) else a.astype(dtype)
    host = numpy.array(a, dtype=dtype, order=order or "K", copy=True)
    transfers["to_device"] += 1
    transfers["to_device_bytes"] += host.nbytes
    return ndarray(host)


def array(a, dtype=None, copy=True, order="K"):
    if isinstance(a, ndarray):
        return ndarray(numpy.array(a._a, dtype=dtype, copy=True, order=order))
    return asarray(a, dtype=dtype, order=order)


def ascontiguousarray(a, dtype=None):
    if isinstance(a, ndarray):
        return ndarray(numpy.ascontiguousarray(a._a, dtype=dtype))
    return asarray(numpy.ascontiguousarray(a, dtype=dtype))


def asnumpy(a, stream=None, out=None):
    if isinstance(a, ndarray):
        return a.get(out=out)
    return numpy.asarray(a)


def get_array_module(*args):
    import sys
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else numpy


def _creator(name):
    f = getattr(numpy, name)

    def create(*args, **kwargs):
        launched()
        return ndarray(f(*_unwrap(args), **_unwrap(kwargs)))
    create.__name__ = name
    return create


for _n in ("empty", "zeros", "ones", "full", "arange", "eye", "identity", "linspace"):
    globals()[_n] = _creator(_n)


def _like(name):
    f = getattr(numpy, name)

    def create(a, *args, **kwargs):
        if not isinstance(a, ndarray):
            raise _mixing(type(a).__name__)
        launched()
        return ndarray(f(a._a, *args, **kwargs))
    create.__name__ = name
    return create


for _n in ("empty_like", "zeros_like", "ones_like", "full_like"):
    globals()[_n] = _like(_n)


def __getattr__(name):
    """Every other NumPy function or ufunc, strict: device arrays in, device arrays out."""
    f = getattr(numpy, name)
    if isinstance(f, numpy.ufunc):
        return f        # NEP 13: dispatches to ndarray.__array_ufunc__
    if callable(f):
        def strict(*args, **kwargs):
            if not any(isinstance(a, ndarray) for a in _flat(args) + _flat(list(kwargs.values()))):
                raise _mixing("call of %s without a device array" % name) if any(
                    isinstance(a, numpy.ndarray) and a.ndim for a in _flat(args)) else TypeError(
                    "standin.%s: no device array among the arguments" % name)
            return f(*args, **kwargs)     # NEP 18: dispatches to ndarray.__array_function__
        strict.__name__ = name
        return strict
    return f


def _flat(xs):
    out = []
    for x in xs:
        if isinstance(x, (list, tuple)):
            out += _flat(x)
        else:
            out.append(x)
    return out


def dot(a, b, out=None):
    r = numpy.dot(_unwrap(a), _unwrap(b), out=_unwrap(out) if out is not None else None)
    return out if out is not None else _wrap(numpy.asarray(r))


def matmul(a, b, out=None):
    r = numpy.matmul(_unwrap(a), _unwrap(b), out=_unwrap(out) if out is not None else None)
    return out if out is not None else _wrap(r)


def argmax(a, axis=None, out=None):
    r = numpy.argmax(_unwrap(a), axis=axis)
    if out is not None:
        out[...] = ndarray(numpy.asarray(r))
        return out
    return ndarray(numpy.asarray(r))


def argmin(a, axis=None, out=None):
    r = numpy.argmin(_unwrap(a), axis=axis)
    return ndarray(numpy.asarray(r))


def clip(a, a_min, a_max, out=None):
    r = numpy.clip(_unwrap(a), _unwrap(a_min), _unwrap(a_max), out=_unwrap(out) if out is not None else None)
    return out if out is not None else _wrap(r)


def _as_strided(x, shape=None, strides=None, **kw):
    if not isinstance(x, ndarray):
        raise _mixing(type(x).__name__)
    return ndarray(numpy.lib.stride_tricks.as_strided(x._a, shape=shape, strides=strides, **kw))


def ElementwiseKernel(in_params, out_params, operation, name="kernel", **kwargs):     # noqa: N802
    """cupy.ElementwiseKernel: the CUDA C body compiled as C++ and run on the CPU (standin_kernels)."""
    from singa.testing.standin_kernels import ElementwiseKernel as kernel
    return kernel(in_params, out_params, operation, name, **kwargs)


class lib:     # noqa: N801  (cupy.lib.stride_tricks)
    class stride_tricks:     # noqa: N801
        as_strided = staticmethod(_as_strided)


class _Device:
    def __init__(self, device_id=0):
        self.id = int(device_id)
        if not 0 <= self.id < device_count():
            raise _Runtime.CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal %d (the stand-in has %d)"
                                            % (self.id, device_count()))
        self._prev = []

    def __enter__(self):
        self._prev.append(_current[0])
        _current[0] = self.id
        return self

    def __exit__(self, *exc):
        _current[0] = self._prev.pop()
        return False

    def use(self):
        _current[0] = self.id
        return self

    def synchronize(self):
        _pending[0] = False


class _Stream:
    def synchronize(self):
        _pending[0] = False


class _Runtime:
    @staticmethod
    def getDeviceCount():
        return device_count()

    class CUDARuntimeError(RuntimeError):
        pass


class cuda:    # noqa: N801  (cupy.cuda)
    Device = _Device
    runtime = _Runtime

    @staticmethod
    def get_current_stream():
        return _Stream()


__all__ = ["ndarray", "asarray", "asnumpy", "get_array_module", "transfers", "reset_transfers"]
