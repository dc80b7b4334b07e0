"""What ``Model.compile()`` checks and does to the layers (after Keras' trainers/compile_utils): the
optimizer and cluster arguments as protos, and the loss: a final softmax retyped in place (as SINGA
did) or a Loss layer to append."""
from singa.errors import ConfigError, invalid
from singa.layer import Loss
from singa.netbuild import LOSS_TYPES
from singa.proto import enum_name, job_pb2

LOSS_NAMES = ("categorical_crossentropy", "mean_squared_error")


def compile_protos(optimizer, cluster, loss, updater, kwargs):
    """The (UpdaterProto, ClusterProto) of compile()'s arguments, each checked (``updater`` is another
    name for ``optimizer``; ``kwargs`` must be empty)."""
    if kwargs:
        key = next(iter(kwargs))
        raise ConfigError("Invalid value for `%s` (a keyword argument of compile()). Expected optimizer, "
                          "updater, cluster, loss or topk. Received: %s=%r" % (key, key, kwargs[key]))
    if optimizer is not None and updater is not None and optimizer is not updater:
        raise ConfigError("Invalid value for `updater`. Expected it only as another name for `optimizer`. "
                          "Received both optimizer=%r and updater=%r\nhelp: pass one of them" % (optimizer, updater))
    optimizer = optimizer if optimizer is not None else updater
    if optimizer is None:
        raise invalid("optimizer", "an Updater such as SGD(...)", None, where="compile()",
                      hint="m.compile(optimizer=SGD(lr=0.001), cluster=Cluster(workspace))")
    if cluster is None:
        raise invalid("cluster", "a Cluster", None, where="compile()",
                      hint="m.compile(optimizer=sgd, cluster=Cluster(workspace='examples/mnist'))")
    upd = optimizer.proto if hasattr(optimizer, "proto") else optimizer
    if not isinstance(upd, job_pb2.UpdaterProto):
        raise invalid("optimizer", "an Updater (SGD, AdaGrad, ...)", optimizer, where="compile()")
    clu = cluster.proto if hasattr(cluster, "proto") else cluster
    if not isinstance(clu, job_pb2.ClusterProto):
        raise invalid("cluster", "a Cluster", cluster, where="compile()",
                      hint="cluster=Cluster(workspace='examples/mnist')")
    if loss is not None and loss not in LOSS_NAMES:
        raise invalid("loss", "one of %s (or None)" % ", ".join("'%s'" % n for n in LOSS_NAMES), loss,
                      where="compile()")
    return upd, clu


def _last_proto(layer):
    """The proto that ends ``layer``'s output: its activation when it has one."""
    return layer.mask if layer.mask is not None else layer.layer


def apply_loss(layers, loss, topk):
    """compile(loss=...): retype the final softmax (or an earlier compile's loss) of ``layers`` in place;
    returns the Loss layer to append when the net ends elsewhere, else None."""
    last = [l for l in layers if not l.is_datalayer]
    if not last:
        raise ConfigError("compile(loss=%r) needs the model's layers first.\nhelp: m.add(Dense(...)) "
                          "before m.compile(...)" % (loss,))
    ly = _last_proto(last[-1])
    if ly.type == job_pb2.kSoftmax or ly.type in LOSS_TYPES:
        if loss == "categorical_crossentropy":
            ly.type = job_pb2.kSoftmaxLoss
            ly.softmaxloss_conf.topk = topk
        else:
            ly.type = job_pb2.kEuclideanLoss
            ly.ClearField("softmaxloss_conf")
        return None
    if loss == "categorical_crossentropy":
        return Loss("softmaxloss", topk=topk)
    return Loss("euclideanloss")


def default_loss(layers, topk):
    """compile() without ``loss``: a feed-forward net ending in a softmax trains with the softmax loss
    (what SINGA's cifar10 job.conf and the seed's CNN example mean): that softmax is retyped and its
    name returned (the caller says so aloud). None when a loss is there already or there are no
    layers; a net ending elsewhere without any loss layer is refused here, not at training."""
    layers = [l for l in layers if not l.is_datalayer]
    if not layers:
        return None
    protos = [p for l in layers for p in (l.layer, l.mask, l.bidirect) if p is not None]
    if any(p.type in LOSS_TYPES for p in protos):
        return None
    last = layers[-1]
    ly = _last_proto(last)
    if last.layer.srclayers or ly.type != job_pb2.kSoftmax:      # a wired layer stays as its job.conf has it
        raise ConfigError(
            "compile() got no `loss` and the model's last layer %r (%s) is not a softmax, so back-propagation "
            "would have nothing to minimise.\nhelp: m.compile(loss='categorical_crossentropy', ...) for "
            "classification or loss='mean_squared_error' for regression/reconstruction"
            % (ly.name, enum_name(job_pb2.LayerType, ly.type)))
    ly.type = job_pb2.kSoftmaxLoss
    ly.softmaxloss_conf.topk = topk
    return ly.name
