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

from singa.layers.connection import BridgeDstLayer, BridgeSrcLayer


class Aborted(RuntimeError):
    """Raised in a partition whose partner partition failed while it waited on a bridge."""


class _Link:
    __slots__ = ("fwd", "bwd", "data", "grad")

    def __init__(self):
        self.fwd, self.bwd = threading.Event(), threading.Event()
        self.data = self.grad = None


class ThreadLinks:
    """The links of ``net``'s bridge pairs (installed as the bridges' ``transport``)."""

    def __init__(self, net):
        self.links = {}
        self.bridges = []
        for layer in net.layers:
            if isinstance(layer, BridgeDstLayer):
                src = net.srcs[layer.name][0]
                if not isinstance(src, BridgeSrcLayer):
                    raise RuntimeError("bridge '%s' is not fed by a kBridgeSrc (its source: '%s')" % (
                        layer.name, src.name))
                link = _Link()
                self.links[layer.name] = self.links[src.name] = link
                self.bridges += [layer, src]
        self.failed = None

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
            link.fwd.clear()
            link.bwd.clear()
            link.data = link.grad = None

    def abort(self, error):
        """A partition failed with ``error``: wake every wait (they raise Aborted)."""
        self.failed = error
        for link in self.links.values():
            link.fwd.set()
            link.bwd.set()

    def _wait(self, event, layer, what):
        event.wait()
        if self.failed is not None:
            raise Aborted("bridge '%s' stopped waiting for the %s: another partition failed (%s: %s)" % (
                layer.name, what, type(self.failed).__name__, self.failed))

    # the transport seam the bridge layers call
    def send(self, bsrc, data):
        link = self.links[bsrc.name]
        link.data = data
        link.fwd.set()

    def recv(self, bdst):
        link = self.links[bdst.name]
        self._wait(link.fwd, bdst, "blob of its kBridgeSrc")
        return link.data

    def send_grad(self, bdst, grad):
        link = self.links[bdst.name]
        link.grad = grad
        link.bwd.set()

    def recv_grad(self, bsrc):
        link = self.links[bsrc.name]
        self._wait(link.bwd, bsrc, "gradient of its kBridgeDst")
        return link.grad
