"""SINGA's cluster topologies: which process runs which workers and servers, and which
parameter slices each server owns (``singa.cluster.topology``)."""
from singa.cluster.topology import Slice, Topology, assign_gpus, is_default, partition_slices, slice_sizes  # noqa: F401
