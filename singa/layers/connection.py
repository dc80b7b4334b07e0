"""SINGA's connection layers (SINGA-V0-REST.md 5.7): kSplit, kSlice, kConcate, kBridgeSrc and
kBridgeDst. The partitioner (singa.partition) inserts them where partitions of a net meet; a
job.conf may also list kSplit, kSlice and kConcate explicitly.

* kSplit: its output is its source's array; every consumer reads it. SINGA kept one gradient
  slot per consumer and summed them; NeuralNet sums the gradients of every fan-out, so here the
  backward hands the sum on.
* kSlice: ``num_slices`` equal pieces of its source along ``slice_dim`` (numpy.split), one output
  slot each; a consumer reads the slot NeuralNet assigned it (``Slot``). Backward writes each
  slot's gradient back into its place (zeros for a slot nobody sent one for).
* kConcate: its sources joined along ``concate_dim``, in source order; backward gives each
  source its block of the gradient.
* kBridgeSrc / kBridgeDst: the two ends of a link between partitions on different workers. In
  one net (every partition in one process, in order) a bridge passes its blob on and the
  gradient back; a transport, when installed (``bridge.transport``), moves them between workers.
"""
from singa.errors import ConfigError, invalid
from singa.layers.base import Layer, register, scratch, type_name
from singa.proto import job_pb2


def _where(layer):
    return "layer '%s' (%s)" % (layer.name, type_name(layer.conf.type))


def _dim(layer, field, value, ndim, shape):
    if not 0 <= value < ndim:
        raise invalid("%s of %s" % (field, _where(layer)), "an axis of its source's shape %s (0 to %d)"
                      % (shape, ndim - 1), value, hint="0 splits or joins by the batch, 1 by the features")
    return value


def _pieces(xp, a, dim, n):
    """a's n equal pieces along ``dim``, each C-contiguous (views when dim is 0)."""
    size = a.shape[dim] // n
    out = []
    for k in range(n):
        index = (slice(None),) * dim + (slice(k * size, (k + 1) * size),)
        piece = a[index]
        out.append(piece if dim == 0 else xp.ascontiguousarray(piece))
    return out


class _Through(Layer):
    """One source, the same array out (SINGA aliased the blob); the gradient passes back."""

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        self.out_shape = tuple(src_shapes[0])
        self.grad_free = all(getattr(s, "is_data", False) or getattr(s, "grad_free", False)
                             for s in getattr(self, "src_layers", ()) or ())
        return self.out_shape

    def forward(self, flag, srcs):
        self.data = srcs[0].data
        self.aux = getattr(srcs[0], "aux", None)
        return self.data

    def backward(self, flag, srcs, grad):
        return [grad]


@register(job_pb2.kSplit)
class SplitLayer(_Through):
    def setup(self, src_shapes):
        n = self.conf.split_conf.num_splits
        if n < 1:
            raise invalid("split_conf.num_splits of %s" % _where(self), "a number of consumers >= 1", n,
                          hint="`split_conf { num_splits: 2 }`: as many as the layers that read it")
        return super().setup(src_shapes)


class _Bridge(_Through):
    transport = None

    @property
    def pulls_gradient(self):
        """With a transport both ends take part in every backward pass (a gradient or None goes
        across), so neither waits for a message the other never sends."""
        return self.transport is not None and not self.grad_free


@register(job_pb2.kBridgeSrc)
class BridgeSrcLayer(_Bridge):
    """The sending end: its source's blob goes to the paired kBridgeDst (``transport.send``), and
    the gradient comes back from it (``transport.recv_grad``)."""

    def forward(self, flag, srcs):
        super().forward(flag, srcs)
        if self.transport is not None:
            self.transport.send(self, self.data)
        return self.data

    def backward(self, flag, srcs, grad):
        if self.transport is not None:
            grad = self.transport.recv_grad(self)
        return [grad]


@register(job_pb2.kBridgeDst)
class BridgeDstLayer(_Bridge):
    """The receiving end: the paired kBridgeSrc's blob (its source in one net, else what
    ``transport.recv`` brings), and its gradient sent back."""

    def setup(self, src_shapes):
        if not src_shapes and self.transport is not None:
            self.out_shape = tuple(self.transport.shape(self))
            return self.out_shape
        return super().setup(src_shapes)

    def forward(self, flag, srcs):
        if self.transport is not None:
            self.data = self.transport.recv(self)
            return self.data
        return super().forward(flag, srcs)

    def backward(self, flag, srcs, grad):
        if self.transport is not None:
            self.transport.send_grad(self, grad)
            return [None] * len(srcs)     # the gradient went across, not through the net
        return [grad]


@register(job_pb2.kSlice)
class SliceLayer(Layer):
    """``slots`` output pieces; ``datavec[k]`` is piece k (NeuralNet hands consumer k a Slot)."""

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        shape = tuple(int(s) for s in src_shapes[0])
        sc = self.conf.slice_conf
        n = sc.num_slices
        if n < 1:
            raise invalid("slice_conf.num_slices of %s" % _where(self), "a number of pieces >= 1", n,
                          hint="`slice_conf { slice_dim: 0 num_slices: 2 }`")
        d = _dim(self, "slice_conf.slice_dim", sc.slice_dim, len(shape), shape)
        if shape[d] % n:
            raise ConfigError("Invalid value for `slice_conf.num_slices` of %s. Expected a number that divides its "
                              "source's size %d along slice_dim %d (shape %s). Received: %d.\nhelp: use a divisor "
                              "of %d" % (_where(self), shape[d], d, shape, n, shape[d]))
        self.slice_dim, self.slots, self.src_shape = d, n, shape
        self.out_shape = shape[:d] + (shape[d] // n,) + shape[d + 1:]
        self.slot_shapes = [self.out_shape] * n
        self.grad_free = all(getattr(s, "is_data", False) or getattr(s, "grad_free", False)
                             for s in getattr(self, "src_layers", ()) or ())
        self.datavec = None
        return self.out_shape

    def forward(self, flag, srcs):
        x = srcs[0].data
        if tuple(x.shape) != self.src_shape:
            raise ConfigError("Invalid input of %s. Expected an array of shape %s (set up so). Received: %s from "
                              "'%s'" % (_where(self), self.src_shape, tuple(x.shape), getattr(srcs[0], "name", "?")))
        self.datavec = _pieces(self.xp, x, self.slice_dim, self.slots)
        aux = getattr(srcs[0], "aux", None)
        # labels travel with their rows when the batch is sliced
        self.auxvec = (_pieces(self.xp, aux, 0, self.slots) if aux is not None and self.slice_dim == 0
                       else [aux] * self.slots)
        self.data, self.aux = self.datavec[0], self.auxvec[0]
        return self.data

    def backward(self, flag, srcs, grad):
        """``grad``: one gradient per slot (None for a slot without one)."""
        dx = scratch(self, "dx", self.src_shape)
        size = self.out_shape[self.slice_dim]
        for k, g in enumerate(grad):
            index = (slice(None),) * self.slice_dim + (slice(k * size, (k + 1) * size),)
            if g is None:
                dx[index] = 0
            else:
                dx[index] = g.reshape(self.out_shape)
        return [dx]


@register(job_pb2.kConcate)
class ConcateLayer(Layer):
    def setup(self, src_shapes):
        cc = self.conf.concate_conf
        shapes = [tuple(int(s) for s in sh) for sh in src_shapes]
        if not shapes:
            raise invalid("srclayers of %s" % _where(self), "at least one source", 0)
        if cc.num_concates != len(shapes) and cc.num_concates != 1:
            raise invalid("concate_conf.num_concates of %s" % _where(self), "its number of sources (%d)" % len(shapes),
                          cc.num_concates, hint="`concate_conf { num_concates: %d }`, or leave it out" % len(shapes))
        d = _dim(self, "concate_conf.concate_dim", cc.concate_dim, len(shapes[0]), shapes[0])
        for s in shapes[1:]:
            if len(s) != len(shapes[0]) or s[:d] + s[d + 1:] != shapes[0][:d] + shapes[0][d + 1:]:
                raise ConfigError("Invalid value for `srclayers` of %s. Expected sources whose shapes agree except "
                                  "along concate_dim %d. Received: shapes %s.\nhelp: join by the axis they differ in "
                                  "(0: the batch, 1: the features)" % (_where(self), d, shapes))
        self.concate_dim, self.src_shapes = d, shapes
        self.sizes = [s[d] for s in shapes]
        self.out_shape = shapes[0][:d] + (sum(self.sizes),) + shapes[0][d + 1:]
        self.grad_free = all(getattr(s, "is_data", False) or getattr(s, "grad_free", False)
                             for s in getattr(self, "src_layers", ()) or ())
        return self.out_shape

    def _blocks(self):
        lo = 0
        for size in self.sizes:
            yield (slice(None),) * self.concate_dim + (slice(lo, lo + size),)
            lo += size

    def forward(self, flag, srcs):
        y = scratch(self, "y", self.out_shape)
        for index, s, shape in zip(self._blocks(), srcs, self.src_shapes):
            if tuple(s.data.shape) != shape:
                raise ConfigError("Invalid input of %s. Expected an array of shape %s from '%s' (set up so). "
                                  "Received: %s" % (_where(self), shape, s.name, tuple(s.data.shape)))
            y[index] = s.data
        auxes = [getattr(s, "aux", None) for s in srcs]
        if self.concate_dim == 0 and all(a is not None for a in auxes):
            self.aux = self.xp.concatenate(auxes)
        else:
            self.aux = auxes[0]
        self.data = y
        return y

    def backward(self, flag, srcs, grad):
        out = []
        for index, s in zip(self._blocks(), srcs):
            piece = grad[index]
            out.append(piece if self.concate_dim == 0 else self.xp.ascontiguousarray(piece))
        return out


def slot_count(layer):
    """How many output slots ``layer`` has (kSlice: num_slices), 0 for a layer with one output."""
    return getattr(layer, "slots", 0) or 0


class Slot:
    """What a consumer of a multi-slot layer (kSlice) reads as its source: slot ``k`` of ``layer``."""
    is_data = False
    is_loss = False
    has_metrics = False
    params = ()

    def __init__(self, layer, k):
        self.layer, self.k = layer, int(k)
        self.name = layer.name
        self.out_shape = layer.slot_shapes[self.k]

    @property
    def grad_free(self):
        return self.layer.grad_free

    @property
    def data(self):
        return self.layer.datavec[self.k]

    @property
    def aux(self):
        av = getattr(self.layer, "auxvec", None)
        return None if av is None else av[self.k]

    def __repr__(self):
        return "Slot(%r, %d)" % (self.name, self.k)


def check_slots(layer, consumers):
    """A ConfigError unless ``consumers`` (names) fit in ``layer``'s slots."""
    if len(consumers) > layer.slots:
        raise ConfigError("Invalid value for `slice_conf.num_slices` of %s. Expected one slot per layer that reads "
                          "it (%d: %s). Received: %d.\nhelp: `slice_conf { num_slices: %d }`" % (
                              _where(layer), len(consumers), ", ".join(consumers), layer.slots, len(consumers)))


__all__ = ["SplitLayer", "SliceLayer", "ConcateLayer", "BridgeSrcLayer", "BridgeDstLayer", "Slot", "slot_count",
           "check_slots"]
