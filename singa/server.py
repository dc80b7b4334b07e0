"""Server: the parameter slices one server of a server group owns, and the updates applied to
them as worker groups push gradients (SINGA's Server; SINGA-V0.md 3.4).

Plain NumPy, no MPI: singa.cluster.stub moves the messages. Values are addressed in the *flat
layout*: the net's owner params, in net order, end to end. Slicing deals consecutive slices to
consecutive servers (``Topology.slices``), so a server's slices are one range [lo, hi) of that
layout, and so are the slices within it that each server group masters.

Several server groups (Distributed Hogwild) each hold a full replica. A server whose group is not
a slice's master sends ``delta = current - last_synced`` of those slices to the master every
``sync_freq`` updates; the master adds it and answers with its value ``m``; the sender then keeps
its own updates made since it sent (``current = m + (current - sent)``) and records ``m`` as
synced. At the end each non-master sends its last delta (a flush) and the masters hold the job's
final values: every update of every group is in them exactly once.
"""
import numpy


class Server:
    """Server ``sid`` of server group ``group``: values and updater state for flat range [lo, hi).

    ``params``: the owner params (net order; for their offsets, lr_scale and wd_scale).
    ``masters``: server group -> the flat range [a, b) (within [lo, hi)) it masters (empty ranges
    left out). ``nworker_groups``: how many worker groups push here (they each say when done)."""

    def __init__(self, group, sid, lo, hi, params, updater, masters, nworker_groups=1, sync_freq=1):
        self.group, self.sid, self.lo, self.hi = group, sid, int(lo), int(hi)
        self.updater = updater
        self.sync_freq = max(1, int(sync_freq))
        dtype = params[0].dtype if params else numpy.float32
        self.values = numpy.zeros(self.hi - self.lo, dtype=dtype)
        # the pieces of the params in [lo, hi): (start in values, end, lr_scale, wd_scale, state)
        self.pieces = []
        off = 0
        for p in params:
            a, b = max(off, self.lo), min(off + p.size, self.hi)
            if a < b:
                v = self.values[a - self.lo:b - self.lo]
                self.pieces.append((a - self.lo, b - self.lo, p.lr_scale, p.wd_scale,
                                    updater.init_state(v) if updater is not None else {}))
            off += p.size
        self.masters = {g: (int(a), int(b)) for g, (a, b) in masters.items() if b > a}
        mine = self.masters.get(group)
        self.mastered = mine if mine is not None else (self.lo, self.lo)
        # non-master server groups' syncs: master group -> {"synced", "count", "sent"}
        self.syncs = {g: {"synced": None, "count": 0, "sent": None} for g in self.masters if g != group}
        self.nworker_groups = int(nworker_groups)
        self.updates = 0             # gradients applied (pushes)
        self.pushes = {}             # worker group -> pushes received
        self.done_groups = set()
        self.deltas = 0              # deltas absorbed as a master (syncs and flushes)
        self.flushes = set()         # server groups whose final delta arrived

    def view(self, a, b):
        """values of flat range [a, b)."""
        return self.values[a - self.lo:b - self.lo]

    def load(self, flat):
        """Take the values of [lo, hi) from the whole flat layout ``flat``; the syncs start there."""
        self.values[...] = flat[self.lo:self.hi]
        for g, s in self.syncs.items():
            s["synced"] = self.view(*self.masters[g]).copy()

    def update(self, step, grad, worker_group=0):
        """Apply one gradient of [lo, hi) (the pushing group's averaged gradient) at ``step``.
        ``grad`` is used as scratch."""
        if grad.shape != self.values.shape:
            raise ValueError("server (%d, %d) owns %d values but a gradient of %d arrived"
                             % (self.group, self.sid, self.values.size, grad.size))
        for a, b, lr_scale, wd_scale, state in self.pieces:
            self.updater.apply(step, self.values[a:b], grad[a:b], state, lr_scale=lr_scale, wd_scale=wd_scale)
        self.updates += 1
        self.pushes[worker_group] = self.pushes.get(worker_group, 0) + 1
        for s in self.syncs.values():
            s["count"] += 1

    def done(self, worker_group):
        self.done_groups.add(worker_group)

    @property
    def workers_done(self):
        return len(self.done_groups) >= self.nworker_groups

    # -- Distributed Hogwild: this server's side as a non-master ---------------------------
    def sync_due(self, master, final=False):
        s = self.syncs[master]
        return s["sent"] is None and (final or s["count"] >= self.sync_freq)

    def delta_for(self, master):
        """The delta to send to ``master``'s server (and remember what was sent)."""
        s = self.syncs[master]
        cur = self.view(*self.masters[master])
        s["sent"] = cur.copy()
        s["count"] = 0
        return s["sent"] - s["synced"]

    def synced(self, master, master_values):
        """The master's answer: keep the updates made since the delta was sent."""
        s = self.syncs[master]
        cur = self.view(*self.masters[master])
        cur += master_values - s["sent"]
        s["synced"], s["sent"] = master_values.copy(), None

    # -- as a master --------------------------------------------------------------------
    def absorb(self, delta, from_group, final=False):
        """A non-master server group's delta for the slices this server masters; returns them."""
        cur = self.view(*self.mastered)
        if delta.shape != cur.shape:
            raise ValueError("server (%d, %d) masters %d values but a delta of %d arrived from group %d"
                             % (self.group, self.sid, cur.size, delta.size, from_group))
        cur += delta
        self.deltas += 1
        if final:
            self.flushes.add(from_group)
        return cur


def flat_offsets(params):
    """Start of each param in the flat layout, and the total size."""
    offs, off = [], 0
    for p in params:
        offs.append(off)
        off += p.size
    return offs, off
