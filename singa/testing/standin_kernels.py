"""``ElementwiseKernel`` for the CuPy stand-in: the CUDA C body really runs, compiled as C++ on the CPU.

CuPy compiles an elementwise kernel's body into a CUDA loop over the elements; the stand-in puts the
same body into the same kind of loop and compiles it with the machine's C++ compiler (g++), so a
typo, a wrong type or a wrong formula in a body fails on a machine without a GPU too. It is as
strict as CuPy where it matters: in-params are ``const`` (writing one does not compile), a type
placeholder takes the dtype of its array arguments and must agree between them (TypeError),
Python scalars are cast to it, outputs passed in are written in place, host NumPy arrays are
refused, every array must be on the current device. Names ``i`` (the element index) and ``n``
(the element count) are CuPy's reserved names, and so are names starting with ``_``.

``raw`` params are pointers to the whole (contiguous) array, indexed by the body with a flat
index; the loop runs over the broadcast shape of the other arrays. Reductions are not supported
(the engine uses none). Compiled libraries
are cached under ``$SINGA_KERNEL_CACHE`` (or ``~/.cache/singa/standin-kernels``) by a hash of their
source. Floating-point contraction is off (``-ffp-contract=off``), so a body computes exactly the
IEEE operations it writes, in its order.
"""
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

import numpy

from singa import switches

launches = {"elementwise": 0}

_CTYPES = {
    "float32": "float", "float64": "double", "int8": "int8_t", "int16": "int16_t", "int32": "int32_t",
    "int64": "int64_t", "uint8": "uint8_t", "uint16": "uint16_t", "uint32": "uint32_t", "uint64": "uint64_t",
    "bool": "bool",
}
_PREAMBLE = """\
#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <algorithm>
using std::min;
using std::max;
#define __device__
#define __forceinline__ inline
"""
_PARAM = re.compile(r"^(raw\s+)?([A-Za-z_][A-Za-z0-9_]*)\s+([A-Za-z_][A-Za-z0-9_]*)$")
_libs = {}       # source hash -> ctypes function


class _Param:
    __slots__ = ("raw", "type", "name", "placeholder")

    def __init__(self, spec, where):
        m = _PARAM.match(spec.strip())
        if not m:
            raise ValueError("ElementwiseKernel %s: cannot parse parameter %r (expected 'TYPE name')" % (where, spec))
        self.raw, self.type, self.name = bool(m.group(1)), m.group(2), m.group(3)
        if self.name in ("i", "n") or self.name.startswith("_"):
            raise ValueError("ElementwiseKernel %s: %r is a reserved name in CuPy (i, n and names starting "
                             "with _)" % (where, self.name))
        self.placeholder = self.type not in _CTYPES


def _params(text, where):
    return [_Param(s, where) for s in text.split(",") if s.strip()] if text.strip() else []


def _compiler():
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise RuntimeError("The CuPy stand-in runs ElementwiseKernel bodies by compiling them with a C++ compiler, "
                           "and none was found.\nhelp: install one (apt-get install g++) or set CXX")
    return cxx


def _cache_dir():
    # like CuPy's ~/.cupy/kernel_cache: shared by processes, keyed by the source's hash
    path = switches.path("SINGA_KERNEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "singa",
                                                                 "standin-kernels")
    os.makedirs(path, exist_ok=True)
    return path


def _load(source, name):
    key = hashlib.sha256(source.encode()).hexdigest()[:24]
    fn = _libs.get(key)
    if fn is not None:
        return fn
    path = os.path.join(_cache_dir(), "%s_%s.so" % (name, key))
    if not os.path.exists(path):
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(path))
        os.close(fd)
        cmd = [_compiler(), "-O2", "-ffp-contract=off", "-shared", "-fPIC", "-std=c++14", "-x", "c++", "-", "-o", tmp]
        proc = subprocess.run(cmd, input=source.encode(), capture_output=True)
        if proc.returncode != 0:
            os.unlink(tmp)
            raise RuntimeError("ElementwiseKernel %r does not compile (the CuPy stand-in compiles its body as "
                               "C++):\n%s\n--- source ---\n%s" % (name, proc.stderr.decode(errors="replace"), source))
        os.replace(tmp, path)      # atomic: several processes may compile the same kernel
    lib = ctypes.CDLL(path)
    fn = lib.singa_standin_kernel
    fn.argtypes = [ctypes.c_longlong, ctypes.POINTER(ctypes.c_void_p)]
    fn.restype = None
    _libs[key] = fn
    return fn


class ElementwiseKernel:
    """``cupy.ElementwiseKernel(in_params, out_params, operation, name)`` on the stand-in's arrays."""

    def __init__(self, in_params, out_params, operation, name="kernel", preamble="", **kwargs):
        self.name = name
        self.in_params = _params(in_params, name)
        self.out_params = _params(out_params, name)
        self.operation = operation
        self.preamble = preamble
        names = [p.name for p in self.in_params + self.out_params]
        if len(set(names)) != len(names):
            raise ValueError("ElementwiseKernel %s: a parameter name is used twice: %s" % (name, names))

    def __call__(self, *args, size=None):
        from singa.testing import standin
        nin = len(self.in_params)
        arrays = self._check_args(args)
        params = self.in_params + self.out_params[:len(args) - nin]
        raw = {id(a) for p, a in zip(params, args) if p.raw}
        types = self._types(params, args)

        def dtype_of(p):
            return types[p.type] if p.placeholder else numpy.dtype(p.type)

        shapes = [a.shape for a in arrays if id(a) not in raw]
        if not shapes:
            raise ValueError("kernel %r: the loop size comes from the non-raw arrays, and there are none"
                             % self.name)
        shape = numpy.broadcast_shapes(*shapes)
        outs = self._outputs(list(args[nin:]), shape, dtype_of)
        ctype = {p.type: _CTYPES[numpy.dtype(dtype_of(p)).name] for p in self.in_params + self.out_params}
        fn = _load(self._source(ctype, [isinstance(a, standin.ndarray) for a in args[:nin]]), self.name)
        keep, ptrs = [], []
        for p, a in zip(self.in_params, args[:nin]):
            if p.raw:
                if not isinstance(a, standin.ndarray):
                    raise TypeError("raw param %r of kernel %r must be a device array" % (p.name, self.name))
                buf = numpy.ascontiguousarray(a._a, dtype=dtype_of(p))
            elif isinstance(a, standin.ndarray):
                buf = numpy.ascontiguousarray(numpy.broadcast_to(a._a, shape), dtype=dtype_of(p))
            else:
                buf = numpy.asarray(a, dtype=dtype_of(p))       # a scalar, cast as CuPy casts it
            keep.append(buf)
            ptrs.append(buf.ctypes.data)
        writeback = []
        for o in outs:
            buf = o._a if o._a.flags.c_contiguous else numpy.ascontiguousarray(o._a)
            if buf is not o._a:
                writeback.append((o._a, buf))
            keep.append(buf)
            ptrs.append(buf.ctypes.data)
        n = int(numpy.prod(shape))
        if n:
            fn(n, (ctypes.c_void_p * len(ptrs))(*ptrs))
        launches["elementwise"] += 1
        standin.launched()
        for dst, buf in writeback:
            dst[...] = buf
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _check_args(self, args):
        """The device arrays among ``args`` (all on one device), after CuPy's argument checks."""
        from singa.testing import standin
        nin, nout = len(self.in_params), len(self.out_params)
        if len(args) not in (nin, nin + nout):
            raise TypeError("Wrong number of arguments for %r: expected %d or %d, received %d"
                            % (self.name, nin, nin + nout, len(args)))
        for a in args:
            if isinstance(a, numpy.ndarray) and a.ndim:
                raise TypeError("Unsupported type %s: kernel %r was given a host NumPy array; move it to the "
                                "device with xp.asarray(...)" % (type(a).__name__, self.name))
        arrays = [a for a in args if isinstance(a, standin.ndarray)]
        standin._same_device(arrays, self.name)
        return arrays

    def _types(self, params, args):
        """{placeholder: dtype} from the array arguments, which must agree (CuPy raises TypeError)."""
        from singa.testing import standin
        types = {}
        for p, a in zip(params, args):
            if p.placeholder and isinstance(a, standin.ndarray):
                if types.setdefault(p.type, a.dtype) != a.dtype:
                    raise TypeError("Type is mismatched. %s: %s vs %s (kernel %r, param %r)"
                                    % (p.type, types[p.type], a.dtype, self.name, p.name))
        for p in self.in_params + self.out_params:
            if p.placeholder and p.type not in types:
                raise TypeError("Cannot determine the type of %r in kernel %r: no array argument of type %s"
                                % (p.name, self.name, p.type))
        return types

    def _outputs(self, outs, shape, dtype_of):
        """The given outputs, checked (device arrays of the loop's shape and type), or new ones."""
        from singa.testing import standin
        if not outs:
            if any(p.raw for p in self.out_params):
                raise ValueError("kernel %r: raw outputs must be given" % self.name)
            return [standin.empty(shape, dtype=dtype_of(p)) for p in self.out_params]
        for p, o in zip(self.out_params, outs):
            if not isinstance(o, standin.ndarray):
                raise TypeError("Output %r of kernel %r must be a device array, received %s"
                                % (p.name, self.name, type(o).__name__))
            if p.raw:
                if not o._a.flags.c_contiguous:
                    raise ValueError("raw output %r of kernel %r must be contiguous (the stand-in)"
                                     % (p.name, self.name))
                continue
            if o.shape != shape:
                raise ValueError("Output %r of kernel %r has shape %s, the arguments broadcast to %s"
                                 % (p.name, self.name, o.shape, shape))
            if o.dtype != dtype_of(p):
                raise TypeError("Type is mismatched. output %r of kernel %r: %s vs %s"
                                % (p.name, self.name, o.dtype, dtype_of(p)))
        return outs

    def _source(self, ctype, is_array):
        """C++ for one call signature: the body inside CuPy's kind of loop (in-params const)."""
        # placeholders become typedefs ahead of the preamble, as in CuPy's generated code
        typedefs = ["typedef %s %s;" % (c, t) for t, c in sorted(ctype.items()) if t not in _CTYPES]
        lines = [_PREAMBLE] + typedefs + [self.preamble,
                                          'extern "C" void singa_standin_kernel(long long _n, void** _args) {']
        k = 0
        decls = []
        for p, arr in zip(self.in_params, is_array):
            t = ctype[p.type]
            if p.raw:
                lines.append("  const %s* %s = (const %s*)_args[%d];" % (t, p.name, t, k))
            elif arr:
                lines.append("  const %s* _p%d = (const %s*)_args[%d];" % (t, k, t, k))
                decls.append("    const %s %s = _p%d[i];" % (t, p.name, k))
            else:
                lines.append("  const %s %s = *(const %s*)_args[%d];" % (t, p.name, t, k))
            k += 1
        for p in self.out_params:
            t = ctype[p.type]
            if p.raw:
                lines.append("  %s* %s = (%s*)_args[%d];" % (t, p.name, t, k))
            else:
                lines.append("  %s* _p%d = (%s*)_args[%d];" % (t, k, t, k))
                decls.append("    %s& %s = _p%d[i];" % (t, p.name, k))
            k += 1
        lines.append("  const long long n = _n; (void)n;")
        lines.append("  for (long long i = 0; i < _n; ++i) {")
        lines += decls
        lines.append("    " + self.operation.strip().replace("\n", "\n    "))
        lines.append("  }")
        lines.append("}")
        return "\n".join(lines) + "\n"
