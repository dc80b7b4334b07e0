"""The recurrent layers of the user API (issue 16), exported by ``singa.layer`` and ``singa.model``.

rnnlm (SINGA-V0-REST.md 4.8, as SINGA v0.3's binding built them): ``Embedding(in_dim, out_dim)``
(user_type 'kEmbedding', ``[embedding_conf]``), ``RNNLM(dim)`` (user_type 'kHidden'; ``dim`` unused, as in
SINGA) and ``UserLossRNNLM(nclass=, vocab_size=)`` (user_type 'kLoss', ``[loss_conf]``), which
``compile(loss='user_loss_rnnlm', nclass=N, in_dim=V)`` appends; ``Data(load='kData', path=...,
max_window=..., backend=...)`` (singa.layer) fills ``[data_conf]``. Their names and param names are
SINGA's: ``embedding<++LAYERID>`` with param ``w<LAYERID>``, ``hidden<++LAYERID>`` / ``w<LAYERID>``,
``loss<++LAYERID>`` / ``w<LAYERID>``, ``w<++LAYERID>``. FIX: SINGA's Embedding and RNNLM raised NameError
without ``w_param``; here the default is kUniform -0.3..0.3, what rnnlm-job.conf gives all four params
and what UserLossRNNLM uses.

char-rnn (no SINGA binding existed): ``CharRNN(path, vocab_path, batchsize=50, unroll_len=50)`` (the
kCharRNN data layer; its unroll_len also becomes the net's), ``OneHot(vocab_size)``, ``RNNLabel()`` and
``GRU(dim_hidden)``, in the style of Dense: one class per LayerType, the conf's fields as arguments,
params with SINGA's names plus the layer number (``z_hx<N>`` ...), LayerProto fields (``unroll_len``,
``unroll_conn_type``, ``share_src_blobs``, ...) passed through. A Sequential chains them as
char-rnn-job.conf wires them: RNNLabel reads the data layer (not the layer before it) and the loss
reads RNNLabel instead of the data layer (``singa.netbuild``).
"""
import numbers

from singa.errors import invalid
from singa.layer import Layer, _split_kwargs
from singa.parameter import Parameter, layer_param
from singa.proto import job_pb2, rnnlm_pb2
from singa.utils.arguments import positive_int
from singa.utils.message import enumUnrollConnType
from singa.utils.utility import generate_name

RNNLM_SCALE = 0.3     # rnnlm-job.conf's kUniform bounds, and UserLossRNNLM's in SINGA's binding
GRU_SCALE = 0.08      # char-rnn-job.conf's kUniform bounds of every GRU and InnerProduct param
GRU_PARAMS = ("z_hx", "r_hx", "c_hx", "z_hh", "r_hh", "c_hh", "z_b", "r_b", "c_b")


def _user_layer(layer, owner, label, user_type, kwargs, params=False):
    """``layer._setup`` of a user_type layer named ``label<++LAYERID>``; returns the w_/b_ kwargs."""
    layer_kw, pkw = _split_kwargs(owner, kwargs, params=params)
    layer.layer_type = job_pb2.kUserLayer
    layer._setup(layer_kw.pop("name", None) or generate_name(label, 1), dict(layer_kw, user_type=user_type))
    return pkw


def _rnnlm_param(w_param, pkw):
    """SINGA's set_param_field(w_param, 'w', changename=True): named ``w<LAYERID>``."""
    given = w_param if w_param is not None else Parameter(init="uniform", scale=RNNLM_SCALE)
    return layer_param(given, "uniform", "w", pkw, changename=True)


def _conn_types(kwargs):
    """``unroll_conn_type`` given by name ('kUnrollOneToAll', 'onetoall') or value, one or a list."""
    val = kwargs.get("unroll_conn_type")
    if val is None:
        return kwargs
    vals = val if isinstance(val, (list, tuple)) else [val]
    out = []
    for v in vals:
        if isinstance(v, str):
            key = v if v.startswith("kUnroll") else "kUnroll" + {"onetoone": "OneToOne", "onetoall": "OneToAll",
                                                                "firsttolast": "FirstToLast",
                                                                "customized": "Customized"}.get(v.lower(), v)
            v = enumUnrollConnType(key)
        out.append(v)
    return dict(kwargs, unroll_conn_type=out)


class Embedding(Layer):
    """rnnlm's word embedding (user_type 'kEmbedding'): ``in_dim`` words of ``out_dim`` numbers each."""

    def __init__(self, in_dim, out_dim, w_param=None, **kwargs):
        in_dim = positive_int(in_dim, "in_dim", "Embedding")
        out_dim = positive_int(out_dim, "out_dim", "Embedding")
        pkw = _user_layer(self, "Embedding", "embedding", "kEmbedding", kwargs, params=True)
        conf = self.layer.Extensions[rnnlm_pb2.embedding_conf]
        conf.vocab_size, conf.word_dim = in_dim, out_dim
        self.layer.param.add().CopyFrom(_rnnlm_param(w_param, pkw))


class RNNLM(Layer):
    """rnnlm's hidden layer (user_type 'kHidden'); ``dim`` is unused, as in SINGA (the runtime takes the
    embedding's width)."""

    def __init__(self, dim, w_param=None, **kwargs):
        self.dim = dim
        pkw = _user_layer(self, "RNNLM", "hidden", "kHidden", kwargs, params=True)
        self.layer.param.add().CopyFrom(_rnnlm_param(w_param, pkw))


class UserLossRNNLM(Layer):
    """rnnlm's class-factored softmax loss (user_type 'kLoss'): params ``w<N>`` (word weight) and
    ``w<N+1>`` (class weight), both kUniform -0.3..0.3, as SINGA's binding."""

    def __init__(self, nclass=None, vocab_size=None, **kwargs):
        nclass = positive_int(nclass, "nclass", "UserLossRNNLM")
        vocab_size = positive_int(vocab_size, "vocab_size", "UserLossRNNLM")
        if nclass > vocab_size:
            raise invalid("nclass", "at most vocab_size (%d) word classes" % vocab_size, nclass,
                          where="UserLossRNNLM", hint="rnnlm-job.conf has nclass 100 for 3720 words")
        _user_layer(self, "UserLossRNNLM", "loss", "kLoss", kwargs)
        conf = self.layer.Extensions[rnnlm_pb2.loss_conf]
        conf.nclass, conf.vocab_size = nclass, vocab_size
        for label in (generate_name("w"), generate_name("w", 1)):
            self.layer.param.add().CopyFrom(Parameter(name=label, init="uniform", scale=RNNLM_SCALE).param)


class CharRNN(Layer):
    """char-rnn's data layer (kCharRNN): ``batchsize`` rows of ``unroll_len + 1`` characters of the text
    at ``path`` a step, as indices into ``vocab_path`` (made by ``singa-create-data char-rnn``).

    ``unroll_len`` is char_rnn_conf's and the net's (NetProto.unroll_len, set by Model.build); the layer
    itself is not unrolled (LayerProto.unroll_len 1, as char-rnn-job.conf). ``phase`` as Data's.
    """
    is_datalayer = True

    def __init__(self, path, vocab_path, batchsize=50, unroll_len=50, phase="train", **kwargs):
        for key, val in (("path", path), ("vocab_path", vocab_path)):
            if not isinstance(val, str) or not val:
                raise invalid(key, "a file path (a string)", val, where="CharRNN",
                              hint="singa-create-data char-rnn TEXT DIR writes DIR/<text> and DIR/vocab.txt")
        batchsize = positive_int(batchsize, "batchsize", "CharRNN")
        self.net_unroll_len = positive_int(unroll_len, "unroll_len", "CharRNN")
        layer_kw, _ = _split_kwargs("CharRNN", kwargs)
        self.layer_type = job_pb2.kCharRNN
        self._auto_named = "name" not in layer_kw
        self._setup(layer_kw.pop("name", None) or generate_name("data"),
                    dict(_conn_types(layer_kw), type=job_pb2.kCharRNN, unroll_len=1))
        if phase not in ("train", "val", "test"):
            raise invalid("phase", "one of 'train', 'val', 'test'", phase, where="CharRNN")
        self.layer.include.append({"train": job_pb2.kTrain, "val": job_pb2.kVal, "test": job_pb2.kTest}[phase])
        cc = self.layer.char_rnn_conf
        cc.path, cc.vocab_path, cc.batchsize, cc.unroll_len = path, vocab_path, batchsize, self.net_unroll_len
        self.checkpoint = None


class OneHot(Layer):
    """One-hot vectors of ``vocab_size`` for character indices (kOneHot), named ``onehot<LAYERID>``; reads
    the one CharRNN copy from every unrolled copy (unroll_conn_type kUnrollOneToAll) unless told."""

    def __init__(self, vocab_size, **kwargs):
        vocab_size = positive_int(vocab_size, "vocab_size", "OneHot")
        layer_kw, _ = _split_kwargs("OneHot", kwargs)
        layer_kw.setdefault("unroll_conn_type", "kUnrollOneToAll")
        self.layer_type = job_pb2.kOneHot
        self._setup(layer_kw.pop("name", None) or generate_name("onehot"), dict(_conn_types(layer_kw),
                                                                                  type=job_pb2.kOneHot))
        self.layer.onehot_conf.vocab_size = vocab_size


class RNNLabel(Layer):
    """The labels of char-rnn (kRNNLabel): copy i gives the character after the i-th one. In a
    Sequential it reads the data layer, and the loss reads it (singa.netbuild)."""
    is_labellayer = True

    def __init__(self, **kwargs):
        layer_kw, _ = _split_kwargs("RNNLabel", kwargs)
        layer_kw.setdefault("unroll_conn_type", "kUnrollOneToAll")
        self.layer_type = job_pb2.kRNNLabel
        self._setup(layer_kw.pop("name", None) or generate_name("label"), dict(_conn_types(layer_kw),
                                                                                 type=job_pb2.kRNNLabel))


class GRU(Layer):
    """SINGA's GRU (kGRU), named ``gru<++LAYERID>``, ``dim_hidden`` units.

    Params in SINGA's order z_hx, r_hx, c_hx, z_hh, r_hh, c_hh and, with ``bias_term``, z_b, r_b, c_b,
    named ``<that><N>`` (N the layer number, as Dense's w<N>); kUniform -0.08..0.08 (char-rnn-job.conf)
    unless ``init``/``w_<x>`` (the weights) or ``b_<x>`` (the biases) say otherwise.
    """

    def __init__(self, dim_hidden, bias_term=True, init=None, **kwargs):
        dim_hidden = positive_int(dim_hidden, "dim_hidden", "GRU")
        if not isinstance(bias_term, (bool, numbers.Integral)):
            raise invalid("bias_term", "True or False", bias_term, where="GRU")
        layer_kw, pkw = _split_kwargs("GRU", kwargs, params=True)
        self.layer_type = job_pb2.kGRU
        name = generate_name("gru", 1)
        number = name[3:]
        self._setup(layer_kw.pop("name", None) or name, dict(_conn_types(layer_kw), type=job_pb2.kGRU))
        self.layer.gru_conf.dim_hidden = dim_hidden
        if not bias_term:
            self.layer.gru_conf.bias_term = False
        for pname in GRU_PARAMS[:9 if bias_term else 6]:
            kind = "b" if pname.endswith("_b") else "w"
            base = Parameter(name=pname + number, init=init or "uniform",
                             **({"scale": GRU_SCALE} if init in (None, "uniform") else {}))
            mine = {k: v for k, v in pkw.items() if k.startswith(kind + "_")}
            self.layer.param.add().CopyFrom(layer_param(base, init or "uniform", kind, mine))


__all__ = ["Embedding", "RNNLM", "UserLossRNNLM", "CharRNN", "OneHot", "RNNLabel", "GRU"]
