# covers: singa/arrays.py, singa/model.py (fit/evaluate/predict on arrays), singa/layers/input.py
#         (in-memory stores)
"""fit / evaluate / predict on in-memory NumPy arrays (Keras style), next to the seed's Data layers."""
import numpy as np
import pytest

from singa.errors import ConfigError, DataError
from singa.io.kvfile import KVFileWriter
from singa.io.record import encode_record
from singa.model import SGD, Cluster, Data, Dense, Sequential, Store


def blobs(n, seed, dim=8):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 1, (n, dim))
    for c in range(3):
        x[y == c, 2 * c:2 * c + 2] += 2.0
    return x.astype(np.float32), y


def write_records(path, x, y):
    """x, y as a kvfile of RecordProto float records, as singa-create-data writes them."""
    with KVFileWriter(str(path)) as w:
        for i, (row, c) in enumerate(zip(x, y)):
            w.insert("%08d" % i, encode_record(label=int(c), data=row.tolist(), shape=[row.size]))


def mlp(name="arrays"):
    m = Sequential(name)
    m.add(Dense(16, init="uniform", activation="tanh"))
    m.add(Dense(3, init="uniform", activation="softmax"))
    m.compile(loss="categorical_crossentropy", optimizer=SGD(lr=0.1, momentum=0.9), cluster=Cluster("ws"))
    return m


def test_fit_evaluate_predict_on_arrays(in_tmp):
    x, y = blobs(1000, 1)
    xv, yv = blobs(150, 2)
    xt, yt = blobs(1234, 3)
    x0, y0 = x.copy(), y.copy()
    m = mlp()
    r = m.fit(x, y, batch_size=64, epochs=3, validation_data=(xv, yv), verbose=0)
    # 3 epochs of ceil(1000 / 64) = 16 steps, a display and a validation per epoch, and at the end
    assert max(r.train) == 47 and sorted(r.validation) == [0, 16, 32, 48]
    assert r.validation[48]["acc"] > 0.85 and sorted(m.history.step) == list(range(48))
    assert np.array_equal(x, x0) and np.array_equal(y, y0) and x.flags.writeable   # the caller's arrays untouched
    p = m.predict(xt, batch_size=100)
    assert p.shape == (1234, 3) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    # evaluate counts every sample once: the same numbers as from the predictions (1234 = 12 x 100 + 34)
    res = m.evaluate(xt, yt, batch_size=100)
    (step, got), = res.test.items()
    assert step == 48
    loss = -np.mean(np.log(np.maximum(p[np.arange(1234), yt], np.finfo(np.float32).tiny)))
    assert got["acc"] == pytest.approx(np.mean(p.argmax(1) == yt), abs=1e-9)
    assert got["loss"] == pytest.approx(loss, rel=1e-5)
    assert got["acc"] > 0.85
    # one row at a time gives the same predictions
    np.testing.assert_allclose(m.predict(xt[:5], batch_size=1), p[:5], rtol=1e-5, atol=1e-7)


def test_arrays_get_the_normalisation_of_the_models_data_layer(in_tmp):
    # trained on a record store with std_value 4: raw arrays given to evaluate are divided by 4 too,
    # so evaluate(x, y) on the store's own samples equals the engine's test over the store
    x, y = blobs(400, 5)
    write_records("train.bin", x, y)
    m = mlp("store")
    store = Store(path="train.bin", backend="kvfile", batchsize=40, shape=8, std_value=4)
    m.fit(Data(load="recordinput", phase="train", conf=store), nb_epoch=30, verbose=0)
    engine = m.evaluate(Data(load="recordinput", phase="test", conf=Store(path="train.bin", backend="kvfile",
                                                                          batchsize=40, shape=8, std_value=4)),
                        test_steps=10)
    mine = m.evaluate(x, y, batch_size=40)
    a, b = list(engine.test.values())[0], list(mine.test.values())[0]
    assert a["acc"] == pytest.approx(b["acc"], abs=1e-9) and a["loss"] == pytest.approx(b["loss"], rel=1e-5)


def test_bad_arrays_fail_clearly(in_tmp):
    x, y = blobs(100, 1)
    m = mlp()
    with pytest.raises(ConfigError, match="(?s)checkpoint_path.*fit\\(\\) the model first"):
        m.predict(x)
    with pytest.raises(ConfigError, match="Invalid value for `y` of fit"):
        m.fit(x, batch_size=10)
    with pytest.raises(DataError, match=r"Expected 100 integer labels.*shape \(50,\)"):
        m.fit(x, y[:50])
    with pytest.raises(DataError, match="one-hot"):
        m.fit(x, np.eye(3)[y] * 0.5)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(DataError, match="1 NaN or infinite"):
        m.fit(bad, y)
    with pytest.raises(ConfigError, match="`epochs` of fit"):
        m.fit(x, y, epochs=0)
    m.fit(x, y, batch_size=20, epochs=1, verbose=0)
    with pytest.raises(DataError, match=r"samples of shape \(8,\).*Received: samples of shape \(9,\)"):
        m.predict(np.zeros((4, 9), np.float32))
    with pytest.raises(ConfigError, match="Invalid keyword"):
        m.evaluate(x, y, test_steps=3)


def test_summary_save_and_load(in_tmp):
    x, y = blobs(300, 1)
    m = mlp()
    m.fit(x, y, batch_size=30, epochs=2, verbose=0)
    text = m.summary(print_fn=None)
    lines = text.splitlines()
    assert lines[0] == 'Model: "arrays" (train net, batch 30)'
    body = "\n".join(lines)
    assert "(30, 16)" in body and "(30, 3)" in body and "kInnerProduct" in body
    assert "Total params: 195 " in body            # 8*16 + 16 + 16*3 + 3
    with pytest.raises(ConfigError, match="no trained params"):
        mlp("fresh").save("nowhere")
    m.save("saved")
    with pytest.raises(ConfigError, match="holds files"):
        m.save("saved")
    from singa.model import Model
    back = Model.load("saved")
    np.testing.assert_array_equal(back.predict(x[:20]), m.predict(x[:20]))
    assert back.evaluate(x, y).test == m.evaluate(x, y).test
    assert (in_tmp / "saved" / "job.conf").read_text().startswith('name: "arrays"')
    import os
    os.remove("saved/step20-worker0")
    with pytest.raises(DataError, match=r"one step<N>-worker0 checkpoint there. Found: \['job.conf'\]"):
        Model.load("saved")
