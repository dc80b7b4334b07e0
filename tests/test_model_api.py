# covers: singa/model.py, singa/jobconf.py, singa/compiling.py, singa/netbuild.py, singa/saving.py
"""The keras-like Model API compiles SINGA's seed scripts to the JobProtos of SINGA's job.confs.

The seed document's snippets (python.md, v0.3) are written out as they appear (typos fixed), with
Store-based Data layers standing in for ``load_data()``; nothing here needs data files except the
one end-to-end test, which writes a tiny record file.
"""
import glob
import os
import sys

import numpy as np
import pytest

from singa.errors import ConfigError
from singa.model import *  # noqa: F403  (the seed scripts' only import)
from singa.model import Model, Sequential
from singa.proto import job_pb2, job_to_text, parse_job_conf, read_job_conf

from tests.conftest import CONF_DIR as COMPAT  # noqa: E402  (SINGA v0.3 example confs, in the repo)
CONFS = sorted(glob.glob(os.path.join(COMPAT, "*.conf")))
needs_confs = pytest.mark.skipif(not CONFS, reason="reference job.conf files not available")


def approx(x):
    return pytest.approx(x, rel=1e-6)


# -- helpers -------------------------------------------------------------------------------

def mnist_data(batch=64, test_batch=64, ckpt=None, std=127.5, mean=127.5, skip=5000):
    """What SINGA's mnist.load_data() returns, with the stores of examples/mnist/job.conf."""
    extra = {} if mean is None else {"mean_value": mean}
    train = Store(backend="kvfile", path="examples/mnist/train_data.bin", batchsize=batch, shape=784,
                  std_value=std, **extra)
    if skip:
        train.proto.random_skip = skip
    test = Store(backend="kvfile", path="examples/mnist/test_data.bin", batchsize=test_batch, shape=784,
                 std_value=std, **extra)
    return (Data(load="recordinput", phase="train", conf=train, checkpoint=ckpt),
            Data(load="recordinput", phase="test", conf=test), "examples/mnist")


def cifar_data():
    kw = dict(backend="kvfile", mean_file="examples/cifar10/image_mean.bin", batchsize=100, shape=(3, 32, 32))
    return (Data(load="recordinput", phase="train", conf=Store(path="examples/cifar10/train_data.bin", **kw)),
            Data(load="recordinput", phase="test", conf=Store(path="examples/cifar10/test_data.bin", **kw)),
            "examples/cifar10")


def strip_defaults(msg):
    """Clear every singular field equal to its default, so explicit and implicit defaults compare equal."""
    for fd, val in msg.ListFields():
        if fd.type == fd.TYPE_MESSAGE:
            for v in (val if fd.is_repeated else [val]):
                strip_defaults(v)
        elif not fd.is_repeated and val == fd.default_value:
            msg.ClearField(fd.name)
    return msg


_ACT = {job_pb2.kSigmoid: job_pb2.SIGMOID, job_pb2.kReLU: job_pb2.RELU}


def canonical_net(net, param_names=None):
    """(data layers by phase, other layers in order) with layer names replaced by positions.

    Only names that legitimately differ are dropped: layer names (fc1/layer1, loss/softmax6, data/data0);
    param names are kept except those mapped by ``param_names`` (documented differences). v0.2-style
    kSigmoid/kReLU become v0.3's kActivation with activation_conf.
    """
    param_names = param_names or {}
    data, others, index = {}, [], {}
    for l in net.layer:
        if not l.srclayers and 100 <= l.type < 200:
            index[l.name] = "DATA"
        else:
            index[l.name] = str(len(others))
            others.append(l)

    def canon(l):
        c = job_pb2.LayerProto()
        c.CopyFrom(l)
        c.name = "-"
        del c.srclayers[:]
        c.srclayers.extend(index[s] for s in l.srclayers)
        if c.type in _ACT:
            c.activation_conf.type = _ACT[c.type]
            c.type = job_pb2.kActivation
        for p in c.param:
            p.name = param_names.get(p.name, p.name)
            if p.share_from:
                p.share_from = param_names.get(p.share_from, p.share_from)
        return strip_defaults(c)

    for l in net.layer:
        if index[l.name] == "DATA":
            data[tuple(l.include)] = canon(l)
    return data, [canon(l) for l in others]


def assert_same_net(ours, ref, param_names=None):
    d1, l1 = canonical_net(ours, param_names)
    d2, l2 = canonical_net(ref)
    assert d1 == d2
    assert len(l1) == len(l2), ([job_pb2.LayerType.Name(l.type) for l in l1],
                                [job_pb2.LayerType.Name(l.type) for l in l2])
    for i, (a, b) in enumerate(zip(l1, l2)):
        assert a == b, "layer %d differs:\n%s\nvs reference\n%s" % (i, a, b)


def same_message(a, b):
    """Equal field values, whether defaults are written explicitly or not."""
    return strip_defaults(type(a).FromString(a.SerializeToString())) == \
        strip_defaults(type(b).FromString(b.SerializeToString()))


def seed_mlp(activation="stanh"):
    """The seed's MLP example, as written."""
    X_train, X_test, workspace = mnist_data()

    m = Sequential('mlp', sys.argv)

    m.add(Dense(2500, init='uniform', activation=activation))
    m.add(Dense(2000, init='uniform', activation=activation))
    m.add(Dense(1500, init='uniform', activation=activation))
    m.add(Dense(1000, init='uniform', activation=activation))
    m.add(Dense(500,  init='uniform', activation=activation))
    m.add(Dense(10, init='uniform', activation='softmax'))

    sgd = SGD(lr=0.001, lr_type='step')
    topo = Cluster(workspace)
    m.compile(loss='categorical_crossentropy', optimizer=sgd, cluster=topo)
    assert m.fit(X_train, nb_epoch=1000, with_test=True) is None      # with_test: nothing runs yet
    job = m._configure_evaluate(X_test, batch_size=100, test_steps=10, test_freq=60)
    return m, job, X_train, X_test


# -- the seed MLP vs examples/mnist/job.conf -------------------------------------------------

@needs_confs
def test_seed_mlp_compiles_to_mnist_job_conf():
    m, job, X_train, X_test = seed_mlp()
    ref = read_job_conf(os.path.join(COMPAT, "mnist-job.conf"))
    assert job is m.jobconf and job.name == "mlp"
    assert_same_net(job.neuralnet, ref.neuralnet)
    assert same_message(job.updater, ref.updater)
    assert job.updater.type == job_pb2.kSGD and job.updater.learning_rate.type == job_pb2.kStep
    assert job.updater.learning_rate.base_lr == approx(0.001)
    assert job.updater.learning_rate.step_conf.change_freq == 60
    assert job.updater.learning_rate.step_conf.gamma == approx(0.997)
    assert job.train_one_batch == ref.train_one_batch
    for field in ("train_steps", "test_steps", "test_freq"):
        assert getattr(job, field) == getattr(ref, field)
    assert job.disp_freq == 100 and job.checkpoint_freq == 1000          # nb_epoch // 10, nb_epoch
    assert same_message(job.cluster, ref.cluster)
    assert job.FindInitializationErrors() == []
    # the user's Data objects are not modified: the model holds its own copies
    assert list(X_test.layer.store_conf.batchsize) == [64]


def test_seed_mlp_names_are_singas():
    m, job, _, _ = seed_mlp()
    names = [l.name for l in job.neuralnet.layer]
    assert names == ["data0", "data0", "layer1", "stanh1", "layer2", "stanh2", "layer3", "stanh3", "layer4",
                     "stanh4", "layer5", "stanh5", "layer6", "softmax6"]
    params = [p.name for l in job.neuralnet.layer for p in l.param]
    assert params == ["w%d" % (i // 2 + 1) if i % 2 == 0 else "b%d" % (i // 2 + 1) for i in range(12)]
    loss = job.neuralnet.layer[-1]
    assert loss.type == job_pb2.kSoftmaxLoss and loss.softmaxloss_conf.topk == 1
    assert list(loss.srclayers) == ["layer6", "data0"]
    # the test data layer was inserted first (SINGA's insert(0)), with the batch size really replaced
    assert list(job.neuralnet.layer[0].include) == [job_pb2.kTest]
    assert list(job.neuralnet.layer[0].store_conf.batchsize) == [100]
    assert list(job.neuralnet.layer[1].store_conf.batchsize) == [64]
    assert len(m.layers) == 8 and m.layers[2].mask.name == "stanh1"


@needs_confs
def test_comparison_detects_a_different_net():
    m, job, _, _ = seed_mlp()
    ref = read_job_conf(os.path.join(COMPAT, "mnist-job.conf"))
    changed = job_pb2.NetProto()
    changed.CopyFrom(job.neuralnet)
    changed.layer[4].innerproduct_conf.num_output = 2001
    with pytest.raises(AssertionError):
        assert_same_net(changed, ref.neuralnet)
    changed.CopyFrom(job.neuralnet)
    changed.layer[5].srclayers[0] = "layer1"          # wrong topology
    with pytest.raises(AssertionError):
        assert_same_net(changed, ref.neuralnet)
    _, tanh_job, _, _ = seed_mlp(activation="tanh")  # v0.3 'tanh' is plain tanh, not the conf's kSTanh
    with pytest.raises(AssertionError):
        assert_same_net(tanh_job.neuralnet, ref.neuralnet)


def test_second_model_gets_the_same_names():
    first = [l.name for l in seed_mlp()[1].neuralnet.layer]
    _, job2, _, _ = seed_mlp()
    assert [l.name for l in job2.neuralnet.layer] == first
    # data layers made after layers of an earlier model still come out as data0
    m = Sequential("again")
    X_train, X_test, ws = mnist_data()
    m.add(Dense(10, activation="softmax"))
    m.compile(loss="categorical_crossentropy", optimizer=SGD(), cluster=Cluster(ws))
    m._configure_fit(X_train, nb_epoch=10)
    job = m._configure_evaluate(X_test)
    assert [l.name for l in job.neuralnet.layer] == ["data0", "data0", "layer1", "softmax1"]


def test_data_layers_share_one_name():
    m = Sequential("late")
    X_train, _, ws = mnist_data()
    m.add(Dense(10, activation="softmax"))
    X_valid = Data(load="recordinput", phase="val", conf=Store(path="valid.bin", batchsize=10))
    assert X_valid.layer.name == "data1"
    m.compile(loss="categorical_crossentropy", optimizer=SGD(), cluster=Cluster(ws))
    job = m._configure_fit(X_train, nb_epoch=10, validate_data=X_valid, validate_steps=5)
    m.build()
    assert [l.name for l in job.neuralnet.layer[:2]] == ["data0", "data0"]
    assert list(job.neuralnet.layer[2].srclayers) == ["data0"]


def test_layers_made_before_the_model_are_reported():
    early = Dense(10)                                 # named layer<N> by the previous counters
    m = Sequential("m")
    m.add(Dense(10))
    m.add(early)
    m.add(Dense(10, activation="softmax"))
    _, _, ws = mnist_data()
    # compile() already builds the net, so the clash is reported there, before any data is added
    with pytest.raises(ConfigError, match="(?s)'layer2'.*constructed"):
        m.compile(loss="categorical_crossentropy", optimizer=SGD(), cluster=Cluster(ws))


# -- other seed snippets ------------------------------------------------------------------------

def cnn_model(compile_kwargs):
    X_train, X_test, workspace = cifar_data()
    m = Sequential('cnn', sys.argv)

    m.add(Convolution2D(32, 5, 1, 2, w_std=0.0001, b_lr=2))
    m.add(MaxPooling2D(pool_size=(3, 3), stride=2))
    m.add(Activation('relu'))
    m.add(LRN2D(3, alpha=0.00005, beta=0.75))

    m.add(Convolution2D(32, 5, 1, 2, b_lr=2))
    m.add(Activation('relu'))
    m.add(AvgPooling2D(pool_size=(3, 3), stride=2))
    m.add(LRN2D(3, alpha=0.00005, beta=0.75))

    m.add(Convolution2D(64, 5, 1, 2))
    m.add(Activation('relu'))
    m.add(AvgPooling2D(pool_size=(3, 3), stride=2))

    m.add(Dense(10, w_wd=250, b_lr=2, b_wd=0, activation='softmax'))

    topo = Cluster(workspace)
    m.compile(cluster=topo, **compile_kwargs)
    m.fit(X_train, nb_epoch=1000, with_test=True)
    return m, X_test


@needs_confs
def test_seed_cnn_example():
    sgd = SGD(decay=0.004, momentum=0.9, lr_type='manual', step=(0, 60000, 65000), step_lr=(0.001, 0.0001, 0.00001))
    m, X_test = cnn_model(dict(loss="categorical_crossentropy", updater=sgd))
    job = m._configure_evaluate(X_test, test_steps=100, test_freq=200)
    ref = read_job_conf(os.path.join(COMPAT, "cifar10-job.conf"))
    assert_same_net(job.neuralnet, ref.neuralnet)
    assert same_message(job.updater, ref.updater)
    names = [l.name for l in job.neuralnet.layer if not l.include]
    assert names == ["conv1", "pool1", "relu1", "norm1", "conv2", "relu2", "pool2", "norm2", "conv3", "relu3",
                     "pool3", "layer4", "softmax4"]
    # `alg` given a number straight to the configuration step is a clear error, not a crash (evaluate()
    # itself takes the seed's `m.evaluate(X_test, 1000, ...)` as batch_size: tests/test_seed_snippets.py)
    m2, X_test2 = cnn_model(dict(updater=SGD(decay=0.004, lr_type='manual', step=(0, 60000, 65000),
                                             step_lr=(0.001, 0.0001, 0.00001))))
    with pytest.raises(ConfigError, match="(?s)`alg`.*batch_size=1000"):
        m2._configure_evaluate(X_test2, 1000, test_steps=30, test_freq=300)
    job2 = m2._configure_evaluate(X_test2, batch_size=1000, test_steps=30, test_freq=300)
    # the seed's compile(updater=sgd, cluster=topo), no loss: the final softmax trains as the softmax loss
    assert [l.type for l in job2.neuralnet.layer if l.name == "softmax4"] == [job_pb2.kSoftmaxLoss]


def test_tips_hidden_layers_and_separate_activation():
    m = Sequential("tips")
    for n in [2500, 2000, 1500, 1000, 500]:
        m.add(Dense(n, init='uniform', activation='tanh'))
    m.add(Dense(10, init='uniform', activation='softmax'))
    m.add(Dense(2500, init='uniform'))
    m.add(Activation('tanh'))
    kinds = [(l.layer.name, l.mask.name if l.mask is not None else None) for l in m.layers]
    assert kinds[:2] == [("layer1", "tanh1"), ("layer2", "tanh2")]
    assert kinds[-2:] == [("layer7", None), ("tanh7", None)]
    assert m.layers[0].mask.type == job_pb2.kActivation and m.layers[0].mask.activation_conf.type == job_pb2.TANH


def test_tips_one_parameter_for_all_layers():
    X_train, X_test, workspace = mnist_data()
    m = Sequential("mlp")
    par = Parameter(init='uniform', scale=0.05)
    m.add(Dense(2500, w_param=par, b_param=par, activation='tanh'))
    m.add(Dense(2000, w_param=par, b_param=par, activation='tanh'))
    m.add(Dense(1500, w_param=par, b_param=par, activation='tanh'))
    m.add(Dense(1000, w_param=par, b_param=par, activation='tanh'))
    m.add(Dense(500, w_param=par, b_param=par, activation='tanh'))
    m.add(Dense(10, w_param=par, b_param=par, activation='softmax'))
    m.compile(loss='categorical_crossentropy', optimizer=SGD(lr=0.001, lr_type='step'), cluster=Cluster(workspace))
    m.fit(X_train, nb_epoch=1000, with_test=True)
    job = m._configure_evaluate(X_test, batch_size=100)
    params = [p for l in job.neuralnet.layer for p in l.param]
    assert [p.name for p in params] == [x + str(i) for i in range(1, 7) for x in "wb"]   # distinct (SINGA: all 'w1')
    for p in params:
        assert (p.init.type, p.init.low, p.init.high) == (job_pb2.kUniform, approx(-0.05), approx(0.05))
    assert par.param.name == "param1"


def test_tips_cnn_with_parameters():
    m = Sequential("cnn")
    parw = Parameter(init='gauss', std=0.0001)
    parb = Parameter(init='const', value=0)
    m.add(Convolution(32, 5, 1, 2, w_param=parw, b_param=parb, b_lr=2))
    m.add(MaxPooling2D(pool_size=(3, 3), stride=2))
    m.add(Activation('relu'))
    m.add(LRN2D(3, alpha=0.00005, beta=0.75))

    parw.update(std=0.01)
    m.add(Convolution(32, 5, 1, 2, w_param=parw, b_param=parb))
    m.add(Activation('relu'))
    m.add(AvgPooling2D(pool_size=(3, 3), stride=2))
    m.add(LRN2D(3, alpha=0.00005, beta=0.75))

    m.add(Convolution(64, 5, 1, 2, w_param=parw, b_param=parb, b_lr=1))
    m.add(Activation('relu'))
    m.add(AvgPooling2D(pool_size=(3, 3), stride=2))

    m.add(Dense(10, w_param=parw, w_wd=250, b_param=parb, b_lr=2, b_wd=0, activation='softmax'))
    X_train, X_test, ws = cifar_data()
    m.compile(loss="categorical_crossentropy", optimizer=SGD(), cluster=Cluster(ws))
    m.fit(X_train, nb_epoch=100, with_test=True)
    job = m._configure_evaluate(X_test, test_steps=10, test_freq=300)
    params = {p.name: p for l in job.neuralnet.layer for p in l.param}
    assert sorted(params) == ["b1", "b2", "b3", "b4", "w1", "w2", "w3", "w4"]
    assert params["w1"].init.std == approx(0.0001) and params["w2"].init.std == approx(0.01)
    assert [params["b%d" % i].lr_scale for i in range(1, 5)] == [2, 1, 1, 2]    # b_lr of conv1 does not leak
    assert (params["w4"].wd_scale, params["b4"].wd_scale) == (250, 0)
    assert params["b1"].init.type == job_pb2.kConstant


def test_parameter_class_snippets():
    m = Sequential("p")
    parw = Parameter(lr=2, wd=10, init='gaussian', std=0.1)
    parb = Parameter(lr=1, wd=0, init='constant', value=0)
    m.add(Convolution2D(10, 3, w_param=parw, b_param=parb))
    m.add(Dense(10, w_mean=1, w_std=0.1, w_lr=2, w_wd=10))
    parw = Parameter(init='constant', mean=0)
    m.add(Dense(10, w_param=parw, w_lr=1, w_wd=1, b_value=1))
    (cw, cb), (dw, db), (ew, eb) = [list(l.layer.param) for l in m.layers]
    assert (cw.lr_scale, cw.wd_scale, cw.init.std, cb.wd_scale) == (2, 10, approx(0.1), 0)
    assert (dw.init.mean, dw.init.std, dw.lr_scale, dw.wd_scale) == (1, approx(0.1), 2, 10)
    assert (ew.init.type, ew.init.value, eb.init.value) == (job_pb2.kConstant, 0, 1)
    assert [p.name for p in (cw, cb, dw, db, ew, eb)] == ["w1", "b1", "w2", "b2", "w3", "b3"]


def compiled_mlp(name="mlp"):
    X_train, X_test, workspace = mnist_data()
    m = Sequential(name, sys.argv)
    m.add(Dense(100, init='uniform', activation='stanh'))
    m.add(Dense(10, init='uniform', activation='softmax'))
    m.compile(loss='categorical_crossentropy', optimizer=SGD(lr=0.001, lr_type='step'), cluster=Cluster(workspace))
    return m, X_train, X_test, workspace


def test_cases_to_run_singa():
    # (1) training
    m, X_train, X_test, workspace = compiled_mlp()
    job = m._configure_fit(X_train, nb_epoch=1000)
    m.build()
    assert (job.train_steps, job.disp_freq, job.checkpoint_freq) == (1000, 100, 1000)
    assert not m.exist_datalayer("test") and job.test_steps == 0
    assert m.last_checkpoint_path == "examples/mnist/checkpoint/step1000-worker0"
    # (2) training and validation
    m, X_train, _, _ = compiled_mlp()
    X_valid = Data(load="recordinput", phase="val", conf=Store(path="valid.bin", batchsize=100, shape=784))
    job = m._configure_fit(X_train, validate_data=X_valid, nb_epoch=1000)
    assert m.layers[1].layer.include[0] == job_pb2.kVal and job.validate_freq == 100
    # (3) test while training
    m, X_train, X_test, _ = compiled_mlp()
    m.fit(X_train, nb_epoch=1000, with_test=True)
    job = m._configure_evaluate(X_test, batch_size=100, test_steps=100)
    assert not m.testonly and (job.test_steps, job.test_freq) == (100, 0)
    assert job.train_steps == 1000 and len(job.checkpoint_path) == 0
    # (4) test only
    m, _, X_test, workspace = compiled_mlp()
    job = m._configure_evaluate(X_test, batch_size=100, checkpoint_path=workspace + '/checkpoint/step100-worker0')
    assert m.testonly and list(job.checkpoint_path) == ["examples/mnist/checkpoint/step100-worker0"]
    assert job.test_steps == 10 and not job.HasField("train_steps")
    assert [l.name for l in job.neuralnet.layer] == ["data0", "layer1", "stanh1", "layer2", "softmax2"]


def test_data_added_explicitly():
    m, X_train, X_test, _ = compiled_mlp()
    m.add(X_train)
    m.add(X_test)
    job = m._configure_fit(nb_epoch=100, batch_size=32)          # no data argument needed now
    assert sum(l.is_datalayer for l in m.layers) == 2
    m._configure_evaluate(test_steps=5)
    assert list(job.neuralnet.layer[0].srclayers) == ["data0"]
    assert [l.name for l in job.neuralnet.layer][-2:] == ["data0", "data0"]
    assert list(m.layers[2].layer.store_conf.batchsize) == [32]          # really replaced (v0.3 appended)
    assert list(X_train.layer.store_conf.batchsize) == [64]
    m = Sequential("s")
    store = Store(path='train.bin', batch_size=64)
    m.add(Data(load='recordinput', phase='train', conf=store))
    store = Store(path='test.bin', batch_size=100)
    m.add(Data(load='recordinput', phase='test', conf=store))
    assert [list(l.layer.store_conf.batchsize) for l in m.layers] == [[64], [100]]
    assert m.exist_datalayer("train") and m.exist_datalayer("test") and not m.exist_datalayer("val")


def test_gpu_device_keeps_layer_types():
    m, job, _, _ = seed_mlp()
    types = [l.type for l in job.neuralnet.layer]
    m, X_train, X_test, _ = compiled_mlp()
    gpu_id = [0]
    m.fit(X_train, nb_epoch=100, with_test=True, device=gpu_id)
    job = m._configure_evaluate(X_test, device=gpu_id)
    assert list(job.gpu) == [0]                                   # not [0, 0] as v0.3's append gave
    assert all(t < 250 or t >= 300 for t in (l.type for l in job.neuralnet.layer))   # no kCudnn* types
    assert job_pb2.kSTanh in [l.type for l in job.neuralnet.layer]
    job = m._configure_evaluate(X_test, device=1)
    assert list(job.gpu) == [1]
    with pytest.raises(ConfigError, match="`device`"):
        m._configure_evaluate(X_test, device="cuda")


def test_fit_fields():
    m, X_train, _, _ = compiled_mlp()
    job = m._configure_fit(X_train, nb_epoch=9, disp_freq=3, checkpoint_freq=4, checkpoint_after=2,
                           validate_after=1, alg="bp")
    assert (job.train_steps, job.disp_freq, job.checkpoint_freq, job.checkpoint_after) == (9, 3, 4, 2)
    m, X_train, _, _ = compiled_mlp()
    job = m._configure_fit(X_train, nb_epoch=9, train_steps=20)
    assert job.train_steps == 20 and job.disp_freq == 0 and job.checkpoint_freq == 9
    assert m.last_checkpoint_path.endswith("/checkpoint/step20-worker0")
    ckpts = ["examples/rbm/rbm2/checkpoint/step6000-worker0", "examples/rbm/rbm1/checkpoint/step6000-worker0"]
    m, _, _, _ = compiled_mlp()
    X_train, _, _ = mnist_data(ckpt=ckpts)
    job = m._configure_fit(X_train, nb_epoch=10, checkpoint_path="extra")
    assert list(job.checkpoint_path) == ["extra"] + ckpts
    m._configure_fit(X_train, nb_epoch=10)                       # not appended twice
    assert list(job.checkpoint_path) == ["extra"] + ckpts


def test_show_acc_adds_test_layers():
    m, X_train, X_test, _ = compiled_mlp()
    m.fit(X_train, nb_epoch=10, with_test=True)
    job = m._configure_evaluate(X_test, show_acc=True, test_freq=5)
    sm, acc = job.neuralnet.layer[-2:]
    assert (sm.name, sm.type, list(sm.include), list(sm.srclayers)) == ("softmax", job_pb2.kSoftmax, [job_pb2.kTest],
                                                                        ["layer2"])
    assert (acc.name, acc.type, list(acc.srclayers)) == ("accuracy2", job_pb2.kAccuracy, ["softmax", "data0"])
    m = Sequential("m")
    m.add(Dense(10))
    m.compile(optimizer=SGD(), cluster=Cluster("ws"), loss="categorical_crossentropy")
    job = m._configure_evaluate(X_test, checkpoint_path="ck", show_acc=True)
    assert [(l.name, list(l.srclayers)) for l in job.neuralnet.layer[-3:]] == [
        ("softmaxloss1", ["layer1", "data0"]), ("softmax", ["layer1"]), ("accuracy1", ["softmax", "data0"])]


def test_updaters_and_lr_types():
    s = SGD(lr=0.1, decay=0.0002, momentum=0.8).proto
    assert s.type == job_pb2.kSGD and s.learning_rate.type == job_pb2.kFixed
    assert (s.momentum, s.weight_decay) == (approx(0.8), approx(0.0002))
    s = SGD().proto
    assert not s.HasField("momentum") and not s.HasField("weight_decay")        # only written when > 0
    assert s.learning_rate.base_lr == approx(0.01)
    assert SGD(lr_type="fixed").proto.learning_rate.type == job_pb2.kFixed
    lin = SGD(lr_type="linear").proto.learning_rate
    assert (lin.type, lin.linear_conf.change_freq, lin.linear_conf.final_lr) == (job_pb2.kLinear, 10, approx(0.1))
    man = SGD(lr_type="manual", step=(0, 60000, 65000), step_lr=(0.001, 0.0001, 0.00001)).proto.learning_rate
    assert man.type == job_pb2.kFixedStep and list(man.fixedstep_conf.step) == [0, 60000, 65000]
    assert SGD(lr_type="fixedstep", step=5, step_lr=0.1).proto.learning_rate.fixedstep_conf.step_lr[0] == approx(0.1)
    ex = SGD(lr_type="exponential", change_freq=100).proto.learning_rate
    assert (ex.type, ex.exponential_conf.change_freq) == (job_pb2.kExponential, 100)
    inv = SGD(lr_type="inverse").proto.learning_rate
    assert (inv.type, inv.inverse_conf.gamma, inv.inverse_conf.pow) == (job_pb2.kInverse, approx(1e-4), approx(0.75))
    it = SGD(lr_type="inverset", final_lr=50).proto.learning_rate
    assert (it.type, it.inverset_conf.final_lr) == (job_pb2.kInverseT, 50)
    st = SGD(lr_type="step", change_freq=10, gamma=0.5).proto.learning_rate.step_conf
    assert (st.change_freq, st.gamma) == (10, 0.5)
    assert AdaGrad(lr=0.01).proto.type == job_pb2.kAdaGrad
    assert Nesterov(momentum=0.9).proto.type == job_pb2.kNesterov
    assert RMSProp(rho=0.95).proto.rmsprop_conf.rho == approx(0.95)
    ad = AdaDelta().proto
    assert ad.type == job_pb2.kAdaDelta and ad.adadelta_conf.rho == approx(0.9) and ad.adadelta_conf.HasField("rho")
    for cls, conf, enum in ((Adam, "adam_conf", job_pb2.kAdam), (AdamMax, "adammax_conf", job_pb2.kAdamMax)):
        p = cls(lr=0.001, beta2=0.99).proto
        assert p.type == enum and getattr(p, conf).beta1 == approx(0.9) and getattr(p, conf).beta2 == approx(0.99)
        assert p.IsInitialized()
    assert Updater(kRMSProp, 0.1, None, 0, 0, (0,), (0.01,), delta=1e-6).proto.delta == approx(1e-6)
    assert Updater("sgd").proto.type == job_pb2.kSGD


def test_updater_errors():
    with pytest.raises(ConfigError) as e:
        SGD(lr_type="cosine")
    for name in ("'fixed'", "'step'", "'manual'", "'linear'", "'exponential'", "'inverse'", "'inverset'",
                 "'fixedstep'", "'cosine'"):
        assert name in str(e.value)
    with pytest.raises(ConfigError, match="`change_freq`.*'exponential'"):
        SGD(lr_type="exponential")
    with pytest.raises(ConfigError, match="`final_lr`"):
        SGD(lr_type="inverset")
    with pytest.raises(ConfigError, match="`gamma`.*lr_type=None"):
        SGD(gamma=0.5)
    with pytest.raises(ConfigError, match="same length"):
        SGD(lr_type="manual", step=(0, 10), step_lr=(0.1,))
    with pytest.raises(ConfigError, match="`lr` of SGD"):
        SGD(lr=0)
    with pytest.raises(ConfigError, match="`momentun`.*UpdaterProto"):
        SGD(momentun=0.9)
    with pytest.raises(ConfigError, match="UpdaterType"):
        Updater("adamw")


def test_store_algorithm_cluster():
    s = Store(path="a.bin", backend="kvfile", batch_size=64, shape=(3, 32, 32), random_skip=5)
    assert list(s.proto.batchsize) == [64] and list(s.proto.shape) == [3, 32, 32]
    with pytest.raises(ConfigError, match="`bach_size`.*batch_size.*batchsize"):
        Store(bach_size=3)
    assert Algorithm().proto.alg == job_pb2.kBP
    cd = Algorithm(type=kCD, cd_k=3).proto
    assert cd.alg == job_pb2.kCD and cd.cd_conf.cd_k == 3
    assert Algorithm(type="bptt").proto.alg == job_pb2.kBPTT
    with pytest.raises(ConfigError, match="`cd_k`"):
        Algorithm(cd_k=2)
    c = Cluster("ws", nworker_groups=2, server_worker_separate=True).proto
    assert c.workspace == "ws" and c.nworker_groups == 2 and c.server_worker_separate
    for f in ("nserver_groups", "nworkers_per_group", "nservers_per_group", "nworkers_per_procs",
              "nservers_per_procs"):
        assert c.HasField(f) and getattr(c, f) == 1
    with pytest.raises(ConfigError, match="(?s)`workspace` of Cluster.*help"):
        Cluster()
    with pytest.raises(ConfigError, match="`sync_frq`"):
        Cluster("ws", sync_frq=2)
    with pytest.raises(ConfigError, match="`nworker_groups`"):
        Cluster("ws", nworker_groups=0)


# -- error cases --------------------------------------------------------------------------------

def test_compile_errors():
    m = Sequential("m")
    m.add(Dense(10, activation="softmax"))
    with pytest.raises(ConfigError, match="(?s)`optimizer` of compile\\(\\).*help"):
        m.compile(cluster=Cluster("ws"))
    with pytest.raises(ConfigError, match="(?s)`cluster` of compile\\(\\).*help"):
        m.compile(optimizer=SGD())
    with pytest.raises(ConfigError) as e:
        m.compile(optimizer=SGD(), cluster=Cluster("ws"), loss="hinge")
    assert "'categorical_crossentropy', 'mean_squared_error'" in str(e.value) and "'hinge'" in str(e.value)
    with pytest.raises(ConfigError, match="Updater"):
        m.compile(optimizer="sgd", cluster=Cluster("ws"))
    with pytest.raises(ConfigError, match="`nclass`"):
        m.compile(optimizer=SGD(), cluster=Cluster("ws"), nclass=3)
    with pytest.raises(ConfigError, match="both"):
        m.compile(optimizer=SGD(), updater=AdaGrad(), cluster=Cluster("ws"))
    with pytest.raises(ConfigError, match="layers first"):
        Sequential("empty").compile(optimizer=SGD(), cluster=Cluster("ws"), loss="mean_squared_error")


def test_compile_loss_handling():
    m = Sequential("m")
    m.add(Dense(10, activation="softmax"))
    m.compile(optimizer=SGD(), cluster=Cluster("ws"), loss="categorical_crossentropy", topk=3)
    assert m.layers[-1].mask.type == job_pb2.kSoftmaxLoss and m.layers[-1].mask.softmaxloss_conf.topk == 3
    m.compile(optimizer=SGD(), cluster=Cluster("ws"), loss="categorical_crossentropy")   # again: no 2nd loss
    assert len(m.layers) == 1 and m.layers[-1].mask.softmaxloss_conf.topk == 1
    m = Sequential("m")
    m.add(Dense(10))
    m.compile(optimizer=SGD(), cluster=Cluster("ws"), loss="categorical_crossentropy")
    assert m.layers[-1].layer.type == job_pb2.kSoftmaxLoss and m.layers[-1].layer.name == "softmaxloss1"
    m = Sequential("m")
    m.add(Dense(10, activation="softmax"))
    m.compile(optimizer=SGD(), cluster=Cluster("ws"), loss="mean_squared_error")
    assert m.layers[-1].mask.type == job_pb2.kEuclideanLoss
    m = Sequential("m")
    m.add(Dense(10, activation="sigmoid"))
    m.compile(optimizer=SGD(), cluster=Cluster("ws"), loss="mean_squared_error")
    assert m.layers[-1].layer.type == job_pb2.kEuclideanLoss and len(m.layers) == 2


def test_fit_and_evaluate_errors():
    m, X_train, X_test, _ = compiled_mlp()
    with pytest.raises(ConfigError, match="(?s)fit\\(\\) needs training data.*help"):
        m.fit(nb_epoch=10)
    with pytest.raises(ConfigError, match="`nb_epochs` \\(a keyword argument of fit\\(\\)\\)"):
        m.fit(X_train, nb_epochs=10)
    with pytest.raises(ConfigError, match="`nb_epoch` of fit"):
        m.fit(X_train, nb_epoch=0, with_test=True)
    with pytest.raises(ConfigError, match="phase 'train'"):
        m.fit(X_test, nb_epoch=10, with_test=True)
    with pytest.raises(ConfigError, match="`validate_data`.*phase 'val'"):
        m.fit(X_train, nb_epoch=10, with_test=True, validate_data=X_test)
    with pytest.raises(ConfigError, match="`batch_size`"):
        m.fit(X_train, nb_epoch=10, with_test=True, batch_size=0)
    with pytest.raises(ConfigError, match="`alg`"):
        m.fit(X_train, nb_epoch=10, alg="sgd", with_test=True)
    with pytest.raises(ConfigError, match="`test_step` \\(a keyword argument of evaluate\\(\\)\\)"):
        m.evaluate(X_test, test_step=10)
    with pytest.raises(ConfigError, match="evaluate\\(\\) needs test data"):
        m.evaluate()
    # test-only without checkpoint
    m2, _, X_test2, _ = compiled_mlp()
    with pytest.raises(ConfigError, match="(?s)`checkpoint_path` of evaluate\\(\\).*help"):
        m2.evaluate(X_test2)
    # fit before compile
    m3 = Sequential("m3")
    m3.add(Dense(10, activation="softmax"))
    with pytest.raises(ConfigError, match="compile"):
        m3.fit(X_train, nb_epoch=5, with_test=True)
    with pytest.raises(ConfigError, match="no layers"):
        Sequential("none").build()
    with pytest.raises(ConfigError, match="layer object"):
        Sequential("x").add("Dense")


def test_duplicate_param_names_are_reported():
    m = Sequential("m")
    shared = Parameter(name="w", init="uniform")
    m.add(Dense(10, w_param=shared))
    m.add(Dense(10, w_param=shared, activation="softmax"))
    with pytest.raises(ConfigError, match="(?s)param name 'w'.*share_from"):
        m.compile(optimizer=SGD(), cluster=Cluster("ws"), loss="categorical_crossentropy")


# -- Autoencoder and RBM ------------------------------------------------------------------------

AE_BIAS_NAMES = {"b41": "b4", "b31": "b3", "b21": "b2", "b11": "b1"}    # conf names vs SINGA's Python names


@needs_confs
def test_autoencoder_expansion_matches_autoencoder_conf():
    ckpts = ["examples/rbm/rbm%d/checkpoint/step6000-worker0" % i for i in (4, 3, 2, 1)]
    X_train, X_test, _ = mnist_data(batch=100, test_batch=100, ckpt=ckpts, std=255, mean=None, skip=0)
    m = Sequential('autoencoder', sys.argv)
    hid_dim = [1000, 500, 250, 30]
    m.add(Autoencoder(hid_dim, out_dim=784, activation='sigmoid', param_share=True))
    agd = AdaGrad(lr=0.01)
    topo = Cluster("examples/rbm/autoencoder/")
    m.compile(loss='mean_squared_error', optimizer=agd, cluster=topo)
    m.fit(X_train, alg='bp', nb_epoch=12200, with_test=True)
    job = m._configure_evaluate(X_test, test_steps=100, test_freq=1000)

    ref = read_job_conf(os.path.join(COMPAT, "autoencoder.conf"))
    ref_names = {v: k for k, v in AE_BIAS_NAMES.items()}
    assert_same_net(job.neuralnet, ref.neuralnet, param_names=ref_names)
    assert same_message(job.updater, ref.updater)
    assert list(job.checkpoint_path) == list(ref.checkpoint_path)
    for f in ("train_steps", "test_steps", "test_freq"):
        assert getattr(job, f) == getattr(ref, f)
    # SINGA-V0.md 1.5, exactly
    rows = [(l.name, [(p.name, p.share_from) for p in l.param], l.innerproduct_conf.transpose)
            for l in job.neuralnet.layer if l.type == job_pb2.kInnerProduct]
    assert rows == [("layer1", [("w1", ""), ("b12", "")], False), ("layer2", [("w2", ""), ("b22", "")], False),
                    ("layer3", [("w3", ""), ("b32", "")], False), ("layer4", [("w4", ""), ("b42", "")], False),
                    ("layer5", [("w5", "w4"), ("b4", "")], True), ("layer6", [("w6", "w3"), ("b3", "")], True),
                    ("layer7", [("w7", "w2"), ("b2", "")], True), ("layer8", [("w8", "w1"), ("b1", "")], True)]
    assert all(not p.HasField("init") for l in job.neuralnet.layer for p in l.param)
    masks = [l.mask.name if l.mask is not None else None for l in m.layers if not l.is_datalayer]
    assert masks == ["sigmoid1", "sigmoid2", "sigmoid3", None, "sigmoid5", "sigmoid6", "sigmoid7", "sigmoid8",
                     None]
    assert job.neuralnet.layer[-1].name == "euclideanloss8"


def test_autoencoder_without_sharing():
    m = Sequential("ae")
    m.add(Autoencoder([20, 10], out_dim=30, activation="sigmoid", param_share=False))
    rows = [(l.layer.innerproduct_conf.num_output, [p.name for p in l.layer.param], l.mask.name) for l in m.layers]
    assert rows == [(20, ["w1", "b12"], "sigmoid1"), (10, ["w2", "b22"], "sigmoid2"), (30, ["w3", "b32"], "sigmoid3")]


@needs_confs
@pytest.mark.parametrize("rbmid", [1, 2, 3, 4])
def test_rbm_expansion_matches_rbm_confs(rbmid):
    ckpts = ["examples/rbm/rbm%d/checkpoint/step6000-worker0" % i for i in range(rbmid - 1, 0, -1)] or None
    X_train, X_test, _ = mnist_data(batch=100, test_batch=100, ckpt=ckpts, std=255, mean=None, skip=0)
    m = Energy('rbm' + str(rbmid), sys.argv)
    out_dim = [1000, 500, 250, 30][:rbmid]
    if rbmid == 4:
        m.add(RBM(out_dim, sampling='gaussian', w_std=0.1, b_wd=0))
        sgd = SGD(lr=0.001, decay=0.0002, momentum=0.8)
    else:
        m.add(RBM(out_dim, w_std=0.1, b_wd=0))
        sgd = SGD(lr=0.1, decay=0.0002, momentum=0.8)
    m.compile(optimizer=sgd, cluster=Cluster("examples/rbm/rbm%d/" % rbmid))
    m.fit(X_train, alg='cd', nb_epoch=6000, with_test=True)
    job = m._configure_evaluate(X_test, test_steps=100, test_freq=500)

    ref = read_job_conf(os.path.join(COMPAT, "rbm%d.conf" % rbmid))
    # the conf names the visible bias b<n>1, SINGA's Python b<n>
    assert_same_net(job.neuralnet, ref.neuralnet, param_names={"b%d" % rbmid: "b%d1" % rbmid})
    assert same_message(job.updater, ref.updater)
    assert job.train_one_batch.alg == job_pb2.kCD == ref.train_one_batch.alg
    assert list(job.checkpoint_path) == list(ref.checkpoint_path)
    vis, hid = job.neuralnet.layer[-2:]
    assert list(vis.srclayers)[-1] == "RBMHid" and list(hid.srclayers) == ["RBMVis"]


def test_energy_rejects_other_layers():
    m = Energy("e")
    with pytest.raises(ConfigError, match="(?s)Energy.add\\(\\).*silently dropped"):
        m.add(Dense(10))


# -- conversions --------------------------------------------------------------------------------

def test_to_and_from_jobproto_round_trip():
    m, job, _, _ = seed_mlp()
    full = m.to_jobproto()
    assert full == job and full is not m.jobconf
    back = Model.from_jobproto(full)
    assert back.to_jobproto() == full
    assert [l.layer.name for l in back.layers] == [l.name for l in full.neuralnet.layer]
    again = Sequential.from_jobproto(parse_job_conf(job_to_text(full)))
    assert isinstance(again, Sequential) and again.to_jobproto() == full
    blob = full.SerializeToString()
    assert job_pb2.JobProto.FromString(blob) == full
    assert job_pb2.JobProto.FromString(back.to_jobproto().SerializeToString()) == full


@needs_confs
@pytest.mark.parametrize("path", CONFS, ids=[os.path.basename(c) for c in CONFS])
def test_reference_confs_round_trip(path):
    job = read_job_conf(path)
    m = Model.from_jobproto(job)
    out = m.to_jobproto()
    assert out == job
    assert job_pb2.JobProto.FromString(out.SerializeToString()) == job
    # char-rnn-job's one kCharRNN has no include (every phase); sample.conf's input is a kRNNDummy;
    # rnnlm's kData layers are for kTrain and kVal
    count, phases = {"char-rnn-job.conf": (1, []), "char-rnn-sample.conf": (0, []),
                     "rnnlm-job.conf": (2, ["train", "val"])}.get(os.path.basename(path), (2, ["train", "test"]))
    assert sum(l.is_datalayer for l in m.layers) == count
    assert [ph for ph in ("train", "val", "test") if m.exist_datalayer(ph)] == phases


def test_from_jobproto_can_be_configured_further():
    conf = """name: "tiny" cluster { workspace: "ws" }
    updater { type: kSGD learning_rate { type: kFixed base_lr: 0.1 } }
    neuralnet { partition_dim: 0
      layer { name: "data" type: kRecordInput include: kTrain store_conf { path: "t.bin" batchsize: 8 shape: 4 } }
      layer { name: "fc" type: kInnerProduct srclayers: "data" innerproduct_conf { num_output: 3 }
              param { name: "w" } param { name: "b" } }
      layer { name: "loss" type: kSoftmaxLoss srclayers: "fc" srclayers: "data" } }"""
    m = Model.from_jobproto(parse_job_conf(conf))
    assert m.jobconf.neuralnet.HasField("partition_dim")
    X_test = Data(load="recordinput", phase="test", conf=Store(path="v.bin", batchsize=4, shape=4))
    job = m._configure_evaluate(X_test, test_steps=2, test_freq=5)
    assert [l.name for l in job.neuralnet.layer] == ["data", "data", "fc", "loss"]   # the test layer joins 'data'
    assert list(job.neuralnet.layer[3].srclayers) == ["fc", "data"] and not m.testonly


def test_star_import_gives_the_whole_api():
    import singa.model as api
    for name in ("Sequential", "Energy", "Model", "Layer", "Data", "Dense", "Activation", "Dropout", "Loss",
                 "Accuracy", "Autoencoder", "Convolution2D", "Convolution", "MaxPooling2D", "AvgPooling2D",
                 "LRN2D", "RBM", "Parameter", "Store", "Algorithm", "Updater", "SGD", "AdaGrad", "Nesterov",
                 "RMSProp", "AdaDelta", "Adam", "AdamMax", "Cluster", "JobProto", "LayerProto", "kSGD",
                 "kInnerProduct", "kTrain", "RELU", "enumLayerType", "setval", "Message", "generate_name"):
        assert name in api.__all__ and name in globals(), name
    assert kInnerProduct == job_pb2.kInnerProduct and JobProto is job_pb2.JobProto  # noqa: F405


def test_display_prints_text_format(capsys):
    m, job, _, _ = seed_mlp()
    m.display()
    out = capsys.readouterr().out
    assert parse_job_conf(out) == job


# -- end to end through the engine ---------------------------------------------------------------

def test_fit_then_evaluate_runs_the_engine(in_tmp):
    from singa.io.kvfile import KVFileWriter
    from singa.io.record import encode_record
    rng = np.random.default_rng(0)
    for name, n in (("train.bin", 256), ("test.bin", 64)):
        with KVFileWriter(str(in_tmp / name)) as w:
            for i in range(n):
                c = int(rng.integers(0, 2))
                x = rng.normal(0, 1, 6) + (2.0 if c else -2.0)
                w.insert("%08d" % i, encode_record(label=c, data=x.astype(np.float32).tolist(), shape=[6]))
    os.makedirs("ws")

    def model():
        X_train = Data(load="recordinput", phase="train", conf=Store(backend="kvfile", path="train.bin",
                                                                     batchsize=16, shape=6))
        X_test = Data(load="recordinput", phase="test", conf=Store(backend="kvfile", path="test.bin",
                                                                   batchsize=16, shape=6))
        m = Sequential("e2e", ["test"])
        m.add(Dense(8, init="uniform", activation="stanh"))
        m.add(Dense(2, init="uniform", activation="softmax"))
        m.compile(loss="categorical_crossentropy", optimizer=SGD(lr=0.1, momentum=0.9), cluster=Cluster("ws"))
        return m, X_train, X_test

    m, X_train, X_test = model()
    result = m.fit(X_train, nb_epoch=20, seed=3)
    assert result is m.result and len(result) >= 1
    assert os.path.isfile(m.last_checkpoint_path)
    tested = m.evaluate(X_test, test_steps=2)                # after a fit that ran: test the checkpoint
    assert m.testonly and list(m.jobconf.checkpoint_path) == [m.last_checkpoint_path]
    assert tested.test and tested.last("test")

    m2, X_train2, X_test2 = model()
    assert m2.fit(X_train2, nb_epoch=20, with_test=True, seed=3) is None
    both = m2.evaluate(X_test2, test_steps=2, test_freq=10)
    assert not m2.testonly and both.train and both.test
    assert sorted(both.train) == sorted(result.train)         # same seed, same training
    for step in result.train:
        assert both.train[step] == pytest.approx(result.train[step])
