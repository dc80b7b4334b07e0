"""Moving blobs and gradients across the bridges of a partitioned net (SINGA's kBridgeSrc /
kBridgeDst, SINGA-V0-REST.md 5.8), when its partitions run on the threads of one process.

Each bridge pair is a link: kBridgeSrc's forward puts its blob there and kBridgeDst's forward
waits for it; kBridgeDst's backward puts the gradient there and kBridgeSrc's backward waits for
it. Every partition runs its layers in the net's one order, so a wait is always for a layer
earlier in that order, which its partition reaches without waiting on this one: no deadlock
(SINGA's argument). In one process the blob is handed over, not copied. A partition that fails
wakes every waiting partition (``abort``), so no failure leaves a thread waiting.
"""
import threading

import numpy

from singa.layers.connection import BridgeDstLayer, BridgeSrcLayer


class Aborted(RuntimeError):
    """Raised in a partition whose partner partition failed while it waited on a bridge."""


class _Slot:
    """One direction of a link: the blob (forward) or the gradient (backward), and who sent it."""
    __slots__ = ("event", "value", "sender")

    def __init__(self):
        self.event, self.value, self.sender = threading.Event(), None, None


class _Link:
    __slots__ = ("fwd", "bwd")

    def __init__(self):
        self.fwd, self.bwd = _Slot(), _Slot()


class ThreadLinks:
    """The links of a partitioned net's bridge pairs (installed as the bridges' ``transport``).
    ``nets``: the net, or one copy of it per partition (each on its own device); partition k's
    bridges are those of ``nets[k]``, and a blob or gradient crossing to another device is copied
    there through the host."""

    def __init__(self, nets):
        nets = nets if isinstance(nets, (list, tuple)) else [nets]
        net = nets[0]
        self.links = {}
        self.bridges = []
        self.backends = {}       # bridge name -> the backend of the net holding it
        on = lambda k: nets[k] if len(nets) > 1 else net
        for layer in net.layers:
            if isinstance(layer, BridgeDstLayer):
                src = net.srcs[layer.name][0]
                if not isinstance(src, BridgeSrcLayer):
                    raise RuntimeError("bridge '%s' is not fed by a kBridgeSrc (its source: '%s')" % (
                        layer.name, src.name))
                link = _Link()
                self.links[layer.name] = self.links[src.name] = link
                dst_net, src_net = on(layer.conf.partition_id), on(src.conf.partition_id)
                self.bridges += [dst_net.by_name[layer.name], src_net.by_name[src.name]]
                self.backends[layer.name], self.backends[src.name] = dst_net.backend, src_net.backend
        self.failed = None

    def _to(self, name, a, sender):
        """``a`` (from the bridge ``sender``) on the device of bridge ``name``."""
        here, there = self.backends[name], self.backends[sender]
        if a is None or here.device == there.device:
            return a
        return here.asarray(there.to_host(a))

    def install(self):
        for b in self.bridges:
            b.transport = self

    def remove(self):
        for b in self.bridges:
            b.transport = None

    def reset(self):
        """Before a step: no blob or gradient is there yet."""
        self.failed = None
        for link in self.links.values():
            for slot in (link.fwd, link.bwd):
                slot.event.clear()
                slot.value = slot.sender = None

    def finish(self):
        """After a step (nothing is in flight between threads)."""

    sent = 0      # nothing crosses a process boundary

    def abort(self, error):
        """A partition failed with ``error``: wake every wait (they raise Aborted)."""
        self.failed = error
        for link in self.links.values():
            link.fwd.event.set()
            link.bwd.event.set()

    def _put(self, layer, direction, value):
        slot = getattr(self.links[layer.name], direction)
        slot.value, slot.sender = value, layer.name
        slot.event.set()

    def _take(self, layer, direction, what):
        slot = getattr(self.links[layer.name], direction)
        slot.event.wait()
        if self.failed is not None:
            raise Aborted("bridge '%s' stopped waiting for the %s: another partition failed (%s: %s)" % (
                layer.name, what, type(self.failed).__name__, self.failed))
        return self._to(layer.name, slot.value, slot.sender)

    # the transport seam the bridge layers call
    def send(self, bsrc, data):
        self._put(bsrc, "fwd", data)

    def recv(self, bdst):
        return self._take(bdst, "fwd", "blob of its kBridgeSrc")

    def send_grad(self, bdst, grad):
        self._put(bdst, "bwd", grad)

    def recv_grad(self, bsrc):
        return self._take(bsrc, "bwd", "gradient of its kBridgeDst")


class MPILinks:
    """The bridges of a partitioned net whose partition k runs on rank k of ``comm`` (one worker
    per process): blobs and gradients go as buffer messages (Isend, then a blocking Recv on the
    other side, waited on through the watchdog), tagged by the bridge pair, on a communicator of
    their own. Device arrays cross through host buffers. ``sent``: bytes this rank sent this step."""

    def __init__(self, net, comm):
        self.net, self.comm = net, comm.dup()
        self.ends = {}         # local bridge layer name -> (peer rank, tag)
        self.bridges = []
        rank = comm.rank
        pairs = [(net.srcs[l.name][0], l) for l in net.layers if isinstance(l, BridgeDstLayer)]
        for k, (bsrc, bdst) in enumerate(pairs):
            i, j = bsrc.conf.partition_id, bdst.conf.partition_id
            if i == rank:
                self.ends[bsrc.name] = (j, 2 * k)
                self.bridges.append(bsrc)
            if j == rank:
                self.ends[bdst.name] = (i, 2 * k)
                self.bridges.append(bdst)
        self.buffers = {}
        self.requests = []
        self.sent = 0

    install = ThreadLinks.install
    remove = ThreadLinks.remove

    def reset(self):
        self.requests, self.sent = [], 0

    def abort(self, error):
        """Nothing waits here for this process's own partition: the error ends the job (MPI Abort)."""

    def finish(self):
        """Wait until every message this rank sent this step is out (their buffers may be reused)."""
        if self.requests:
            with self.comm.waiting("the bridges' sends of this step"):
                self.comm.MPI.Request.Waitall([r for r, _ in self.requests])
        self.requests = []

    def _host(self, layer, a, shape):
        if a is None:       # no gradient reached this end: zeros keep the pair in step
            a = numpy.zeros(shape, dtype=self.net.dtype)
        return numpy.ascontiguousarray(self.net.backend.to_host(a), dtype=self.net.dtype)

    def _send(self, layer, a, tag_offset):
        peer, tag = self.ends[layer.name]
        buf = self._host(layer, a, layer.out_shape)
        self.requests.append((self.comm.isend(buf, peer, tag + tag_offset), buf))
        self.sent += buf.nbytes

    def _recv(self, layer, tag_offset, what):
        peer, tag = self.ends[layer.name]
        key = (layer.name, tag_offset)
        buf = self.buffers.get(key)
        if buf is None:
            buf = self.buffers[key] = numpy.empty(layer.out_shape, dtype=self.net.dtype)
        with self.comm.waiting("the %s of bridge '%s' from rank %d" % (what, layer.name, peer), peers=[peer]):
            self.comm.recv(buf, peer, tag + tag_offset)
        return self.net.backend.asarray(buf) if self.net.backend.xp is not numpy else buf

    def send(self, bsrc, data):
        self._send(bsrc, data, 0)

    def recv(self, bdst):
        return self._recv(bdst, 0, "blob")

    def send_grad(self, bdst, grad):
        self._send(bdst, grad, 1)

    def recv_grad(self, bsrc):
        return self._recv(bsrc, 1, "gradient")
