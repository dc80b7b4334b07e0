# covers: singa/parameter.py, singa/initialization.py, singa/utils/message.py, singa/utils/utility.py
"""Parameter, set_param_field, get_init_values, generate_name and the message helpers (SINGA-V0.md 1.2, 1.6)."""
import pytest

from singa.errors import ConfigError
from singa.initialization import get_init_values
from singa.parameter import Parameter, layer_param, set_param_field
from singa.proto import job_pb2
from singa.utils import message, utility
from singa.utils.message import Message, enumInitMethod, enumLayerType, enumPhase, setval
from singa.utils.utility import generate_name, reset_names


@pytest.fixture(autouse=True)
def fresh_names():
    reset_names()


def approx(x):
    return pytest.approx(x, rel=1e-6)


# -- message.py ------------------------------------------------------------------------------

def test_message_reexports_every_pb2_symbol_and_enum_value():
    for name in ("JobProto", "LayerProto", "PoolingProto", "kSGD", "kFixed", "kInnerProduct", "kTrain",
                 "RELU", "kRecordInput", "kCudnnSoftmaxLoss", "kUniformSqrtFanInOut"):
        assert getattr(message, name) is getattr(job_pb2, name)
        assert name in message.__all__
    assert "DESCRIPTOR" not in message.__all__
    assert not hasattr(message, "BlobProto")          # common_pb2 is left out, as in SINGA


def test_enum_helpers_follow_singa_naming():
    assert enumLayerType("softmaxloss") == job_pb2.kSoftmaxLoss
    assert enumLayerType("recordinput") == job_pb2.kRecordInput
    assert [enumPhase(p) for p in ("train", "val", "test")] == [job_pb2.kTrain, job_pb2.kVal, job_pb2.kTest]
    assert message.enumAlgType("cd") == job_pb2.kCD
    assert enumInitMethod("uniformsqrtfanin") == job_pb2.kUniformSqrtFanIn
    assert message.enumUpdaterType("adagrad") == job_pb2.kAdaGrad
    assert message.enumChangeMethod("fixedstep") == job_pb2.kFixedStep
    assert message.enumPoolMethod("avg") == job_pb2.PoolingProto.AVG
    with pytest.raises(ConfigError, match="'softmaxloss'.*Received: 'softmax_loss'"):
        enumLayerType("softmax_loss")


def test_setval_semantics():
    store = job_pb2.StoreProto()
    setval(store, batchsize=64, shape=(3, 32, 32), path="a.bin")
    setval(store, batchsize=100)                   # repeated scalar: appended, as in SINGA
    assert list(store.batchsize) == [64, 100] and list(store.shape) == [3, 32, 32] and store.path == "a.bin"
    layer = job_pb2.LayerProto(name="l")
    setval(layer, param=job_pb2.ParamProto(name="w"), store_conf=store)
    setval(layer, param={"name": "b"}, store_conf={"random_skip": 5})
    assert [p.name for p in layer.param] == ["w", "b"]
    assert layer.store_conf.path == "a.bin" and layer.store_conf.random_skip == 5   # merged
    assert Message("Layer", name="x", type=job_pb2.kDropout).proto.type == job_pb2.kDropout


def test_setval_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ConfigError) as e:
        setval(job_pb2.StoreProto(), batch_size=64)
    assert "`batch_size`" in str(e.value) and "batchsize" in str(e.value) and "random_skip" in str(e.value)
    with pytest.raises(ConfigError, match="`batchsize` of StoreProto. Expected an integer"):
        setval(job_pb2.StoreProto(), batchsize="64")
    with pytest.raises(ConfigError, match="`store_conf` of LayerProto. Expected a StoreProto"):
        setval(job_pb2.LayerProto(), store_conf=3)
    with pytest.raises(ConfigError, match="protoname"):
        Message("Nope")


# -- utility.py ------------------------------------------------------------------------------

def test_generate_name_counters():
    assert generate_name("data") == "data0"
    assert generate_name("layer", 1) == "layer1"
    assert generate_name("w") == "w1"
    assert generate_name("tanh") == "tanh1"
    assert generate_name("w", 2) == "w2" and utility.LAYERID == 1      # option 2 peeks
    assert generate_name("conv", 1) == "conv2"
    assert generate_name("param", 1) == "param1" and generate_name("param", 1) == "param2"
    assert utility.LAYERID == 2
    assert generate_name("RBMVis", withnumber=False) == "RBMVis"
    epoch = utility.name_epoch()
    assert reset_names() == epoch + 1
    assert generate_name("layer", 1) == "layer1" and generate_name("param", 1) == "param1"


# -- initialization.py -----------------------------------------------------------------------

def test_get_init_values_defaults():
    assert get_init_values("uniform") == {"low": -0.05, "high": 0.05}
    assert get_init_values("uniform", scale=0.1, high=0.3) == {"low": -0.1, "high": 0.3}
    assert get_init_values("gaussian") == {"mean": 0, "std": 0.01}
    assert get_init_values("gauss", std=0.5) == {"mean": 0, "std": 0.5}
    assert get_init_values("constant", mean=3) == {"value": 0}
    assert get_init_values("const", value=2) == {"value": 2}
    assert get_init_values("none") == {}
    assert get_init_values("uniformsqrtfanin") == {"low": -1.0, "high": 1.0}
    assert get_init_values("gaussiansqrtfanin", value=2) == {"mean": 0, "std": 1, "value": 2}
    assert get_init_values("lrn2d", alpha=0.5) == {"alpha": 0.5, "beta": 0.75, "knorm": 1}
    assert get_init_values("conv2d") == {"stride": 1, "pad": 0}
    with pytest.raises(ConfigError, match="'uniform', 'gaussian', 'constant', 'none'.*Received: 'xavier'"):
        get_init_values("xavier")


# -- Parameter -------------------------------------------------------------------------------

def test_parameter_defaults():
    p = Parameter()
    assert p.param.name == "param1"
    assert p.param.lr_scale == 1 and p.param.wd_scale == 1
    assert p.param.HasField("lr_scale") and p.param.HasField("wd_scale")      # always written, as SINGA
    assert p.param.init.type == job_pb2.kUniform
    assert not p.param.init.HasField("low") and not p.param.init.HasField("high")   # proto defaults -1, 1
    assert p.param.init.low == -1 and p.param.init.high == 1
    assert Parameter().param.name == "param2"


def test_parameter_init_types():
    u = Parameter(init="uniform").param.init
    assert (u.type, u.low, u.high) == (job_pb2.kUniform, approx(-0.05), approx(0.05))
    g = Parameter(init="gaussian").param.init
    assert (g.type, g.mean, g.std) == (job_pb2.kGaussian, 0, approx(0.01))
    c = Parameter(init="constant").param.init
    assert c.type == job_pb2.kConstant and c.HasField("value") and c.value == 0      # proto default is 1
    assert not Parameter(init="none").param.HasField("init")
    assert Parameter(init="gauss", std=0.0001).param.init.std == approx(0.0001)
    assert Parameter(init="const", value=1).param.init.type == job_pb2.kConstant
    assert Parameter(init="uniform", scale=0.3).param.init.high == approx(0.3)
    assert Parameter(init="uniform", low=-0.1, high=0.2).param.init.low == approx(-0.1)
    for name, enum in (("uniformsqrtfanin", job_pb2.kUniformSqrtFanIn),
                       ("gaussiansqrtfanin", job_pb2.kGaussianSqrtFanIn),
                       ("uniformsqrtfaninout", job_pb2.kUniformSqrtFanInOut)):
        assert Parameter(init=name).param.init.type == enum
    # the seed's Parameter-class example: mean is meaningless for a constant and ignored, as in SINGA
    p = Parameter(init="constant", mean=0)
    assert p.param.init.type == job_pb2.kConstant and not p.param.init.HasField("mean")
    p = Parameter(lr=2, wd=10, init="gaussian", std=0.1)
    assert (p.param.lr_scale, p.param.wd_scale, p.param.init.std) == (2, 10, approx(0.1))
    # no init but explicit bounds: the bounds are kept (SINGA dropped them)
    assert Parameter(scale=0.2).param.init.low == approx(-0.2)


def test_parameter_level_naming_and_share_from():
    assert Parameter(name="w", level=3).param.name == "w3"
    assert Parameter(name="b", level=3).param.name == "b32"
    assert Parameter(name="bias").param.name == "bias"
    p = Parameter(name="w5", init="none", share_from="w4")
    assert p.param.share_from == "w4" and not p.param.HasField("init")


def test_parameter_errors():
    with pytest.raises(ConfigError) as e:
        Parameter(init="xavier")
    assert "Invalid value for `init`" in str(e.value) and "'uniformsqrtfaninout'" in str(e.value)
    assert "'gauss', 'const'" in str(e.value)
    with pytest.raises(ConfigError, match="`stdev`.*Expected one of name, lr, wd"):
        Parameter(init="gaussian", stdev=0.1)
    with pytest.raises(ConfigError, match="`std`.*>= 0"):
        Parameter(init="gaussian", std=-1)
    with pytest.raises(ConfigError, match="low <= high"):
        Parameter(init="uniform", low=1, high=0)
    with pytest.raises(ConfigError, match="`lr`. Expected a number"):
        Parameter(lr="fast")
    with pytest.raises(ConfigError, match="`level`"):
        Parameter(level=2)


def test_parameter_update():
    parw = Parameter(init="gauss", std=0.0001)
    parw.update(std=0.01)
    assert parw.param.init.std == approx(0.01)
    parw.update(lr=2, wd_scale=0, mean=1)
    assert (parw.param.lr_scale, parw.param.wd_scale, parw.param.init.mean) == (2, 0, 1)
    parw.update(init="uniform", scale=0.1)
    assert parw.param.init.type == job_pb2.kUniform and parw.param.init.high == approx(0.1)
    assert not parw.param.init.HasField("std")
    parw.update(name="myw")
    assert parw.name == "myw"
    with pytest.raises(ConfigError, match="`sdt` in Parameter.update"):
        parw.update(sdt=0.1)
    with pytest.raises(ConfigError, match="init='none'"):
        Parameter(init="none").update(std=0.1)


def test_parameter_copy_is_independent():
    p = Parameter(init="uniform")
    q = p.copy()
    q.update(name="other", std=3)
    assert p.param.name == "param1" and not p.param.init.HasField("std")
    assert utility.PARAMID == 1          # copying draws no new default name


# -- set_param_field and the w_/b_ convention ------------------------------------------------

def test_set_param_field_routes_prefixed_kwargs():
    generate_name("layer", 1)      # as a layer constructor does first
    w = Parameter(init="gaussian").param
    set_param_field(w, "w", w_lr=2, w_wd=10, w_std=0.1, w_mean=1, b_lr=5, partition_dim=0)
    assert w.name == "w1"
    assert (w.lr_scale, w.wd_scale) == (2, 10)
    assert (w.init.std, w.init.mean) == (approx(0.1), 1)
    b = Parameter(init="constant").param
    set_param_field(b, "b", b_value=1, b_lr=2, b_wd=0, w_lr=7)
    assert (b.name, b.lr_scale, b.wd_scale, b.init.value) == ("b1", 2, 0, 1)
    u = Parameter(init="uniform").param
    set_param_field(u, "w", w_scale=0.2)
    assert (u.init.low, u.init.high) == (approx(-0.2), approx(0.2))
    g = Parameter(init="uniform").param
    set_param_field(g, "w", w_init="gaussian", w_std=0.5)
    assert g.init.type == job_pb2.kGaussian and g.init.std == approx(0.5)


def test_set_param_field_naming_rules():
    generate_name("layer", 1)
    named = Parameter(name="mine", init="uniform").param
    set_param_field(named, "w")
    assert named.name == "mine"                        # explicit names are kept ...
    set_param_field(named, "w", changename=True)
    assert named.name == "w1"                          # ... unless changename (Convolution2D)
    rbm = Parameter(init="gaussian").param
    set_param_field(rbm, "w", withnumber=False, level=3)
    assert rbm.name == "w3"


def test_set_param_field_errors():
    with pytest.raises(ConfigError, match="`w_sdt`.*ParamGenProto"):
        set_param_field(Parameter(init="gaussian").param, "w", w_sdt=0.1)
    with pytest.raises(ConfigError, match="`pname`"):
        set_param_field(Parameter().param, "x")
    with pytest.raises(ConfigError, match="init='none'"):
        set_param_field(Parameter(name="w1", init="none").param, "w", w_std=0.1)


def test_layer_param_copies_the_given_parameter():
    generate_name("layer", 1)
    par = Parameter(init="uniform", scale=0.05)
    w1 = layer_param(par, "gaussian", "w", {"w_lr": 3})
    generate_name("layer", 1)
    w2 = layer_param(par, "gaussian", "w", {})
    assert (w1.name, w2.name) == ("w1", "w2")
    assert (w1.lr_scale, w2.lr_scale) == (3, 1)       # per-layer settings do not leak
    assert par.param.name == "param1" and par.param.lr_scale == 1
    with pytest.raises(ConfigError, match="`w_param`. Expected a Parameter"):
        layer_param("uniform", "gaussian", "w", {})
