# covers: singa/onnx_export.py, singa/saving.py (export_onnx)
"""ONNX export (singa.onnx_export): onnxruntime gives singa's predictions on Fashion-MNIST."""
import numpy as np
import pytest

from singa.errors import ConfigError
from singa.model import (SGD, Activation, AvgPooling2D, Cluster, Convolution2D, Dense, Dropout, LRN2D, MaxPooling2D,
                         Sequential)
from tests.test_arrays import blobs
from tests.test_datasets import needs_fashion

ort = pytest.importorskip("onnxruntime")


def run_onnx(path, x):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


@needs_fashion
def test_mlp_and_cnn_match_onnxruntime_on_the_test_set(in_tmp):
    from singa.datasets import fashion_mnist
    (_, _), (xt, yt) = fashion_mnist.load_arrays()
    # the MLP on the stores of load_data ((x - 127.5) / 127.5 inside the graph: raw pixels in)
    X_train, _, ws = fashion_mnist.load_data(workspace="ws")
    m = Sequential("mlp")
    m.add(Dense(64, init="uniform", activation="stanh"))
    m.add(Dropout(0.3))
    m.add(Dense(10, init="uniform", activation="softmax"))
    m.compile(loss="categorical_crossentropy", optimizer=SGD(lr=0.01, momentum=0.9), cluster=Cluster(ws))
    m.fit(X_train, nb_epoch=60, verbose=0)
    raw = xt.reshape(-1, 784).astype(np.float32)
    p = m.predict(raw, batch_size=500)
    q = run_onnx(m.export_onnx("mlp.onnx"), raw)
    assert q.shape == (10000, 10) and np.abs(p - q).max() <= 1e-5
    assert (p.argmax(1) == yt).mean() > 0.6
    # a CNN with every exported layer kind: padded convolutions, max and average pooling (floor
    # sizes, padding), LRN, ReLU, dropout, dense
    X_train, _, ws = fashion_mnist.load_data(workspace="ws2", shape=(1, 28, 28))
    c = Sequential("cnn")
    c.add(Convolution2D(8, 5, 1, 2, w_std=0.1))
    c.add(MaxPooling2D(pool_size=(3, 3), stride=2))
    c.add(Activation("relu"))
    c.add(LRN2D(3, alpha=0.00005, beta=0.75))
    c.add(Convolution2D(8, 3, 2, 1, w_std=0.1))
    c.add(Activation("tanh"))
    avg = AvgPooling2D(pool_size=(3, 3), stride=2)
    avg.layer.pooling_conf.pad = 1
    c.add(avg)
    c.add(Dropout(0.2))
    c.add(Dense(10, activation="softmax"))
    c.compile(loss="categorical_crossentropy", optimizer=SGD(lr=0.01, momentum=0.9), cluster=Cluster(ws))
    c.fit(X_train, nb_epoch=40, verbose=0)
    img = xt[:2000].reshape(-1, 1, 28, 28).astype(np.float32)
    p = c.predict(img, batch_size=250)
    q = run_onnx(c.export_onnx("cnn.onnx"), img)
    assert np.abs(p - q).max() <= 1e-5, np.abs(p - q).max()
    assert (p.argmax(1) == yt[:2000]).mean() > 0.2        # trained (chance: 0.1)


def test_a_regression_net_exports_its_prediction(in_tmp):
    # a Euclidean loss: the output is the loss layer's input (the prediction itself)
    x, y = blobs(200, 4)
    m = Sequential("reg")
    m.add(Dense(6, init="uniform", activation="sigmoid"))
    m.add(Dense(8, init="uniform"))
    m.compile(loss="mean_squared_error", optimizer=SGD(lr=0.05), cluster=Cluster("ws"))
    m.fit(x, y, batch_size=20, epochs=1, verbose=0)
    p = m.predict(x)
    q = run_onnx(m.export_onnx("reg.onnx"), x)
    assert p.shape == q.shape == (200, 8) and np.abs(p - q).max() <= 1e-5
    with pytest.raises(ConfigError, match="fit the model"):
        Sequential("fresh").export_onnx("x.onnx")
