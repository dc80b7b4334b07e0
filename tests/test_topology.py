# covers: singa/cluster/topology.py
"""singa.cluster.topology: SINGA's process layout and parameter slicing (SINGA-V0.md 3.2-3.4),
checked on the frameworks of the v0.3 docs, on every small ClusterProto, and against the slicing
rules' invariants."""
import itertools
import math

import pytest

from singa.cluster import Topology, is_default, partition_slices, slice_sizes
from singa.errors import ConfigError
from singa.proto import job_pb2


def cluster(**kw):
    c = job_pb2.ClusterProto(workspace="ws")
    for k, v in kw.items():
        setattr(c, k, v)
    return c


# frameworks.md's recipes: (fields, nprocs, framework, workers per process, servers per process)
RECIPES = {
    "Sandblaster": (dict(nworkers_per_group=3, nservers_per_group=2, server_worker_separate=True), 5,
                    [[(0, 0)], [(0, 1)], [(0, 2)], [], []], [[], [], [], [(0, 0)], [(0, 1)]]),
    "AllReduce": (dict(nworkers_per_group=3, nservers_per_group=3), 3,
                  [[(0, 0)], [(0, 1)], [(0, 2)]], [[(0, 0)], [(0, 1)], [(0, 2)]]),
    "Downpour": (dict(nworker_groups=2, nworkers_per_group=2, nservers_per_group=2, server_worker_separate=True), 6,
                 [[(0, 0)], [(0, 1)], [(1, 0)], [(1, 1)], [], []], [[], [], [], [], [(0, 0)], [(0, 1)]]),
    "Distributed Hogwild": (dict(nworker_groups=3, nserver_groups=3), 3,
                            [[(0, 0)], [(1, 0)], [(2, 0)]], [[(0, 0)], [(1, 0)], [(2, 0)]]),
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_framework_recipes(name):
    fields, nprocs, workers, servers = RECIPES[name]
    t = Topology(cluster(**fields))
    assert t.nprocs == nprocs and t.framework() == name
    assert [t.workers_of(p) for p in range(nprocs)] == workers
    assert [t.servers_of(p) for p in range(nprocs)] == servers
    assert t.synchronous == (name in ("Sandblaster", "AllReduce"))


def test_in_process_quick_starts_and_defaults():
    one = Topology(cluster())
    assert (one.nprocs, one.workers_of(0), one.servers_of(0)) == (1, [(0, 0)], [(0, 0)])
    # two worker groups (in-memory Downpour) and two synchronous workers (in-memory Sandblaster) in one process
    assert Topology(cluster(nworker_groups=2, nworkers_per_procs=2)).workers_of(0) == [(0, 0), (1, 0)]
    assert Topology(cluster(nworkers_per_group=2, nworkers_per_procs=2)).workers_of(0) == [(0, 0), (0, 1)]
    assert is_default(cluster()) and is_default(cluster(nworker_groups=1, nservers_per_procs=1))
    assert not is_default(cluster(nworker_groups=2)) and not is_default(cluster(server_worker_separate=True))


def test_default_cluster_on_n_processes_is_one_synchronous_group():
    t = Topology.for_world(cluster(), 4)
    assert (t.nprocs, t.nworker_groups, t.nworkers_per_group, t.framework()) == (4, 1, 4, "AllReduce")
    assert [t.workers_of(p) for p in range(4)] == [[(0, i)] for i in range(4)]
    assert Topology.for_world(cluster(), 1).nprocs == 1


def test_explicit_cluster_on_the_wrong_number_of_processes_says_which_n():
    with pytest.raises(ConfigError, match=r"(?s)needs 5 process\(es\).*started with 4.*mpiexec -n 5"):
        Topology.for_world(cluster(**RECIPES["Sandblaster"][0]), 4)
    with pytest.raises(ConfigError, match=r"needs 3 process\(es\).*started with 1"):
        Topology.for_world(cluster(nworker_groups=3, nserver_groups=3), 1)


@pytest.mark.parametrize("fields,match", [
    (dict(nworker_groups=0), "nworker_groups.*count >= 1"),
    (dict(nworker_groups=3, nserver_groups=2), "nserver_groups.*divisor of nworker_groups"),
    (dict(nworkers_per_group=3, nworkers_per_procs=2), "nworkers_per_procs.*divisor"),
    (dict(nworker_groups=3, nworkers_per_group=2, nworkers_per_procs=3), "nworkers_per_procs"),
    (dict(nservers_per_group=4, nservers_per_procs=3), "nservers_per_procs.*divisor"),
    (dict(nworker_groups=2, nserver_groups=2, sync_freq=0), "sync_freq.*>= 1.*Received: 0"),
])
def test_bad_clusters(fields, match):
    with pytest.raises(ConfigError, match=match):
        Topology(cluster(**fields))


def test_every_small_cluster_places_every_worker_and_server_once():
    n = 0
    for wg, sg, wpg, spg, wpp, spp, sep in itertools.product((1, 2, 4), (1, 2), (1, 2, 4), (1, 3), (1, 2, 4),
                                                               (1, 3), (False, True)):
        try:
            t = Topology(cluster(nworker_groups=wg, nserver_groups=sg, nworkers_per_group=wpg, nservers_per_group=spg,
                                 nworkers_per_procs=wpp, nservers_per_procs=spp, server_worker_separate=sep))
        except ConfigError:
            continue
        n += 1
        workers = [w for p in range(t.nprocs) for w in t.workers_of(p)]
        servers = [s for p in range(t.nprocs) for s in t.servers_of(p)]
        assert sorted(workers) == [(g, i) for g in range(wg) for i in range(wpg)]
        assert sorted(servers) == [(g, i) for g in range(sg) for i in range(spg)]
        assert all(len(t.workers_of(p)) in (0, wpp) for p in range(t.nprocs))
        # a process never hosts pieces of two worker groups unless it hosts them whole
        for p in range(t.nprocs):
            groups = {g for g, _ in t.workers_of(p)}
            assert len(groups) <= 1 or all(len([w for w in t.workers_of(p) if w[0] == g]) == wpg for g in groups)
        if sep:
            assert all(not t.workers_of(p) for p in range(t.nworker_procs, t.nprocs))
        assert {t.server_group_of(g) for g in range(wg)} == set(range(sg))
    assert n > 50


@pytest.mark.parametrize("num", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("sizes", [[784000, 1000, 500000, 500, 125000, 250, 7500, 30],   # the autoencoder's RBMs
                                   [10, 10, 10, 10], [1], [7, 3], [100, 1, 1, 1, 1000], [6, 10, 4, 8]])
def test_slicing_invariants(num, sizes):
    pieces = slice_sizes(num, sizes)
    assert [sum(p) for p in pieces] == sizes and all(s > 0 for p in pieces for s in p)
    flat = [s for p in pieces for s in p]
    boxes = partition_slices(num, flat)
    assert len(boxes) == len(flat) and boxes == sorted(boxes) and max(boxes) < num   # a server that exists
    total = sum(sizes)
    avg = total // num + total % num
    # every piece fits a box with its tenth of slack, except a param bigger than a box (kept in pieces)
    assert all(s <= avg + avg // 10 for s in flat)


def test_slicing_matches_the_box_rule_by_hand():
    # total 30 over 3 boxes: avg 10, slack 1; 11 fits a box with slack and closes it
    assert slice_sizes(3, [11, 4, 15]) == [[11], [4], [6, 9]]     # pieces per param
    assert partition_slices(3, [11, 4, 6, 9]) == [0, 1, 1, 2]
    # one box: nothing is cut
    assert slice_sizes(1, [5, 7]) == [[5], [7]]
    assert partition_slices(1, [5, 7]) == [0, 0]
    # rounding opens a third box for two: its slices stay with the last server that exists
    assert partition_slices(2, [6, 2, 8, 4, 4, 4]) == [0, 0, 1, 1, 1, 1]


def test_role_table_gives_each_server_its_slices():
    t = Topology(cluster(nworkers_per_group=2, nservers_per_group=2))
    sizes = [784000, 1000, 500000, 500]
    slices, to_server, to_group = t.slices(sizes)
    assert sum(s.size for s in slices) == sum(sizes) and to_group == [0] * len(slices)
    table = t.role_table(sizes)
    owned = sorted(i for row in table for ids in row["slices"].values() for i in ids)
    assert owned == list(range(len(slices)))
    assert [row["workers"] for row in table] == [[(0, 0)], [(0, 1)]]
    # both servers get about half of the values
    per_server = [sum(slices[i].size for i in ids) for row in table for ids in row["slices"].values()]
    assert max(per_server) - min(per_server) <= 0.25 * sum(sizes)
    assert math.lcm(t.nserver_groups, t.nservers_per_group) == 2


def test_gpu_ids_map_to_the_workers_of_the_process_or_the_machine():
    from singa.cluster import assign_gpus
    # SINGA's rule: one id per worker of the process
    assert assign_gpus([3], 1) == [3]
    assert assign_gpus([1, 0], 2) == [1, 0]
    # mpiexec -n 2 on one machine, a worker each: device=[0, 1] gives rank 0 GPU 0, rank 1 GPU 1
    assert assign_gpus([0, 1], 1, workers_before=0, machine_workers=2) == [0]
    assert assign_gpus([0, 1], 1, workers_before=1, machine_workers=2) == [1]
    # two processes of two workers each on one machine
    assert assign_gpus([4, 5, 6, 7], 2, workers_before=2, machine_workers=4) == [6, 7]
    # a process of servers only runs no worker on a GPU
    assert assign_gpus([0, 1], 0, workers_before=2, machine_workers=2) == []
    with pytest.raises(ConfigError, match=r"(?s)per worker of this process \(1\) or per worker of this machine "
                                          r"\(2\). Received: \[0, 1, 2\] \(3 ids\).*device=\[0, 1\]"):
        assign_gpus([0, 1, 2], 1, workers_before=1, machine_workers=2)
    with pytest.raises(ConfigError, match=r"per worker of this process \(2\). Received: \[0\]"):
        assign_gpus([0], 2)
    with pytest.raises(ConfigError, match="ids >= 0"):
        assign_gpus([-2], 1)
