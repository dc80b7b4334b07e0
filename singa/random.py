"""Named random streams derived from one seed, and draws made on the arrays' own device.

Every random draw (initialisation, dropout masks, CD sampling, shuffling, random_skip)
comes from ``RandomStreams(seed).stream(name)``: the same seed and name give the same
numbers, whatever else was drawn before, so runs are reproducible bit for bit on CPU.

Arrays of random numbers in a training step (dropout masks, Gibbs samples) are made where the
layer's arrays live, by ``uniform`` / ``normal``: a counter-based generator (a 32-bit integer hash
of a key and the element's index), computed with NumPy's integer operations on the host and by one
fused kernel on a device (``UNIFORM``, ``NORMAL``: the same integer hash in CUDA C, so uniform numbers
are bit-identical on NumPy and CuPy) and a GPU never waits for the host. Each call takes one 32-bit key
from the layer's host stream, so the stream's state (checkpointed) is still the whole state.
(Arrays over 2**32 elements would repeat words; no layer draws that many at once.)
"""
import zlib

import numpy

from singa.backends.fused import Kernel

DEFAULT_SEED = 0


def _name_key(name):
    return zlib.crc32(name.encode("utf-8"))


class RandomStreams:
    """A family of independent numpy Generators, one per name, all from ``seed``."""

    def __init__(self, seed=DEFAULT_SEED):
        if seed is None:
            seed = DEFAULT_SEED
        if not isinstance(seed, (int, numpy.integer)) or seed < 0:
            raise ValueError("Invalid value for `seed`. Expected a non-negative integer. Received: %r" % (seed,))
        self.seed = int(seed)
        self._streams = {}

    def stream(self, name):
        """The Generator named ``name`` (created on first use, then the same object)."""
        g = self._streams.get(name)
        if g is None:
            ss = numpy.random.SeedSequence(entropy=self.seed, spawn_key=(_name_key(name),))
            g = self._streams[name] = numpy.random.Generator(numpy.random.PCG64(ss))
        return g

    def state(self):
        """Bit-generator states of all streams used so far (for checkpoints)."""
        return {k: g.bit_generator.state for k, g in self._streams.items()}

    def set_state(self, state):
        for k, s in state.items():
            self.stream(k).bit_generator.state = s


# A 32-bit integer hash ("lowbias32", C. Wellons 2018: bijective, full avalanche) of
# key + index * golden gamma; 32-bit words halve the memory traffic of a 64-bit mixer, which is what
# the NumPy side pays for (each operation is one pass over the array).
_GAMMA = numpy.uint32(0x9E3779B9)
_MIX1 = numpy.uint32(0x7FEB352D)
_MIX2 = numpy.uint32(0x846CA68B)
_SHIFTS = tuple(numpy.uint32(k) for k in (16, 15, 16))
_IOTA = {}      # (module, n) -> index * gamma, made once per size


def _bits(xp, rng, n):
    """n 32-bit random words on xp's device, from one key drawn from host Generator ``rng``."""
    key = draw_key(rng)
    iota = _IOTA.get((xp.__name__, n))
    if iota is None:
        iota = xp.arange(n, dtype=xp.uint32)
        xp.multiply(iota, _GAMMA, out=iota)
        if len(_IOTA) > 64:
            _IOTA.clear()
        _IOTA[(xp.__name__, n)] = iota
    z = xp.add(iota, key)
    t = xp.empty_like(z)
    for shift, mult in zip(_SHIFTS, (_MIX1, _MIX2, None)):
        xp.right_shift(z, shift, out=t)
        xp.bitwise_xor(z, t, out=z)
        if mult is not None:
            xp.multiply(z, mult, out=z)
    return z


# The same hash and bits-to-float conversion in CUDA C, for the device kernels (constants as above).
HASH_PREAMBLE = """
__device__ __forceinline__ unsigned int singa_hash(long long i, unsigned int key) {
  unsigned int z = (unsigned int)i * 0x9E3779B9u + key;
  z ^= z >> 16; z *= 0x7FEB352Du;
  z ^= z >> 15; z *= 0x846CA68Bu;
  z ^= z >> 16;
  return z;
}
// [0, 1): 24 random bits in a float, 32 in a double (exact conversions)
__device__ __forceinline__ float singa_unit(unsigned int z, float) { return (float)(z >> 8) * 5.9604644775390625e-08f; }
__device__ __forceinline__ double singa_unit(unsigned int z, double) { return (double)z * 2.3283064365386963e-10; }
"""
UNIFORM = Kernel("uint32 key", "T u", "u = singa_unit(singa_hash(i, key), (T)0);", "singa_uniform",
                 scalars={"key"}, preamble=HASH_PREAMBLE)
# Box-Muller on two uniform draws, as ``normal`` does on NumPy
NORMAL = Kernel("uint32 key1, uint32 key2", "T x",
                "const T u1 = singa_unit(singa_hash(i, key1), (T)0);\n"
                "const T u2 = singa_unit(singa_hash(i, key2), (T)0);\n"
                "x = sqrt((T)-2 * log((T)1 - u1)) * cos((T)6.283185307179586 * u2);",
                "singa_normal", scalars={"key1", "key2"}, preamble=HASH_PREAMBLE)


def draw_key(rng):
    """One 32-bit key from the host Generator ``rng`` (what each device draw consumes)."""
    return numpy.uint32(rng.integers(0, 2 ** 32, dtype=numpy.int64))


def _device_draw(xp, kernel, keys, shape, dtype, out):
    """``kernel`` writing its draws into ``out`` (any layout: the kernel follows its strides), or
    into a new array when there is no ``out`` or it has another dtype."""
    dst = out if out is not None and out.dtype == dtype else xp.empty(shape, dtype=dtype)
    kernel(xp, *keys, dst)
    if out is not None and dst is not out:
        out[...] = dst
        return out
    return dst


def uniform(xp, rng, shape, dtype=numpy.float32, out=None):
    """Uniform numbers in [0, 1) of ``shape`` on xp's device (24 random bits for float32, 32 for
    float64), the same on NumPy and CuPy for the same ``rng`` state."""
    dtype = numpy.dtype(dtype)
    if xp is not numpy:
        return _device_draw(xp, UNIFORM, [draw_key(rng)], shape, dtype, out)
    n = int(numpy.prod(shape))
    z = _bits(xp, rng, n)
    if dtype == numpy.float32:
        xp.right_shift(z, numpy.uint32(8), out=z)
        scale = 2.0 ** -24
    else:
        scale = 2.0 ** -32
    u = z.astype(dtype)
    u *= dtype.type(scale)
    u = u.reshape(shape)
    if out is not None:
        out[...] = u
        return out
    return u


def normal(xp, rng, shape, dtype=numpy.float32, out=None):
    """Standard normal numbers of ``shape`` on xp's device (Box-Muller on two uniform draws)."""
    dtype = numpy.dtype(dtype)
    if xp is not numpy:
        return _device_draw(xp, NORMAL, [draw_key(rng), draw_key(rng)], shape, dtype, out)
    u1 = uniform(xp, rng, shape, dtype)
    u2 = uniform(xp, rng, shape, dtype)
    xp.subtract(dtype.type(1), u1, out=u1)                # (0, 1]: log is finite
    xp.log(u1, out=u1)
    xp.multiply(u1, dtype.type(-2), out=u1)
    xp.sqrt(u1, out=u1)
    xp.multiply(u2, dtype.type(2 * numpy.pi), out=u2)
    xp.cos(u2, out=u2)
    xp.multiply(u1, u2, out=u1)
    if out is not None:
        out[...] = u1
        return out
    return u1
