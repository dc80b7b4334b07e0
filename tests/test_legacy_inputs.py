# covers: singa/layers/legacy.py
"""SINGA v0.1's inputs (SINGA-V0-REST.md 7.2-7.4): the DataShard bytes (Records around
SingleLabelImageRecords, in a folder's shard.dat), kShardData, the parsers kLabel, kMnist and
kRGBImage against formulas written here, their errors, singa-create-data's mnist-shard and
cifar10-shard, and every v0.1 conf through singa-run on shards written in the exact format."""
import os
import re

import numpy
import pytest

from singa.errors import ConfigError, DataError
from singa.io.create_data import main as create_data
from singa.io.idx import write_idx
from singa.io.kvfile import KVFileReader, KVFileWriter
from singa.io.record import encode_pixel_records, encode_record, encode_shard_record, parse_record, shard_image
from singa.proto import common_pb2, job_pb2
from singa.testing.gradcheck import Source, build_layer

TRAIN, TEST = job_pb2.kTrain, job_pb2.kTest
V01 = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "singa-v0", "v0.1")


def write_shard(folder, pixels, labels, key="%08d"):
    os.makedirs(folder, exist_ok=True)
    with KVFileWriter(os.path.join(folder, "shard.dat")) as w:
        for i, rec in enumerate(encode_pixel_records(pixels, labels)):
            w.insert(key % i, encode_shard_record(rec))
    return folder


def test_shard_records_are_v01_records():
    inner = encode_record(label=3, pixel=b"\x01\x02\x03\x04", shape=[2, 2])
    value = encode_shard_record(inner)
    rec = common_pb2.Record()
    rec.ParseFromString(value)                 # protobuf's own reading of v0.1's Record
    assert rec.type == common_pb2.Record.kSingleLabelImage and rec.HasField("type")
    assert list(rec.image.shape) == [2, 2] and rec.image.label == 3 and rec.image.pixel == b"\x01\x02\x03\x04"
    assert shard_image(value) == inner and shard_image(inner) == inner     # a bare RecordProto passes
    with pytest.raises(DataError, match="not a valid Record"):
        shard_image(b"\x2a\x10\x01")           # a length past the end


def shard_layer(path, batch=4, skip=0, seed=0):
    import numpy.random as npr
    conf = 'name: "data" type: kShardData sharddata_conf { path: "%s" batchsize: %d random_skip: %d }' % (
        path, batch, skip)
    layer = build_layer(conf, [], dtype=numpy.float32)
    return layer


def test_shard_data_reads_folder_and_file(tmp_path):
    rng = numpy.random.default_rng(0)
    px = rng.integers(0, 256, (6, 28, 28), dtype=numpy.uint8)
    lab = numpy.arange(6) % 10
    folder = write_shard(tmp_path / "train_shard", px, lab)
    for path in (folder, folder / "shard.dat"):
        layer = shard_layer(path)
        assert layer.out_shape == (4, 28, 28)          # the first record's shape
        x, y = layer.next_batch()
        numpy.testing.assert_array_equal(x, px[:4].astype(numpy.float32))
        numpy.testing.assert_array_equal(y, lab[:4])
        x, y = layer.next_batch()                       # wraps, as SINGA's SeekToFirst
        numpy.testing.assert_array_equal(y, lab[[4, 5, 0, 1]])
    with pytest.raises(DataError, match="folder without a shard.dat"):
        shard_layer(tmp_path)
    with pytest.raises(ConfigError, match=r"sharddata_conf.batchsize of layer 'data' \(kShardData\)"):
        shard_layer(folder, batch=0)


def parse(ltype, src, body="", flag=TRAIN, seed=0):
    import numpy.random as npr
    layer = build_layer('name: "p" type: %s srclayers: "data" %s' % (ltype, body), [src.data.shape],
                        dtype=numpy.float32)
    layer.rng = npr.default_rng(seed)
    return layer, layer.forward(flag, [src])


def test_label_gives_data_and_labels():
    src = Source("data", numpy.zeros((3, 2, 2), numpy.float32))
    src.aux = numpy.array([4, 0, 9], numpy.int32)
    layer, y = parse("kLabel", src)
    numpy.testing.assert_array_equal(y, [4.0, 0.0, 9.0])
    numpy.testing.assert_array_equal(layer.aux, [4, 0, 9])     # what v0.3's kLabel did not set (FIX)
    src.aux = None
    with pytest.raises(DataError, match="has no labels"):
        parse("kLabel", src)


def test_mnist_normalises_square_images():
    x = numpy.arange(2 * 4 * 4, dtype=numpy.float32).reshape(2, 4, 4)
    _, y = parse("kMnist", Source("data", x), "mnist_conf { norm_a: 127.5 norm_b: 1 }")
    assert y.shape == (2, 1, 4, 4)
    numpy.testing.assert_allclose(y, x.reshape(2, 1, 4, 4) / 127.5 - 1, rtol=1e-6)
    with pytest.raises(ConfigError, match="square images"):
        build_layer('name: "p" type: kMnist srclayers: "data"', [(2, 4, 5)])
    with pytest.raises(ConfigError, match="mnist_conf.norm_a"):
        build_layer('name: "p" type: kMnist srclayers: "data" mnist_conf { norm_a: 0 norm_b: 0 }', [(2, 4, 4)])


def write_mean(path, mean, caffe=False):
    if caffe:       # Caffe BlobProto: num 1, channels 2, height 3, width 4, data 5 (packed)
        from singa.io.record import varint
        raw = numpy.ascontiguousarray(mean.ravel(), "<f4").tobytes()
        body = b"\x08\x01\x10" + varint(mean.shape[0]) + b"\x18" + varint(mean.shape[1]) + b"\x20" + \
            varint(mean.shape[2]) + b"\x2a" + varint(len(raw)) + raw
        open(path, "wb").write(body)
    else:
        open(path, "wb").write(encode_record(shape=list(mean.shape), data=mean.ravel()))
    return path


@pytest.mark.parametrize("caffe", [False, True])
def test_rgb_image_subtracts_the_whole_mean_then_crops(tmp_path, caffe):
    rng = numpy.random.default_rng(3)
    x = rng.integers(0, 256, (5, 3, 8, 8)).astype(numpy.float32)
    mean = rng.random((3, 8, 8)).astype(numpy.float32) * 100
    path = write_mean(tmp_path / ("mean.binaryproto" if caffe else "image_mean.bin"), mean, caffe)
    body = 'rgbimage_conf { meanfile: "%s" cropsize: 6 mirror: true scale: 0.5 }' % path
    _, y = parse("kRGBImage", Source("data", x), body, seed=7)
    draws = numpy.random.default_rng(7)
    h0, w0 = draws.integers(0, 3, size=5), draws.integers(0, 3, size=5)
    flip = draws.random(5) < 0.5
    for k in range(5):
        piece = (x[k] - mean)[:, h0[k]:h0[k] + 6, w0[k]:w0[k] + 6]
        numpy.testing.assert_allclose(y[k], (piece[:, :, ::-1] if flip[k] else piece) * 0.5, rtol=1e-5, atol=1e-4)
    # test: the top-left crop of the centred image (v0.3 overflowed its slot here)
    _, y = parse("kRGBImage", Source("data", x), body, flag=TEST)
    numpy.testing.assert_allclose(y, (x - mean)[:, :, :6, :6] * 0.5, rtol=1e-5, atol=1e-4)
    # scale 0 (v0.3: no scaling) and no meanfile: a copy
    _, y = parse("kRGBImage", Source("data", x), "rgbimage_conf { scale: 0 }")
    numpy.testing.assert_array_equal(y, x)


def test_rgb_image_errors(tmp_path):
    mean = write_mean(tmp_path / "m.bin", numpy.zeros((3, 4, 4), numpy.float32))
    with pytest.raises(DataError, match="holds 48 values; the images have 192"):
        build_layer('name: "p" type: kRGBImage srclayers: "data" rgbimage_conf { meanfile: "%s" }' % mean,
                    [(2, 3, 8, 8)])
    with pytest.raises(DataError, match="cannot be read"):
        build_layer('name: "p" type: kRGBImage srclayers: "data" rgbimage_conf { meanfile: "%s" }'
                    % (tmp_path / "none.bin"), [(2, 3, 8, 8)])


def test_parsers_need_a_data_source(tmp_path):
    from singa.backends import Backend
    from singa.neuralnet import NeuralNet
    from singa.proto import parse_job_conf
    from singa.random import RandomStreams
    folder = write_shard(tmp_path / "s", numpy.zeros((4, 4, 4), numpy.uint8), numpy.zeros(4, int))
    job = parse_job_conf('''name: "x" neuralnet {
      layer { name: "data" type: kShardData sharddata_conf { path: "%s" batchsize: 2 } }
      layer { name: "m" type: kMnist srclayers: "data" }
      layer { name: "m2" type: kMnist srclayers: "m" } }''' % folder)
    with pytest.raises(ConfigError, match=r"srclayers` of layer 'm2' \(kMnist\). Expected a data layer"):
        NeuralNet(job.neuralnet, TRAIN, Backend(None), RandomStreams(0))


def test_create_data_writes_v01_shards(tmp_path):
    rng = numpy.random.default_rng(1)
    imgs = rng.integers(0, 256, (5, 28, 28), dtype=numpy.uint8)
    labs = rng.integers(0, 10, 5).astype(numpy.uint8)
    ip, lp = write_idx(tmp_path / "img", imgs), write_idx(tmp_path / "lab", labs)
    assert create_data(["mnist-shard", str(ip), str(lp), str(tmp_path / "mnist_train_shard")]) == 0
    with KVFileReader(str(tmp_path / "mnist_train_shard" / "shard.dat")) as r:
        items = list(r)
    assert [k for k, _ in items] == [b"%08d" % i for i in range(5)]
    rec = common_pb2.Record()
    rec.ParseFromString(items[2][1])
    assert list(rec.image.shape) == [28, 28] and rec.image.label == labs[2] and rec.image.pixel == imgs[2].tobytes()
    from tests.test_cifar10_data import write_batches
    data = write_batches(tmp_path / "raw", n=6)
    assert create_data(["cifar10-shard", str(tmp_path / "raw"), str(tmp_path / "c")]) == 0
    with KVFileReader(str(tmp_path / "c" / "cifar10_train_shard" / "shard.dat")) as r:
        keys = [k for k, _ in r]
    assert keys == [b"%05d" % i for i in range(30)]
    mean = parse_record(open(tmp_path / "c" / "image_mean.bin", "rb").read())     # one record, no kvfile
    want = numpy.concatenate([data[f][0] for f in sorted(data) if f != "test_batch.bin"]).mean(axis=0)
    numpy.testing.assert_allclose(numpy.array(mean.data), want, rtol=1e-5)


# -- SINGA v0.1's confs, unchanged, through singa-run -----------------------------------------
def mnist_shards(root, n=60, side=28):
    """examples/mnist/mnist_{train,test}_shard with images whose brightness follows the label."""
    rng = numpy.random.default_rng(0)
    for name, count in (("mnist_train_shard", n), ("mnist_test_shard", n // 2)):
        lab = rng.integers(0, 10, count)
        px = numpy.clip(rng.normal(20 * lab[:, None, None], 30, (count, side, side)), 0, 255).astype(numpy.uint8)
        write_shard(root / "examples/mnist" / name, px, lab)


def losses(out):
    return [float(x) for x in re.findall(r"Train @ step \d+: (?:loss|squared error|reconstruction error)"
                                         r"[^=]*= ([\d.]+)", out)]


V01_RUNS = [   # conf, the -set arguments that shorten it
    ("mnist-job.conf", ["train_steps=12", "disp_freq=4", "test_freq=12", "test_steps=1"]),   # batch 1000
    ("mnist-conv.conf", ["train_steps=30", "disp_freq=10", "test_freq=30", "test_steps=1"]),
]


@pytest.mark.parametrize("conf,sets", V01_RUNS, ids=[c for c, _ in V01_RUNS])
def test_v01_mnist_confs_run_and_train(conf, sets, in_tmp):
    from tests.test_cli import singa_run
    mnist_shards(in_tmp)
    args = [a for s in sets for a in ("-set", s)]
    r = singa_run("-conf", os.path.join(V01, conf), *args, cwd=in_tmp)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    got = [float(x) for x in re.findall(r"Train @ step \d+: loss = ([\d.]+)", r.stdout)]
    assert len(got) >= 3 and got[-1] < got[0], r.stdout
    last = sets[0].split("=")[1]
    assert re.search(r"Test @ step %s: loss = [\d.]+, accuracy" % last, r.stdout), r.stdout


def test_v01_cifar10_conf_runs_and_trains(in_tmp):
    from tests.test_cifar10_data import write_batches
    from tests.test_cli import singa_run
    write_batches(in_tmp / "raw", n=40)
    assert create_data(["cifar10-shard", str(in_tmp / "raw"), str(in_tmp / "examples/cifar10")]) == 0
    r = singa_run("-conf", os.path.join(V01, "cifar10-job.conf"), "-set", "train_steps=20", "-set", "disp_freq=5",
                  "-set", "test_freq=20", "-set", "test_steps=1", cwd=in_tmp)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    got = [float(x) for x in re.findall(r"Train @ step \d+: loss = ([\d.]+)", r.stdout)]
    assert len(got) >= 4 and got[-1] < got[0], r.stdout


def test_v01_rbm_chain_and_autoencoder_run(in_tmp):
    """rbm1 -> rbm2 -> rbm3 -> rbm4 -> autoencoder, each loading the earlier stages' checkpoints
    (their paths replaced on the command line for the shortened runs)."""
    from tests.test_cli import singa_run
    mnist_shards(in_tmp, n=100)
    steps = 8
    short = ["-set", "train_steps=%d" % steps, "-set", "disp_freq=2", "-set", "test_freq=0",
             "-set", "checkpoint_freq=%d" % steps]
    ck = [["-set", "checkpoint_path=examples/rbm/rbm%d/checkpoint/step%d-worker0" % (k, steps)] for k in range(1, 5)]
    # rbmN loads rbm(N-1)'s checkpoint; the autoencoder all four
    for stage, loads in (("rbm-rbm1", []), ("rbm-rbm2", ck[0]), ("rbm-rbm3", ck[1]), ("rbm-rbm4", ck[2]),
                         ("rbm-autoencoder", sum(ck, []))):
        extra = loads
        r = singa_run("-conf", os.path.join(V01, stage + ".conf"), *short, *extra, cwd=in_tmp)
        assert r.returncode == 0, stage + "\n" + r.stderr[-3000:] + r.stdout[-3000:]
        assert re.search(r"Train @ step 6: ", r.stdout), stage + r.stdout


def test_api_rgb_builds_kRGBImage_and_trains(tmp_path):
    from singa.model import RGB, Activation, Cluster, Dense, SGD, Sequential
    from singa.utils.utility import reset_names
    reset_names()
    layer = RGB(meanfile="examples/cifar10/image_mean.bin")
    assert layer.layer.type == job_pb2.kRGBImage and layer.name == "rgb0"
    assert layer.layer.rgbimage_conf.meanfile == "examples/cifar10/image_mean.bin"
    assert not layer.layer.rgbimage_conf.HasField("cropsize")          # SINGA's binding set the meanfile only
    assert RGB(cropsize=6, mirror=True).layer.rgbimage_conf.cropsize == 6
    with pytest.raises(ConfigError, match="Invalid value for `meanfile`"):
        RGB(meanfile=3)
    rng = numpy.random.default_rng(5)
    y = rng.integers(0, 2, 64)
    x = (rng.normal(0, 20, (64, 3, 8, 8)) + 60 + 40 * y[:, None, None, None]).astype(numpy.float32)
    mean = write_mean(tmp_path / "mean.bin", x.mean(axis=0))
    m = Sequential("rgb", argv=[])
    m.add(RGB(meanfile=str(mean)))
    m.add(Dense(2, w_std=0.01, activation="softmax"))
    m.compile(updater=SGD(lr=0.001), cluster=Cluster(workspace=str(tmp_path / "ws")))
    r = m.fit(x, y, epochs=5, batch_size=16, verbose=0)
    (_, test), = m.evaluate(x, y, batch_size=16).test.items()
    assert test["acc"] > 0.9, test


def test_rgb_image_reads_a_v03_kvfile_mean_too(tmp_path):
    mean = numpy.arange(48, dtype=numpy.float32).reshape(3, 4, 4)
    with KVFileWriter(str(tmp_path / "image_mean.bin")) as w:
        w.insert("mean", encode_record(shape=[3, 4, 4], data=mean.ravel()))
    x = numpy.full((2, 3, 4, 4), 100, numpy.float32)
    _, y = parse("kRGBImage", Source("data", x), 'rgbimage_conf { meanfile: "%s" }' % (tmp_path / "image_mean.bin"))
    numpy.testing.assert_allclose(y, x - mean)
