"""NeuralNet: the runtime network of one phase, built from a NetProto (SINGA's NeuralNet).

Building filters layers by phase (include/exclude), checks names and sources, orders the
layers topologically, creates the runtime layers from the registry, sets them up with
their sources' shapes, wires param sharing (share_from, and the same param name across
the train/test/validation nets) and hands every layer a named random stream. A net that sets
``unroll_len`` is unrolled first (singa.unroll: the copies ``{i}#name``, their params sharing
values and gradient with copy 0's).
"""
import numpy

import singa.layers  # noqa: F401  (registers the layer implementations)
from singa.errors import ConfigError
from singa.layers import rbm as _rbm
from singa.layers.base import create_layer, type_name, wants_gradient
from singa.layers.connection import Slot, check_slots, slot_count
from singa.param import Param
from singa.partition import partition
from singa.proto import enum_name, job_pb2
from singa.unroll import is_unroll_copy, unroll, wants_unrolling
from singa.updaters.fused import installed

PHASE_NAMES = {job_pb2.kTrain: "train", job_pb2.kVal: "validation", job_pb2.kTest: "test"}


def strip_unroll(name):
    """'0#w1' -> 'w1': SINGA v0.2/v0.3 prefixed layer and param names with the unroll index."""
    head, sep, tail = name.partition("#")
    return tail if sep and head.isdigit() else name


def layers_in_phase(net_proto, phase):
    out = []
    for lp in net_proto.layer:
        if lp.include and lp.exclude:
            raise ConfigError("layer '%s' sets both `include` and `exclude`.\nhelp: use only `include`, "
                              "e.g. `include: kTest`" % lp.name)
        if lp.include and phase not in lp.include:
            continue
        if lp.exclude and phase in lp.exclude:
            continue
        out.append(lp)
    return out


def back_edge(lp, src_proto):
    """True for the one source link that closes a cycle on purpose: kRBMVis's paired kRBMHid
    (SINGA's bidirectional RBM connection). It is wired after the net is built."""
    return lp.type == job_pb2.kRBMVis and src_proto.type == job_pb2.kRBMHid


def _forward_sources(lp, by_name):
    return [by_name[s] for s in lp.srclayers if not back_edge(lp, by_name[s])]


def _shorten(names, keep=10):
    """A long cycle's names, its middle elided so the message stays readable."""
    if len(names) <= 2 * keep:
        return names
    return names[:keep] + ["... (%d more)" % (len(names) - 2 * keep)] + names[-keep:]


def topological_order(layer_protos):
    """Layers ordered so every source comes before its consumers (stable for an ordered conf);
    back edges (``back_edge``) do not count."""
    by_name = {}
    for lp in layer_protos:
        if lp.name in by_name:
            raise ConfigError("two layers are named '%s' in the same phase.\nhelp: layer names must be unique "
                              "per phase; give one of them `include: kTest` (or kTrain) if they are the "
                              "train and test versions of one layer" % lp.name)
        by_name[lp.name] = lp
    for lp in layer_protos:
        for s in lp.srclayers:
            if s not in by_name:
                raise ConfigError(
                    "Invalid value for `srclayers` of layer '%s'. Expected the name of a layer in this phase "
                    "(%s). Received: %r.\nhelp: check the spelling, and that the source layer's include/exclude "
                    "keeps it in the same phase" % (lp.name, ", ".join(_shorten(sorted(by_name))), s))
    # An explicit stack, not recursion: a chain listed consumer-first (each layer's source is the
    # next one in the file) is as deep as the net is long, and thousands of layers would exceed
    # Python's recursion limit. Same post-order as the recursive walk: sources in srclayers order.
    order, state = [], {}      # state: 1 on the current path, 2 done
    for root in layer_protos:
        if state.get(root.name) == 2:
            continue
        state[root.name] = 1
        stack = [(root, iter(_forward_sources(root, by_name)))]
        while stack:
            lp, sources = stack[-1]
            src = next(sources, None)
            if src is None:
                stack.pop()
                state[lp.name] = 2
                order.append(lp)
                continue
            st = state.get(src.name)
            if st == 1:
                path = [p.name for p, _ in stack]
                cycle = path[path.index(src.name):] + [src.name]
                raise ConfigError("the net has a cycle: %s.\nhelp: a layer cannot (indirectly) be its own source; "
                                  "check the `srclayers` of these layers" % " -> ".join(_shorten(cycle)))
            if st is None:
                state[src.name] = 1
                stack.append((src, iter(_forward_sources(src, by_name))))
    return order


def runtime_protos(net_proto, phase, npartitions=1):
    """(the layers that run in ``phase``, in order; kSlice slots) after the phase filter, unrolling
    (a net that sets ``unroll_len``) and, for ``npartitions`` > 1, partitioning (singa.partition):
    what NeuralNet builds, and what ``singa-run -show-net`` prints."""
    protos = layers_in_phase(net_proto, phase)
    if wants_unrolling(net_proto):
        protos = unroll(protos, net_proto.unroll_len)
    slots = {}
    if npartitions > 1:
        if wants_unrolling(net_proto):
            raise ConfigError("a net that sets `unroll_len` cannot be split among %d workers by features "
                              "(partition_dim 1) yet.\nhelp: partition_dim 0 (data parallelism) trains it on "
                              "several workers" % npartitions)
        protos, slots = partition(protos, npartitions, net_proto.partition_dim)
    return topological_order(protos), slots


class NeuralNet:
    def __init__(self, net_proto, phase, backend, streams, dtype=numpy.float32, shared_params=None,
                 batch_size=None, data_slices=None, stream_suffix="", npartitions=1, writes_state=True):
        """Build the net of ``phase``.

        ``shared_params``: name -> Param of another net (the train net); params with the same
        name here alias its values, as SINGA shared params between its train and test nets.
        ``data_slices`` (name -> DataSlice) stand in for data layers and ``stream_suffix`` is
        added to the random stream names: see ``replica``. ``npartitions`` > 1: the net of a
        worker group of that many workers, every layer split by its ``partition_dim``
        (singa.partition), all partitions in this net. ``writes_state``: whether its layers write
        the state they keep in params (batch norm's running statistics; see ``replica``).
        """
        self.phase = phase
        self.backend = backend
        self.net_proto, self.streams, self.dtype = net_proto, streams, dtype
        self.unrolled = wants_unrolling(net_proto)
        self.npartitions = int(npartitions)
        protos, slots = runtime_protos(net_proto, phase, self.npartitions)
        if not protos:
            raise ConfigError("the net has no layer in phase %s" % enum_name(job_pb2.Phase, phase))
        self.layers = []
        self.by_name = {}
        self.srcs = {}
        data_slices = data_slices or {}
        protos_by_name = {p.name: p for p in protos}
        readers = {}            # kSlice name -> the consumers given a slot so far
        for lp in protos:
            if lp.name in data_slices:
                layer = data_slices[lp.name]
                self.layers.append(layer)
                self.by_name[lp.name] = layer
                self.srcs[lp.name] = []
                continue
            layer = create_layer(lp, backend, dtype)
            layer.rng = streams.stream("%s/%s%s" % (PHASE_NAMES.get(phase, phase), lp.name, stream_suffix))
            srcs = [self._source(lp, s, slots, readers) for s in lp.srclayers if not back_edge(lp, protos_by_name[s])]
            layer.src_layers = srcs     # for a setup that reads more than its sources' shapes (kOneHot)
            # params a layer writes itself (batch norm's running statistics) are shared by the
            # copies that split a batch (replicas, partition_dim 0): one copy writes them, so they
            # do not depend on the order the threads run in (as DistributedDataParallel keeps rank 0's)
            layer.writes_state = writes_state and not (lp.num_partitions > 1 and lp.partition_dim == 0
                                                       and lp.partition_id > 0)
            try:
                layer.setup([s.out_shape for s in srcs])
            except ConfigError:
                raise
            except (ValueError, IndexError) as e:
                raise ConfigError("layer '%s' (%s) cannot be set up on sources %s: %s" % (
                    lp.name, type_name(lp.type), ["%s %s" % (s.name, s.out_shape) for s in srcs], e)) from None
            except MemoryError:
                # the layers check their sizes first; this names the layer for anything they miss
                raise ConfigError("layer '%s' (%s) ran out of memory while allocating its arrays on sources %s.\n"
                                  "help: reduce its sizes (or the batch size)" % (
                                      lp.name, type_name(lp.type), ["%s %s" % (s.name, s.out_shape) for s in srcs]
                                  )) from None
            if layer.is_data and lp.num_partitions > 1:
                self._read_partition(layer, lp)
            self.layers.append(layer)
            self.by_name[lp.name] = layer
            self.srcs[lp.name] = srcs
        self._wire_back_edges(protos)
        # a partitioned net's layers by partition, each in the net's order (a worker runs its own)
        self.partition_layers = ([[l for l in self.layers if l.conf.partition_id == i] for i in range(self.npartitions)]
                                 if self.npartitions > 1 else [self.layers])
        self.data_layers = [l for l in self.layers if l.is_data]
        self.metric_layers = [l for l in self.layers if l.has_metrics]
        self._wire_params(shared_params or {})

    def _source(self, lp, name, slots, readers):
        """What layer ``lp`` reads as its source ``name``: the layer, or for a kSlice its slot (the
        partitioner's choice, else the next free one: SINGA's order of first access)."""
        src = self.by_name[name]
        if not slot_count(src):
            return src
        taken = readers.setdefault(name, [])
        k = slots.get((lp.name, name))
        if k is None:
            taken.append(lp.name)
            check_slots(src, taken)
            k = len(taken) - 1
        return Slot(src, k)

    @staticmethod
    def _read_partition(layer, lp):
        """A data layer of partition i of n reads rows [i b, (i+1) b) of each batch (b = batch / n):
        each partition its own records (SINGA's partitions all read the same ones: FIX)."""
        n, i = lp.num_partitions, lp.partition_id
        B = layer.out_shape[0]
        if lp.partition_dim != 0:
            raise ConfigError("data layer '%s' cannot be split by features (partition_dim 1).\nhelp: "
                              "`partition_dim: 0` on it" % lp.name)
        if B % n:
            raise ConfigError("Invalid value for `store_conf.batchsize` of layer '%s'. Expected a multiple of the %d "
                              "workers of the group it is split among. Received: %d.\nhelp: batchsize %d or %d" % (
                                  lp.name.rsplit("@", 1)[0], n, B, B - B % n or n, B - B % n + n))
        read_part = getattr(layer, "read_part", None)
        if read_part is None:
            raise ConfigError("data layer '%s' (%s) cannot split its batches among the workers of a group.\nhelp: "
                              "store the data as records (kRecordInput)" % (lp.name, type_name(lp.type)))
        b = B // n
        read_part(i * b, (i + 1) * b, B)

    def _wire_back_edges(self, protos):
        """Pair every kRBMVis with its kRBMHid (``vis.hid``, ``hid.vis``), checking the pairing."""
        by_proto = {p.name: p for p in protos}
        for lp in protos:
            if lp.type == job_pb2.kRBMHid:
                src = self.srcs[lp.name][0]
                if not isinstance(src, _rbm.RBMVisLayer):
                    raise ConfigError("Invalid value for `srclayers` of layer '%s' (kRBMHid). Expected its kRBMVis "
                                      "layer. Received: '%s' (%s)" % (lp.name, src.name, type_name(src.conf.type)))
                self.by_name[lp.name].vis = src
        for lp in protos:
            if lp.type != job_pb2.kRBMVis:
                continue
            hids = [s for s in lp.srclayers if back_edge(lp, by_proto[s])]
            if len(hids) != 1:
                raise ConfigError("Invalid value for `srclayers` of layer '%s' (kRBMVis). Expected exactly one kRBMHid "
                                  "layer among its sources (the paired hidden layer). Received: %s.\nhelp: "
                                  "`srclayers: \"data\" srclayers: \"RBMHid\"`" % (lp.name, hids or "none"))
            vis, hid = self.by_name[lp.name], self.by_name[hids[0]]
            if hid.vis is not vis:
                raise ConfigError("layer '%s' (kRBMHid) is listed by '%s' but its source is '%s'.\nhelp: "
                                  "`srclayers: \"%s\"` in '%s'" % (hid.name, vis.name, hid.vis.name, vis.name, hid.name))
            if hid.hdim != vis.hdim:
                raise ConfigError("layers '%s' and '%s' disagree on rbm_conf.hdim: %d vs %d.\nhelp: give both the "
                                  "same `rbm_conf { hdim: ... }`" % (vis.name, hid.name, vis.hdim, hid.hdim))
            vis.hid = hid
        for layer in self.layers:
            if isinstance(layer, _rbm.RBMHidLayer) and layer.vis.hid is not layer:
                raise ConfigError("layer '%s' (kRBMHid) is not listed as a source of its kRBMVis layer '%s'.\nhelp: "
                                  "add `srclayers: \"%s\"` to '%s'" % (layer.name, layer.vis.name, layer.name,
                                                                      layer.vis.name))

    def _wire_params(self, shared):
        owners = {}
        self.params = []
        pending, copies, sliced = [], [], {}
        for layer in self.layers:
            for p in layer.params:
                self.params.append(p)
                if is_unroll_copy(layer.conf, p.proto):
                    copies.append(p)
                    continue
                if layer.conf.num_partitions > 1 and layer.conf.partition_dim == 1:
                    if p.proto.share_from:
                        raise ConfigError("param '%s' of layer '%s' sets share_from, but its layer is split by "
                                          "features (partition_dim 1), which shares cannot be yet.\nhelp: "
                                          "`partition_dim: 0` on layer '%s'" % (p.name, layer.name, layer.name))
                    sliced.setdefault(strip_unroll(p.name), []).append((layer, p))
                    continue
                if p.proto.share_from:
                    pending.append(p)
                    continue
                key = strip_unroll(p.name)
                if not key:
                    raise ConfigError("a param of layer '%s' has no name.\nhelp: name every param (e.g. "
                                      "`param { name: \"w1\" ... }`); names match checkpoints" % layer.name)
                if key in owners:
                    raise ConfigError(
                        "two params are named '%s' (layers '%s' and '%s').\nhelp: give each param its own "
                        "name, or set `share_from: \"%s\"` on the second one to share the values"
                        % (key, owners[key].layer_name, layer.name, key))
                owners[key] = p
        for key, pieces in sliced.items():
            if key in owners:
                raise ConfigError("two params are named '%s' (layers '%s' and '%s').\nhelp: give each param its own "
                                  "name" % (key, owners[key].layer_name, pieces[0][0].name))
            owners[key] = self._whole_param(pieces)
        for key, p in owners.items():
            other = shared.get(key)
            if other is not None:
                p.alias(other)  # the train net's values; the train net updates them
        for p in pending:
            owner = owners.get(strip_unroll(p.proto.share_from))
            if owner is None:
                raise ConfigError("Invalid value for `share_from` of param '%s' (layer '%s'). Expected the name "
                                  "of an owner param (%s). Received: %r" % (
                                      p.name, p.layer_name, ", ".join(sorted(owners)), p.proto.share_from))
            p.share_from(owner)
        self._wire_unroll_copies(copies)
        self.owners = owners  # name (without 0#) -> owner Param
        self.owner_params = [p for p in owners.values() if p.aliased is None]

    def _whole_param(self, pieces):
        """The one param the slices ``pieces`` [(layer, param)] of a feature-split layer's copies
        make up (concatenated in partition order along the layer's ``partition_axis``); each
        slice's values and gradient become views of it. It is what the updater, the checkpoints
        and the test net see. Its gradient is scaled by 1/n: each partition's slice sees the
        whole batch, whose rows' loss gradients were normalised by the partition's share of it
        (SINGA left the gradient n times too large: FIX)."""
        pieces = sorted(pieces, key=lambda lp: lp[0].conf.partition_id)
        layer0, p0 = pieces[0]
        axis = layer0.partition_axis(p0)
        shape = list(p0.shape)
        shape[axis] = sum(p.shape[axis] for _, p in pieces)
        whole = Param(p0.proto, shape, p0.backend, p0.dtype, layer_name=layer0.name.rsplit("@", 1)[0])
        whole.grad_scale = 1.0 / len(pieces)
        whole.frozen = p0.frozen
        whole.slices = []
        lo = 0
        for layer, p in pieces:
            if layer.partition_axis(p) != axis or p.shape[:axis] + p.shape[axis + 1:] != p0.shape[:axis] + p0.shape[axis + 1:]:
                raise ConfigError("the partitions of layer '%s' disagree on the shape of param '%s' (%s vs %s)" % (
                    whole.layer_name, p.name, p0.shape, p.shape))
            index = (slice(None),) * axis + (slice(lo, lo + p.shape[axis]),)
            p.data, p.grad, p.slice_of, p.slice_index = whole.data[index], whole.grad[index], whole, index
            whole.slices.append(p)
            lo += p.shape[axis]
        return whole

    def _wire_unroll_copies(self, copies):
        """Copy i > 0 of an unrolled param reads copy 0's values and writes into its gradient buffer
        (SINGA's ShareFrom: one buffer, so the copies' gradients sum when the worker installs
        Accumulate sinks). It is neither an owner nor a share: owner_grad's mean over the shares
        (explicit share_from) counts copy 0 once, as SINGA's server did."""
        by_name = {p.name: p for p in self.params}
        for q in copies:
            first = by_name.get(q.proto.share_from)
            if first is None or first.shape != q.shape:
                raise ConfigError("param '%s' (layer '%s') is an unrolled copy of '%s', which %s.\nhelp: every "
                                  "copy of a layer must have the same params" % (
                                      q.name, q.layer_name, q.proto.share_from, "does not exist" if first is None
                                      else "has shape %s, not %s" % (first.shape, q.shape)))
            q.data, q.grad, q.unrolled_from = first.data, first.grad, first
            first.__dict__.setdefault("unroll_copies", []).append(q)

    @staticmethod
    def rebind(p, data):
        """Make ``data`` the values of owner ``p``, its shares and their unrolled copies."""
        p.data = data
        for s in p.shares:
            s.data = data
            for c in getattr(s, "unroll_copies", ()):
                c.data = data

    def forward(self, flag, partition=None):
        """Every layer's forward in order (``partition``: only that partition's layers)."""
        for layer in self.layers if partition is None else self.partition_layers[partition]:
            layer.forward(flag, self.srcs[layer.name])

    def fusable_params(self):
        """Owner params (not shared, updated by this net) whose layer can apply their update inside
        its gradient GEMM (``fusable_params()`` of the layer, e.g. kInnerProduct's weight)."""
        owned = {id(p) for p in self.owner_params}
        out = []
        for layer in self.layers:
            f = getattr(layer, "fusable_params", None)
            if f is not None:
                out += [p for p in f() if id(p) in owned and p.owner is None and len(p.shares) == 1]
        return out

    def backward(self, flag, fused=None, partition=None):
        """Back-propagate from the loss layers. ``fused``: {param: GemmUpdate}, those params'
        gradient sinks for this pass only (see BPWorker.gemm_updates). ``partition``: only that
        partition's layers (the gradients of the others' come across the bridges)."""
        with installed(fused):
            self._backward(flag, self.layers if partition is None else self.partition_layers[partition])

    def _backward(self, flag, layers):
        grads = {}       # a layer's name (or (name, slot) of a multi-slot layer) -> its output's gradient
        for layer in reversed(layers):
            if layer.is_data:
                continue
            nslots = slot_count(layer)
            if nslots:
                g = [grads.pop((layer.name, k), None) for k in range(nslots)]
                if all(x is None for x in g):
                    g = None
            else:
                g = grads.pop(layer.name, None)
            if g is None and not layer.is_loss and not layer.pulls_gradient:
                continue  # nothing downstream needs this layer's gradient
            srcs = self.srcs[layer.name]
            src_grads = layer.backward(flag, srcs, g)
            for src, sg in zip(srcs, src_grads or ()):
                if sg is None or not wants_gradient(src):
                    continue
                key = (src.name, src.k) if isinstance(src, Slot) else src.name
                prev = grads.get(key)
                grads[key] = sg if prev is None else prev + sg

    def metrics(self):
        """This batch's metrics of every metric layer, merged into one dict of floats (a partitioned
        net's: the mean over its partitions' equal shares of the batch)."""
        if self.npartitions > 1:
            return self.metric_means()[0]
        out = {}
        for layer in self.metric_layers:
            out.update(layer.metrics())
        return out

    def metric_means(self):
        """This batch's metrics averaged over the layers reporting each (an unrolled net's loss
        copies: the per-step mean), and {name: how many layers reported it}."""
        sums, counts = {}, {}
        for layer in self.metric_layers:
            for k, v in layer.metrics().items():
                sums[k] = sums.get(k, 0.0) + float(v)
                counts[k] = counts.get(k, 0) + 1
        return {k: v / counts[k] for k, v in sums.items()}, counts

    def replica(self, lo, hi, index, writes_state=True):
        """A copy of this net that trains on rows [lo, hi) of each batch, for data-parallel threads
        (see BPWorker): its own layers and buffers, its data layers replaced by slices of this
        net's (run this net's data layers first), its params reading this net's values with
        their own gradients, and random streams of its own (suffix ``#<index>``).
        ``writes_state``: whether its layers write the params they keep (the first replica's do)."""
        slices = {l.name: DataSlice(l, lo, hi) for l in self.data_layers}
        return NeuralNet(self.net_proto, self.phase, self.backend, self.streams, self.dtype,
                         shared_params=self.owners, data_slices=slices, stream_suffix="#%d" % index,
                         writes_state=writes_state)

    @property
    def batch_size(self):
        """The batch one step trains on (a partitioned net's: every partition's rows)."""
        return self.data_layers[0].out_shape[0] * self.npartitions if self.data_layers else 0


class DataSlice:
    """A replica's stand-in for a data layer of the master net: rows [lo, hi) of the batch the
    master's layer read (``data``, the labels ``aux`` and the blobs ``datavec``), as views."""
    is_data = True
    is_loss = False
    has_metrics = False
    params = ()

    def __init__(self, layer, lo, hi):
        self.master, self.lo, self.hi = layer, int(lo), int(hi)
        self.name = layer.name
        self.out_shape = (self.hi - self.lo,) + tuple(layer.out_shape[1:])
        self.data = self.aux = self.datavec = None

    def forward(self, flag, srcs):
        m = self.master
        if m.data is None or m.data.shape[0] < self.hi:
            raise RuntimeError("replica slice [%d, %d) of data layer '%s': the master's batch has %s rows; run "
                               "the master's data layers first" % (self.lo, self.hi, self.name,
                                                                 None if m.data is None else m.data.shape[0]))
        self.data = m.data[self.lo:self.hi]
        self.aux = None if m.aux is None else m.aux[self.lo:self.hi]
        # a source of several blobs (kCharRNN's unroll_len + 1, one per time step): each sliced alike
        dv = getattr(m, "datavec", None)
        self.datavec = None if dv is None else [v[self.lo:self.hi] for v in dv]
        return self.data
