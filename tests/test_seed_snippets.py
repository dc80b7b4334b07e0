# covers: singa/model.py, singa/layer.py, singa/parameter.py (the seed document's snippets)
"""The seed document's snippets and cases, typed in as written (few steps), and what the user sees.

MNIST is Fashion-MNIST here (Debian's package, in MNIST's idx format, found through
SINGA_MNIST_DIR); CIFAR-10 is small files in its exact binary format. Note the module imports no
``sys``: the seed's snippets use ``sys.argv`` after ``from singa.model import *`` alone.
"""
import os
import re
import warnings

import numpy as np
import pytest

from singa.model import *  # noqa: F401,F403
from examples.datasets import cifar10, mnist
from singa.errors import ConfigError, DataError
from singa.io.kvfile import KVFileReader
from tests.conftest import FASHION_DIR
from tests.test_cifar10_data import write_batches
from tests.test_datasets import needs_fashion

pytestmark = needs_fashion


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One cache for the module: Fashion-MNIST is converted to kvfile records once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def seed_dir(tmp_path, monkeypatch, shared_cache):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SINGA_CACHE", str(shared_cache))
    monkeypatch.setenv("SINGA_MNIST_DIR", FASHION_DIR)
    write_batches(tmp_path / "cifar", n=100)
    monkeypatch.setenv("SINGA_CIFAR10_DIR", str(tmp_path / "cifar"))
    return tmp_path


def seed_mlp():
    m = Sequential('mlp', sys.argv)  # noqa: F405  (sys comes from `from singa.model import *`)
    m.add(Dense(2500, init='uniform', activation='stanh'))
    m.add(Dense(2000, init='uniform', activation='stanh'))
    m.add(Dense(1500, init='uniform', activation='stanh'))
    m.add(Dense(1000, init='uniform', activation='stanh'))
    m.add(Dense(500,  init='uniform', activation='stanh'))
    m.add(Dense(10, init='uniform', activation='softmax'))
    return m


def small_mlp(name='mlp'):
    m = Sequential(name, sys.argv)  # noqa: F405
    m.add(Dense(64, init='uniform', activation='stanh'))
    m.add(Dense(10, init='uniform', activation='softmax'))
    return m


# -- item 5: sys ------------------------------------------------------------------------------

def test_star_import_gives_sys_as_singa_did():
    ns = {}
    exec("from singa.model import *", ns)
    assert ns["sys"] is __import__("sys")
    assert "Sequential" in ns and "SGD" in ns


# -- items 1 and 2: test while training, and what evaluate() returns ---------------------------

def test_case3_test_while_training_without_test_freq(seed_dir, capsys):
    X_train, X_test, workspace = mnist.load_data()
    m = seed_mlp()
    sgd = SGD(lr=0.001, lr_type='step')
    topo = Cluster(workspace)
    m.compile(loss='categorical_crossentropy', optimizer=sgd, cluster=topo)
    # seed case (3), with 4 steps instead of 1000
    m.fit(X_train, nb_epoch=4, with_test=True)
    result = m.evaluate(X_test, batch_size=100, test_steps=100)
    out = capsys.readouterr().out
    assert "Test: 100 batch(es) after the last step (test_freq is 0" in out
    assert "Test @ step 4:" in out
    # evaluate() returns the test metrics keyed by step; the training metrics stay reachable
    assert list(result) == [4] and result == result.test and result.phase == "test"
    assert set(result[4]) == {"loss", "acc"} and 0 <= result[4]["acc"] <= 1
    assert result.train and max(result.train) == 3 and result.last("train")


def test_seed_mlp_snippet_evaluate_returns_test_rounds(seed_dir):
    X_train, X_test, workspace = mnist.load_data()
    m = seed_mlp()
    sgd = SGD(lr=0.001, lr_type='step')
    topo = Cluster(workspace)
    m.compile(loss='categorical_crossentropy', optimizer=sgd, cluster=topo)
    m.fit(X_train, nb_epoch=5, with_test=True)
    result = m.evaluate(X_test, batch_size=100, test_steps=10, test_freq=2)
    assert sorted(result) == [0, 2, 4, 5] == sorted(result.test)
    assert result.last() == result[5] and set(result.train) == {4}     # disp_freq 5 // 10 = 0: the last step
    # metrics print short: an accuracy of k right in 1000 prints as k/1000, not 0.8009999999999999
    acc = result[5]["acc"]
    assert repr(acc) == repr(round(acc * 1000) / 1000)


def test_store_data_layers_test_while_training(seed_dir):
    X_train, X_test, workspace = mnist.load_data()       # for the record files' paths
    m = small_mlp()
    store = Store(path=X_train.layer.store_conf.path, batch_size=64, shape=784, std_value=255)
    m.add(Data(load='recordinput', phase='train', conf=store))
    store = Store(path=X_test.layer.store_conf.path, batch_size=100, shape=784, std_value=255)
    m.add(Data(load='recordinput', phase='test', conf=store))
    m.compile(loss='categorical_crossentropy', optimizer=SGD(lr=0.01), cluster=Cluster(workspace))
    m.fit(nb_epoch=6, with_test=True)
    result = m.evaluate(test_steps=5)
    assert list(result) == [6] and result[6]["acc"] > 0


def test_a_run_that_will_never_test_says_so_before_training(seed_dir, capsys):
    X_train, X_test, workspace = mnist.load_data()
    m = small_mlp()
    m.compile(loss='categorical_crossentropy', optimizer=SGD(lr=0.01), cluster=Cluster(workspace))
    m.fit(X_train, nb_epoch=3, with_test=True)
    result = m.evaluate(X_test, test_steps=0)
    out = capsys.readouterr().out
    said = out.index("Test: none. The net has test data")
    assert "test_steps is 0" in out and said < out.index("Train @ step 2")
    assert not result.test and result.train


# -- item 3: validation ------------------------------------------------------------------------

def test_case2_validation_with_load_data_split(seed_dir, capsys):
    X_train, X_valid, X_test, workspace = mnist.load_data(nb_valid=1000)
    with KVFileReader(X_valid.layer.store_conf.path) as r:
        assert r.count() == 1000
    with KVFileReader(X_train.layer.store_conf.path) as r:
        assert r.count() == 59000
    m = small_mlp()
    m.compile(loss='categorical_crossentropy', optimizer=SGD(lr=0.01), cluster=Cluster(workspace))
    # seed case (2), 20 steps instead of 1000: validated every nb_epoch // 10 steps and at the end
    res = m.fit(X_train, validate_data=X_valid, nb_epoch=20)
    assert sorted(res.validation) == list(range(0, 21, 2))
    assert "Validation: 10 batch(es) every 2 steps and after the last step" in capsys.readouterr().out
    # the same split again is reused, not rewritten
    again = mnist.load_data(nb_valid=1000)[1].layer.store_conf.path
    assert again == X_valid.layer.store_conf.path


def test_val_data_layer_without_validate_steps_validates(seed_dir):
    X_train, X_valid, X_test, workspace = mnist.load_data(nb_valid=500)
    m = small_mlp()
    m.add(X_valid)                     # a phase='val' Data layer added explicitly
    m.compile(loss='categorical_crossentropy', optimizer=SGD(lr=0.01), cluster=Cluster(workspace))
    res = m.fit(X_train, nb_epoch=10)
    assert sorted(res.validation) == list(range(0, 11))


def test_nb_valid_out_of_range_is_a_clear_error(seed_dir):
    with pytest.raises(DataError, match="(?s)nb_valid.*between 1 and 59999"):
        mnist.load_data(nb_valid=60000)
    with pytest.raises(DataError, match="nb_valid"):
        mnist.load_data(nb_valid=-3)


# -- item 4: the CNN snippet, compile() without loss -------------------------------------------

def test_seed_cnn_snippet_trains_as_written(seed_dir, capsys):
    X_train, X_test, workspace = cifar10.load_data()

    m = Sequential('cnn', sys.argv)  # noqa: F405

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

    sgd = SGD(decay=0.004, lr_type='manual', step=(0, 60000, 65000), step_lr=(0.001, 0.0001, 0.00001))
    topo = Cluster(workspace)
    m.compile(updater=sgd, cluster=topo)
    assert "no loss given and the net ends in a softmax" in capsys.readouterr().out
    m.fit(X_train, nb_epoch=3, with_test=True)                       # the seed: nb_epoch=1000
    result = m.evaluate(X_test, 1000, test_steps=1, test_freq=300)   # the seed: test_steps=30
    out = capsys.readouterr().out
    assert "taking the second argument, 1000, as batch_size" in out
    assert list(result) == [0, 3] and np.isfinite(result[3]["loss"])
    from singa.proto import job_pb2
    test_data = [lp for lp in m.jobconf.neuralnet.layer if lp.type == job_pb2.kRecordInput and
                 job_pb2.kTest in lp.include]
    assert [list(lp.store_conf.batchsize) for lp in test_data] == [[1000]]


def test_compile_without_loss_on_a_net_not_ending_in_softmax_is_refused_by_compile(seed_dir):
    m = Sequential('regress', sys.argv)  # noqa: F405
    m.add(Dense(10, init='uniform'))
    with pytest.raises(ConfigError, match="(?s)compile\\(\\) got no `loss`.*mean_squared_error"):
        m.compile(optimizer=SGD(), cluster=Cluster('ws'))


# -- item 6: the RBM and AutoEncoder stages ----------------------------------------------------

def test_rbm_stage3_without_earlier_stages_says_what_to_run(seed_dir):
    rbmid = 3
    with pytest.raises(DataError) as e:
        X_train, X_test, workspace = mnist.load_data(nb_rbm=rbmid)
    msg = str(e.value)
    assert "RBM stage 3" in msg and "examples/rbm/rbm<i>/checkpoint" in msg and "rbm1, rbm2" in msg
    assert "python examples/mnist_rbm1.py && python examples/mnist_rbm2.py" in msg and "run.sh pretrain" in msg


def test_autoencoder_stage_without_rbms_says_what_to_run(seed_dir):
    rbmid = 4
    with pytest.raises(DataError, match="(?s)the autoencoder.*RBMs 1, 2, 3, 4.*mnist_rbm4.py"):
        X_train, X_test, workspace = mnist.load_data(nb_rbm=rbmid + 1)


def rbm_stage(rbmid, out_dim, steps):
    X_train, X_test, workspace = mnist.load_data(nb_rbm=rbmid)
    m = Energy('rbm' + str(rbmid), sys.argv)  # noqa: F405
    m.add(RBM(out_dim, w_std=0.1, b_wd=0))
    sgd = SGD(lr=0.1, decay=0.0002, momentum=0.8)
    topo = Cluster(workspace)
    m.compile(optimizer=sgd, cluster=topo)
    return m.fit(X_train, alg='cd', nb_epoch=steps), workspace


def test_seed_rbm_stages_learn_and_chain_without_warnings(seed_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)       # no overflow warning may leak from a layer
        res1, ws1 = rbm_stage(1, [1000], 30)
        assert ws1 == "examples/rbm/rbm1"
        se = [res1.train[s]["se"] for s in sorted(res1.train)]
        assert se[-1] < 0.5 * se[0], se                        # the reconstruction error falls
        res2, _ = rbm_stage(2, [1000, 500], 6)                 # loads stage 1's newest checkpoint
        res3, _ = rbm_stage(3, [1000, 500, 250], 6)            # the seed's rbmid = 3, now as written
    assert os.path.isfile("examples/rbm/rbm3/checkpoint/step6-worker0")
    assert np.isfinite(res3.last("train")["se"])


def test_rbm_on_minus_one_to_one_data_warns_nothing(seed_dir):
    # data in [-1, 1] (SINGA's MLP scaling): exp overflows inside the sigmoid, silently now
    X_train, X_test, workspace = mnist.load_data(nb_rbm=1, mean_value=127.5, std_value=127.5)
    m = Energy('rbm1', sys.argv)  # noqa: F405
    m.add(RBM([1000], w_std=0.1, b_wd=0))
    m.compile(optimizer=SGD(lr=0.1, decay=0.0002, momentum=0.8), cluster=Cluster(workspace))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = m.fit(X_train, alg='cd', nb_epoch=5)
    assert np.isfinite(res.last()["se"])


# -- item 8: Keras habits with the array API ---------------------------------------------------

def array_model(ws):
    m = Sequential('arrays', sys.argv)  # noqa: F405
    m.add(Dense(32, init='uniform', activation='relu'))
    m.add(Dense(10, init='uniform', activation='softmax'))
    m.compile(loss='categorical_crossentropy', optimizer=SGD(lr=0.05, momentum=0.9), cluster=Cluster(ws))
    return m


def arrays(n=600, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 20), dtype=np.float32)
    y = (x[:, :10].argmax(axis=1)).astype(np.int32)
    return x, y


def final_params(m):
    from singa.io.checkpoint import read_checkpoint
    return {name: v for name, v, _ in read_checkpoint(m.last_checkpoint_path)}


def test_a_second_fit_continues_from_the_weights(seed_dir):
    x, y = arrays()
    once = array_model("ws1")
    once.fit(x, y, batch_size=50, epochs=2, verbose=0)
    twice = array_model("ws2")
    first = twice.fit(x, y, batch_size=50, epochs=1, verbose=0)
    second = twice.fit(x, y, batch_size=50, epochs=1, verbose=0)
    assert max(first.train) == 11 and min(second.train) == 12 and max(second.train) == 23
    a, b = final_params(once), final_params(twice)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_resume_and_epochs_are_never_a_silent_no_op(seed_dir):
    x, y = arrays()
    m = array_model("ws")
    m.fit(x, y, batch_size=50, epochs=1, verbose=0)
    fresh = array_model("ws")                       # a new process would build the model anew
    with pytest.raises(ConfigError, match="(?s)`epochs` of fit\\(resume=True\\).*step 12.*epochs=2"):
        fresh.fit(x, y, batch_size=50, epochs=1, resume=True, verbose=0)
    res = fresh.fit(x, y, batch_size=50, epochs=2, resume=True, verbose=0)
    assert min(res.train) >= 12 and max(res.train) == 23
    ref = array_model("ws_ref")
    ref.fit(x, y, batch_size=50, epochs=2, verbose=0)
    a, b = final_params(ref), final_params(fresh)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_validation_split(seed_dir):
    x, y = arrays(n=500)
    m = array_model("ws")
    res = m.fit(x, y, batch_size=50, epochs=2, validation_split=0.2, verbose=0)
    assert max(res.train) == 15                     # 400 training samples: 8 steps an epoch
    assert sorted(res.validation) == [0, 8, 16]
    with pytest.raises(ConfigError, match="validation_split"):
        m.fit(x, y, validation_split=1.5)


def test_help_of_fit_shows_the_array_arguments():
    import inspect
    params = inspect.signature(Sequential.fit).parameters
    for name in ("x" if "x" in params else "data", "batch_size", "epochs", "validation_data", "validation_split",
                 "shuffle", "resume"):
        assert name in params, name
    doc = Sequential.fit.__doc__
    assert "continues from the weights" in doc and re.search(r"fit\(x, y, batch_size=32, epochs=1", doc)


def test_array_arguments_with_a_data_layer_are_refused(seed_dir):
    X_train, X_test, workspace = mnist.load_data()
    m = small_mlp()
    m.compile(loss='categorical_crossentropy', optimizer=SGD(), cluster=Cluster(workspace))
    with pytest.raises(ConfigError, match="(?s)`epochs` of fit\\(\\).*NumPy arrays.*nb_epoch"):
        m.fit(X_train, epochs=3)
