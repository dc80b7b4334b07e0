# covers: singa/layers/output.py
"""kCSVOutput, kRecordOutput and kDummy (SINGA-V0-REST.md 8): the bytes SINGA wrote (CSV lines of
%f values after the label, RecordProtos under "0", "1", ... without a shape), truncation at the
first batch and growth after it, backends and paths refused clearly, one-file layers refused
under replicas and partitions, kDummy's input / pass-through / output modes, and a job.conf with
softmax -> argsort -> kCSVOutput and kRecordOutput through singa-run."""
import os
import re

import numpy
import pytest

from singa.errors import ConfigError
from singa.io.kvfile import KVFileReader
from singa.io.record import parse_record
from singa.proto import job_pb2
from singa.testing.gradcheck import Source, build_layer, check_layer_gradients
from tests.conftest import CONF_DIR

TRAIN, TEST = job_pb2.kTrain, job_pb2.kTest


def out_conf(ltype, path, backend=None):
    store = 'path: "%s"' % path + ('' if backend is None else ' backend: "%s"' % backend)
    return 'name: "out" type: %s srclayers: "src" store_conf { %s }' % (ltype, store)


def labelled(x, labels):
    s = Source("src", x)
    s.aux = None if labels is None else numpy.asarray(labels)
    return s


def test_csv_lines_as_singa_wrote_them(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("old contents\n")
    layer = build_layer(out_conf("kCSVOutput", path), [(2, 3)], dtype=numpy.float32)
    x = numpy.array([[0.5, -1.25, 3.0], [1e-7, 2.0, 1234.5678]], numpy.float32)
    layer.forward(TEST, [labelled(x, [7, 2])])
    assert path.read_text() == ("7,0.500000,-1.250000,3.000000\n"
                                "2,0.000000,2.000000,%f\n" % numpy.float32(1234.5678))   # truncated, then 2 lines
    layer.forward(TEST, [labelled(x[:1] * 2, None)])     # a source without labels (kArgSort): values only
    assert path.read_text().splitlines()[2] == "1.000000,-2.500000,6.000000"
    # the backend as a value works (v0.3 died on any backend field)
    build_layer(out_conf("kCSVOutput", path, "textfile"), [(2, 3)])


def test_records_keys_count_on_and_hold_no_shape(tmp_path):
    path = tmp_path / "out.bin"
    layer = build_layer(out_conf("kRecordOutput", path, "kvfile"), [(2, 2, 2)], dtype=numpy.float32)
    x = numpy.arange(8, dtype=numpy.float32).reshape(2, 2, 2)
    layer.forward(TRAIN, [labelled(x, [3, 4])])
    layer.forward(TEST, [labelled(x + 10, None)])
    with KVFileReader(str(path)) as r:
        items = list(r)
    assert [k for k, _ in items] == [b"0", b"1", b"2", b"3"]
    recs = [parse_record(v) for _, v in items]
    assert [list(r.data) for r in recs] == [[0, 1, 2, 3], [4, 5, 6, 7], [10, 11, 12, 13], [14, 15, 16, 17]]
    assert [r.HasField("label") for r in recs] == [True, True, False, False] and recs[1].label == 4
    assert not any(len(r.shape) for r in recs)
    # a new run (a new layer) truncates the file at its first batch
    layer = build_layer(out_conf("kRecordOutput", path, "kvfile"), [(2, 2, 2)], dtype=numpy.float32)
    layer.forward(TEST, [labelled(x, None)])
    with KVFileReader(str(path)) as r:
        assert [k for k, _ in r] == [b"0", b"1"]


@pytest.mark.parametrize("text,expect", [
    (out_conf("kRecordOutput", "/tmp/x.bin"), "store_conf.backend of layer 'out' (kRecordOutput)"),
    (out_conf("kCSVOutput", "/tmp/x.csv", "kvfile"), "Expected 'textfile'"),
    ('name: "out" type: kCSVOutput srclayers: "src" store_conf { }', "store_conf.path of layer 'out'"),
])
def test_bad_stores(text, expect):
    with pytest.raises(ConfigError) as e:
        build_layer(text, [(2, 3)])
    assert expect in str(e.value) and "help:" in str(e.value)


def test_output_layers_refuse_replicas_and_partitions(tmp_path, monkeypatch):
    from singa import switches
    from singa.backends import Backend
    from singa.neuralnet import NeuralNet
    from singa.proto import parse_job_conf
    from singa.random import RandomStreams
    from singa.updaters import create_updater
    from singa.worker import BPWorker, auto_replicas
    from tests.test_partition import write_cifar_like
    write_cifar_like(tmp_path / "d.bin", n=8)
    job = parse_job_conf('''name: "o" train_steps: 1 updater { type: kSGD learning_rate { type: kFixed base_lr: 0.1 } }
    neuralnet {
      layer { name: "data" type: kRecordInput store_conf { backend: "kvfile" path: "%s" batchsize: 4 shape: 3 shape: 32 shape: 32 } }
      layer { name: "conv" type: kCConvolution srclayers: "data" convolution_conf { num_filters: 2 kernel: 3 }
              param { name: "w" init { type: kGaussian std: 0.1 } } param { name: "b" } }
      layer { name: "out" type: kRecordOutput srclayers: "conv" store_conf { backend: "kvfile" path: "%s" } }
      layer { name: "ip" type: kInnerProduct srclayers: "conv" innerproduct_conf { num_output: 10 }
              param { name: "w2" init { type: kGaussian std: 0.1 } } param { name: "b2" } }
      layer { name: "loss" type: kSoftmaxLoss srclayers: "ip" srclayers: "data" }
    }''' % (tmp_path / "d.bin", tmp_path / "o.bin"))
    net = NeuralNet(job.neuralnet, TRAIN, Backend(None), RandomStreams(0))
    assert auto_replicas(net) == 1          # a convolution net, which would get one per thread
    with switches.using(SINGA_REPLICAS="2"):
        with pytest.raises(ConfigError, match="layer 'out' writes one file, which 2 replicas would each write"):
            BPWorker(net, create_updater(job.updater))
    worker = BPWorker(net, create_updater(job.updater))
    worker.train_one_batch(0)
    with KVFileReader(str(tmp_path / "o.bin")) as r:
        assert r.count() == 4
    job.neuralnet.partition_dim = 0
    with pytest.raises(ConfigError, match="cannot be split among a group's workers"):
        NeuralNet(job.neuralnet, TRAIN, Backend(None), RandomStreams(0), npartitions=2)


def test_dummy_input_passthrough_and_output():
    import numpy.random as npr
    layer = build_layer('name: "d" type: kDummy dummy_conf { input: true shape: 3 shape: 4 }', [],
                        dtype=numpy.float32)
    layer.rng = npr.default_rng(1)
    a = numpy.array(layer.forward(TRAIN, [])).copy()
    b = numpy.array(layer.forward(TRAIN, []))
    assert a.shape == (3, 4) and (a >= 0).all() and (a < 1).all() and not numpy.array_equal(a, b)
    assert layer.backward(TRAIN, [], None) == []
    # pass-through: a copy forward, the gradient back unchanged (float64 finite differences)
    check_layer_gradients('name: "d" type: kDummy srclayers: "src" dummy_conf { }', [(2, 5)])
    # output: the gradient it sends back is U[0, 1), drawn from its stream
    layer = build_layer('name: "d" type: kDummy srclayers: "src" dummy_conf { output: true }', [(2, 5)],
                        dtype=numpy.float32)
    layer.rng = npr.default_rng(2)
    x = numpy.ones((2, 5), numpy.float32)
    src = Source("src", x)
    numpy.testing.assert_array_equal(layer.forward(TRAIN, [src]), x)
    g = numpy.array(layer.backward(TRAIN, [src], None)[0])
    assert g.shape == (2, 5) and (g >= 0).all() and (g < 1).all() and layer.pulls_gradient
    with pytest.raises(ConfigError, match=r"dummy_conf.shape of layer 'd' \(kDummy\)"):
        build_layer('name: "d" type: kDummy dummy_conf { input: true }', [])


def test_cifar10_conf_writes_predictions_through_singa_run(in_tmp):
    """cifar10-cudnn.conf as its comment says to use it (softmax, argsort and output uncommented),
    plus a kRecordOutput of the softmax: the test phase writes a line and a record per image."""
    from tests.test_cifar10_data import write_batches
    from tests.test_cli import BIN, run, singa_run
    write_batches(in_tmp / "raw", n=30)
    r = run([os.path.join(BIN, "singa-create-data"), "cifar10", str(in_tmp / "raw"), "examples/cifar10"], in_tmp)
    assert r.returncode == 0, r.stderr
    text = open(os.path.join(CONF_DIR, "cifar10-cudnn.conf")).read()
    extra = '''  layer { name: "argsort" type: kArgSort srclayers: "softmax" include: kTest argsort_conf { topk: 3 } }
  layer { name: "output" type: kCSVOutput srclayers: "argsort" include: kTest store_conf { path: "examples/cifar10/out.csv" } }
  layer { name: "probs" type: kRecordOutput srclayers: "softmax" include: kTest
          store_conf { backend: "kvfile" path: "examples/cifar10/probs.bin" } }
'''
    text = text.replace("# uncomment \"softmax\"", extra + "# uncomment \"softmax\"")
    (in_tmp / "job.conf").write_text(text)
    r = singa_run("-conf", "job.conf", "-cpu", "-set", "train_steps=2", "-set", "test_freq=2", "-set", "test_steps=1",
                  "-set", "disp_freq=1", cwd=in_tmp)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    assert re.search(r"Test @ step 0: .*accuracy", r.stdout) and re.search(r"Test @ step 2: .*accuracy", r.stdout)
    lines = (in_tmp / "examples/cifar10/out.csv").read_text().splitlines()
    assert len(lines) == 200            # two tests (steps 0 and 2) of a batch of 100, appended in one run
    for line in lines:
        vals = [float(v) for v in line.split(",")]
        assert len(vals) == 3 and len(set(vals)) == 3 and all(v.is_integer() and 0 <= v < 10 for v in vals)
    with KVFileReader(str(in_tmp / "examples/cifar10/probs.bin")) as rd:
        recs = [parse_record(v) for _, v in rd]
    assert len(recs) == 200 and all(abs(sum(rec.data) - 1) < 1e-5 and len(rec.data) == 10 for rec in recs)
    # argsort's indices are the softmax's top 3 in order
    first = numpy.array(recs[0].data)
    assert [int(float(v)) for v in lines[0].split(",")] == list(numpy.argsort(-first, kind="stable")[:3])
