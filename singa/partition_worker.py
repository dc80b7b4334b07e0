"""The workers of one group training a partitioned net (SINGA's workers of a group under model
or hybrid partitioning, SINGA-V0-REST.md 5): worker k runs the layers of partition k.

Every process builds the whole partitioned net (singa.partition; the params whole, each
feature-split copy's params views of their slice) and runs its own partitions:

* threads (one process holds the group, ``nworkers_per_procs >= nworkers_per_group``): each
  partition on a thread of its own, the bridges handing blobs across (singa.bridge.ThreadLinks);
  the update then applies to the whole params;
* processes (one worker per process, ``mpiexec -n W``): rank k runs partition k, the bridges
  send blobs and gradients as buffer messages (singa.bridge.MPILinks). The batch-split params'
  gradients are summed over the ranks by one Allreduce (with the step's metrics), and every rank
  updates them alike; a feature-split param's slice is updated by its rank alone (no traffic for
  it). Before a test round or a checkpoint the slices are gathered (``gather_params``), so rank
  0 tests and writes the whole params, as one process would.
"""
import numpy

from singa import bridge
from singa.backends import blas
from singa.cluster.mpi import FlatBuffer
from singa.exchange import MetricRow
from singa.proto import job_pb2
from singa.worker import BPWorker, partition_threads


class PartitionWorker(BPWorker):
    """``comm`` None: every partition in this process; else the group's ranks, rank k running
    partition k."""

    def __init__(self, train_net, updater, test_net=None, val_net=None, comm=None):
        super().__init__(train_net, updater, test_net, val_net, fuse_updates=False, replicas=1)
        self.comm = comm
        self.links = None
        n = train_net.npartitions
        if comm is not None and comm.size != n:
            raise RuntimeError("PartitionWorker: %d ranks for %d partitions" % (comm.size, n))
        self.mine = list(range(n)) if comm is None else [comm.rank]
        whole = [p for p in train_net.owner_params if getattr(p, "slices", None)]
        self.sliced = [p for p in whole if comm is not None]          # updated slice by slice
        ids = {id(p) for p in self.sliced}
        self.summed = [p for p in train_net.owner_params if id(p) not in ids]    # Allreduced (processes)
        self.flat = None
        self.moved = 0            # bytes this process sent in the last step (bridges and Allreduce)

    # -- a step ---------------------------------------------------------------------------
    def train_one_batch(self, step):
        net = self.train_net
        if self.links is None:
            self.links = bridge.ThreadLinks(net) if self.comm is None else bridge.MPILinks(net, self.comm)
        if self.comm is None and not partition_threads():
            net.forward(job_pb2.kTrain)
            net.backward(job_pb2.kTrain)
            self.moved = 0
        else:
            self._run_partitions()
        if self.comm is None:
            self.train_metrics.add(net.metrics())
            self.update(step)
            return
        self._exchange_and_update(step)

    def _run_partitions(self):
        net, links = self.train_net, self.links
        links.reset()
        links.install()
        errors = [None] * len(self.mine)

        def run(k, n):
            try:
                p = self.mine[k]
                net.forward(job_pb2.kTrain, partition=p)
                net.backward(job_pb2.kTrain, partition=p)
            except BaseException as e:          # wake the partitions waiting on this one
                errors[k] = e
                links.abort(e)
        try:
            blas.parallel(run, len(self.mine))
            links.finish()
        finally:
            links.remove()
        self.moved = links.sent
        failed = [e for e in errors if e is not None]
        if failed:       # the cause, not a partner's Aborted
            raise next((e for e in failed if not isinstance(e, bridge.Aborted)), failed[0])

    def _own_metrics(self):
        """The metrics of this process's partitions (their mean)."""
        sums, counts = {}, {}
        for layer in self.train_net.metric_layers:
            if layer.conf.partition_id in self.mine:
                for k, v in layer.metrics().items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                    counts[k] = counts.get(k, 0) + 1
        return {k: v / counts[k] for k, v in sums.items()}

    def _exchange_and_update(self, step):
        """Processes: the batch-split params' gradients (each rank's replica's share, the others'
        zero) and the metrics summed by one Allreduce; the slices updated where they live."""
        metrics = self._own_metrics()
        if self.flat is None:
            self.row = MetricRow(sorted(metrics))
            self.flat = FlatBuffer([p.shape for p in self.summed] + [(len(self.row.keys),)], numpy.float64
                                   if self.train_net.dtype == numpy.float64 else numpy.float32)
        views = self.flat.views
        for p, v in zip(self.summed, views):
            v[...] = self.train_net.backend.to_host(p.owner_grad())
        views[-1][...] = self.row.values(metrics)
        self.comm.allreduce_sum(self.flat.flat)
        self.moved += self.flat.flat.nbytes
        n = self.comm.size
        self.train_metrics.add({k: v / n for k, v in self.row.read(views[-1]).items()})
        xp = self.train_net.backend.xp
        for p, v in zip(self.summed, views):
            self.updater.apply(step, p.data, xp.asarray(v, dtype=p.dtype), self.state[p.name],
                               lr_scale=p.lr_scale, wd_scale=p.wd_scale)
            p.version = step + 1
        for p in self.sliced:
            piece = p.slices[self.comm.rank]
            index = piece.slice_index
            state = {k: a[index] for k, a in self.state[p.name].items()}
            self.updater.apply(step, p.data[index], p.grad[index] * p.grad_scale, state, lr_scale=p.lr_scale,
                               wd_scale=p.wd_scale)
            p.version = step + 1

    # -- whole params for tests and checkpoints ------------------------------------------------
    def gather_params(self):
        """Processes: every rank's slices (values and updater state) into every rank's whole
        params, so a test round or a checkpoint sees what one process would hold. Collective."""
        if self.comm is None or not self.sliced:
            return
        rank, n = self.comm.rank, self.comm.size
        arrays = []
        for p in self.sliced:
            arrays.append((p.data, [s.slice_index for s in p.slices]))
            for a in self.state[p.name].values():
                arrays.append((a, [s.slice_index for s in p.slices]))
        # one buffer: each rank writes its slices, the others' places zero; the sum is the whole
        shapes = [a[idx[r]].shape for a, idx in arrays for r in range(n)]
        flat = FlatBuffer(shapes, numpy.float64 if self.train_net.dtype == numpy.float64 else numpy.float32)
        k = 0
        for a, idx in arrays:
            for r in range(n):
                flat.views[k][...] = self.train_net.backend.to_host(a[idx[r]]) if r == rank else 0
                k += 1
        self.comm.allreduce_sum(flat.flat)
        k = 0
        xp = self.train_net.backend.xp
        for a, idx in arrays:
            for r in range(n):
                a[idx[r]] = xp.asarray(flat.views[k], dtype=a.dtype)
                k += 1
