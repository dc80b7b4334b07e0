"""Gradient exchange: how the summed gradients of a worker's replicas become the step's update
(ChainerMN's communicator idea, with mpi4py's buffer calls).

A worker that trains its batch as replicas (threads of this process, this process's slices of
a group spread over processes, or one pass for parameter servers) sums their gradients,
weighted by their shares of the batch, into one flat buffer: the params end to end in the
worker's order, on the backend's device (``FlatBuffer``). One strategy, chosen once by
``create`` from what the worker was given, does the rest:

    LocalSum         replicas of this process only: the sum is the gradient
    HostAllreduce    a synchronous group over processes, on the host: one Allreduce of the flat
                     buffer, with the step's weighted metrics after the gradients
    DeviceAllreduce  the same from a GPU: the Allreduce reads the device buffer (CUDA-aware
                     MPI), or the gradients cross to a host buffer and back (one staged copy)
    ParameterServer  the group's gradients (summed over its processes first, when it spans
                     several) go to the servers, which send back fresh values

Each has ``buffer(xp, shapes, dtype, keys)`` (the flat buffer the worker sums into, made on the
first step; ``keys``: the names of the step's metrics), ``exchange(metrics)`` (the group's sum of
the gradients and the metrics; returns the group's metrics) and ``apply(worker, step)``.
"""
import numpy

from singa.cluster.mpi import FlatBuffer


class MetricRow:
    """The step's weighted metrics as one row after the gradients, summed by the same collective."""

    def __init__(self, keys):
        self.keys = list(keys)

    def values(self, metrics):
        if sorted(metrics) != self.keys:
            raise RuntimeError("the net's metrics changed between steps: %s, then %s" % (self.keys, sorted(metrics)))
        return [metrics[k] for k in self.keys]

    def read(self, row):
        return dict(zip(self.keys, row.astype(numpy.float64).tolist()))


class GradientExchange:
    flat = None            # the buffer the worker sums the gradients into

    def between_passes(self, nreplicas):
        """What a replica runs between its forward and backward passes (None: nothing)."""
        return None

    def exchange(self, metrics):
        return metrics

    def apply(self, worker, step):
        """The update from the summed gradients (the worker's updater)."""
        worker.apply_gradients(step, self.flat.views)


class LocalSum(GradientExchange):
    def buffer(self, xp, shapes, dtype, keys):
        self.flat = FlatBuffer(shapes, dtype, xp)
        return self.flat


class HostAllreduce(GradientExchange):
    def __init__(self, comm):
        self.comm = comm

    def buffer(self, xp, shapes, dtype, keys):
        self.row = MetricRow(keys)
        self.flat = FlatBuffer(list(shapes) + [(len(keys),)], dtype)
        return self.flat

    def exchange(self, metrics):
        row = self.flat.views[-1]
        row[...] = self.row.values(metrics)
        self.comm.allreduce_sum(self.flat.flat)
        return self.row.read(row)


class DeviceAllreduce(GradientExchange):
    """Whether MPI takes device buffers is asked on the first step (a collective: every rank
    asks at the same point); the metrics ride in whichever buffer the Allreduce sums."""

    def __init__(self, comm):
        self.comm = comm
        self.host = None          # the staged copy's host buffer (gradients and metrics)

    def buffer(self, xp, shapes, dtype, keys):
        self.xp, self.row = xp, MetricRow(keys)
        self.ngrad = sum(int(numpy.prod(s)) for s in shapes)
        if self.comm.cuda_aware:
            self.flat = FlatBuffer(list(shapes) + [(len(keys),)], dtype, xp)
        else:
            self.flat = FlatBuffer(shapes, dtype, xp)
            self.host = FlatBuffer(list(shapes) + [(len(keys),)], dtype)
        return self.flat

    def exchange(self, metrics):
        values = numpy.asarray(self.row.values(metrics), dtype=self.flat.flat.dtype)
        if self.host is None:
            self.flat.views[-1][...] = self.xp.asarray(values)
            self.comm.allreduce_sum(self.flat.flat)
            return self.row.read(self.flat.views[-1].get())
        host = self.host.flat
        self.flat.flat.get(out=host[:self.ngrad])
        self.host.views[-1][...] = values
        self.comm.allreduce_sum(host)
        self.flat.flat.set(host[:self.ngrad])
        return self.row.read(self.host.views[-1])


class ParameterServer(GradientExchange):
    """``ps``: the group's WorkerStub; ``comm``: the group's processes (a GroupComm) when it
    spans several, else None. The servers live on the host: gradients from a GPU cross once."""

    def __init__(self, ps, comm=None):
        self.ps, self.comm = ps, comm

    def between_passes(self, nreplicas):
        # one pass on this thread: it also answers the other groups' pushes and syncs to this
        # process's servers between forward and backward (halves how long they wait)
        return self.ps.stub.serve if nreplicas == 1 else None

    def buffer(self, xp, shapes, dtype, keys):
        extra = [(len(keys),)] if self.comm is not None else []
        self.row = MetricRow(keys)
        self.ngrad = sum(int(numpy.prod(s)) for s in shapes)
        self.host = FlatBuffer(list(shapes) + extra, dtype)
        self.flat = self.host if xp is numpy else FlatBuffer(shapes, dtype, xp)
        return self.flat

    def exchange(self, metrics):
        if self.flat is not self.host:
            self.flat.flat.get(out=self.host.flat[:self.ngrad])
        if self.comm is None:
            return metrics
        row = self.host.views[-1]
        row[...] = self.row.values(metrics)
        self.comm.allreduce_sum(self.host.flat)
        return self.row.read(row)

    def apply(self, worker, step):
        self.ps.push_pull(step, self.host)
        for p in worker.train_net.owner_params:
            p.version = step + 1


def create(xp, nreplicas, comm=None, ps=None):
    """The strategy for a worker of ``nreplicas`` replicas on array module ``xp``, in the group
    of processes ``comm`` and with parameter servers ``ps`` (see BPWorker); None for one pass
    with no exchange (the worker's plain step, where updates may fuse into the products)."""
    if ps is not None:
        return ParameterServer(ps, comm)
    if comm is not None:
        return HostAllreduce(comm) if xp is numpy else DeviceAllreduce(comm)
    if nreplicas > 1:
        return LocalSum()
    return None


__all__ = ["create", "GradientExchange", "LocalSum", "HostAllreduce", "DeviceAllreduce", "ParameterServer",
           "MetricRow"]
