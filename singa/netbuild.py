"""NetProto assembly: the user API's layer list to ``JobProto.neuralnet`` and back (SINGA's Model.build).

``build_net(layers, label, accuracy, template)`` is a pure function of the layer objects (singa.layer):
each layer that names no sources reads the previous non-data layer's output (the first one reads the
first data layer), an activation ``mask`` follows its layer, an RBM's ``bidirect`` RBMHid reads its
RBMVis, and the last layer (a loss) also reads the data layer's labels; with an RNNLabel (char-rnn) the
label layer reads the data layer and the loss reads it instead, and a CharRNN data layer's unroll_len
becomes the net's. A layer whose LayerProto
already names its ``srclayers`` is wired: it is copied as it is. ``check_names`` refuses the names the
engine would refuse, in the user's terms. ``layers_of(net)`` is the way back (``Model.from_jobproto``):
layer objects of the classes that make such LayerProtos, as Keras' ``Sequential.from_config``.
"""
from singa.errors import ConfigError, Stated, invalid
from singa.layer import Accuracy, from_proto
from singa.proto import enum_name, job_pb2

LOSS_TYPES = (job_pb2.kSoftmaxLoss, job_pb2.kEuclideanLoss, job_pb2.kCudnnSoftmaxLoss)
_PHASES = (job_pb2.kTrain, job_pb2.kVal, job_pb2.kTest)


def build_net(layers, label=False, accuracy=False, template=None):
    """The NetProto of ``layers`` (layer objects, in order), its other fields from ``template``.

    ``label`` (deprecated) adds a kLabel layer read by the last layer; ``accuracy`` adds test-only
    softmax + accuracy layers on the prediction (what the loss layer reads)."""
    if not layers:
        raise ConfigError("the model has no layers.\nhelp: m.add(Dense(...)) and give data to fit()/evaluate()")
    net = job_pb2.NetProto()
    if template is not None:
        net.CopyFrom(template)
    data = [l for l in layers if l.is_datalayer]
    first_data = data[0].layer.name if data else None
    _set_unroll_len(net, layers, template)
    lastly, last_owner = _chain(net, layers, first_data)
    rnn_label = next((l.layer.name for l in layers if getattr(l, "is_labellayer", False) and not l.layer.srclayers),
                     None)
    if rnn_label is not None and lastly is not None:
        lastly.srclayers.append(rnn_label)      # char-rnn's loss reads [prediction, label]
    elif label:
        lab = net.layer.add(name="label", type=job_pb2.kLabel)
        if first_data is not None:
            lab.srclayers.append(first_data)
        if lastly is not None:
            lastly.srclayers.append("label")
    elif lastly is not None:
        if lastly.type == job_pb2.kRBMVis and last_owner.bidirect is not None:
            lastly.srclayers.append(last_owner.bidirect.name)
        elif first_data is not None:
            lastly.srclayers.append(first_data)
    if accuracy:
        _add_accuracy(net, lastly, layers[-1].layer.name, first_data)
    check_names(net.layer)
    return net


def _chain(net, layers, first_data):
    """Append the layers' protos to ``net``, each unwired one reading the one before; returns the
    last chained proto and the layer object that made it."""
    slyname, lastly, last_owner = first_data, None, None
    for l in layers:
        ly = net.layer.add()
        ly.CopyFrom(l.layer)
        if l.is_datalayer:
            continue
        if l.layer.srclayers:       # wired already: the chain goes on after it
            lastly, slyname = None, ly.name
            continue
        if getattr(l, "is_labellayer", False):     # RNNLabel: reads the data, the chain passes it by
            if first_data is not None:
                ly.srclayers.append(first_data)
            continue
        lastly, last_owner = ly, l
        if slyname is not None:
            ly.srclayers.append(slyname)
        slyname = ly.name
        if l.mask is not None:
            mly = net.layer.add()
            mly.CopyFrom(l.mask)
            mly.srclayers.append(slyname)
            lastly, slyname = mly, mly.name
        if l.bidirect is not None:
            bly = net.layer.add()
            bly.CopyFrom(l.bidirect)
            bly.srclayers.append(ly.name)
    return lastly, last_owner


def _set_unroll_len(net, layers, template):
    """NetProto.unroll_len from a CharRNN data layer (one number, said once) unless the template has one."""
    if template is not None and template.HasField("unroll_len"):
        return
    lens = {l.net_unroll_len for l in layers if getattr(l, "net_unroll_len", None)}
    if len(lens) > 1:
        raise invalid("unroll_len", "one unroll length for the whole net", Stated("CharRNN layers with %s"
                      % sorted(lens)), where="the model's data layers")
    if lens:
        net.unroll_len = lens.pop()


def _add_accuracy(net, lastly, last_name, first_data):
    sm = net.layer.add(name="softmax", type=job_pb2.kSoftmax)
    sm.include.append(job_pb2.kTest)
    # the prediction: what the loss layer reads (SINGA took layers[-1], the same in its examples)
    if lastly is not None and lastly.type in LOSS_TYPES and lastly.srclayers:
        sm.srclayers.append(lastly.srclayers[0])
    else:
        sm.srclayers.append(last_name)
    acc = net.layer.add()
    acc.CopyFrom(Accuracy().layer)
    acc.include.append(job_pb2.kTest)
    acc.srclayers.append("softmax")
    if first_data is not None:
        acc.srclayers.append(first_data)


def phases(lp):
    """The phases (kTrain, kVal, kTest) whose nets hold LayerProto ``lp``: its include, else all but
    its exclude (as singa.neuralnet.layers_in_phase filters them)."""
    if lp.include:
        return set(lp.include) & set(_PHASES)
    return set(_PHASES) - set(lp.exclude)


def check_names(layer_protos):
    """Refuse two layers, or two owner params, of one name in one phase: the engine builds a net per
    phase and would refuse them there, without the user API's hints. Names may repeat across phases (a
    data layer per phase; the train and test versions of a layer in a job.conf, sharing their params)."""
    layers, params = {}, {}
    for ly in layer_protos:
        where = phases(ly)
        for other in layers.get(ly.name, ()):
            if where & phases(other):
                raise invalid(
                    "name", "a name no other layer of the net has",
                    Stated("%r, also used by a %s layer" % (ly.name, enum_name(job_pb2.LayerType, other.type))),
                    where="layer %r (%s)" % (ly.name, enum_name(job_pb2.LayerType, ly.type)),
                    hint="layers made before the Model was constructed keep their old default names (each Model "
                         "restarts the counters); make the Model first or pass name=... to the layer")
        layers.setdefault(ly.name, []).append(ly)
        for p in ly.param:
            if p.share_from:        # a sharing param is no owner of values: its name may repeat (as in the engine)
                continue
            for owner in params.get(p.name, ()):
                if where & phases(owner):
                    raise ConfigError(
                        "Invalid value for param name %r of layer %r. Expected a name no other param has. "
                        "Received: %r, also a param of layer %r\nhelp: give each Parameter its own name; to "
                        "share values use Parameter(name=..., share_from='<owner name>')"
                        % (p.name, ly.name, p.name, owner.name))
            params.setdefault(p.name, []).append(ly)


def layers_of(net):
    """Layer objects for the layers of NetProto ``net`` such that ``build_net`` gives ``net.layer`` back:
    unwired (chained) when ``net`` is the chain build_net makes of them, else each keeps its srclayers."""
    chained = _unwired(net)
    template = job_pb2.NetProto()
    template.CopyFrom(net)
    template.ClearField("layer")
    try:
        if chained and build_net(chained, template=template) == net:
            return chained
    except ConfigError:
        pass
    return [from_proto(lp) for lp in net.layer]


def _unwired(net):
    out = []
    for lp in net.layer:
        prev = out[-1] if out else None
        if (lp.type == job_pb2.kRBMHid and prev is not None and prev.layer.type == job_pb2.kRBMVis
                and prev.bidirect is None and list(lp.srclayers) == [prev.layer.name]):
            prev.bidirect = job_pb2.LayerProto()        # the RBM's paired hidden layer
            prev.bidirect.CopyFrom(lp)
            del prev.bidirect.srclayers[:]
            continue
        layer = from_proto(lp)
        del layer.layer.srclayers[:]
        out.append(layer)
    return out


__all__ = ["build_net", "check_names", "layers_of", "phases", "LOSS_TYPES"]
