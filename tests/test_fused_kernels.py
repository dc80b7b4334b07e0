# covers: singa/backends/fused.py, singa/backends/device_kernels.py, singa/testing/standin_kernels.py,
#         singa/random.py, singa/testing/cuda_compile.py
"""Fused device kernels (singa.backends.fused): every updater rule, the random draws and dropout as one
elementwise kernel each. On the CuPy stand-in the CUDA C bodies really run (compiled as C++), so
they are checked against NumPy here; with nvcc on the machine every body is also compiled for the
GPU; on a GPU (CuPy importable, a device present) the same checks run on CuPy."""
import os
import subprocess

import numpy as np
import pytest

from singa import random as srandom
from singa.backends import Backend, device_kernels
from singa.testing import cuda_compile, standin, standin_kernels
from singa.backends.fused import Kernel
from singa.layers import neuron
from singa.proto import job_pb2
from singa.updaters import create_updater
from tests.conftest import DEVICE_KINDS, gpu_count
from tests.test_updaters import CASE_IDS, CASES, STEPS, TOL, make_problem, reference_run, updater_proto


def _cupy_or_none():
    if gpu_count() == 0:
        return None
    import cupy
    return cupy


DEVICES = DEVICE_KINDS


@pytest.fixture(params=DEVICES)
def xp(request):
    return standin if request.param == "standin" else _cupy_or_none()


def launches():
    return standin.launches["ufunc"], standin_kernels.launches["elementwise"]


# -- updaters ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case_id,conf,scales", CASES, ids=CASE_IDS)
def test_updater_kernel_matches_numpy(xp, case_id, conf, scales, dtype):
    p = updater_proto(conf)
    w, grads = make_problem((37, 29), dtype, False, len(STEPS))
    w_host, w_dev = w.copy(), xp.asarray(w)
    u_host, u_dev = create_updater(p), create_updater(p)
    s_host, s_dev = u_host.init_state(w_host), u_dev.init_state(w_dev)
    before = launches()
    for step, g in zip(STEPS, grads):
        u_host.apply(step, w_host, g.copy(), s_host, **scales)
        u_dev.apply(step, w_dev, xp.asarray(g), s_dev, **scales)
    if xp is standin:
        # one kernel per update, nothing else launched
        assert launches() == (before[0], before[1] + len(STEPS))
        exact = dict(rtol=0, atol=0)      # same operations in the same order, no contraction
    else:
        exact = TOL[dtype]                # a GPU contracts to FMA
    np.testing.assert_allclose(xp.asnumpy(w_dev), w_host, **exact)
    for k in s_host:
        assert isinstance(s_dev[k], xp.ndarray)
        np.testing.assert_allclose(xp.asnumpy(s_dev[k]), s_host[k], **exact, err_msg=k)
    ref_w, _ = reference_run(p, w, grads, STEPS, **scales)
    np.testing.assert_allclose(xp.asnumpy(w_dev), ref_w, **TOL[dtype])


def test_updater_kernel_on_strided_views_and_a_narrower_gradient(xp):
    """A column slice of a param (not contiguous) and a float32 gradient of a float64 param."""
    p = updater_proto("type: kAdam weight_decay: 0.01 learning_rate { type: kFixed base_lr: 0.1 }")
    w, grads = make_problem((20, 12), np.float64, False, 3)
    host, dev = w.copy(), xp.asarray(w)
    u = create_updater(p)
    sh, sd = u.init_state(host[:, 2:9]), u.init_state(dev[:, 2:9])
    for step, g in enumerate(grads):
        g32 = g[:, 2:9].astype(np.float32)
        u.apply(step, host[:, 2:9], g32.astype(np.float64), sh)
        u.apply(step, dev[:, 2:9], xp.asarray(g32), sd)
    np.testing.assert_allclose(xp.asnumpy(dev), host, rtol=1e-12, atol=1e-14)
    assert np.array_equal(xp.asnumpy(dev)[:, :2], w[:, :2]), "columns outside the view changed"


def test_one_kernel_per_rule_shared_by_updaters():
    a = create_updater(updater_proto("type: kSGD momentum: 0.9 learning_rate { type: kFixed base_lr: 0.1 }"))
    b = create_updater(updater_proto("type: kSGD momentum: 0.5 learning_rate { type: kFixed base_lr: 0.3 }"))
    c = create_updater(updater_proto("type: kSGD learning_rate { type: kFixed base_lr: 0.3 }"))
    d = create_updater(updater_proto("type: kSGD momentum: 0.9 clip_low: -1 clip_high: 1 "
                                     "learning_rate { type: kFixed base_lr: 0.1 }"))
    assert a.kernel() is b.kernel()
    assert len({id(a.kernel()), id(c.kernel()), id(d.kernel())}) == 3
    assert "min(max((T)g, lo), hi)" in d.kernel().body and "lo" not in a.kernel().body


# -- random draws and dropout --------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_random_kernels_match_numpy(xp, dtype):
    shape = (31, 17)
    r_host, r_dev = np.random.default_rng(11), np.random.default_rng(11)
    before = launches()
    u_dev = srandom.uniform(xp, r_dev, shape, dtype)
    if xp is standin:
        assert launches() == (before[0], before[1] + 1)
    # uniform numbers are bit-identical: integer hash, exact conversion
    assert np.array_equal(xp.asnumpy(u_dev), srandom.uniform(np, r_host, shape, dtype))
    n_host = srandom.normal(np, r_host, shape, dtype)
    n_dev = srandom.normal(xp, r_dev, shape, dtype)
    np.testing.assert_allclose(xp.asnumpy(n_dev), n_host, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-6 if dtype == np.float32 else 1e-13)
    # both consumed the same keys: the host streams are in step
    assert r_host.integers(0, 2 ** 31) == r_dev.integers(0, 2 ** 31)
    # into a given array, and into a strided one
    out = xp.zeros((31, 34), dtype)
    srandom.uniform(xp, np.random.default_rng(3), shape, dtype, out=out[:, ::2])
    assert np.array_equal(xp.asnumpy(out)[:, ::2], srandom.uniform(np, np.random.default_rng(3), shape, dtype))
    assert not xp.asnumpy(out)[:, 1::2].any()


def test_dropout_kernels_match_numpy(xp):
    x = np.random.default_rng(2).normal(size=(16, 40)).astype(np.float32)
    g = np.random.default_rng(4).normal(size=(16, 40)).astype(np.float32)
    layers = []
    for mod in (np, xp):
        layer = neuron.DropoutLayer.__new__(neuron.DropoutLayer)
        layer.name, layer.ratio, layer.rng, layer.xp, layer.dtype = "drop", 0.3, np.random.default_rng(9), mod, \
            np.dtype(np.float32)

        class Src:
            data = mod.asarray(x)
        y = layer.forward(job_pb2.kTrain, [Src])
        dx, = layer.backward(job_pb2.kTrain, [Src], mod.asarray(g.copy()))
        layers.append((layer, y, dx))
    (lh, yh, dh), (ld, yd, dd) = layers
    assert np.array_equal(xp.asnumpy(ld.mask), lh.mask) and 0.6 < lh.mask.mean() < 0.8
    assert np.array_equal(xp.asnumpy(yd), yh) and np.array_equal(xp.asnumpy(dd), dh)


ACTIVATION_LAYERS = {"relu": neuron.ReLULayer, "sigmoid": neuron.SigmoidLayer, "stanh": neuron.STanhLayer,
                     "tanh": None}      # kActivation TANH


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "stanh"])
def test_activation_kernels_match_numpy(xp, name):
    x = np.random.default_rng(1).normal(0, 3, size=(9, 13)).astype(np.float32)
    g = np.random.default_rng(2).normal(size=(9, 13)).astype(np.float32)
    out = {}
    for mod in (np, xp):
        # the layer as the net runs it: NumPy's forward_cpu/backward_cpu or the device pair
        cls = ACTIVATION_LAYERS[name] or neuron.ActivationLayer
        layer = cls.__new__(cls)
        layer.xp, layer.dtype, layer.inplace = mod, np.dtype(np.float32), False
        if cls is neuron.ActivationLayer:
            layer.fns, layer.kernels = neuron.ACTIVATIONS[job_pb2.TANH]

        class Src:
            data = mod.asarray(x)
        y = layer.forward(job_pb2.kTrain, [Src])
        dx = mod.asarray(g.copy())
        before = launches()
        layer.backward(job_pb2.kTrain, [Src], dx)
        if mod is standin:
            assert launches()[0] == before[0], "the backward pass launched ufuncs besides its kernel"
        out[mod] = (np.asarray(y if mod is np else y.get()), np.asarray(dx if mod is np else dx.get()))
    # bit-identical without transcendentals; tanh in C and in NumPy's SIMD code may differ by an ulp,
    # which stanh's backward (A*B - (B/A)*y^2, cancelling near saturation) carries to dx as 1e-6
    exact = dict(rtol=0, atol=0) if xp is standin and name in ("relu", "tanh") else dict(rtol=1e-6, atol=2e-7)
    np.testing.assert_allclose(out[xp][0], out[np][0], **exact)
    np.testing.assert_allclose(out[xp][1], out[np][1], **dict(exact, atol=max(exact["atol"], 1e-6)))


@pytest.mark.parametrize("conf,shape", [
    ("type: kCPooling pooling_conf { pool: MAX kernel: 3 stride: 2 }", (4, 3, 15, 15)),
    ("type: kCPooling pooling_conf { pool: MAX kernel: 3 stride: 2 pad: 1 }", (2, 2, 8, 9)),
    ("type: kCPooling pooling_conf { pool: MAX kernel_y: 2 kernel_x: 3 stride_y: 1 stride_x: 2 pad_x: 1 pad_y: 0 }",
     (2, 3, 7, 6)),
    ("type: kPooling pooling_conf { pool: MAX kernel: 2 stride: 2 pad: 1 }", (3, 2, 6, 6)),
], ids=["cifar-pool1", "pad", "rectangular", "mshadow-no-pad"])
def test_max_pooling_kernels_match_numpy(xp, conf, shape):
    """Forward values and winners, and the scattered gradient, equal NumPy's: with many ties
    (small integers), the first maximum in scan order wins on both."""
    from singa.backends import Backend
    from singa.proto import job_pb2
    from singa.testing.gradcheck import Source, build_layer, device_backends
    dev = next(b for b in device_backends() if b.xp is xp)
    rng = np.random.default_rng(5)
    x = rng.integers(-3, 4, size=shape).astype(np.float32)
    outs = []
    for backend in (Backend(None), dev):
        layer = build_layer('name: "p" srclayers: "c" ' + conf, [shape], backend, np.float32)
        src = Source("c", backend.asarray(x))
        y = layer.forward(job_pb2.kTrain, [src])
        g = rng.integers(-5, 6, size=y.shape).astype(np.float32) if not outs else outs[0][2]
        dx, = layer.backward(job_pb2.kTrain, [src], backend.asarray(g.copy()))
        outs.append((backend.to_host(y), backend.to_host(dx), g))
    (y0, dx0, _), (y1, dx1, _) = outs
    assert np.array_equal(y1, y0) and np.array_equal(dx1, dx0)
    assert dx0.sum() == outs[0][2].sum()       # every output's gradient went to exactly one cell


@pytest.mark.parametrize("conf,shape", [
    ("local_size: 3 alpha: 0.00005 beta: 0.75", (4, 32, 7, 7)),
    ("local_size: 5 alpha: 0.1 beta: 0.5 knorm: 2", (3, 6, 4, 5)),
    ("local_size: 3 alpha: 0.3 beta: 0.6", (2, 4, 9)),
], ids=["cifar", "beta-half", "pow"])
def test_lrn_kernels_match_numpy(xp, conf, shape):
    from singa.proto import job_pb2
    from singa.testing.gradcheck import Source, build_layer, device_backends
    dev = next(b for b in device_backends() if b.xp is xp)
    rng = np.random.default_rng(8)
    x = rng.normal(0, 3, size=shape).astype(np.float32)
    g = rng.normal(size=shape).astype(np.float32)
    outs = []
    for backend in (Backend(None), dev):
        layer = build_layer('name: "n" type: kLRN srclayers: "c" lrn_conf { %s }' % conf, [shape], backend, np.float32)
        src = Source("c", backend.asarray(x))
        before = launches()
        y = backend.to_host(layer.forward(job_pb2.kTrain, [src])).copy()
        dx, = layer.backward(job_pb2.kTrain, [src], backend.asarray(g.copy()))
        if backend.xp is standin:
            assert launches() == (before[0], before[1] + 3)        # 1 kernel forward, 2 backward
        outs.append((y, backend.to_host(dx)))
    (y0, dx0), (y1, dx1) = outs
    # window sums in the same order; only pow (beta not 0.75 or 0.5) may differ by an ulp
    tol = dict(rtol=0, atol=0) if xp is standin and "0.6" not in conf else dict(rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(y1, y0, **tol)
    np.testing.assert_allclose(dx1, dx0, **tol)


# -- the stand-in's ElementwiseKernel is as strict as CuPy's -------------------------------------
def test_standin_elementwise_kernel_is_strict():
    axpy = standin.ElementwiseKernel("T x, T a", "T y", "y = a * x + y;", "t_axpy")
    x = standin.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    y = standin.ones((2, 3), np.float32)
    assert axpy(x, 2.0, y) is y and y.get().tolist() == [[1, 3, 5], [7, 9, 11]]
    # outputs allocated when not given, with the placeholder's dtype; broadcasting of inputs
    z = axpy(standin.asarray(np.arange(3, dtype=np.float32)), 10.0)
    assert z.shape == (3,) and z.dtype == np.float32
    row = standin.asarray(np.ones(3, np.float32))
    assert axpy(row, 1.0, y).get().tolist() == [[2, 4, 6], [8, 10, 12]]
    # a strided output is written back
    big = standin.zeros((2, 6), np.float32)
    axpy(x, 1.0, big[:, ::2])
    assert big.get().tolist() == [[0, 0, 1, 0, 2, 0], [3, 0, 4, 0, 5, 0]]
    with pytest.raises(TypeError, match="host NumPy array"):
        axpy(np.ones((2, 3), np.float32), 1.0, y)
    with pytest.raises(TypeError, match="Type is mismatched"):
        axpy(x, 1.0, standin.ones((2, 3), np.float64))
    with pytest.raises(ValueError, match="broadcast"):
        axpy(x, 1.0, standin.ones((3, 3), np.float32))
    with pytest.raises(TypeError, match="Wrong number of arguments"):
        axpy(x)
    with pytest.raises(RuntimeError, match="read-only"):
        standin.ElementwiseKernel("T x", "T y", "x = 1; y = x;", "t_const")(x, y)
    with pytest.raises(RuntimeError, match="does not compile"):
        standin.ElementwiseKernel("T x", "T y", "y = nosuchfunction(x);", "t_typo")(x, y)
    with pytest.raises(ValueError, match="reserved"):
        standin.ElementwiseKernel("T i", "T y", "y = i;", "t_reserved")
    # raw params: the whole array, indexed by the body; the loop runs over the other arrays
    rev = standin.ElementwiseKernel("raw T x, int32 m", "T y", "y = x[m - 1 - i];", "t_raw")
    assert rev(standin.asarray(np.arange(5, dtype=np.float32)), np.int32(5), standin.zeros(5, np.float32)).get()\
        .tolist() == [4, 3, 2, 1, 0]
    with pytest.raises(ValueError, match="non-raw"):
        standin.ElementwiseKernel("raw T x", "raw T y", "y[i] = x[i];", "t_allraw")(x, y)


def test_standin_kernel_refuses_arrays_of_another_device(monkeypatch):
    monkeypatch.setenv("SINGA_GPU_STANDIN", "2")
    with standin.cuda.Device(1):
        other = standin.ones(4, np.float32)
    y = standin.ones(4, np.float32)
    with pytest.raises(ValueError, match="devices"):
        standin.ElementwiseKernel("T x", "T y", "y += x;", "t_dev")(other, y)


def test_device_kernel_refuses_numpy():
    with pytest.raises(TypeError, match="runs on a device"):
        srandom.UNIFORM(np, np.uint32(1), np.zeros(3, np.float32))


# -- every body compiles for the GPU (nvcc) ------------------------------------------------------
def all_kernels():
    ks = {}
    for case_id, conf, _ in CASES:
        k = create_updater(updater_proto(conf)).kernel()
        ks[id(k)] = k
    for k in (srandom.UNIFORM, srandom.NORMAL, device_kernels.DROPOUT_FORWARD, device_kernels.DROPOUT_BACKWARD,
              *device_kernels.ACTIVATIONS.values(), device_kernels.POOL_MAX_FORWARD, device_kernels.POOL_MAX_BACKWARD,
              device_kernels.LRN_FORWARD, device_kernels.LRN_BACKWARD_T, device_kernels.LRN_BACKWARD,
              device_kernels.GRU_FORWARD, device_kernels.GRU_BACKWARD):
        ks[id(k)] = k
    return list(ks.values())


@pytest.mark.skipif(cuda_compile.compiler() is None, reason="no CUDA compiler here (nvcc, or NVRTC: pip install "
                    "nvidia-cuda-nvrtc-cu12)")
@pytest.mark.parametrize("ctype", ["float", "double"])
def test_every_kernel_compiles_to_ptx(ctype):
    kernels = all_kernels()
    assert len(kernels) >= 12
    # one translation unit: each kernel in its own namespace (the preambles define the same helpers)
    parts = ["#include <stdint.h>"]
    for j, k in enumerate(kernels):
        src = k.cuda_source({"T": ctype, "G": ctype}).replace("#include <stdint.h>\n", "")
        parts.append("namespace k%d {\n%s}\n" % (j, src.replace("void %s(" % k.name, "void %s_%d(" % (k.name, j))))
    ptx = cuda_compile.compile_to_ptx("\n".join(parts))       # CudaCompileError with the compiler's log
    assert ptx.count(".entry") == len(kernels)
    for j, k in enumerate(kernels):
        assert "%s_%d" % (k.name, j) in ptx


def test_a_kernel_with_an_error_is_refused_with_the_compilers_log():
    if cuda_compile.compiler() is None:
        with pytest.raises(cuda_compile.CudaCompileError, match="help: pip install nvidia-cuda-nvrtc-cu12"):
            cuda_compile.compile_to_ptx("")
        return
    bad = Kernel("T x", "T y", "y = x * undeclared_name;", "singa_bad")
    with pytest.raises(cuda_compile.CudaCompileError, match="undeclared_name"):
        cuda_compile.compile_to_ptx(bad.cuda_source({"T": "float"}))


def test_cuda_source_names_every_param():
    k = Kernel("T x, uint32 key, T a", "T y", "y = a * x + (T)key;", "t_src", scalars={"key", "a"})
    src = k.cuda_source({"T": "float"})
    assert "typedef float T;" in src
    assert "const float* _raw_x" in src and "const unsigned int key" in src and "const float a" in src
    assert "float &y = _raw_y[i];" in src and "const float x = _raw_x[i];" in src


def test_the_gpu_benchmark_runs_on_the_stand_in(tmp_path):
    """benchmarks/bench_gpu.py (the CuPy-vs-PyTorch-CUDA benchmark) runs end to end; on the stand-in
    its rates mean nothing, but its peak device memory is the engine's own."""
    import sys
    from tests.conftest import ROOT
    env = dict(os.environ, SINGA_GPU_STANDIN="1", PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_gpu.py"), "--steps", "2",
                        "--repeats", "1", "--workdir", str(tmp_path)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Backend(standin:0)" in r.stdout
    for model in ("mlp batch 64", "cnn batch 100"):
        line = next(x for x in r.stdout.splitlines() if x.startswith(model))
        peak = float(line.split("peak pool ")[1].split(" MiB")[0])
        assert peak > 47, line     # at least the seed MLP's 12.3M float32 weights (47 MiB) / the CNN's buffers
