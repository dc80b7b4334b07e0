# covers: singa/layers/batchnorm.py
"""kBM / kCudnnBM (SINGA-V0-REST.md 6): float64 finite differences on every backend (4-D and 2-D
sources), training and test outputs against the formulas written here, the running statistics
(first batch, then the 0.1 average of unbiased variances, as torch's BatchNorm2d keeps them),
frozen running params (no updater, no weight decay, no momentum touches them), the Python API's
BatchNormalization, errors, and cifar10-cudnn_bm.conf through singa-run."""
import os

import numpy
import pytest

from singa.backends import Backend
from singa.errors import ConfigError
from singa.layers.batchnorm import EPS, RUNNING_AVERAGE_FACTOR
from singa.neuralnet import NeuralNet
from singa.proto import job_pb2, parse_job_conf
from singa.random import RandomStreams
from singa.testing.gradcheck import Source, build_layer, check_layer_gradients
from singa.updaters import create_updater
from tests.conftest import CONF_DIR

TRAIN, TEST = job_pb2.kTrain, job_pb2.kTest


def conf_text(ltype="kBM", name="bm"):
    params = "".join('param { name: "%s%d" init { type: kConstant value: %g } } ' % (name, i, v)
                     for i, v in enumerate((1, 0, 0, 0), 1))
    return 'name: "%s" type: %s srclayers: "src" %s bm_conf { }' % (name, ltype, params)


def ref_train(x, gamma, beta, g):
    """y and the gradients (dx, dgamma, dbeta) from the textbook formulas, channel by channel."""
    x4 = x.reshape(x.shape[0], x.shape[1], -1)
    g4 = g.reshape(x4.shape)
    y, dx = numpy.empty(x4.shape), numpy.empty(x4.shape)
    dgamma, dbeta = numpy.empty(x.shape[1]), numpy.empty(x.shape[1])
    for c in range(x.shape[1]):
        v = x4[:, c]
        mu, var = v.mean(), v.var()
        xhat = (v - mu) / numpy.sqrt(var + EPS)
        y[:, c] = gamma[c] * xhat + beta[c]
        gc = g4[:, c]
        m = v.size
        dgamma[c], dbeta[c] = (gc * xhat).sum(), gc.sum()
        dx[:, c] = gamma[c] / numpy.sqrt(var + EPS) / m * (m * gc - gc.sum() - xhat * (gc * xhat).sum())
    return y.reshape(x.shape), dx.reshape(x.shape), dgamma, dbeta


def step(layer, x, g=None, flag=TRAIN):
    src = Source("src", numpy.array(x, dtype=layer.dtype))
    y = numpy.array(layer.forward(flag, [src]), dtype=numpy.float64)
    dx = None
    if g is not None:
        dx = numpy.array(layer.backward(flag, [src], numpy.array(g, dtype=layer.dtype))[0], dtype=numpy.float64)
    return y, dx


@pytest.mark.parametrize("shape", [(4, 3, 5, 2), (6, 5)])
@pytest.mark.parametrize("ltype", ["kBM", "kCudnnBM"])
def test_gradients_finite_differences(ltype, shape):
    # every backend (NumPy, then the device stand-ins) in float64; the running params get none
    report = check_layer_gradients(conf_text(ltype), [shape], rtol=1e-5, atol=1e-8)
    assert any(k.startswith("source 0") for k in report)


@pytest.mark.parametrize("shape", [(5, 4, 3, 3), (7, 6)])
def test_training_output_and_gradients_match_the_formulas(shape):
    rng = numpy.random.default_rng(1)
    layer = build_layer(conf_text(), [shape], dtype=numpy.float64)
    C = shape[1]
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    layer.gamma.set_values(gamma.reshape(1, C, 1, 1))
    layer.beta.set_values(beta.reshape(1, C, 1, 1))
    x = rng.standard_normal(shape) * 3 + 2
    g = rng.standard_normal(shape)
    y, dx = step(layer, x, g)
    want_y, want_dx, want_dg, want_db = ref_train(x, gamma, beta, g)
    numpy.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(dx, want_dx, rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(layer.gamma.grad.ravel(), want_dg, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(layer.beta.grad.ravel(), want_db, rtol=1e-12, atol=1e-12)
    assert not layer.mean.grad.any() and not layer.invstd.grad.any()
    # float32 agrees to float32 rounding
    l32 = build_layer(conf_text(), [shape], dtype=numpy.float32)
    l32.gamma.set_values(gamma.reshape(1, C, 1, 1))
    l32.beta.set_values(beta.reshape(1, C, 1, 1))
    y32, dx32 = step(l32, x, g)
    numpy.testing.assert_allclose(y32, want_y, rtol=1e-4, atol=1e-4)
    numpy.testing.assert_allclose(dx32, want_dx, rtol=1e-3, atol=1e-4)


def test_running_statistics_and_test_mode():
    rng = numpy.random.default_rng(2)
    shape = (8, 3, 4, 4)
    layer = build_layer(conf_text(), [shape], dtype=numpy.float64)
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    layer.gamma.set_values(gamma.reshape(1, 3, 1, 1))
    layer.beta.set_values(beta.reshape(1, 3, 1, 1))
    m = 8 * 4 * 4
    f = RUNNING_AVERAGE_FACTOR
    mean = var = None
    for k in range(4):
        x = rng.standard_normal(shape) * (k + 1) + k
        step(layer, x, rng.standard_normal(shape))
        bm = x.mean(axis=(0, 2, 3))
        bv = x.var(axis=(0, 2, 3)) * m / (m - 1)          # unbiased, as cuDNN and torch keep it
        if mean is None:        # the conf's initial 0s hold no statistics: the first batch's are taken
            mean, var = bm, bv
        else:
            mean, var = (1 - f) * mean + f * bm, (1 - f) * var + f * bv
        numpy.testing.assert_allclose(layer.mean.data.ravel(), mean, rtol=1e-12)
        numpy.testing.assert_allclose(layer.invstd.data.ravel(), 1 / numpy.sqrt(var + EPS), rtol=1e-12)
    # test mode: the formula with the stored statistics, which it leaves as they are
    x = rng.standard_normal(shape) * 2 - 1
    before = layer.mean.data.copy(), layer.invstd.data.copy()
    y, _ = step(layer, x, flag=TEST)
    want = (gamma[None, :, None, None] * (x - mean[None, :, None, None]) / numpy.sqrt(var + EPS)[None, :, None, None]
            + beta[None, :, None, None])
    numpy.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    assert numpy.array_equal(layer.mean.data, before[0]) and numpy.array_equal(layer.invstd.data, before[1])
    # a copy that does not write the state (a replica after the first) leaves them too
    layer.writes_state = False
    step(layer, x, rng.standard_normal(shape))
    assert numpy.array_equal(layer.mean.data, before[0]) and numpy.array_equal(layer.invstd.data, before[1])


def test_matches_torch_batchnorm2d():
    torch = pytest.importorskip("torch")
    rng = numpy.random.default_rng(3)
    shape = (6, 4, 5, 3)
    layer = build_layer(conf_text("kCudnnBM"), [shape], dtype=numpy.float64)
    ref = torch.nn.BatchNorm2d(4, eps=EPS, momentum=RUNNING_AVERAGE_FACTOR).double()
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(gamma))
        ref.bias.copy_(torch.from_numpy(beta))
    layer.gamma.set_values(gamma.reshape(1, 4, 1, 1))
    layer.beta.set_values(beta.reshape(1, 4, 1, 1))
    # torch starts from mean 0, variance 1: give the layer the same statistics
    layer.invstd.set_values(numpy.full((1, 4, 1, 1), 1 / numpy.sqrt(1 + EPS)))
    for k in range(3):
        x = rng.standard_normal(shape) * 2 + k
        g = rng.standard_normal(shape)
        y, dx = step(layer, x, g)
        tx = torch.from_numpy(x).requires_grad_()
        ty = ref.train()(tx)
        ty.backward(torch.from_numpy(g))
        numpy.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        numpy.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
        numpy.testing.assert_allclose(layer.gamma.grad.ravel(), ref.weight.grad.numpy(), rtol=1e-10)
        ref.weight.grad = ref.bias.grad = None
        numpy.testing.assert_allclose(layer.mean.data.ravel(), ref.running_mean.numpy(), rtol=1e-10)
        numpy.testing.assert_allclose(1 / layer.invstd.data.ravel() ** 2 - EPS, ref.running_var.numpy(), rtol=1e-10)
    x = rng.standard_normal(shape)
    y, _ = step(layer, x, flag=TEST)
    with torch.no_grad():
        numpy.testing.assert_allclose(y, ref.eval()(torch.from_numpy(x)).numpy(), rtol=1e-10, atol=1e-12)


BM_CONF = os.path.join(CONF_DIR, "cifar10-cudnn_bm.conf")


@pytest.fixture(scope="module")
def bm_job(tmp_path_factory):
    from tests.test_partition import write_cifar_like
    path = tmp_path_factory.mktemp("bm") / "train.bin"
    write_cifar_like(path, n=32)
    text = open(BM_CONF).read().replace('path: "examples/cifar10/train_data.bin"', 'path: "%s"' % path)
    text = text.replace('mean_file: "examples/cifar10/image_mean.bin"', "").replace("batchsize: 100", "batchsize: 8")
    job = parse_job_conf(text)
    job.updater.weight_decay = 0.5       # large weight decay and momentum: they must not reach the statistics
    job.updater.momentum = 0.9
    return job


def train_bm(job, replicas=1, npartitions=1, steps=3, utype=None):
    """(net, what each step's writing copy of bm1 stored) after ``steps`` BPWorker steps."""
    from singa.partition_worker import PartitionWorker
    from singa.worker import BPWorker
    if npartitions > 1:
        job = job.__class__.FromString(job.SerializeToString())
        job.neuralnet.partition_dim = 0
    if utype is not None:
        job = job.__class__.FromString(job.SerializeToString())
        job.updater.type = utype
        if utype == job_pb2.kRMSProp:
            job.updater.rmsprop_conf.rho = 0.9
    net = NeuralNet(job.neuralnet, job_pb2.kTrain, Backend(None), RandomStreams(5), dtype=numpy.float64,
                    npartitions=npartitions)
    for name, p in sorted(net.owners.items()):
        if not p.frozen:
            p.init_values(numpy.random.default_rng(sum(map(ord, name))))
    upd = create_updater(job.updater)
    worker = PartitionWorker(net, upd) if npartitions > 1 else BPWorker(net, upd, replicas=replicas)
    written = []
    for s in range(steps):
        worker.train_one_batch(s)
        written.append((net.owners["s13"].data.copy(), net.owners["s14"].data.copy()))
    return net, worker, written


@pytest.mark.parametrize("utype", [job_pb2.kSGD, job_pb2.kNesterov, job_pb2.kAdaGrad, job_pb2.kRMSProp])
def test_the_updater_leaves_the_running_statistics_to_the_layer(bm_job, utype):
    from singa.layers import batchnorm
    wrote = []
    orig = batchnorm.BMLayer._running

    def spy(self, mu, var, m):
        orig(self, mu, var, m)
        if self.name == "bm1":
            wrote.append((self.mean.data.copy(), self.invstd.data.copy()))
    batchnorm.BMLayer._running = spy
    try:
        net, worker, after = train_bm(bm_job, utype=utype)
    finally:
        batchnorm.BMLayer._running = orig
    assert len(wrote) == 3
    for (m_w, i_w), (m_a, i_a) in zip(wrote, after):
        assert numpy.array_equal(m_w, m_a) and numpy.array_equal(i_w, i_a)      # no update after the layer's
    assert (after[-1][1] > 0).all() and numpy.abs(after[-1][0]).sum() > 0
    assert not net.owners["s13"].grad.any()


def test_replicas_and_batch_split_partitions_are_deterministic(bm_job):
    """Two replicas (threads) or two batch-split partitions: the first copy writes the running
    statistics, so two runs agree exactly; they differ from one pass over the whole batch."""
    one = train_bm(bm_job)[2]
    for kw in (dict(replicas=2), dict(npartitions=2)):
        a, b = train_bm(bm_job, **kw)[2], train_bm(bm_job, **kw)[2]
        for (ma, ia), (mb, ib) in zip(a, b):
            assert numpy.array_equal(ma, mb) and numpy.array_equal(ia, ib), kw
        assert not numpy.allclose(a[0][0], one[0][0]), kw      # half the rows' statistics


def _bn_model(with_bn, seed=0):
    from singa.model import (Activation, BatchNormalization, Cluster, Convolution2D, Dense, MaxPooling2D, SGD,
                             Sequential)
    m = Sequential("bn-%s" % with_bn, argv=[])
    m.add(Convolution2D(4, 3, 1, 1, w_std=0.1))
    if with_bn:
        m.add(BatchNormalization())
    m.add(Activation("relu"))
    m.add(MaxPooling2D(pool_size=(2, 2), stride=2))
    m.add(Dense(3, w_std=0.1, activation="softmax"))
    sgd = SGD(decay=0.01, momentum=0.9, lr_type="fixed", lr=0.05)
    return m, sgd, Cluster


def test_api_batchnormalization_trains_and_keeps_running_statistics(tmp_path):
    from singa.model import BatchNormalization
    layer = BatchNormalization(name="bnx")
    assert layer.layer.type == job_pb2.kBM and [p.name for p in layer.layer.param] == [
        "bnx_scale", "bnx_bias", "bnx_mean", "bnx_invstd"]
    assert [p.init.value for p in layer.layer.param] == [1, 0, 0, 0]
    assert BatchNormalization(cudnn=True).layer.type == job_pb2.kCudnnBM
    with pytest.raises(ConfigError, match="BatchNormalization"):
        BatchNormalization(momentum=0.5)

    rng = numpy.random.default_rng(4)
    X = rng.standard_normal((48, 1, 6, 6)).astype(numpy.float32)
    y = (X[:, 0, :3].mean(axis=(1, 2)) > 0).astype(int) + (X[:, 0, 3:].mean(axis=(1, 2)) > 0)
    X = X * 5 + 3          # far from normalised: batch norm is what makes this trainable at lr 0.05
    m, sgd, Cluster = _bn_model(True)
    m.compile(updater=sgd, cluster=Cluster(workspace=str(tmp_path / "ws")))
    r = m.fit(X, y, epochs=100, batch_size=16, with_test=False, verbose=0)
    losses = [v["loss"] for _, v in sorted(r.train.items())]
    assert losses[-1] < losses[0]
    ev = m.evaluate(X, y, batch_size=16)
    (_, test), = ev.test.items()
    assert test["acc"] > 0.9, test      # test mode: the running statistics the training wrote


def test_errors():
    with pytest.raises(ConfigError, match=r"source shape of layer 'bm' \(kBM\).*Received: \(4, 3, 2\)"):
        build_layer(conf_text(), [(4, 3, 2)])
    bad = 'name: "bm" type: kBM srclayers: "src" param { name: "s1" } bm_conf { }'
    with pytest.raises(ConfigError, match=r"4 params: scale, bias, running mean.*Received: 1 param entries"):
        build_layer(bad, [(4, 3, 2, 2)])


def test_cifar10_cudnn_bm_conf_runs_and_trains(in_tmp):
    """The original conf on the CPU, a shortened run: the loss falls, the checkpoint holds the
    running statistics the training wrote (not the conf's zeros), and the test phase uses them."""
    import re
    from singa.io import checkpoint as ckpt
    from tests.test_cifar10_data import write_batches
    from tests.test_cli import BIN, run, singa_run
    write_batches(in_tmp / "raw", n=60)
    r = run([os.path.join(BIN, "singa-create-data"), "cifar10", str(in_tmp / "raw"), "examples/cifar10"], in_tmp)
    assert r.returncode == 0, r.stderr
    (in_tmp / "job.conf").write_text(open(os.path.join(CONF_DIR, "cifar10-cudnn_bm.conf")).read())
    r = singa_run("-conf", "job.conf", "-cpu", "-set", "train_steps=30", "-set", "disp_freq=5", "-set",
                  "test_freq=30", "-set", "test_steps=2", "-set", "checkpoint_freq=30", cwd=in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    losses = [float(x) for x in re.findall(r"Train @ step \d+: loss = ([\d.]+)", r.stdout)]
    assert len(losses) >= 5 and losses[-1] < losses[0], r.stdout
    assert re.search(r"Test @ step 30: accuracy = [\d.]+", r.stdout), r.stdout
    got = {n: v for n, v, _ in ckpt.read_checkpoint(str(in_tmp / "examples/cifar10/checkpoint/step30-worker0"))}
    for k in (1, 2, 3):
        s1, s2, s3, s4 = (got["s%d%d" % (k, i)] for i in (1, 2, 3, 4))
        assert s1.shape == s4.shape == (1, got["b%d" % k].shape[0], 1, 1)
        assert numpy.abs(s3).sum() > 0 and (s4 > 0).all(), "running statistics of bm%d not written" % k


def test_bench_bn_runs(tmp_path):
    """benchmarks/bench_bn.py, both halves with few steps (the full runs: README, Results)."""
    import subprocess
    import sys
    from tests.conftest import FASHION_DIR, ROOT
    bench = os.path.join(ROOT, "benchmarks", "bench_bn.py")
    r = subprocess.run([sys.executable, bench, "layer", "--repeats", "1"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "64x32x32x32" in r.stdout and "x" in r.stdout.splitlines()[-2]
    if not os.path.isdir(FASHION_DIR):
        pytest.skip("Fashion-MNIST (Debian's dataset-fashion-mnist) is not installed")
    r = subprocess.run([sys.executable, bench, "accuracy", "--steps", "8", "--images", "500", "--test-steps", "1",
                        "--test-batch", "100", "--workdir", str(tmp_path)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [l for l in r.stdout.splitlines() if "steps (batch 64" in l]
    assert len(lines) == 2 and lines[0].startswith("without") and lines[1].startswith("with batch norm"), r.stdout
