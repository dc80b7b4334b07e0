"""The workers of one group training a partitioned net (SINGA's workers of a group under model
or hybrid partitioning, SINGA-V0-REST.md 5): worker k runs the layers of partition k.

Every process builds the whole partitioned net (singa.partition; the params whole, each
feature-split copy's params views of their slice) and runs its own partitions:

* threads (one process holds the group, ``nworkers_per_procs >= nworkers_per_group``): each
  partition on a thread of its own, the bridges handing blobs across (singa.bridge.ThreadLinks);
  the update then applies to the whole params;
* devices (the workers of one process on GPUs of their own, ``gpu: 0 gpu: 1``): a copy of the
  net per device (``device_nets``), partition k running in copy k on its thread, bridges copying
  what crosses devices through the host; the params kept as the processes below keep them;
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

    def __init__(self, train_net, updater, test_net=None, val_net=None, comm=None, device_nets=None):
        super().__init__(train_net, updater, test_net, val_net, fuse_updates=False, replicas=1)
        self.comm = comm
        self.links = None
        n = train_net.npartitions
        if comm is not None and comm.size != n:
            raise RuntimeError("PartitionWorker: %d ranks for %d partitions" % (comm.size, n))
        if device_nets is not None and (len(device_nets) != n or device_nets[0] is not train_net):
            raise RuntimeError("PartitionWorker: device_nets must be %d copies, the train net first" % n)
        self.nets = list(device_nets) if device_nets is not None else None
        self.mine = list(range(n)) if comm is None else [comm.rank]
        separate = comm is not None or self.nets is not None      # each partition's params in a memory of its own
        whole = [p for p in train_net.owner_params if getattr(p, "slices", None)]
        self.sliced = [p.name for p in whole if separate]          # updated slice by slice
        self.summed = [p.name for p in train_net.owner_params if p.name not in self.sliced]
        # the updater state of each copy (devices): the train net's is the worker's (checkpoints hold it)
        self.states = None
        self.flat = None
        self.moved = 0            # bytes this process sent in the last step (bridges and Allreduce)

    # -- a step ---------------------------------------------------------------------------
    def train_one_batch(self, step):
        net = self.train_net
        if self.links is None:
            self.links = (bridge.MPILinks(net, self.comm) if self.comm is not None
                          else bridge.ThreadLinks(self.nets or net))
        if self.nets is not None and self.states is None:
            self._copy_to_devices()
        if self.comm is None and self.nets is None and not partition_threads():
            net.forward(job_pb2.kTrain)
            net.backward(job_pb2.kTrain)
            self.moved = 0
        else:
            self._run_partitions()
        if self.nets is not None:
            self._devices_update(step)
        elif self.comm is None:
            self.train_metrics.add(net.metrics())
            self.update(step)
        else:
            self._exchange_and_update(step)

    def _net_of(self, partition):
        return self.nets[partition] if self.nets is not None else self.train_net

    def _run_partitions(self):
        links = self.links
        links.reset()
        links.install()
        errors = [None] * len(self.mine)

        def run(k, n):
            try:
                p = self.mine[k]
                net = self._net_of(p)
                with net.backend.bound():
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
        layers = ([l for k, net in enumerate(self.nets) for l in net.metric_layers if l.conf.partition_id == k]
                  if self.nets is not None else self.train_net.metric_layers)
        for layer in layers:
            if layer.conf.partition_id in self.mine:
                for k, v in layer.metrics().items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                    counts[k] = counts.get(k, 0) + 1
        return {k: v / counts[k] for k, v in sums.items()}

    def _exchange_and_update(self, step):
        """Processes: the batch-split params' gradients (each rank's replica's share, the others'
        zero) and the metrics summed by one Allreduce; the slices updated where they live."""
        metrics = self._own_metrics()
        views = self._summed_grads([self.train_net], metrics)
        views[-1][...] = self.row.values(metrics)
        self.comm.allreduce_sum(self.flat.flat)
        self.moved += self.flat.flat.nbytes
        n = self.comm.size
        self.train_metrics.add({k: v / n for k, v in self.row.read(views[-1]).items()})
        self._apply(step, self.train_net, self.state, self.comm.rank, views)

    def _summed_grads(self, nets, metrics):
        """The flat host buffer's views, the batch-split params' gradients summed over ``nets``."""
        if self.flat is None:
            self.row = MetricRow(sorted(metrics))
            owners = self.train_net.owners
            self.flat = FlatBuffer([owners[name].shape for name in self.summed] + [(len(self.row.keys),)],
                                   numpy.float64 if self.train_net.dtype == numpy.float64 else numpy.float32)
        views = self.flat.views
        for name, v in zip(self.summed, views):
            for k, net in enumerate(nets):
                with net.backend.bound():
                    g = net.backend.to_host(net.owners[name].owner_grad())
                if k == 0:
                    v[...] = g
                else:
                    v += g
        return views

    def _apply(self, step, net, state, partition, views):
        """``net``'s update: every batch-split param from the summed gradients ``views``, and its
        partition's slice of each feature-split one from its own gradient."""
        xp = net.backend.xp
        for name, v in zip(self.summed, views):
            p = net.owners[name]
            if not p.frozen:        # its layer writes it (batch norm's running statistics)
                self.updater.apply(step, p.data, net.backend.asarray(v, dtype=p.dtype), state[name],
                                   lr_scale=p.lr_scale, wd_scale=p.wd_scale)
            p.version = step + 1
        for name in self.sliced:
            p = net.owners[name]
            if p.frozen:
                p.version = step + 1
                continue
            index = p.slices[partition].slice_index
            sliced_state = {k: a[index] for k, a in state[name].items()}
            g = xp.multiply(p.grad[index], p.dtype.type(p.grad_scale))
            self.updater.apply(step, p.data[index], g, sliced_state, lr_scale=p.lr_scale, wd_scale=p.wd_scale)
            p.version = step + 1

    # -- devices --------------------------------------------------------------------------
    def _devices_update(self, step):
        """Devices: the batch-split gradients summed on the host, every copy updated alike; each
        copy's own slice of the feature-split params from its own gradient."""
        metrics = self._own_metrics()
        views = self._summed_grads(self.nets, metrics)
        self.train_metrics.add(metrics)
        for k, net in enumerate(self.nets):
            with net.backend.bound():
                self._apply(step, net, self.states[k], k, views)

    def _copy_to_devices(self):
        """Before the first step (after any resume): every copy takes the train net's values and
        updater state."""
        first = self.train_net
        self.states = [self.state]
        for k, net in enumerate(self.nets[1:], 1):
            self._copy_positions(first, net, k)
            with net.backend.bound():
                for name, p in first.owners.items():
                    net.owners[name].set_values(first.backend.to_host(p.data))
                    net.owners[name].version = p.version
                self.states.append({name: {k: net.backend.asarray(first.backend.to_host(a)) for k, a in st.items()}
                                    for name, st in self.state.items()})

    @staticmethod
    def _copy_positions(src, dst, partition):
        """Where partition ``partition``'s data layers read next, from copy ``src`` to ``dst`` (the
        copy that runs a partition is the one whose readers move; checkpoints save the train net's)."""
        for layer in dst.data_layers:
            if layer.conf.partition_id == partition and hasattr(layer, "pos"):
                layer.pos = src.by_name[layer.name].pos

    # -- whole params for tests and checkpoints ------------------------------------------------
    def gather_params(self):
        """Processes: every rank's slices (values and updater state) into every rank's whole
        params, so a test round or a checkpoint sees what one process would hold (collective).
        Devices: every copy's slices into the train net's."""
        if self.nets is not None:
            if self.states is None:
                return           # no step yet: the train net holds every value
            first = self.train_net
            for k, net in enumerate(self.nets[1:], 1):
                self._copy_positions(net, first, k)
                for name in self.sliced:
                    index = net.owners[name].slices[k].slice_index
                    pairs = [(first.owners[name].data, net.owners[name].data)] + [
                        (self.state[name][key], self.states[k][name][key]) for key in self.state[name]]
                    for dst, src in pairs:
                        with net.backend.bound():
                            host = net.backend.to_host(src[index])
                        dst[index] = first.backend.asarray(host)
            return
        if self.comm is None:
            return
        # where each rank's data partitions read next (rank 0's checkpoint holds every position)
        own = {l.name: int(l.pos) for l in self.train_net.data_layers
               if l.conf.partition_id == self.comm.rank and hasattr(l, "pos")}
        for positions in self.comm.allgather_object(own, "the allgather of the data partitions' positions"):
            for name, pos in positions.items():
                self.train_net.by_name[name].pos = pos
        if not self.sliced:
            return
        rank, n = self.comm.rank, self.comm.size
        arrays = []
        for p in (self.train_net.owners[name] for name in self.sliced):
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
