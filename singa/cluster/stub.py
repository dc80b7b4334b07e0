"""Stub: the messages between worker groups and parameter servers over MPI (SINGA's Stub, the
main thread of each process that routed messages between its workers, its servers and the other
processes). Used when the cluster has parameter servers of its own: several worker groups
(Downpour, Distributed Hogwild) or servers in separate processes (Sandblaster).

* A worker group's leader (worker 0) pushes the group's averaged gradient to every server of its
  server group and receives each server's fresh values (one round trip per server and step); the
  other workers of the group get them by a broadcast within the group.
* A server applies each gradient when it arrives (``Server.update``), so groups see each other's
  updates without waiting for each other. Non-master server groups sync with the masters every
  ``sync_freq`` updates (see singa.server).
* No thread is added: every process answers the messages for its servers whenever it waits
  (for a reply, a group collective, the end of the job) and between training steps. Every wait
  goes through ``wait_until``, which serves while it waits, so two processes waiting on each
  other's servers cannot deadlock. Messages are buffers (uppercase mpi4py): a small int64 header
  and the values; receives are non-blocking, so a server never blocks on a slow sender.
* The end: each group leader sends DONE to its servers; a server whose groups are all done sends
  its last delta to the masters (Hogwild) and, as a master, its values to rank 0 once every other
  group's last delta is in. Rank 0 then holds the job's final values; nothing is in flight when
  the processes leave (a barrier, entered only when all of a process's messages are done).
"""
import contextlib
import time

import numpy

from singa.errors import ConfigError
from singa.server import Server, flat_offsets

# tags: headers and their data, then replies offset by the answering server's global index
# (group * nservers_per_group + id), so several servers of one process answer distinctly
HEAD, DATA = 1, 2
VALUES, SYNCED, FINAL = 1 << 12, 2 << 12, 3 << 12
MAX_SERVERS = 1 << 12
# header kinds
PUSH, DONE, SYNC, FLUSH = 1, 2, 3, 4


class Stub:
    """The parameter-server side of one process: its servers and the routing of messages.

    ``comm``: the world (singa.cluster.mpi.Comm), or None when every role is in this process.
    ``params``: the train net's owner params (the flat layout)."""

    def __init__(self, comm, topology, params, updater):
        if not params:
            raise ConfigError("the net has no parameters for the servers to own.\nhelp: add a layer with params")
        self.topo = t = topology
        self.rank = comm.rank if comm is not None else 0
        self.comm = comm.dup() if comm is not None else None     # the stub's own traffic
        self.waiting = comm.waiting if comm is not None else (lambda what: contextlib.nullcontext())
        self.world = comm
        self.dtype = params[0].dtype
        self.nspg = t.nservers_per_group
        if t.nserver_groups * self.nspg > MAX_SERVERS:
            raise ConfigError("the cluster has %d servers; at most %d are supported"
                              % (t.nserver_groups * self.nspg, MAX_SERVERS))
        offs, self.total = flat_offsets(params)
        slices, to_server, to_group = t.slices([p.size for p in params])
        # the flat range of each server id (the same in every group) and of each (id, master group)
        pieces = [(to_server[s.id], to_group[s.id], offs[s.param] + s.offset, s.size) for s in slices]
        self.server_range = {sid: _span([(a, n) for i, _, a, n in pieces if i == sid]) for sid in range(self.nspg)}
        self.master_range = {(sid, g): _span([(a, n) for i, mg, a, n in pieces if i == sid and mg == g])
                             for sid in range(self.nspg) for g in range(t.nserver_groups)}
        per_group = t.nworker_groups // t.nserver_groups
        self.servers = {}
        for g, sid in t.servers_of(self.rank):
            lo, hi = self.server_range[sid]
            masters = {mg: self.master_range[(sid, mg)] for mg in range(t.nserver_groups)}
            self.servers[(g, sid)] = Server(g, sid, lo, hi, params, updater, masters, nworker_groups=per_group,
                                            sync_freq=t.sync_freq)
        self._recvs = []       # (request, buffer, callback(buffer))
        self._push_buffers = {}  # (server group, id, source) -> [gradient, reply, reply's send request]
        self._sends = []       # (request, buffer): buffers kept alive until sent
        self.finished = set()  # local servers that sent their final values
        self.final = None      # rank 0: the job's final values (flat layout)
        self._finals_left = 0

    # -- set-up ---------------------------------------------------------------------------
    def load(self, flat):
        """Every local server takes its values from the flat layout (the job's initial values)."""
        for s in self.servers.values():
            s.load(flat)

    def server_index(self, g, sid):
        return g * self.nspg + sid

    def is_local(self, g, sid):
        return (g, sid) in self.servers

    # -- messages -------------------------------------------------------------------------
    def _send(self, buf, dest, tag):
        req = self.comm.isend(buf, dest, tag)
        self._sends.append((req, buf))
        return req

    def _buffers(self, server, src):
        """A server's receive and reply buffers for pushes from ``src``, reused from step to step
        (a push of the seed MLP is 48 MB: fresh arrays would page-fault through it every time).
        A source has one push in flight at a time: it waits for the reply before the next."""
        key = (server.group, server.sid, src)
        bufs = self._push_buffers.get(key)
        if bufs is None:
            n = server.hi - server.lo
            bufs = self._push_buffers[key] = [numpy.empty(n, self.dtype), numpy.empty(n, self.dtype), None]
        return bufs

    def _recv(self, buf, src, tag, callback):
        self._recvs.append((self.comm.irecv(buf, src, tag), buf, callback))

    def _head(self, dest, kind, step, wgroup, sgroup, sid, from_group=-1):
        self._send(numpy.array([kind, step, wgroup, sgroup, sid, from_group], dtype=numpy.int64), dest, HEAD)

    def push(self, step, wgroup, sid, grad, reply, on_reply):
        """Worker group ``wgroup``'s gradient for server ``sid`` of its server group; the fresh
        values land in ``reply`` (same size), then ``on_reply()`` runs."""
        g = self.topo.server_group_of(wgroup)
        if self.is_local(g, sid):
            server = self.servers[(g, sid)]
            server.update(step, grad, wgroup)
            reply[...] = server.values
            self._after_update(server)
            on_reply()
            return
        dest = self.topo.server_proc(g, sid)
        self._recv(reply, dest, VALUES + self.server_index(g, sid), lambda _: on_reply())
        self._head(dest, PUSH, step, wgroup, g, sid)
        self._send(grad, dest, DATA)

    def done(self, wgroup):
        """Worker group ``wgroup`` has pushed its last gradient."""
        g = self.topo.server_group_of(wgroup)
        for sid in range(self.nspg):
            if self.is_local(g, sid):
                self.servers[(g, sid)].done(wgroup)
            else:
                self._head(self.topo.server_proc(g, sid), DONE, 0, wgroup, g, sid)

    def serve(self):
        """Handle what has arrived for this process; True if anything happened."""
        progressed = False
        if self.comm is not None:
            head = numpy.empty(6, dtype=numpy.int64)
            src = self.comm.probe_source(HEAD)
            while src is not None:
                self.comm.recv(head, src, HEAD)
                self._on_head(src, *[int(x) for x in head])
                progressed = True
                src = self.comm.probe_source(HEAD)
            if self._recvs:
                pending, self._recvs = self._recvs, []
                for item in pending:
                    if item[0].Test():
                        item[2](item[1])
                        progressed = True
                    else:
                        self._recvs.append(item)
            if self._sends:
                self._sends = [x for x in self._sends if not x[0].Test()]
        return self._server_ends() or progressed

    def _on_head(self, src, kind, step, wgroup, sgroup, sid, from_group):
        server = self.servers.get((sgroup, sid))
        if server is None:
            raise RuntimeError("process %d got a message (kind %d) for server (%d, %d), which it does not run"
                               % (self.rank, kind, sgroup, sid))
        if kind == PUSH:
            self._recv(self._buffers(server, src)[0], src, DATA, lambda g: self._on_push(server, step, wgroup, g, src))
        elif kind == DONE:
            server.done(wgroup)
        elif kind in (SYNC, FLUSH):
            a, b = server.mastered
            self._recv(numpy.empty(b - a, self.dtype), src, DATA,
                       lambda d: self._on_delta(server, d, from_group, src, kind == FLUSH))
        else:
            raise RuntimeError("process %d got a message of unknown kind %d from %d" % (self.rank, kind, src))

    def _on_push(self, server, step, wgroup, grad, src):
        server.update(step, grad, wgroup)
        bufs = self._buffers(server, src)
        if bufs[2] is not None:
            bufs[2].Wait()        # the previous reply: delivered already (the source pushed again)
        # a copy: the values may change (another group's push) while the reply is in flight
        numpy.copyto(bufs[1], server.values)
        bufs[2] = self._send(bufs[1], src, VALUES + self.server_index(server.group, server.sid))
        self._after_update(server)

    def _on_delta(self, server, delta, from_group, src, final):
        values = server.absorb(delta, from_group, final=final)
        if not final:
            self._send(values.copy(), src, SYNCED + self.server_index(from_group, server.sid))

    # -- Distributed Hogwild: syncing non-master slices with their masters -------------------
    def _after_update(self, server, final=False):
        for mg in server.syncs:
            if server.sync_due(mg, final):
                self._sync(server, mg, final)

    def _sync(self, server, mg, final):
        delta = server.delta_for(mg)
        if final:
            server.syncs[mg]["flushed"] = True
        if self.is_local(mg, server.sid):
            master = self.servers[(mg, server.sid)]
            values = master.absorb(delta, server.group, final=final)
            if not final:
                server.synced(mg, values.copy())
            return
        dest = self.topo.server_proc(mg, server.sid)
        if not final:
            a, b = server.masters[mg]
            self._recv(numpy.empty(b - a, self.dtype), dest, SYNCED + self.server_index(server.group, server.sid),
                       lambda m: server.synced(mg, m))
        self._head(dest, FLUSH if final else SYNC, 0, -1, mg, server.sid, server.group)
        self._send(delta, dest, DATA)

    # -- the end -----------------------------------------------------------------------------
    def expect_finals(self):
        """Rank 0: receive every master's final values into ``self.final``."""
        self.final = numpy.empty(self.total, self.dtype)
        for g in range(self.topo.nserver_groups):
            for sid in range(self.nspg):
                a, b = self.master_range[(sid, g)]
                if b > a and not self.is_local(g, sid):
                    self._finals_left += 1
                    self._recv(self.final[a:b], self.topo.server_proc(g, sid), FINAL + self.server_index(g, sid),
                               lambda _: self._final_in())

    def _final_in(self):
        self._finals_left -= 1

    def _server_ends(self):
        progressed = False
        for key, server in self.servers.items():
            if key in self.finished or not server.workers_done:
                continue
            for mg, s in server.syncs.items():
                if not s.get("flushed") and s["sent"] is None:
                    self._sync(server, mg, final=True)
                    progressed = True
            if not all(s.get("flushed") for s in server.syncs.values()):
                continue
            a, b = server.mastered
            if b > a and len(server.flushes) < self.topo.nserver_groups - 1:
                continue            # other groups' last deltas still to come
            if b > a:
                values = server.view(a, b).copy()
                if self.rank == 0:
                    self.final[a:b] = values
                else:
                    self._send(values, 0, FINAL + self.server_index(*key))
            self.finished.add(key)
            progressed = True
        return progressed

    def all_done(self):
        return (len(self.finished) == len(self.servers) and not self._sends and not self._recvs
                and self._finals_left == 0)

    def wait_until(self, ready):
        """Serve this process's servers until ``ready()`` is true (sleeping a little when idle, so
        a waiting process leaves the cores to the ones computing)."""
        nap = 2e-5
        if not ready():
            with self.waiting("the exchange with the parameter servers"):
                self._serve_until(ready, nap)

    def _serve_until(self, ready, nap):
        while not ready():
            if self.serve():
                nap = 2e-5
            else:
                time.sleep(nap)
                nap = min(nap * 2, 1e-3)

    def finish(self):
        """Serve until this process's servers are done and nothing is in flight, then wait for
        every process to get there (rank 0 then holds the final values in ``self.final``)."""
        self.wait_until(self.all_done)
        if self.comm is not None:
            req = self.comm.ibarrier()
            self.wait_until(req.Test)

    def stats(self):
        """{(group, id): (updates applied, {worker group: pushes}, deltas absorbed)} of local servers."""
        return {k: (s.updates, dict(s.pushes), s.deltas) for k, s in self.servers.items()}

    def close(self):
        if self.comm is not None:
            self.comm.free()
            self.comm = None


def _span(pieces):
    """The range [a, b) covered by pieces [(start, size)] in order, which must be consecutive."""
    if not pieces:
        return (0, 0)
    a, b = pieces[0][0], pieces[-1][0] + pieces[-1][1]
    if sum(n for _, n in pieces) != b - a:
        raise AssertionError("slices are not consecutive: %s" % (pieces,))
    return (a, b)


class GroupComm:
    """The processes of one worker group (``comm``: a singa.cluster.mpi.Comm split off the world)
    with the two collectives the worker uses, non-blocking and waited through the Stub, so this
    process keeps serving its servers meanwhile."""

    def __init__(self, comm, stub):
        self.comm, self.stub = comm, stub
        self.rank, self.size = comm.rank, comm.size

    def allreduce_sum(self, buf):
        req = self.comm.iallreduce_sum(buf)
        self.stub.wait_until(req.Test)
        return buf

    def bcast(self, buf, root=0):
        req = self.comm.ibcast(buf, root=root)
        self.stub.wait_until(req.Test)
        return buf


class WorkerStub:
    """A worker group's side, as BPWorker's ``ps``: push the group's gradient, get fresh values.

    ``group_comm``: a GroupComm when the group spans processes (its rank 0 is the leader, which
    talks to the servers), else None."""

    def __init__(self, stub, group, params, group_comm=None):
        from singa.cluster.mpi import FlatBuffer
        self.stub, self.group, self.params = stub, group, params
        self.group_comm = group_comm
        self.leader = group_comm is None or group_comm.rank == 0
        self.values = FlatBuffer([p.shape for p in params], params[0].dtype)
        self.pushes = 0
        self._waiting = 0

    def _replied(self):
        self._waiting -= 1

    def push_pull(self, step, flat):
        """``flat``: the group's gradients (a FlatBuffer in the flat layout, maybe with the
        metrics after them). The params get the servers' fresh values."""
        stub = self.stub
        grads = flat.flat[:stub.total]
        if self.leader:
            for sid in range(stub.nspg):
                lo, hi = stub.server_range[sid]
                if hi > lo:
                    self._waiting += 1
                    stub.push(step, self.group, sid, grads[lo:hi], self.values.flat[lo:hi], self._replied)
            stub.wait_until(lambda: self._waiting == 0)
            self.pushes += 1
        if self.group_comm is not None:
            self.group_comm.bcast(self.values.flat, root=0)
        # a frozen param (batch norm's running statistics) keeps the worker's values: its layer
        # writes them, and the servers, which never update it, hold only its initial values
        backend = self.params[0].backend
        if backend.device is None:
            for p, v in zip(self.params, self.values.views):
                if not p.frozen:
                    p.set_values(v)
        else:
            # onto the GPU: one host-to-device copy of every value, then copies on the device
            d, off = backend.asarray(self.values.flat, dtype=self.values.flat.dtype), 0
            for p in self.params:
                if not p.frozen:
                    p.data[...] = d[off:off + p.size].reshape(p.shape)
                off += p.size

    def done(self):
        if self.leader:
            self.stub.done(self.group)


__all__ = ["Stub", "WorkerStub", "GroupComm"]
