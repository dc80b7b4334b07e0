"""What ``Model.compile()`` checks and does to the layers (after Keras' trainers/compile_utils): the
optimizer and cluster arguments as protos, and the loss: a final softmax retyped in place (as SINGA
did) or a Loss layer to append."""
from singa.errors import ConfigError, Stated, invalid
from singa.layer import Loss
from singa.netbuild import LOSS_TYPES
from singa.proto import enum_name, job_pb2

LOSS_NAMES = ("categorical_crossentropy", "mean_squared_error", "user_loss_rnnlm")
RNNLM_KWARGS = ("nclass", "in_dim")     # compile(loss='user_loss_rnnlm', nclass=N, in_dim=V), as SINGA


def compile_protos(optimizer, cluster, loss, updater, kwargs):
    """The (UpdaterProto, ClusterProto) of compile()'s arguments, each checked (``updater`` is another
    name for ``optimizer``; ``kwargs`` must be empty)."""
    extra = [k for k in kwargs if loss != "user_loss_rnnlm" or k not in RNNLM_KWARGS]
    if extra:
        key = extra[0]
        also = " (nclass and in_dim with loss='user_loss_rnnlm')" if key in RNNLM_KWARGS else ""
        raise ConfigError("Invalid value for `%s` (a keyword argument of compile()). Expected optimizer, "
                          "updater, cluster, loss or topk%s. Received: %s=%r" % (key, also, key, kwargs[key]))
    if loss == "user_loss_rnnlm":
        missing = [k for k in RNNLM_KWARGS if k not in kwargs]
        if missing:
            raise invalid(missing[0], "the number of word classes (nclass) and the vocabulary size (in_dim)",
                          None, where="compile(loss='user_loss_rnnlm')",
                          hint="m.compile(loss='user_loss_rnnlm', nclass=100, in_dim=3720, optimizer=..., "
                               "cluster=...)")
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


def apply_loss(layers, loss, topk, nclass=None, in_dim=None):
    """compile(loss=...): retype the final softmax (or an earlier compile's loss) of ``layers`` in place;
    returns the Loss layer to append when the net ends elsewhere, else None."""
    last = [l for l in layers if not l.is_datalayer]
    if not last:
        raise ConfigError("compile(loss=%r) needs the model's layers first.\nhelp: m.add(Dense(...)) "
                          "before m.compile(...)" % (loss,))
    ly = _last_proto(last[-1])
    if loss == "user_loss_rnnlm":
        return _rnnlm_loss(ly, nclass, in_dim)
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


def _rnnlm_loss(ly, nclass, in_dim):
    """SINGA appended UserLossRNNLM unless the net ended in a kSoftmax, and then silently trained without
    a loss; here that case is refused (FIX), and a second compile() keeps the loss the first appended."""
    if ly.user_type == "kLoss":
        return None
    if ly.type == job_pb2.kSoftmax or ly.type in LOSS_TYPES:
        raise invalid("loss", "a net that ends before its loss: the rnnlm loss layer does its own class-factored "
                      "softmax", Stated("'user_loss_rnnlm' after layer %r (%s)" % (
                          ly.name, enum_name(job_pb2.LayerType, ly.type))), where="compile()",
                      hint="end the model with RNNLM(...), as rnnlm-job.conf: Data('kData'), Embedding, RNNLM")
    from singa.recurrent import UserLossRNNLM
    return UserLossRNNLM(nclass=nclass, vocab_size=in_dim)
