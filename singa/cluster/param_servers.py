"""The parameter servers of a training run (Downpour, Distributed Hogwild, Sandblaster): what
the driver sets up as training starts, and how it ends them (singa.cluster.stub is the
transport, singa.server the servers)."""
import numpy

from singa.cluster.stub import GroupComm, Stub, WorkerStub


def start(comm, topo, params, updater, mine):
    """This process's Stub and, when a worker group spans processes, its group's GroupComm (else
    None; None too on a process of servers only). ``comm``: the world (None in-process);
    ``params``: the train net's owner params; ``mine``: [(group, id)] of this process's workers."""
    stub = Stub(comm, topo, params, updater)
    if stub.rank == 0:
        stub.expect_finals()
    group_comm = None
    if comm is not None and topo.nworkers_per_group > topo.nworkers_per_procs:
        # the processes of this worker group (servers-only processes join no group)
        sub = comm.split(min(g for g, _ in mine) if mine else None, "the split of the ranks into worker groups")
        group_comm = GroupComm(sub, stub) if mine else None
    return stub, group_comm


def worker_stub(stub, group, net, group_comm):
    """Worker group ``group``'s side of the stub, for the worker that trains ``net``."""
    return WorkerStub(stub, group, net.owner_params, group_comm)


def _take_final_values(stub, comm, rank, nets):
    """Every rank's ``nets`` take the job's final values (rank 0 holds them once the servers finish)."""
    final = stub.final if rank == 0 else numpy.empty(stub.total, stub.dtype)
    if comm is not None:
        comm.bcast(final)
    for net in nets:
        off = 0
        for p in net.owner_params:
            if not p.frozen:        # the servers never held its values (WorkerStub.push_pull)
                p.set_values(final[off:off + p.size])
            off += p.size


def _check_counts(topo, stub, servers, pushed):
    """Each server applied exactly the pushes of the worker groups it serves."""
    for (g, sid), (_, by_group, _) in sorted(servers.items()):
        lo, hi = stub.server_range[sid]
        expected = {wg: n for wg, n in pushed.items() if topo.server_group_of(wg) == g} if hi > lo else {}
        if by_group != expected:
            raise RuntimeError("server (%d, %d) applied %s updates by worker group but the groups pushed %s: "
                               "a gradient was lost or applied twice" % (g, sid, by_group, expected))


def finish(stub, groups, comm, topo, rank, log):
    """The end of a job with parameter servers: the groups (``.wstub``, ``.net``) say they are
    done, the servers finish (Hogwild: the last deltas reach the masters), every rank takes the
    final values, and the servers' update counts are checked against the workers' pushes.
    Returns, on rank 0, what the servers did (Results.cluster); None elsewhere."""
    for g in groups:
        g.wstub.done()
    stub.finish()
    _take_final_values(stub, comm, rank, [g.net for g in groups])
    pushes = {g.wstub.group: g.wstub.pushes for g in groups if g.wstub.leader}
    stats = [(stub.stats(), pushes)]
    if comm is not None:
        stats = comm.gather_object(stats[0])
    stub.close()
    if rank != 0:
        return None
    servers, pushed = {}, {}
    for st, pu in stats:
        servers.update(st)
        pushed.update(pu)
    _check_counts(topo, stub, servers, pushed)
    updates = sum(u for u, _, _ in servers.values())
    deltas = sum(d for _, _, d in servers.values())
    log("Servers (%s): %d updates applied for %d pushes (%s)%s" % (
        topo.framework(), updates, sum(pushed.values()),
        ", ".join("group %d: %d" % kv for kv in sorted(pushed.items())),
        "; %d deltas synced between server groups" % deltas if topo.nserver_groups > 1 else ""))
    return {"framework": topo.framework(), "pushes": pushed, "updates": {k: v[0] for k, v in servers.items()},
            "deltas": deltas}


__all__ = ["start", "worker_stub", "finish"]
