"""Where SINGA's workers and servers run, and which parameter slices each server owns: a pure
function of a ClusterProto and the number of processes (SINGA-V0.md 3.2-3.4).

* A worker group is ``nworkers_per_group`` synchronous workers holding one model replica; worker
  groups run asynchronously. A server group is ``nservers_per_group`` servers holding one full
  parameter replica, cut into slices. Worker group g talks to server group
  ``g // (nworker_groups // nserver_groups)``.
* Processes: ``nworker_procs = nworker_groups*nworkers_per_group / nworkers_per_procs``, the same
  for servers; ``nprocs`` is their maximum (servers share processes 0.. with workers) or their sum
  when ``server_worker_separate`` (server processes after all worker processes). Worker (g, i)
  lives in process ``(g*nworkers_per_group + i) // nworkers_per_procs``; server (g, i) in
  ``(g*nservers_per_group + i) // nservers_per_procs`` (+ nworker_procs when separate).
* Slicing: the owner params, in net order, are cut into about ``lcm(nserver_groups,
  nservers_per_group)`` boxes of ``avg = total // n + total % n`` values each (a param that
  overflows its box by at most avg // 10 stays whole); the slices are then dealt to the servers of
  a group by the same box rule (every server group holds all slices), and to the server groups for
  their masters (inter-group synchronisation).

Everything here is plain Python on ints: no MPI, no arrays, so it is tested exhaustively.
"""
import math
from collections import namedtuple

from singa.errors import ConfigError
from singa.proto import job_pb2

# (param index, first value, number of values, global slice id)
Slice = namedtuple("Slice", "param offset size id")

_COUNTS = ("nworker_groups", "nserver_groups", "nworkers_per_group", "nservers_per_group", "nworkers_per_procs",
           "nservers_per_procs")


def _bad(field, expected, received, hint):
    return ConfigError("Invalid value for `cluster.%s`. Expected %s. Received: %s.\nhelp: %s"
                       % (field, expected, received, hint))


def is_default(cluster):
    """True when every process-layout field of ``cluster`` has SINGA's default value (one worker
    and one server in one process), set or not: what the Python API's ``Cluster(workspace)``
    writes. The workspace and the other fields may be anything."""
    return all(getattr(cluster, f) == 1 for f in _COUNTS) and not cluster.server_worker_separate


class Topology:
    """The process layout of a ClusterProto. ``Topology.for_world(cluster, n)`` applies the rule
    for scripts that leave the cluster at its defaults and are started on n > 1 processes: one
    synchronous worker group of n workers, with a server co-located in every process
    (SINGA's AllReduce recipe)."""

    def __init__(self, cluster):
        c = cluster
        for f in _COUNTS:
            v = getattr(c, f)
            if v < 1:
                raise _bad(f, "a count >= 1", v, "leave it out for SINGA's default 1")
        self.nworker_groups, self.nserver_groups = c.nworker_groups, c.nserver_groups
        self.nworkers_per_group, self.nservers_per_group = c.nworkers_per_group, c.nservers_per_group
        self.nworkers_per_procs, self.nservers_per_procs = c.nworkers_per_procs, c.nservers_per_procs
        self.separate = bool(c.server_worker_separate)
        self.sync_freq = c.sync_freq
        if self.sync_freq < 1:
            raise _bad("sync_freq", "a number of updates >= 1 between two syncs of a server group with the "
                       "masters", self.sync_freq, "leave it out for SINGA's default 1")
        if self.nworker_groups % self.nserver_groups:
            raise _bad("nserver_groups", "a divisor of nworker_groups (%d): each server group serves the same "
                       "number of worker groups" % self.nworker_groups, self.nserver_groups,
                       "e.g. nserver_groups: 1, or as many server groups as worker groups (Hogwild)")
        self.nworker_procs = self._procs("worker", self.nworker_groups, self.nworkers_per_group, self.nworkers_per_procs)
        self.nserver_procs = self._procs("server", self.nserver_groups, self.nservers_per_group, self.nservers_per_procs)
        self.nprocs = (self.nworker_procs + self.nserver_procs if self.separate
                       else max(self.nworker_procs, self.nserver_procs))

    @staticmethod
    def _procs(kind, groups, per_group, per_procs):
        total = groups * per_group
        field = "n%ss_per_procs" % kind
        if total % per_procs:
            raise _bad(field, "a divisor of the number of %ss (%d groups x %d = %d)" % (kind, groups, per_group, total),
                       per_procs, "every process hosts the same number of %ss" % kind)
        # a process hosts part of one group or whole groups, never pieces of two
        if per_procs <= per_group and per_group % per_procs:
            raise _bad(field, "a divisor of n%ss_per_group (%d)" % (kind, per_group), per_procs,
                       "a process must not host pieces of two groups")
        if per_procs > per_group and per_procs % per_group:
            raise _bad(field, "a multiple of n%ss_per_group (%d)" % (kind, per_group), per_procs,
                       "a process must not host pieces of two groups")
        return total // per_procs

    @classmethod
    def for_world(cls, cluster, world_size):
        """The layout for ``world_size`` processes, checked against it (see the class docstring)."""
        if world_size < 1:
            raise ValueError("world_size must be >= 1, got %r" % (world_size,))
        if world_size > 1 and is_default(cluster):
            c = job_pb2.ClusterProto()
            c.CopyFrom(cluster)
            c.nworkers_per_group = c.nservers_per_group = world_size
            return cls(c)
        topo = cls(cluster)
        if topo.nprocs != world_size:
            raise ConfigError(
                "the cluster needs %d process(es) (%s) but the job was started with %d.\nhelp: run it with "
                "`mpiexec -n %d ...`%s" % (topo.nprocs, topo.describe(), world_size, topo.nprocs,
                                           ", or change the Cluster" if world_size > 1 else ""))
        return topo

    def describe(self):
        return ("%d worker group(s) x %d worker(s), %d per process; %d server group(s) x %d server(s), %d per "
                "process%s" % (self.nworker_groups, self.nworkers_per_group, self.nworkers_per_procs,
                               self.nserver_groups, self.nservers_per_group, self.nservers_per_procs,
                               ", servers in separate processes" if self.separate else ""))

    # -- placement ---------------------------------------------------------------------
    def worker_proc(self, group, wid):
        return (group * self.nworkers_per_group + wid) // self.nworkers_per_procs

    def server_proc(self, group, sid):
        return (group * self.nservers_per_group + sid) // self.nservers_per_procs + (
            self.nworker_procs if self.separate else 0)

    def workers_of(self, proc):
        """[(group, id)] of the workers process ``proc`` runs."""
        return [(g, i) for g in range(self.nworker_groups) for i in range(self.nworkers_per_group)
                if self.worker_proc(g, i) == proc]

    def servers_of(self, proc):
        """[(group, id)] of the servers process ``proc`` runs."""
        return [(g, i) for g in range(self.nserver_groups) for i in range(self.nservers_per_group)
                if self.server_proc(g, i) == proc]

    def server_group_of(self, worker_group):
        """The server group worker group ``worker_group`` pushes to and pulls from."""
        return worker_group // (self.nworker_groups // self.nserver_groups)

    @property
    def synchronous(self):
        """One worker group: all workers step together (AllReduce, Sandblaster)."""
        return self.nworker_groups == 1

    def framework(self):
        """The v0.3 docs' name for this layout (frameworks.md)."""
        if self.nworker_groups == 1:
            return "Sandblaster" if self.separate else "AllReduce"
        return "Downpour" if self.nserver_groups == 1 else "Distributed Hogwild"

    # -- parameters ----------------------------------------------------------------------
    def slices(self, param_sizes):
        """The parameter slices for owner params of ``param_sizes`` (net order): a list of Slice,
        plus slice id -> server id within a group, and slice id -> master server group."""
        n = math.lcm(self.nserver_groups, self.nservers_per_group)
        pieces = slice_sizes(n, param_sizes)
        out, sid = [], 0
        for p, sizes in enumerate(pieces):
            off = 0
            for s in sizes:
                out.append(Slice(p, off, s, sid))
                off += s
                sid += 1
        sizes = [s.size for s in out]
        return out, partition_slices(self.nservers_per_group, sizes), partition_slices(self.nserver_groups, sizes)

    def role_table(self, param_sizes=()):
        """One dict per process: its workers, its servers and, for each server, the slice ids
        it owns (``param_sizes`` given)."""
        slices, to_server, _ = self.slices(param_sizes) if param_sizes else ([], [], [])
        table = []
        for proc in range(self.nprocs):
            servers = self.servers_of(proc)
            table.append({"proc": proc, "workers": self.workers_of(proc), "servers": servers,
                          "slices": {srv: [s.id for s in slices if to_server[s.id] == srv[1]] for srv in servers}})
        return table


def assign_gpus(gpus, local_workers, workers_before=0, machine_workers=None):
    """The GPU id of each of this process's ``local_workers`` workers from ``device=``
    (JobProto.gpu): one id per worker of the process (SINGA's rule: the i-th local worker gets
    gpu[i]), or, for several processes on one machine (``mpiexec -n N`` with a worker each), one
    id per worker of the machine in rank order, this process's workers coming after
    ``workers_before`` of them. A process with no workers (servers only) gets none."""
    gpus = [int(g) for g in gpus]
    machine_workers = local_workers if machine_workers is None else machine_workers
    if any(g < 0 for g in gpus):
        raise ConfigError("Invalid value for `device`. Expected GPU ids >= 0. Received: %s.\nhelp: drop device= "
                          "to train on the CPU" % gpus)
    if local_workers == 0:
        return []
    if len(gpus) == local_workers:
        return gpus
    if len(gpus) == machine_workers:
        return gpus[workers_before:workers_before + local_workers]
    per_machine = "" if machine_workers == local_workers else " or per worker of this machine (%d)" % machine_workers
    raise ConfigError("Invalid value for `device` (JobProto.gpu). Expected one GPU id per worker of this process (%d)"
                      "%s. Received: %s (%d ids).\nhelp: device=%s, or change nworkers_per_procs / the process count "
                      "to match the GPUs" % (local_workers, per_machine, gpus, len(gpus),
                                            list(range(machine_workers))))


def _boxes(num, total):
    avg = total // num + total % num
    return avg, avg // 10


def slice_sizes(num, sizes):
    """Cut params of ``sizes`` (in order) into boxes of about total/num values: per param, the
    sizes of its pieces. A param that fits the box's room, or overflows it by at most a tenth of
    a box, stays whole (and closes the box on overflow); otherwise it fills the room (if at
    least a tenth of a box is left) and continues in a fresh box."""
    if num < 1:
        raise ValueError("num must be >= 1, got %r" % (num,))
    if any(int(s) < 1 for s in sizes):
        raise ValueError("param sizes must be >= 1, got %r" % (list(sizes),))
    avg, slack = _boxes(num, sum(sizes))
    room, boxes = avg, 0
    out = []
    for size in sizes:
        left, pieces = int(size), []
        while left > 0:
            if room >= left:
                room -= left
                pieces.append(left)
                left = 0
            elif room + slack >= left:
                pieces.append(left)
                left, room = 0, 0
            else:
                if room >= slack and room > 0:
                    pieces.append(room)
                    left -= room
                room = avg
                boxes += 1
        out.append(pieces)
    assert boxes <= num, (boxes, num)
    return out


def partition_slices(num, slices):
    """Deal slices (sizes, in order) to ``num`` boxes of about total/num values by the same rule
    as ``slice_sizes`` (a slice is never cut here): the box id of each slice."""
    if num < 1:
        raise ValueError("num must be >= 1, got %r" % (num,))
    avg, slack = _boxes(num, sum(slices))
    room, box, out = avg, 0, []
    i = 0
    while i < len(slices):
        x = slices[i]
        if room >= x:
            room -= x
        elif room + slack >= x or room == avg:     # (a slice bigger than a box gets one of its own)
            room = 0
        else:
            room, box = avg, box + 1
            continue
        out.append(box)
        i += 1
    # the box rule can open one box too many at the end (rounding); its slices go to the last
    # box (SINGA would address a server that does not exist)
    return [min(b, num - 1) for b in out]


__all__ = ["Topology", "Slice", "slice_sizes", "partition_slices", "is_default", "assign_gpus"]
