# covers: singa/layer.py
"""The LayerProtos built by SINGA's layer classes (SINGA-V0.md 1.5, 1.10)."""
import pytest

from singa.errors import ConfigError
from singa.layer import (LRN2D, RBM, Accuracy, Activation, Autoencoder, AvgPooling2D, Convolution,
                         Convolution2D, Data, Dense, Dropout, Layer, Loss, MaxPooling2D, Parameter)
from singa.model import Store
from singa.proto import job_pb2
from singa.utils.utility import reset_names


@pytest.fixture(autouse=True)
def fresh_names():
    reset_names()


def approx(x):
    return pytest.approx(x, rel=1e-6)


def test_layer_base():
    l = Layer(type=job_pb2.kDropout, partition_dim=1)
    assert l.layer.name == "layer1" and l.layer.type == job_pb2.kDropout and l.layer.partition_dim == 1
    assert not l.is_datalayer and l.mask is None
    assert Layer(name="x").layer.name == "x"
    with pytest.raises(ConfigError, match="`typ` \\(a keyword argument of Layer\\)"):
        Layer(typ=3)


def test_data_layer():
    d = Data(load="recordinput", phase="train", conf=Store(path="train.bin", batch_size=64, shape=784),
             checkpoint="ck", partition_dim=0)
    assert d.is_datalayer and d.layer.name == "data0"
    assert d.layer.type == job_pb2.kRecordInput and list(d.layer.include) == [job_pb2.kTrain]
    assert d.layer.store_conf.path == "train.bin" and list(d.layer.store_conf.batchsize) == [64]
    assert list(d.layer.store_conf.shape) == [784] and d.layer.partition_dim == 0
    assert d.checkpoint == "ck"
    t = Data(load="recordinput", phase="test", path="test.bin", batchsize=100, shape=(1, 28, 28))
    assert t.layer.name == "data0" and list(t.layer.include) == [job_pb2.kTest]
    assert list(t.layer.store_conf.shape) == [1, 28, 28]
    # store keywords given with a conf replace the conf's values
    r = Data(load="recordinput", conf=Store(path="a", batchsize=64), batchsize=32)
    assert list(r.layer.store_conf.batchsize) == [32] and r.layer.store_conf.path == "a"
    assert Data(load="kData").layer.user_type == "kData"
    assert Data(load="csvinput", phase="val").layer.include[0] == job_pb2.kVal


def test_data_layer_errors():
    with pytest.raises(ConfigError, match="`load` of Data"):
        Data(load=None)
    with pytest.raises(ConfigError, match="input layer type"):
        Data(load="innerproduct")
    with pytest.raises(ConfigError, match="`phase` of Data.*'training'"):
        Data(load="recordinput", phase="training")
    with pytest.raises(ConfigError, match="`pth` \\(a keyword argument of Data\\)"):
        Data(load="recordinput", pth="x")
    with pytest.raises(ConfigError, match="`conf` of Data"):
        Data(load="recordinput", conf={"path": "x"})


def test_dense_defaults_and_names():
    d = Dense(2500)
    assert d.layer.name == "layer1" and d.layer.type == job_pb2.kInnerProduct
    assert d.layer.innerproduct_conf.num_output == 2500 and not d.layer.innerproduct_conf.HasField("transpose")
    w, b = d.layer.param
    assert (w.name, w.init.type, w.init.mean, w.init.std) == ("w1", job_pb2.kGaussian, 0, approx(0.01))
    assert (b.name, b.init.type, b.init.value) == ("b1", job_pb2.kConstant, 0)
    assert d.mask is None
    u = Dense(10, init="uniform", activation="stanh")
    for p in u.layer.param:
        assert (p.init.type, p.init.low, p.init.high) == (job_pb2.kUniform, approx(-0.05), approx(0.05))
    assert [p.name for p in u.layer.param] == ["w2", "b2"]
    assert (u.mask.name, u.mask.type) == ("stanh2", job_pb2.kSTanh)
    t = Dense(784, transpose=True)
    assert t.layer.innerproduct_conf.transpose


def test_dense_w_b_keywords():
    d = Dense(10, w_mean=1, w_std=0.1, w_lr=2, w_wd=10, b_value=1, b_lr=2, b_wd=0)
    w, b = d.layer.param
    assert (w.init.mean, w.init.std, w.lr_scale, w.wd_scale) == (1, approx(0.1), 2, 10)
    assert (b.init.value, b.lr_scale, b.wd_scale) == (1, 2, 0)
    parw = Parameter(init="constant", mean=0)
    d = Dense(10, w_param=parw, w_lr=1, w_wd=1, b_value=1)
    w, b = d.layer.param
    assert w.init.type == job_pb2.kConstant and w.name == "w2" and b.init.value == 1
    assert parw.param.name == "param3"      # the given Parameter object is left unchanged


def test_dense_errors():
    with pytest.raises(ConfigError, match="`output_dim` of Dense. Expected a positive integer"):
        Dense(0)
    with pytest.raises(ConfigError) as e:
        Dense(10, activaton="relu")
    assert "`activaton`" in str(e.value) and "silently ignored" in str(e.value)
    with pytest.raises(ConfigError, match="`w_stdev`"):
        Dense(10, w_stdev=0.1)
    with pytest.raises(ConfigError, match="`activation` of Dense.*'elu'"):
        Dense(10, activation="elu")
    with pytest.raises(ConfigError, match="`init`"):
        Dense(10, init="xavier")


def test_dense_with_explicit_name_still_counts():
    Dense(10)
    named = Dense(10, name="fc")
    assert named.layer.name == "fc" and [p.name for p in named.layer.param] == ["w2", "b2"]
    assert Dense(10).layer.name == "layer3"


def test_activation_mapping_v03():
    cases = {"stanh": (job_pb2.kSTanh, None), "softmax": (job_pb2.kSoftmax, None),
             "relu": (job_pb2.kActivation, job_pb2.RELU), "sigmoid": (job_pb2.kActivation, job_pb2.SIGMOID),
             "tanh": (job_pb2.kActivation, job_pb2.TANH)}
    for name, (ltype, atype) in cases.items():
        a = Activation(name)
        assert a.layer.type == ltype and a.layer.name == name + "0"
        if atype is None:
            assert not a.layer.HasField("activation_conf")
        else:
            assert a.layer.activation_conf.type == atype and a.layer.HasField("activation_conf")
    assert Activation().layer.type == job_pb2.kSTanh
    with pytest.raises(ConfigError) as e:
        Activation("gelu")
    for valid in ("'stanh'", "'softmax'", "'relu'", "'sigmoid'", "'tanh'"):
        assert valid in str(e.value)


def test_loss_dropout_accuracy():
    l = Loss("softmaxloss", topk=5)
    assert (l.layer.name, l.layer.type, l.layer.softmaxloss_conf.topk) == ("softmaxloss0", job_pb2.kSoftmaxLoss, 5)
    e = Loss("euclideanloss")
    assert e.layer.type == job_pb2.kEuclideanLoss and not e.layer.HasField("softmaxloss_conf")
    with pytest.raises(ConfigError, match="'softmaxloss' or 'euclideanloss'"):
        Loss("hinge")
    d = Dropout(0.3)
    assert (d.layer.name, d.layer.type) == ("dropout0", job_pb2.kDropout)
    assert d.layer.dropout_conf.dropout_ratio == approx(0.3)
    assert Dropout().layer.dropout_conf.dropout_ratio == approx(0.5)
    with pytest.raises(ConfigError, match="`ratio` of Dropout"):
        Dropout(1.5)
    a = Accuracy()
    assert (a.layer.name, a.layer.type) == ("accuracy0", job_pb2.kAccuracy)


def test_convolution2d():
    c = Convolution2D(32, 5, 1, 2, w_std=0.0001, b_lr=2)
    assert (c.layer.name, c.layer.type) == ("conv1", job_pb2.kCConvolution)
    cc = c.layer.convolution_conf
    assert (cc.num_filters, cc.kernel, cc.stride, cc.pad) == (32, 5, 1, 2)
    assert cc.HasField("stride") and cc.HasField("pad")
    w, b = c.layer.param
    assert (w.name, w.init.type, w.init.std) == ("w1", job_pb2.kGaussian, approx(0.0001))
    assert (b.name, b.init.type, b.lr_scale) == ("b1", job_pb2.kConstant, 2)
    t = Convolution2D(8, (3, 5), stride=(1, 2), pad=(0, 1), activation="relu")
    tc = t.layer.convolution_conf
    assert (tc.kernel_x, tc.kernel_y, tc.stride_x, tc.stride_y, tc.pad_x, tc.pad_y) == (3, 5, 1, 2, 0, 1)
    assert not tc.HasField("kernel")
    assert t.mask.type == job_pb2.kActivation and t.mask.name == "relu2"
    # Convolution2D renames even explicitly named params (SINGA's changename=True)
    k = Convolution(4, 3, w_param=Parameter(name="mine", init="gaussian"))
    assert [p.name for p in k.layer.param] == ["w3", "b3"]
    assert Convolution is Convolution2D
    with pytest.raises(ConfigError, match="`nb_filter`"):
        Convolution2D(0, 3)
    with pytest.raises(ConfigError, match="`kernel`"):
        Convolution2D(4)


def test_pooling_and_lrn():
    Convolution2D(4, 3)
    p = MaxPooling2D(pool_size=(3, 3), stride=2)
    assert (p.layer.name, p.layer.type) == ("pool1", job_pb2.kCPooling)
    pc = p.layer.pooling_conf
    assert (pc.pool, pc.kernel, pc.stride, pc.pad) == (job_pb2.PoolingProto.MAX, 3, 2, 0)
    assert pc.HasField("pad") and pc.HasField("pool")
    a = AvgPooling2D(2, ignore_border=False)
    assert (a.layer.pooling_conf.pool, a.layer.pooling_conf.kernel, a.layer.pooling_conf.pad) == \
        (job_pb2.PoolingProto.AVG, 2, 1)
    assert a.layer.pooling_conf.stride == 1
    with pytest.raises(ConfigError, match="square"):
        MaxPooling2D(pool_size=(2, 3))
    with pytest.raises(ConfigError, match="`pool_size`"):
        AvgPooling2D()
    n = LRN2D(3, alpha=0.00005, beta=0.75)
    assert (n.layer.name, n.layer.type) == ("norm1", job_pb2.kLRN)
    lc = n.layer.lrn_conf
    assert (lc.local_size, lc.alpha, lc.beta, lc.knorm) == (3, approx(5e-5), approx(0.75), 1)
    assert lc.HasField("knorm")
    with pytest.raises(ConfigError, match="`size` of LRN2D"):
        LRN2D()
    with pytest.raises(ConfigError, match="`gamma`"):
        LRN2D(3, gamma=1)


def test_autoencoder_object():
    ae = Autoencoder([1000, 500], out_dim=784, activation="sigmoid")
    assert ae.hid_dim == [1000, 500] and ae.out_dim == 784 and ae.param_share and ae.layer_type == "AutoEncoder"
    assert Autoencoder(30, out_dim=10).hid_dim == [30]
    with pytest.raises(ConfigError, match="`out_dim`"):
        Autoencoder([10])
    with pytest.raises(ConfigError, match="`hid_dim`"):
        Autoencoder(out_dim=10)
    with pytest.raises(ConfigError, match="`activation`"):
        Autoencoder([10], out_dim=5, activation="swish")


def test_rbm_layers():
    r = RBM([1000, 500, 250], w_std=0.1, b_wd=0)
    assert r.out_dim == [1000, 500, 250] and r.layer_type == job_pb2.kRBMVis
    vis, hid = r.layer, r.bidirect
    assert (vis.name, vis.type, vis.rbm_conf.hdim) == ("RBMVis", job_pb2.kRBMVis, 250)
    w, b = vis.param
    assert (w.name, w.init.type, w.init.std) == ("w3", job_pb2.kGaussian, approx(0.1))
    assert (b.name, b.init.type, b.init.value, b.wd_scale) == ("b3", job_pb2.kConstant, 0, 0)
    assert (hid.name, hid.type, hid.rbm_conf.hdim, hid.rbm_conf.gaussian) == ("RBMHid", job_pb2.kRBMHid, 250, False)
    hw, hb = hid.param
    assert (hw.name, hw.share_from, hw.HasField("init")) == ("w3_", "w3", False)
    assert (hb.name, hb.wd_scale, hb.init.type, hb.init.value) == ("b32", 0, job_pb2.kConstant, 0)
    g = RBM(30, sampling="gaussian")
    assert g.bidirect.rbm_conf.gaussian and not g.layer.rbm_conf.gaussian
    assert g.layer.param[0].init.std == approx(0.01) and g.layer.param[1].wd_scale == 1
    with pytest.raises(ConfigError, match="`sampling`"):
        RBM(30, sampling="poisson")
    with pytest.raises(ConfigError, match="`out_dim` of RBM"):
        RBM()
