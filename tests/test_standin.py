# covers: singa/testing/standin.py, singa/backends/__init__.py
"""The CuPy stand-in (singa.testing.standin): strict where CuPy is strict, and the engine's whole
training step of an MLP, a CNN, an RBM and an autoencoder runs on it (device=[0] with
SINGA_GPU_STANDIN=1) with NumPy's losses and without host/device mixing."""
import gc

import numpy as np
import pytest

from singa.backends import Backend
from singa.testing import standin
from singa.callbacks import Callback
from singa.driver import Driver
from singa.proto import parse_job_conf


def test_the_stand_in_refuses_what_cupy_refuses():
    a = standin.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    host = np.ones((2, 3), np.float32)
    for bad in (lambda: np.asarray(a), lambda: np.add(a, host), lambda: a + host, lambda: host * a,
                lambda: np.exp(a, out=host), lambda: np.dot(host, a.T), lambda: standin.maximum(a, host),
                lambda: host.__setitem__(slice(None), a), lambda: list(a), lambda: np.concatenate([a, host])):
        with pytest.raises(TypeError):
            bad()
    # explicit transfers, scalars and device-only maths work
    standin.reset_transfers()
    b = standin.exp(a) * 2 + 1.5
    assert isinstance(b, standin.ndarray) and isinstance(b.sum(axis=0), standin.ndarray)
    np.testing.assert_allclose(b.get(), np.exp(np.arange(6).reshape(2, 3)) * 2 + 1.5, rtol=1e-6)
    assert float(a.sum()) == 15.0 and standin.transfers["to_host"] == 2
    out = standin.empty((2, 3), np.float32)
    np.multiply(a, np.float32(3), out=out)
    assert out.get()[1, 2] == 15
    assert standin.get_array_module(a) is standin and standin.get_array_module(host) is np


MLP = """
name: "mlp" train_steps: %(steps)d disp_freq: 1
train_one_batch { alg: kBP }
updater { type: kSGD momentum: 0.9 weight_decay: 0.001 learning_rate { type: kFixed base_lr: 0.05 } }
cluster { workspace: "%(ws)s" }
neuralnet {
  layer { name: "data" type: kRecordInput store_conf { backend: "kvfile" path: "train.bin" batchsize: 12 shape: 50
          std_value: 2 } }
  layer { name: "fc1" type: kInnerProduct srclayers: "data" innerproduct_conf { num_output: 16 }
          param { name: "w1" init { type: kGaussian std: 0.3 } } param { name: "b1" init { type: kConstant value: 0 } } }
  layer { name: "act1" type: kSTanh srclayers: "fc1" }
  layer { name: "drop" type: kDropout srclayers: "act1" dropout_conf { dropout_ratio: 0.3 } }
  layer { name: "fc2" type: kInnerProduct srclayers: "drop" innerproduct_conf { num_output: 3 }
          param { name: "w2" init { type: kGaussian std: 0.3 } } param { name: "b2" init { type: kConstant value: 0 } } }
  layer { name: "loss" type: kSoftmaxLoss srclayers: "fc2" srclayers: "data" }
}
"""

AUTOENCODER = """
name: "ae" train_steps: %(steps)d disp_freq: 1
train_one_batch { alg: kBP }
updater { type: kAdaGrad learning_rate { type: kFixed base_lr: 0.05 } }
cluster { workspace: "%(ws)s" }
neuralnet {
  layer { name: "data" type: kRecordInput store_conf { backend: "kvfile" path: "train.bin" batchsize: 12 shape: 50
          std_value: 8 } }
  layer { name: "enc" type: kInnerProduct srclayers: "data" innerproduct_conf { num_output: 8 }
          param { name: "w1" init { type: kGaussian std: 0.1 } } param { name: "b1" init { type: kConstant value: 0 } } }
  layer { name: "sig" type: kSigmoid srclayers: "enc" }
  layer { name: "dec" type: kInnerProduct srclayers: "sig" innerproduct_conf { num_output: 50 transpose: true }
          param { name: "w2" share_from: "w1" } param { name: "b2" init { type: kConstant value: 0 } } }
  layer { name: "loss" type: kEuclideanLoss srclayers: "dec" srclayers: "data" }
}
"""


class StepTransfers(Callback):
    """The stand-in's host<->device transfers of each training step."""

    def __init__(self):
        self.steps, self._last = [], None

    def on_train_begin(self, run):
        self._last = dict(standin.transfers)

    def on_step_end(self, run, step, metrics):
        now = dict(standin.transfers)
        self.steps.append({k: now[k] - self._last[k] for k in ("to_device", "to_host")})
        gc.collect()        # arrays in reference cycles count until collected
        self.steps[-1]["device_bytes"] = standin.get_default_memory_pool().used_bytes()
        self._last = now


def jobs():
    from tests.test_mpi import JOB
    from tests.test_rbm import job_text
    return {
        "mlp": MLP % dict(steps=20, ws="ws"),
        "cnn": (JOB % dict(steps=20, ws="ws", cluster="")).replace("disp_freq: 5", "disp_freq: 1"),
        "rbm": job_text("train.bin", steps=20, lr="0.1", upd="momentum: 0.8", below=True).replace("shape: 12",
                                                                                                 "shape: 50"),
        "autoencoder": AUTOENCODER % dict(steps=20, ws="ws"),
    }


@pytest.mark.parametrize("name", ["mlp", "cnn", "rbm", "autoencoder"])
def test_training_on_the_stand_in_gives_numpys_losses(in_tmp, monkeypatch, name):
    from tests.test_mpi import write_records
    write_records(in_tmp / "train.bin")
    text = jobs()[name]
    ref = Driver(verbose=False).train(parse_job_conf(text))
    monkeypatch.setenv("SINGA_GPU_STANDIN", "1")
    job = parse_job_conf(text)
    job.gpu.append(0)
    counter = StepTransfers()
    got = Driver(verbose=False).train(job, callbacks=[counter])
    assert sorted(got.train) == sorted(ref.train) == list(range(20))
    for step in ref.train:
        for k, v in ref.train[step].items():
            assert got.train[step][k] == pytest.approx(v, rel=2e-5, abs=1e-6), (name, step, k)
    # in the steady state a step moves no array to the device, and to the host only its metrics
    steady = counter.steps[1:]
    assert all(s["to_host"] <= len(ref.train[0]) for s in steady), counter.steps
    # (dropout masks and Gibbs samples are drawn on the device: singa.random.uniform/normal)
    assert all(s["to_device"] == 0 for s in steady), counter.steps
    # and allocates nothing that outlives it: the device memory in use is the same after every step
    # from the third on (buffers are kept and reused, nothing accumulates)
    assert len({s["device_bytes"] for s in counter.steps[2:]}) == 1, [s["device_bytes"] for s in counter.steps]
    assert 0 < counter.steps[-1]["device_bytes"] <= standin.get_default_memory_pool().total_bytes()


def test_the_backend_uses_the_stand_in_only_when_asked(monkeypatch):
    monkeypatch.delenv("SINGA_GPU_STANDIN", raising=False)
    assert Backend(None).xp is np
    monkeypatch.setenv("SINGA_GPU_STANDIN", "1")
    b = Backend(0)
    assert b.xp is standin and b.name == "standin"
    with pytest.raises(Exception, match=r"in \[0, 1\) \(SINGA_GPU_STANDIN=1 stand-in devices\)"):
        Backend(1)
    host = np.arange(4, dtype=np.float32)
    d = b.asarray(host)
    assert isinstance(d, standin.ndarray) and np.array_equal(b.to_host(d), host)


def test_device_random_numbers_are_the_same_on_numpy_and_the_device_and_look_random():
    from singa.random import RandomStreams, normal, uniform
    a = uniform(np, RandomStreams(5).stream("x"), (400, 500))
    b = uniform(standin, RandomStreams(5).stream("x"), (400, 500))
    assert isinstance(b, standin.ndarray) and np.array_equal(a, b.get()) and a.dtype == np.float32
    assert 0 <= a.min() and a.max() < 1
    assert abs(a.mean() - 0.5) < 2e-3 and abs(a.var() - 1 / 12) < 1e-3
    assert abs(np.corrcoef(a.ravel()[:-1], a.ravel()[1:])[0, 1]) < 5e-3        # neighbours independent
    hist = np.histogram(a, bins=20, range=(0, 1))[0] / a.size
    assert np.abs(hist - 0.05).max() < 2e-3
    r = RandomStreams(5).stream("x")
    assert not np.array_equal(uniform(np, r, (10,)), uniform(np, r, (10,)))    # each call a fresh key
    n = normal(np, RandomStreams(1).stream("n"), (200000,), np.float64)
    assert abs(n.mean()) < 0.01 and abs(n.std() - 1) < 0.01 and abs(np.mean(n ** 3)) < 0.02
    d = normal(standin, RandomStreams(1).stream("n"), (200000,), np.float64).get()
    np.testing.assert_allclose(d, n, rtol=1e-12, atol=1e-12)


def test_arrays_stay_on_their_device(monkeypatch):
    monkeypatch.setenv("SINGA_GPU_STANDIN", "2")
    with standin.cuda.Device(1):
        a = standin.zeros((3,), np.float32)
        assert a.device.id == 1 and a.reshape(1, 3).device.id == 1
    b = standin.zeros((3,), np.float32)                      # device 0 is current again
    with pytest.raises(ValueError, match=r"devices \[0, 1\]"):
        a + b
    with pytest.raises(ValueError, match="device 0 is current"):
        a * 2                                               # device 1's array while device 0 is current
    Backend(1).use()
    try:
        assert (a * 2).device.id == 1
    finally:
        standin.cuda.Device(0).use()
    with pytest.raises(standin.cuda.runtime.CUDARuntimeError):
        standin.cuda.Device(2)


def test_arrays_predict_export_and_training_by_hand_on_the_stand_in(in_tmp, monkeypatch):
    # the everyday API on a device: fit on arrays, predict, evaluate, History, and the interactive
    # layer objects, with NumPy's numbers
    from singa import interactive
    from tests.test_arrays import blobs, mlp
    from tests.test_interactive import train_by_hand
    from singa.model import SGD
    x, y = blobs(300, 3)
    cpu = mlp("cpu")
    cpu.fit(x, y, batch_size=30, epochs=2, verbose=0)
    monkeypatch.setenv("SINGA_GPU_STANDIN", "1")
    dev = mlp("dev")
    dev.fit(x, y, batch_size=30, epochs=2, verbose=0, device=0)
    assert dev.history.step.keys() == cpu.history.step.keys()
    for s in cpu.history.step:
        assert dev.history.step[s]["loss"] == pytest.approx(cpu.history.step[s]["loss"], rel=2e-5)
    np.testing.assert_allclose(dev.predict(x), cpu.predict(x), rtol=1e-5, atol=1e-6)
    a, b = list(dev.evaluate(x, y).test.values())[0], list(cpu.evaluate(x, y).test.values())[0]
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["acc"] == b["acc"]
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:      # the params come back from the device explicitly for the export
        q = ort.InferenceSession(dev.export_onnx("dev.onnx"), providers=["CPUExecutionProvider"]).run(
            None, {"input": x})[0]
        np.testing.assert_allclose(q, cpu.predict(x), rtol=1e-5, atol=1e-6)
    # training by hand
    ref = train_by_hand(x, y, 5, 30, SGD(lr=0.1, momentum=0.9))
    interactive.set_backend(Backend(0))
    try:
        got = train_by_hand(x, y, 5, 30, SGD(lr=0.1, momentum=0.9))
    finally:
        interactive.set_backend(None)
    assert isinstance(got[0][1]._rt[0].weight.data, standin.ndarray)
    np.testing.assert_allclose(got[2], ref[2], rtol=2e-5)
    for h in (1, 3):
        for u, v in zip(got[0][h].GetParams(), ref[0][h].GetParams()):
            np.testing.assert_allclose(u, v, rtol=2e-5, atol=1e-6)
    inp = got[0][0]
    assert inp.GetData().shape == (30 * 8,) and isinstance(inp.GetData(), np.ndarray)
