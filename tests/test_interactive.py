# covers: singa/interactive.py
"""SINGA v0.3's interactive training: layer objects run by hand give what the Driver gives."""
import numpy as np
import pytest

from singa import interactive
from singa.driver import Driver
from singa.errors import ConfigError
from singa.io import checkpoint as ckpt
from singa.model import (SGD, Activation, Cluster, Data, Dense, ImageInput, LabelInput, Loss, Sequential, Store,
                         load_model_parameter, save_model_parameter)
from singa.utils.utility import reset_names
from tests.test_arrays import blobs, write_records


def interactive_mlp():
    reset_names()              # params named w1, b1, w2, b2, as a fresh model names them
    x, label = ImageInput(), LabelInput()
    nn = [x, Dense(16, init="uniform"), Activation("stanh"), Dense(3, init="uniform")]
    return x, label, nn, Loss("softmaxloss")


def train_by_hand(x, y, steps, batch, sgd):
    interactive.set_seed(0)
    inp, label, nn, loss = interactive_mlp()
    losses = []
    for i in range(steps):
        inp.Feed(x[i * batch:(i + 1) * batch])
        label.Feed(y[i * batch:(i + 1) * batch].reshape(-1, 1))
        for h in range(1, len(nn)):
            nn[h].ComputeFeature(nn[h - 1])
        loss.ComputeFeature(nn[-1], label)
        losses.append(float(loss.ToString().split("Loss = ")[1].split(",")[0]))
        loss.ComputeGradient()
        for h in range(len(nn) - 1, 0, -1):
            nn[h].ComputeGradient()
            sgd.Update(i, nn[h])
    return nn, loss, losses


def test_training_by_hand_equals_the_driver(in_tmp):
    x, y = blobs(200, 1)
    write_records("train.bin", x, y)
    m = Sequential("mlp")
    m.add(Dense(16, init="uniform"))
    m.add(Activation("stanh"))
    m.add(Dense(3, init="uniform"))
    m.add(Activation("softmax"))
    sgd = dict(lr=0.1, momentum=0.9, decay=0.01)
    m.compile(loss="categorical_crossentropy", optimizer=SGD(**sgd), cluster=Cluster("ws"))
    m.fit(Data(load="recordinput", phase="train", conf=Store(path="train.bin", backend="kvfile", batchsize=20,
                                                             shape=8)), nb_epoch=8, verbose=0)
    engine = {n: v for n, v, _ in ckpt.read_checkpoint("ws/checkpoint/step8-worker0")}
    nn, loss, losses = train_by_hand(x, y, 8, 20, SGD(**sgd))
    w1, b1 = nn[1].GetParams()
    w2, b2 = nn[3].GetParams()
    assert w1.shape == (16, 8) and b1.shape == (16, 1)
    for name, got in (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2)):
        np.testing.assert_allclose(got.reshape(engine[name].shape), engine[name], rtol=2e-5, atol=2e-6, err_msg=name)
    assert losses[-1] < losses[0]
    assert m.history.step[0]["loss"] == pytest.approx(losses[0], rel=1e-6)
    assert nn[3].GetData().shape == (20 * 3,)


def test_params_in_and_out_and_checkpoints(in_tmp):
    x, y = blobs(40, 2)
    nn, loss, _ = train_by_hand(x, y, 2, 20, SGD(lr=0.1))
    w, b = nn[1].GetParams()
    nn[1].SetParams(np.zeros_like(w), b)
    assert not nn[1].GetParams()[0].any()
    with pytest.raises(ConfigError, match="Expected 2 arrays"):
        nn[1].SetParams(w)
    with pytest.raises(ConfigError, match=r"Expected 128 values \(shape \(16, 8\)\)"):
        nn[1].SetParams(np.zeros(5), b)
    nn[1].SetParams(w, b)
    path = save_model_parameter(2, "saved", nn[1:])
    assert path.endswith("saved/step2-worker0")
    # fresh objects, set up for 8 inputs, get the same params back
    interactive.set_seed(7)
    _, _, fresh, _ = interactive_mlp()
    load_model_parameter(path, fresh[1:], batchsize=1, data_shape=(8,))
    for a, b2 in zip(fresh[1].GetParams() + fresh[3].GetParams(), nn[1].GetParams() + nn[3].GetParams()):
        np.testing.assert_array_equal(a, b2)
    with pytest.raises(ConfigError, match="data_shape"):
        load_model_parameter(path, interactive_mlp()[2][1:])


def test_interactive_mistakes_fail_clearly():
    inp, label, nn, loss = interactive_mlp()
    with pytest.raises(ConfigError, match="(?s)holds no data.*Feed"):
        nn[1].ComputeFeature(inp)
    with pytest.raises(ConfigError, match="has not computed anything yet"):
        nn[2].ComputeFeature(nn[1])
    inp.Feed(np.zeros((4, 8)))
    nn[1].ComputeFeature(inp)
    with pytest.raises(ConfigError, match="no gradient to propagate"):
        nn[1].ComputeGradient()
    with pytest.raises(ConfigError, match="class indices"):
        label.Feed(np.array([[0.5, 0.5]]))
    with pytest.raises(ConfigError, match="Expected 784 values per image"):
        ImageInput(28, 28).Feed(np.zeros((2, 100)))
