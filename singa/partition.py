"""Partitioning a net among the workers of a group (SINGA's AddModelSplitLayers,
AddPartitionConnectionLayers and CreateGraph; SINGA-V0-REST.md 5): a pure function from the
layers of one phase to the layers every worker runs.

Each layer is split by the batch (``partition_dim: 0``, data parallelism inside the group) or by
its features (``partition_dim: 1``, model parallelism); a layer's own value wins, -1 (unset)
takes the net's. ``partition(protos, n, net_dim)`` gives

* every layer ``L`` as n copies ``L@i`` (``partition_id`` i, ``num_partitions`` n); param names
  stay as they are (a feature-split layer's copies own slices of one param, a batch-split
  layer's copies share it);
* kSplit where a layer feeds several (SINGA's model split layers), and where partitions with
  different dims meet the connection layers SINGA inserts: ``split(S)`` + ``concate(split(S))``
  before a feature-split layer that reads every input feature (kInnerProduct, the
  convolutions), else ``slice(S)`` + ``concate(slice(S))``;
* between ``S@i`` and a kConcate ``D@j`` on another partition (i != j) the bridge pair
  ``bridge_src(S@i->D@j)`` / ``bridge_dst(S@i->D@j)``.

It also returns ``slots``: {(consumer, kSlice layer): k}, the output slot each reader of a
kSlice takes. SINGA gave slots in set-up order, which paired mismatched batch rows (5.7); here
piece j always goes to partition j (FIX). Two feature-split layers reading one source share one
``concate(split(S))`` (SINGA created the node twice and failed).
"""
from google.protobuf import text_format

from singa.errors import ConfigError
from singa.proto import LayerProto, is_input_layer, job_pb2

# layers whose output depends on every input feature (SINGA's kOneToAll src connection)
ONE_TO_ALL = {job_pb2.kInnerProduct, job_pb2.kConvolution, job_pb2.kCConvolution, job_pb2.kCudnnConv,
              job_pb2.kSoftmax, job_pb2.kCudnnSoftmax}
# feature-split layers and the size each divides among the partitions
SPLIT_OUTPUTS = {job_pb2.kInnerProduct: "innerproduct_conf.num_output", job_pb2.kConvolution:
                 "convolution_conf.num_filters", job_pb2.kCConvolution: "convolution_conf.num_filters",
                 job_pb2.kCudnnConv: "convolution_conf.num_filters"}
# layers that work feature by feature (or channel by channel): a slice of the features is exact
FEATURE_WISE = {job_pb2.kReLU, job_pb2.kSigmoid, job_pb2.kSTanh, job_pb2.kActivation,
                job_pb2.kCudnnActivation, job_pb2.kDropout, job_pb2.kPooling, job_pb2.kCPooling,
                job_pb2.kCudnnPool, job_pb2.kSoftmax, job_pb2.kCudnnSoftmax}
CONNECTION = {job_pb2.kSplit, job_pb2.kSlice, job_pb2.kConcate, job_pb2.kBridgeSrc, job_pb2.kBridgeDst}
# dst_layer_connection kOneToMany: no split layer when they feed several (the input layers, kGRU)
_ONE_TO_MANY = {job_pb2.kGRU}


def _where(lp):
    return "layer '%s' (%s)" % (lp.name, lp.user_type or job_pb2.LayerType.Name(lp.type))


def layer_dim(lp, net_dim):
    """The partition_dim ``lp`` runs with: its own, or the net's when it has none (or -1)."""
    own = lp.partition_dim if lp.HasField("partition_dim") else -1
    if own not in (-1, 0, 1):
        raise ConfigError("Invalid value for `partition_dim` of %s. Expected 0 (split by the batch), 1 (by the "
                          "features) or -1 (the net's). Received: %d.\nhelp: `partition_dim: 1` on a wide "
                          "kInnerProduct, 0 (or nothing) elsewhere" % (_where(lp), own))
    return net_dim if own == -1 else own


def check_net_dim(net_dim):
    if net_dim not in (0, 1):
        raise ConfigError("Invalid value for `neuralnet.partition_dim`. Expected 0 (every layer split by the batch) "
                          "or 1 (by the features). Received: %d.\nhelp: leave it out (0) and set `partition_dim: 1` "
                          "on the layers to split by features" % net_dim)


def wants_partitioning(protos, net_dim):
    """Whether any layer of ``protos`` is split by its features (else the group is data-parallel,
    which the replica engine runs without connection layers)."""
    check_net_dim(net_dim)
    return any(layer_dim(lp, net_dim) == 1 for lp in protos)


def _check_feature_split(lp, n):
    """A ConfigError unless ``lp`` can be split by its features among ``n`` partitions."""
    if is_input_layer(lp) or lp.user_type or lp.type in CONNECTION and lp.type != job_pb2.kSplit:
        what = ("a data layer reads whole records" if is_input_layer(lp) else
                "a user layer gives no rule for splitting its params" if lp.user_type else
                "connection layers are placed by the partitioner")
        raise _not_splittable(lp, what)
    if lp.type in SPLIT_OUTPUTS:
        field = SPLIT_OUTPUTS[lp.type]
        conf, key = field.split(".")
        size = getattr(getattr(lp, conf), key)
        if size % n:
            raise ConfigError("Invalid value for `%s` of %s. Expected a multiple of the %d workers it is split "
                              "among (partition_dim 1: each worker computes %s / %d of them). Received: %d.\nhelp: "
                              "use %d or %d, or partition_dim 0" % (field, _where(lp), n, key, n, size,
                                                                    size - size % n, size - size % n + n))
        return
    if lp.type in FEATURE_WISE or lp.type == job_pb2.kSplit:
        return
    why = {job_pb2.kLRN: "it mixes neighbouring channels, which a channel slice would cut at its borders",
           job_pb2.kCudnnLRN: "it mixes neighbouring channels, which a channel slice would cut at its borders"}
    if any(t == lp.type for t in (job_pb2.kSoftmaxLoss, job_pb2.kCudnnSoftmaxLoss, job_pb2.kEuclideanLoss,
                                   job_pb2.kAccuracy, job_pb2.kArgSort)):
        reason = "its value needs every output of a sample (the partitions hold slices of them)"
    else:
        reason = why.get(lp.type, "this engine has no rule for splitting it by features")
    raise _not_splittable(lp, reason)


def _not_splittable(lp, reason):
    return ConfigError("Invalid value for `partition_dim` of %s. Expected 0 (split by the batch): %s. Received: 1."
                       "\nhelp: set `partition_dim: 0` on this layer (partition_dim 1 splits kInnerProduct and the "
                       "convolutions by their outputs, and layers that work feature by feature)" % (_where(lp), reason))


def _new(name, ltype, dim, srcs):
    lp = LayerProto()
    lp.name, lp.type, lp.partition_dim = name, ltype, dim
    lp.srclayers.extend(srcs)
    return lp


def partition(protos, n, net_dim=0):
    """(layer protos of every partition, slots) for ``protos`` (one phase, after unrolling) split
    among ``n`` workers; see the module doc. The protos come in an order where sources precede
    their consumers' connection layers; NeuralNet sorts them."""
    check_net_dim(net_dim)
    n = int(n)
    if n < 2:
        raise ValueError("partition: n must be >= 2, got %d" % n)
    layers = []
    for lp in protos:
        q = LayerProto()
        q.CopyFrom(lp)
        q.partition_dim = layer_dim(lp, net_dim)
        if q.type in CONNECTION:
            raise ConfigError("%s is a connection layer in a net split among %d workers (partition_dim 1).\nhelp: "
                              "leave them out: the partitioner inserts kSplit, kSlice, kConcate and the bridges where "
                              "partitions meet" % (_where(lp), n))
        if q.partition_dim == 1:
            _check_feature_split(q, n)
        layers.append(q)
    by_name = {lp.name: lp for lp in layers}
    dsts = {lp.name: [] for lp in layers}
    for lp in layers:
        for s in lp.srclayers:
            dsts[s].append(lp.name)

    # SINGA's AddModelSplitLayers: a layer read by several (not an input layer, not kGRU) feeds a kSplit
    extra = []
    for lp in list(layers):
        readers = dsts[lp.name]
        if len(readers) > 1 and not is_input_layer(lp) and lp.type not in _ONE_TO_MANY:
            sp = _new("split(%s)" % lp.name, job_pb2.kSplit, lp.partition_dim, [lp.name])
            sp.split_conf.num_splits = len(readers)
            extra.append(sp)
            for r in readers:
                rp = by_name[r]
                rp.srclayers[:] = ["split(%s)" % lp.name if s == lp.name else s for s in rp.srclayers]
            dsts[lp.name] = [sp.name]
            dsts[sp.name] = list(readers)
            by_name[sp.name] = sp
    layers += extra

    # SINGA's AddPartitionConnectionLayers
    made = {}

    def connect(name, make):
        if name not in made:
            made[name] = make()
            by_name[name] = made[name]
        return name

    for d in list(layers):
        pd_d = d.partition_dim
        new_srcs = []
        for s in d.srclayers:
            pd_s = by_name[s].partition_dim
            if pd_d == 1 and d.type in ONE_TO_ALL:
                sp = connect("split(%s)" % s, lambda: _split(s, pd_s, n))
                new_srcs.append(connect("concate(%s)" % sp, lambda: _concate(sp, pd_d, pd_s, n)))
            elif pd_s == pd_d:
                new_srcs.append(s)
            else:
                sl = connect("slice(%s)" % s, lambda: _slice(s, pd_s, pd_d, n))
                new_srcs.append(connect("concate(%s)" % sl, lambda: _concate(sl, pd_d, pd_s, n)))
        d.srclayers[:] = new_srcs
    layers += list(made.values())
    by_name = {lp.name: lp for lp in layers}

    # SINGA's CreateGraph: n copies of every layer, bridges into the concates across partitions
    out, slots = [], {}
    for lp in layers:
        for j in range(n):
            q = LayerProto()
            q.CopyFrom(lp)
            q.name = "%s@%d" % (lp.name, j)
            q.partition_id, q.num_partitions = j, n
            del q.srclayers[:]
            if lp.type == job_pb2.kConcate:
                for i in range(n):
                    src = "%s@%d" % (lp.srclayers[0], i)
                    if i == j:
                        q.srclayers.append(src)
                    else:
                        link = "%s->%s" % (src, q.name)
                        bs = _new("bridge_src(%s)" % link, job_pb2.kBridgeSrc, lp.partition_dim, [src])
                        bs.partition_id, bs.num_partitions = i, n
                        bd = _new("bridge_dst(%s)" % link, job_pb2.kBridgeDst, lp.partition_dim, [bs.name])
                        bd.partition_id, bd.num_partitions = j, n
                        out += [bs, bd]
                        q.srclayers.append(bd.name)
                        src_layer = by_name[lp.srclayers[0]]
                        if src_layer.type == job_pb2.kSlice:
                            slots[(bs.name, src)] = j
                    if i == j and by_name[lp.srclayers[0]].type == job_pb2.kSlice:
                        slots[(q.name, src)] = j
            else:
                q.srclayers.extend("%s@%d" % (s, j) for s in lp.srclayers)
            _mark_replica_shares(q, lp)
            out.append(q)
    return out, slots


def _mark_replica_shares(q, lp):
    """A batch-split layer's copies beyond the first share copy 0's params (SINGA's ShareDataFrom
    between replicas): their gradients are averaged into it. The user's own share_from stays."""
    if q.partition_dim != 0 or q.partition_id == 0:
        return
    for p in q.param:
        if not p.share_from:
            p.share_from = p.name


def _split(s, pd_s, n):
    sp = _new("split(%s)" % s, job_pb2.kSplit, pd_s, [s])
    sp.split_conf.num_splits = n
    return sp


def _slice(s, pd_s, pd_d, n):
    sl = _new("slice(%s)" % s, job_pb2.kSlice, pd_s, [s])
    sl.slice_conf.slice_dim, sl.slice_conf.num_slices = pd_d, n
    return sl


def _concate(src, pd_d, pd_s, n):
    cc = _new("concate(%s)" % src, job_pb2.kConcate, pd_d, [src])
    cc.concate_conf.concate_dim, cc.concate_conf.num_concates = pd_s, n
    return cc


def as_conf_text(protos):
    """The partitioned layers as job.conf text (``layer { ... }`` blocks): the net that runs."""
    return "".join("layer {\n%s}\n" % "".join("  " + ln + "\n" for ln in text_format.MessageToString(lp).splitlines())
                   for lp in protos)
