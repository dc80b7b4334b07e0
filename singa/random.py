"""Named random streams derived from one seed, and draws made on the arrays' own device.

Every random draw (initialisation, dropout masks, CD sampling, shuffling, random_skip)
comes from ``RandomStreams(seed).stream(name)``: the same seed and name give the same
numbers, whatever else was drawn before, so runs are reproducible bit for bit on CPU.

Arrays of random numbers in a training step (dropout masks, Gibbs samples) are made where the
layer's arrays live, by ``uniform`` / ``normal``: a counter-based generator (a 32-bit integer hash
of a key and the element's index) computed with the array module's own integer operations, so NumPy and
CuPy produce the same numbers and a GPU never waits for the host. Each call takes one 32-bit key
from the layer's host stream, so the stream's state (checkpointed) is still the whole state.
(Arrays over 2**32 elements would repeat words; no layer draws that many at once.)
"""
import zlib

import numpy

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
    key = numpy.uint32(rng.integers(0, 2 ** 32, dtype=numpy.int64))
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


def uniform(xp, rng, shape, dtype=numpy.float32, out=None):
    """Uniform numbers in [0, 1) of ``shape`` on xp's device (24 random bits for float32, 32 for
    float64), the same on NumPy and CuPy for the same ``rng`` state."""
    dtype = numpy.dtype(dtype)
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
