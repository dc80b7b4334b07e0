"""The one place that decides NumPy or CuPy.

A Backend is bound to a device: ``None`` (or -1) is the CPU and NumPy, an integer GPU id is
CuPy on that device. Layers, losses and updaters take ``backend.xp`` and never import
numpy for math themselves; host-side work converts explicitly with ``to_host``.
"""
import contextlib

import numpy

from singa import switches
from singa.errors import ConfigError


class Backend:
    """Array module plus device for one worker."""

    def __init__(self, device=None):
        self.device = None if device is None or device == -1 else int(device)
        if self.device is None:
            self.xp = numpy
            self.name = "numpy"
        elif switches.integer("SINGA_GPU_STANDIN", minimum=0):
            # the strict CuPy stand-in (singa.testing.standin): proves on a CPU that nothing mixes
            # host and device arrays
            from singa.testing import standin
            n = standin.device_count()
            if not 0 <= self.device < n:
                raise ConfigError("Invalid value for `device`. Expected a GPU id in [0, %d) (SINGA_GPU_STANDIN=%d "
                                  "stand-in devices). Received: %r" % (n, n, device))
            self.xp = standin
            self.name = "standin"
        else:
            try:
                import cupy
            except ImportError:
                raise ConfigError(
                    "Invalid value for `device`. Expected a GPU id with CuPy installed. "
                    "Received: %r, but CuPy is not installed.\nhelp: pip install 'singa[gpu]' on "
                    "a machine with an NVIDIA GPU, or drop `device=` to train on the CPU" % device) from None
            n = cupy.cuda.runtime.getDeviceCount()
            if not 0 <= self.device < n:
                raise ConfigError("Invalid value for `device`. Expected a GPU id in [0, %d). Received: %r"
                                  % (n, device))
            self.xp = cupy
            self.name = "cupy"

    def __repr__(self):
        return "Backend(%s%s)" % (self.name, "" if self.device is None else ":%d" % self.device)

    def use(self):
        """Make this backend's GPU the current device of the calling thread (a worker binds its
        device before allocating anything); nothing to do on the CPU."""
        if self.device is not None:
            self.xp.cuda.Device(self.device).use()
        return self

    def bound(self):
        """A context in which this backend's GPU is the calling thread's current device (nothing on
        the CPU): arrays made inside live on it."""
        if self.device is None:
            return contextlib.nullcontext()
        return self.xp.cuda.Device(self.device)

    def asarray(self, a, dtype=None):
        """Move/convert host data onto this backend (float32 unless told)."""
        if self.device is not None:
            with self.xp.cuda.Device(self.device):
                return self.xp.asarray(a, dtype=dtype or numpy.float32)
        return numpy.asarray(a, dtype=dtype or numpy.float32)

    def to_host(self, a):
        """A NumPy array on the host (a no-op for the NumPy backend)."""
        if self.device is not None and not isinstance(a, numpy.ndarray):
            return a.get()
        return a


def get_array_module(*arrays):
    """numpy or cupy, whichever the arrays live on (like chainer.backend.get_array_module)."""
    for a in arrays:
        mod = type(a).__module__
        if mod.startswith("cupy"):
            import cupy
            return cupy
        if mod == "singa.testing.standin":
            from singa.testing import standin
            return standin
    return numpy


CPU = Backend(None)


def gpu_count():
    """GPUs usable by CuPy on this machine (0 without CuPy or a driver)."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:         # not installed, no driver, no device
        return 0
