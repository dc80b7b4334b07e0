"""Elementwise steps fused into one device kernel each (one pass over memory instead of several).

On the GPU a chain of ``xp`` operations costs one kernel launch and one trip through memory per
operation; a ``Kernel`` is the whole chain written once in CUDA C and run by
``cupy.ElementwiseKernel`` in a single pass. The NumPy backend never uses these (its own paths walk
memory in cache-sized chunks); the CuPy stand-in runs the very same body compiled as C++ on the
CPU (``singa.testing.standin_kernels``), so the bodies are tested on machines without a GPU, and
``cuda_source`` gives the CUDA translation unit that the nvcc check compiles.
"""
import numpy


class Kernel:
    """One CUDA C elementwise body: ``kernel(xp, *args)`` runs it on xp's device (CuPy or the stand-in).

    ``in_params``/``out_params`` use CuPy's syntax (``"T x, T y"``, ``"uint32 key"``); outputs are
    read-write references (pass them to update in place), inputs are read-only. ``scalars`` names
    the in-params always given as scalars (only ``cuda_source`` needs to know).
    """

    def __init__(self, in_params, out_params, body, name, scalars=(), preamble=""):
        self.in_params, self.out_params, self.body, self.name = in_params, out_params, body, name
        self.scalars = frozenset(scalars)
        self.preamble = preamble
        self._compiled = {}        # array module name -> its ElementwiseKernel

    def __repr__(self):
        return "Kernel(%r)" % self.name

    def __call__(self, xp, *args):
        if xp is numpy:
            raise TypeError("Kernel %r runs on a device (CuPy or the stand-in), not on NumPy" % self.name)
        k = self._compiled.get(xp.__name__)
        if k is None:
            k = self._compiled[xp.__name__] = xp.ElementwiseKernel(self.in_params, self.out_params, self.body,
                                                                   self.name, preamble=self.preamble)
        return k(*args)

    def cuda_source(self, types):
        """A CUDA translation unit with this body in a grid-stride loop, as CuPy builds it (for a
        compile check with nvcc on a machine without a GPU). ``types`` maps placeholders to C
        types, e.g. ``{"T": "float"}``; every array is taken as contiguous."""
        ctype = dict(_CTYPES, **types)
        args, decls = [], []
        for raw, t, name in _split(self.in_params):
            if raw:
                args.append("const %s* __restrict__ %s" % (ctype[t], name))
            elif name in self.scalars:
                args.append("const %s %s" % (ctype[t], name))
            else:
                args.append("const %s* _raw_%s" % (ctype[t], name))
                decls.append("    const %s %s = _raw_%s[i];" % (ctype[t], name, name))
        for raw, t, name in _split(self.out_params):
            if raw:
                args.append("%s* %s" % (ctype[t], name))
            else:
                args.append("%s* _raw_%s" % (ctype[t], name))
                decls.append("    %s &%s = _raw_%s[i];" % (ctype[t], name, name))
        typedefs = "".join("typedef %s %s;\n" % (c, t) for t, c in types.items())
        body = self.body.strip().replace("\n", "\n    ")
        return ("#include <stdint.h>\n%s%s\n"
                'extern "C" __global__ void %s(%s, const long long n) {\n'
                "  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;\n"
                "       i += (long long)blockDim.x * gridDim.x) {\n%s\n    %s\n  }\n}\n"
                % (typedefs, self.preamble, self.name, ", ".join(args), "\n".join(decls), body))


_CTYPES = {"float32": "float", "float64": "double", "int32": "int", "int64": "long long",
           "uint32": "unsigned int", "uint64": "unsigned long long", "bool": "bool"}


def _split(params):
    """[(raw, type, name)] of a CuPy parameter list."""
    out = []
    for s in params.split(","):
        words = s.split()
        if words:
            raw = words[0] == "raw"
            t, name = words[1:] if raw else words
            out.append((raw, t, name))
    return out
