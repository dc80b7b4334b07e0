"""Unrolling a recurrent net into its time steps (SINGA's NeuralNet::Unrolling, SINGA-V0-REST.md 1.2).

A layer with ``unroll_len`` n becomes n copies ``{i}#{name}`` (i = 0..n-1, also for n = 1:
``data`` becomes ``0#data``), each with ``unroll_index`` i and ``unroll_len``,
``unroll_conn_type``, ``shift`` and ``srclayers`` cleared. Layers without an ``unroll_len`` of
their own take the net's. Param ``p`` of copy i is named ``{i}#p``; copies i > 0 get
``share_from: "0#p"`` (NeuralNet makes them share values *and* gradient with copy 0's param,
SINGA's ShareFrom), copy 0 keeps the user's ``share_from``. The edges follow each source's
``unroll_conn_type`` and ``shift`` (``copy_sources``); a kGRU copy j >= 1 also reads ``(j-1)#L``.

Names. Only a net that asks for unrolling (``unroll_len`` set on the net or on any layer: the
field's presence, as a conf written for SINGA's recurrent examples has it) is renamed; every
other net keeps its names exactly as before (``fc1``, param ``w1``). The ``0#`` of a copy-0
param is the prefix SINGA wrote into every checkpoint: NeuralNet.owners keys the owner params
without it (``neuralnet.strip_unroll``: ``0#w1`` -> ``w1``) and checkpoints write it back, so an
unrolled net's checkpoint holds ``0#w1`` as SINGA's did, and a non-unrolled net's too (as
today). Copies i > 0 own nothing: they are neither owners nor in checkpoints.

``dynamic_sources``: the test-mode rewiring of kRNNDummy-like layers (``rnn_dummy_conf
.dynamic_srclayer``, SINGA-V0-REST.md 1.5 step 2).
"""
from singa.errors import ConfigError
from singa.proto import enum_name, job_pb2

_CONN_NAMES = "kUnrollOneToOne (1), kUnrollOneToAll (2) or kUnrollFirstToLast (3)"


def wants_unrolling(net_proto):
    """Whether ``net_proto`` asks for unrolling: ``unroll_len`` given on the net or any layer."""
    return net_proto.HasField("unroll_len") or any(lp.HasField("unroll_len") for lp in net_proto.layer)


def copy_name(i, name):
    return "%d#%s" % (i, name)


def _lengths(layer_protos, net_len):
    """name -> number of copies (the layer's own ``unroll_len``, else the net's), checked >= 1."""
    out = {}
    for lp in layer_protos:
        n = lp.unroll_len if lp.HasField("unroll_len") else net_len
        if n < 1:
            where = ("layer '%s'" % lp.name if lp.HasField("unroll_len")
                     else "the net (inherited by layer '%s')" % lp.name)
            raise ConfigError("Invalid value for `unroll_len` of %s. Expected a number of time steps >= 1. "
                              "Received: %d.\nhelp: e.g. `unroll_len: 50` on the net and `unroll_len: 1` on its "
                              "data layer" % (where, n))
        out[lp.name] = n
    return out


def _check_source(lp, src, lengths):
    if src not in lengths:
        raise ConfigError("Invalid value for `srclayers` of layer '%s'. Expected the name of a layer in this phase "
                          "(%s). Received: %r.\nhelp: check the spelling; SINGA v0.3 silently wired an unknown "
                          "source of an unrolled net to the first layer" % (
                              lp.name, ", ".join(sorted(lengths)[:20]), src))


def copy_sources(lp, j, n, lengths):
    """The source names of copy ``j`` (of ``n``) of layer ``lp``, in SINGA's order."""
    out = []
    for k, src in enumerate(lp.srclayers):
        _check_source(lp, src, lengths)
        m = lengths[src]
        conn = lp.unroll_conn_type[k] if k < len(lp.unroll_conn_type) else job_pb2.kUnrollOneToOne
        shift = lp.shift[k] if k < len(lp.shift) else 0
        if conn == job_pb2.kUnrollOneToOne:
            if shift < 0:
                raise ConfigError("Invalid value for `shift` of layer '%s' (source #%d '%s'). Expected a shift >= 0 "
                                  "(copy j reads source copy j - shift). Received: %d.\nhelp: `shift: 1` reads the "
                                  "previous time step" % (lp.name, k, src, shift))
            if n - 1 - shift >= m:
                # SINGA read past the source's copies (undefined behaviour); refuse instead
                raise ConfigError(
                    "Invalid value for `unroll_len` of layer '%s'. Expected at most %d copies, as its source '%s' "
                    "(kUnrollOneToOne, shift %d) has %d. Received: %d.\nhelp: give both the same unroll_len, or "
                    "connect a single-copy source with `unroll_conn_type: kUnrollOneToAll`"
                    % (lp.name, m + shift, src, shift, m, n))
            if j >= shift:
                out.append(copy_name(j - shift, src))
        elif conn == job_pb2.kUnrollOneToAll:
            out += [copy_name(i, src) for i in range(m)]
        elif conn == job_pb2.kUnrollFirstToLast:
            if j == 0:
                out.append(copy_name(m - 1, src))
        else:
            raise ConfigError(
                "Invalid value for `unroll_conn_type` of layer '%s' (source #%d '%s'). Expected %s. Received: %s."
                "\nhelp: SINGA v0.3 has no code for kUnrollCustomized (it dropped the edge silently); pick one "
                "of the three" % (lp.name, k, src, _CONN_NAMES, enum_name(job_pb2.UnrollConnType, conn)))
    if lp.type == job_pb2.kGRU and j >= 1:
        out.append(copy_name(j - 1, lp.name))     # the previous step's hidden state, last (SINGA)
    return out


def _copy(lp, i, n, lengths):
    c = type(lp)()
    c.CopyFrom(lp)
    for field in ("unroll_len", "unroll_conn_type", "shift", "srclayers"):
        c.ClearField(field)
    c.name = copy_name(i, lp.name)
    c.unroll_index = i
    c.srclayers.extend(copy_sources(lp, i, n, lengths))
    for p in c.param:
        orig = p.name
        p.name = copy_name(i, orig)
        if i > 0:
            p.share_from = copy_name(0, orig)      # overrides a user share_from, as SINGA did
    return c


def _check_sequence_sources(layer_protos, lengths):
    """A kCharRNN data layer gives ``char_rnn_conf.unroll_len`` + 1 blobs, copy i of a reader
    taking blob i (kOneHot) or i + 1 (kRNNLabel): its readers must have that many copies."""
    by_name = {lp.name: lp for lp in layer_protos}
    for lp in layer_protos:
        for src in lp.srclayers:
            s = by_name.get(src)
            if s is None or s.type != job_pb2.kCharRNN:
                continue
            want = s.char_rnn_conf.unroll_len
            if lengths[lp.name] != want:
                raise ConfigError(
                    "Invalid value for `unroll_len` of layer '%s'. Expected %d, the char_rnn_conf.unroll_len of its "
                    "source '%s' (the time steps each record holds). Received: %d.\nhelp: give the net and "
                    "char_rnn_conf the same unroll_len" % (lp.name, want, src, lengths[lp.name]))


def unroll(layer_protos, net_len):
    """The unrolled LayerProtos of ``layer_protos`` (one phase's), copies of a layer together
    in conf order; the net orders them topologically afterwards."""
    lengths = _lengths(layer_protos, net_len)
    _check_sequence_sources(layer_protos, lengths)
    out = []
    for lp in layer_protos:
        n = lengths[lp.name]
        out += [_copy(lp, i, n, lengths) for i in range(n)]
    return out


def is_unroll_copy(layer_proto, param_proto):
    """A param of copy i > 0 that shares values and gradient with copy 0's (``share_from`` = ``0#p``
    set by ``unroll``)."""
    i = layer_proto.unroll_index
    if i <= 0:
        return False
    prefix = copy_name(i, "")
    return param_proto.name.startswith(prefix) and param_proto.share_from == "0#" + param_proto.name[len(prefix):]


def dynamic_sources(net):
    """{layer name: the layer it reads from test step 1 on} for a kTest net's layers that set
    ``rnn_dummy_conf.dynamic_srclayer`` (kRNNDummy): copy i reads ``{i}#{dynamic_srclayer}`` (an
    unrolled net) or ``dynamic_srclayer`` itself, whose output is the previous test step's."""
    out = {}
    for layer in net.layers:
        conf = getattr(layer, "conf", None)
        if conf is None or not conf.HasField("rnn_dummy_conf") or not conf.rnn_dummy_conf.dynamic_srclayer:
            continue
        dyn = conf.rnn_dummy_conf.dynamic_srclayer
        if len(net.srcs[layer.name]) > 1:
            raise ConfigError("Invalid value for `srclayers` of layer '%s'. Expected at most one source (a layer "
                              "with rnn_dummy_conf.dynamic_srclayer is rewired to read '%s'). Received: %s.\nhelp: "
                              "remove the extra sources" % (layer.name, dyn, [s.name for s in net.srcs[layer.name]]))
        name = copy_name(conf.unroll_index, dyn) if net.unrolled else dyn
        src = net.by_name.get(name)
        if src is None:
            raise ConfigError("Invalid value for `rnn_dummy_conf.dynamic_srclayer` of layer '%s'. Expected the name "
                              "of a layer of the test net. Received: %r (looked for '%s').\nhelp: name the layer whose "
                              "output feeds the next test step, e.g. `dynamic_srclayer: \"argsort\"`"
                              % (layer.name, dyn, name))
        out[layer.name] = src
    return out
