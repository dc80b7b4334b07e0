"""Compile CUDA source to PTX on a machine without a GPU: the check that the device kernels
(``singa.backends.device_kernels``, the fused updaters, the random kernels) are valid CUDA before
a GPU ever runs them.

Two compilers, the first found: ``nvcc`` on PATH, else NVRTC (the runtime compiler CuPy itself
compiles kernels with) loaded by ctypes from ``SINGA_NVRTC`` (a path to libnvrtc.so), the
``nvidia-cuda-nvrtc-cu12`` wheel (``pip install nvidia-cuda-nvrtc-cu12``, about 220 MB, so not a
CI dependency) or the system's library path. NVRTC needs no GPU and no driver to make PTX.

    from singa.testing.cuda_compile import compiler, compile_to_ptx
    if compiler():
        ptx = compile_to_ptx(source)          # raises CudaCompileError with the compiler's log
"""
import ctypes
import ctypes.util
import glob
import os
import shutil
import subprocess
import tempfile

from singa import switches
from singa.errors import SingaError

ARCH = "compute_80"          # PTX for Ampere and later (the H200 lent to this project is sm_90)


class CudaCompileError(SingaError):
    """The compiler refused the source; the message holds its log."""


def _nvrtc_candidates():
    env = switches.path("SINGA_NVRTC")
    if env:
        return [env]
    found = []
    try:
        import nvidia.cuda_nvrtc as pkg        # the PyPI wheel; a namespace package (no __file__)
        for d in getattr(pkg, "__path__", []):
            found += sorted(glob.glob(os.path.join(d, "lib", "libnvrtc.so*")))
    except ImportError:
        pass
    name = ctypes.util.find_library("nvrtc")
    if name:
        found.append(name)
    return [p for p in found if "builtins" not in os.path.basename(p) and ".alt." not in os.path.basename(p)]


def _load_nvrtc():
    for path in _nvrtc_candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if hasattr(lib, "nvrtcCreateProgram"):
            return lib
    return None


_NVRTC = []


def _nvrtc():
    if not _NVRTC:
        _NVRTC.append(_load_nvrtc())
    return _NVRTC[0]


def compiler():
    """'nvcc', 'nvrtc' or None: what ``compile_to_ptx`` would use here."""
    if shutil.which("nvcc"):
        return "nvcc"
    return "nvrtc" if _nvrtc() is not None else None


def compile_to_ptx(source, arch=ARCH, name="kernels.cu"):
    """PTX text for CUDA ``source``; CudaCompileError with the compiler's log when it is refused."""
    how = compiler()
    if how == "nvcc":
        return _with_nvcc(source, arch, name)
    if how == "nvrtc":
        return _with_nvrtc(source, arch, name)
    raise CudaCompileError("No CUDA compiler here. Expected nvcc on PATH or NVRTC's libnvrtc.so. Received: neither"
                           "\nhelp: pip install nvidia-cuda-nvrtc-cu12, or set SINGA_NVRTC=/path/to/libnvrtc.so")


def _with_nvcc(source, arch, name):
    with tempfile.TemporaryDirectory(prefix="singa-nvcc-") as d:
        cu, ptx = os.path.join(d, name), os.path.join(d, name + ".ptx")
        with open(cu, "w") as f:
            f.write(source)
        r = subprocess.run(["nvcc", "-arch=" + arch.replace("compute_", "sm_"), "--ptx", "-o", ptx, cu],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise CudaCompileError("nvcc refused %s:\n%s" % (name, r.stderr))
        with open(ptx) as f:
            return f.read()


def _with_nvrtc(source, arch, name):
    lib = _nvrtc()
    # NVRTC brings no C library headers; the kernels use only built-in types
    source = source.replace("#include <stdint.h>\n", "")
    prog = ctypes.c_void_p()
    _check(lib, lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None),
           "nvrtcCreateProgram")
    try:
        opts = [("--gpu-architecture=%s" % arch).encode()]
        arr = (ctypes.c_char_p * len(opts))(*opts)
        rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
        if rc != 0:
            raise CudaCompileError("NVRTC refused %s (%s):\n%s" % (name, _error(lib, rc), _log(lib, prog)))
        size = ctypes.c_size_t()
        _check(lib, lib.nvrtcGetPTXSize(prog, ctypes.byref(size)), "nvrtcGetPTXSize")
        buf = ctypes.create_string_buffer(size.value)
        _check(lib, lib.nvrtcGetPTX(prog, buf), "nvrtcGetPTX")
        return buf.value.decode()
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def _error(lib, rc):
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    return (lib.nvrtcGetErrorString(rc) or b"error %d" % rc).decode()


def _log(lib, prog):
    size = ctypes.c_size_t()
    if lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)) != 0:
        return "(no log)"
    buf = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, buf)
    return buf.value.decode(errors="replace")


def _check(lib, rc, what):
    if rc != 0:
        raise CudaCompileError("%s failed: %s" % (what, _error(lib, rc)))


__all__ = ["ARCH", "CudaCompileError", "compile_to_ptx", "compiler"]
