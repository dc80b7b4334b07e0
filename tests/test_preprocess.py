# covers: singa/layers/preprocess.py
"""kImagePreprocess (SINGA-V0-REST.md 7.1): crops, mirrors and scale against slicing written here,
SINGA's offsets (uniform in training, top-left in test), the mirror probability (1/2), seeded
draws equal on NumPy and the device stand-in, no aliasing of the source, errors, and AlexNet's
confs building their nets."""
import os

import numpy
import pytest

from singa.backends import Backend
from singa.errors import ConfigError
from singa.proto import job_pb2
from singa.testing.gradcheck import Source, build_layer
from tests.conftest import CONF_DIR

TRAIN, TEST = job_pb2.kTrain, job_pb2.kTest


def conf_text(crop=0, mirror=False, scale=None):
    fields = "cropsize: %d mirror: %s" % (crop, "true" if mirror else "false")
    if scale is not None:
        fields += " scale: %g" % scale
    return 'name: "image" type: kImagePreprocess srclayers: "data" rgbimage_conf { %s }' % fields


def make(crop, mirror, shape, scale=None, seed=0, backend=None):
    layer = build_layer(conf_text(crop, mirror, scale), [shape], backend=backend, dtype=numpy.float32)
    layer.rng = numpy.random.default_rng(seed)
    return layer


def run(layer, x, flag):
    src = Source("data", layer.backend.asarray(x, dtype=numpy.float32))
    return numpy.array(layer.backend.to_host(layer.forward(flag, [src])))


def expected(x, crop, h0, w0, flip, scale=1.0):
    out = []
    for k in range(len(x)):
        piece = x[k, :, h0[k]:h0[k] + crop, w0[k]:w0[k] + crop]
        out.append(piece[:, :, ::-1] if flip[k] else piece)
    return numpy.stack(out) * numpy.float32(scale)


def test_training_crops_and_mirrors_with_the_streams_draws():
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal((6, 3, 10, 10)).astype(numpy.float32)
    layer = make(7, True, x.shape, scale=0.5, seed=3)
    y = run(layer, x, TRAIN)
    assert y.shape == (6, 3, 7, 7) and layer.out_shape == (6, 3, 7, 7)
    draws = numpy.random.default_rng(3)      # the same stream: h offsets, w offsets, mirror coins
    h0, w0 = draws.integers(0, 4, size=6), draws.integers(0, 4, size=6)
    flip = draws.random(6) < 0.5
    numpy.testing.assert_array_equal(y, expected(x, 7, h0, w0, flip, 0.5))
    # the next batch draws afresh
    assert not numpy.array_equal(run(layer, x, TRAIN), y)


def test_test_phase_takes_the_top_left_crop_unmirrored():
    x = numpy.arange(2 * 3 * 8 * 8, dtype=numpy.float32).reshape(2, 3, 8, 8)
    layer = make(5, True, x.shape, scale=2.0)
    y = run(layer, x, TEST)
    numpy.testing.assert_array_equal(y, x[:, :, :5, :5] * 2)


def test_offsets_cover_the_range_and_mirror_half_the_time():
    x = numpy.zeros((1, 1, 32, 32), numpy.float32)
    layer = make(28, True, (4000, 1, 32, 32), seed=5)
    layer.src_hw = (32, 32)
    h0, w0, flip = layer.offsets(TRAIN, 4000)
    assert set(h0.tolist()) == set(range(5)) and set(w0.tolist()) == set(range(5))
    assert abs(flip.mean() - 0.5) < 0.03         # SINGA's draw gave 0.4 here (FIX)
    # no crop (or a crop the size of the image) still mirrors half the images; SINGA never did at crop == H
    for crop in (0, 32):
        layer = make(crop, True, x.shape, seed=6)
        layer.src_hw = (32, 32)
        _, _, flip = layer.offsets(TRAIN, 4000)
        assert abs(flip.mean() - 0.5) < 0.03, crop


def test_no_crop_copies_and_never_aliases_the_source():
    rng = numpy.random.default_rng(2)
    x = rng.standard_normal((8, 2, 6, 6)).astype(numpy.float32)
    keep = x.copy()
    layer = make(0, True, x.shape, seed=4)
    src = Source("data", x)
    y = layer.forward(TRAIN, [src])
    assert y is not x and numpy.array_equal(x, keep)       # v0.3 mirrored its source's blob in place
    draws = numpy.random.default_rng(4)
    zeros = numpy.zeros(8, int)
    draws.integers(0, 1, size=8), draws.integers(0, 1, size=8)
    flip = draws.random(8) < 0.5
    numpy.testing.assert_array_equal(y, expected(x, 6, zeros, zeros, flip))
    # without mirror and scale 1 it is a copy
    layer = make(0, False, x.shape)
    numpy.testing.assert_array_equal(run(layer, x, TRAIN), x)


def test_same_draws_on_the_device_standin(monkeypatch):
    monkeypatch.setenv("SINGA_GPU_STANDIN", "1")
    rng = numpy.random.default_rng(7)
    x = rng.standard_normal((5, 3, 9, 9)).astype(numpy.float32)
    host = run(make(6, True, x.shape, seed=11), x, TRAIN)
    dev = run(make(6, True, x.shape, seed=11, backend=Backend(0)), x, TRAIN)
    numpy.testing.assert_array_equal(host, dev)


def test_passes_no_gradient():
    layer = make(4, False, (2, 1, 5, 5))
    x = numpy.ones((2, 1, 5, 5), numpy.float32)
    src = Source("data", x)
    layer.forward(TRAIN, [src])
    assert layer.grad_free and layer.backward(TRAIN, [src], numpy.ones((2, 1, 4, 4), numpy.float32)) == [None]


@pytest.mark.parametrize("crop,shape,expect", [
    (-1, (2, 3, 8, 8), "0 (no crop) or a size up to the images' 8x8"),
    (9, (2, 3, 8, 8), "0 (no crop) or a size up to the images' 8x8"),
    (4, (2, 64), "a batch of images"),
])
def test_errors(crop, shape, expect):
    with pytest.raises(ConfigError) as e:
        build_layer(conf_text(crop), [shape])
    assert expect in str(e.value) and "layer 'image' (kImagePreprocess)" in str(e.value) and "help:" in str(e.value)


@pytest.mark.parametrize("name", ["alexnet-job.conf", "alexnet-cudnn.conf"])
def test_alexnet_confs_run(name, in_tmp):
    """SINGA's AlexNet confs through singa-run, on 3x256x256 records at a batch of 2 (paths and
    batch sizes rewritten, steps shortened on the command line): 227 crops into conv1, ip6/ip7
    4096 wide, 1000 classes, and a test phase on top-left crops."""
    import re
    from benchmarks.bench_alexnet import conf_text, write_images
    from tests.test_cli import singa_run
    mean = write_images(in_tmp / "train.bin", 6)
    write_images(in_tmp / "val.bin", 4, seed=1)
    (in_tmp / "job.conf").write_text(conf_text(in_tmp / "train.bin", in_tmp / "val.bin", mean, 2,
                                               source=os.path.join(CONF_DIR, name)))
    args = ["-set", "train_steps=2", "-set", "disp_freq=1", "-set", "test_freq=2", "-set", "test_steps=1",
            "-set", "checkpoint_freq=0", "-set", "checkpoint_after=0"]
    r = singa_run("-conf", "job.conf", *(["-cpu"] if "cudnn" in name else []), *args, cwd=in_tmp)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    losses = [float(x) for x in re.findall(r"Train @ step \d+: loss = ([\d.]+)", r.stdout)]
    assert len(losses) == 2 and all(numpy.isfinite(losses)), r.stdout
    assert re.search(r"Test @ step 2: .*accuracy = [\d.]+", r.stdout), r.stdout


def test_bench_alexnet_runs(tmp_path):
    """benchmarks/bench_alexnet.py with a batch of 2 and one step per measurement (the full run: README)."""
    import subprocess
    import sys
    from tests.conftest import ROOT
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_alexnet.py"), "--batch", "2",
                        "--repeats", "1", "--records", "4", "--steps", "1", "2", "--no-memory",
                        "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "singa " in r.stdout and "images/s" in r.stdout
