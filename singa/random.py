"""Named random streams derived from one seed.

Every random draw (initialisation, dropout masks, CD sampling, shuffling, random_skip)
comes from ``RandomStreams(seed).stream(name)``: the same seed and name give the same
numbers, whatever else was drawn before, so runs are reproducible bit for bit on CPU.
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
