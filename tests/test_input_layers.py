# covers: singa/layers/input.py, singa/io/textfile.py
"""kRecordInput and kCSVInput: batches, wrap-around, random_skip, normalisation, caching, errors."""
import os

import numpy
import pytest
from google.protobuf import text_format

import singa.layers  # noqa: F401  (registers the layers)
from singa.backends import Backend
from singa.errors import ConfigError, DataError
from singa.io.kvfile import write_kvfile
from singa.io.record import encode_record
from singa.layers.base import create_layer
from singa.layers.input import CSVInputLayer, RecordInputLayer, clear_store_cache, load_store
from singa.proto import job_pb2
from singa.random import RandomStreams

N, DIM = 10, 6
RNG = numpy.random.default_rng(0)
PIX = RNG.integers(0, 256, (N, DIM), dtype=numpy.uint8)
LAB = numpy.arange(N) % 4


def make_records(path, pix=PIX, lab=LAB, shape=(2, 3)):
    write_kvfile(path, [("%08d" % i, encode_record(label=int(l), pixel=p.tobytes(), shape=list(shape)))
                        for i, (p, l) in enumerate(zip(pix, lab))])
    return str(path)


def layer(store, type_="kRecordInput", seed=0, dtype=numpy.float32):
    conf = text_format.Parse('name: "data" type: %s store_conf { %s }' % (type_, store), job_pb2.LayerProto())
    lay = create_layer(conf, Backend(None), dtype)
    lay.rng = RandomStreams(seed).stream("train/data")
    return lay


@pytest.fixture
def rec_file(in_tmp):
    clear_store_cache()
    return make_records(in_tmp / "train.bin")


def batches(lay, k):
    out = []
    for _ in range(k):
        lay.forward(job_pb2.kTrain, [])
        out.append((lay.data.copy(), None if lay.aux is None else lay.aux.copy()))
    return out


def test_setup_and_sequential_wrap_around(rec_file):
    lay = layer('backend: "kvfile" path: "train.bin" batchsize: 4 shape: 2 shape: 3')
    assert isinstance(lay, RecordInputLayer) and lay.is_data
    assert lay.setup([]) == (4, 2, 3) and lay.out_shape == (4, 2, 3)
    got = batches(lay, 4)
    order = numpy.arange(16) % N     # 0..9, then from record 0 again
    for b, (x, y) in enumerate(got):
        idx = order[b * 4:(b + 1) * 4]
        assert x.dtype == numpy.float32 and x.shape == (4, 2, 3)
        assert numpy.array_equal(x.reshape(4, DIM), PIX[idx].astype(numpy.float32))
        assert y.dtype == numpy.int32 and y.tolist() == LAB[idx].tolist()
    assert lay.backward(job_pb2.kTrain, [], None) == []


def test_batch_larger_than_store(rec_file):
    lay = layer('path: "train.bin" batchsize: 25 shape: 6')
    lay.setup([])
    (x, y), (x2, _) = batches(lay, 2)
    assert numpy.array_equal(x, PIX[numpy.arange(25) % N].astype(numpy.float32))
    assert numpy.array_equal(x2, PIX[numpy.arange(25, 50) % N].astype(numpy.float32))


def test_a_worker_reads_only_its_part(rec_file):
    # rows [1, 3) of each batch of 4, every 2nd batch after skipping one (group 1 of 2): the
    # records one worker of a group of two reads when the whole stream is the groups' batches in turn
    lay = layer('path: "train.bin" batchsize: 4 shape: 6')
    lay.setup([])
    lay.read_part(1, 3, stride=8)
    assert lay.out_shape == (2, 6) and lay.data.shape == (2, 6) and lay.aux.shape == (2,)
    lay.pos = (lay.pos + 4) % N
    got = batches(lay, 3)
    for b, (x, y) in enumerate(got):
        idx = (numpy.arange(4) + 4 + 8 * b)[1:3] % N
        assert numpy.array_equal(x, PIX[idx].astype(numpy.float32)), b
        assert y.tolist() == LAB[idx].tolist()
    assert lay.pos == (4 + 24) % N
    for bad in ((2, 2, 4), (0, 5, 4), (-1, 2, 4), (0, 2, 0)):
        with pytest.raises(ValueError, match="read_part"):
            lay.read_part(*bad)


def test_repeated_batchsize_uses_first(rec_file):
    lay = layer('path: "train.bin" batchsize: 3 batchsize: 5 shape: 6')
    assert lay.setup([]) == (3, 6)


def test_random_skip_is_deterministic_per_seed(rec_file):
    def first_label_row(seed):
        lay = layer('path: "train.bin" batchsize: 2 shape: 6 random_skip: 7', seed=seed)
        lay.setup([])
        assert 0 <= lay.skipped <= 7
        x, _ = batches(lay, 1)[0]
        assert numpy.array_equal(x[0], PIX[lay.skipped % N].astype(numpy.float32))
        return lay.skipped
    skips = [first_label_row(s) for s in range(12)]
    assert skips == [first_label_row(s) for s in range(12)]
    assert len(set(skips)) > 2
    want = [int(RandomStreams(s).stream("train/data").integers(0, 7, endpoint=True)) for s in range(12)]
    assert skips == want
    lay = layer('path: "train.bin" batchsize: 2 shape: 6 random_skip: 25', seed=3)
    lay.setup([])
    assert lay.pos == lay.skipped % N       # skipping past the end wraps, as SINGA's reader did
    nrng = layer('path: "train.bin" batchsize: 2 shape: 6 random_skip: 3')
    nrng.rng = None
    with pytest.raises(ConfigError, match="random_skip 3 but no random stream"):
        nrng.setup([])


def test_scalar_normalisation(rec_file):
    for dtype in (numpy.float32, numpy.float64):
        lay = layer('path: "train.bin" batchsize: 10 shape: 6 mean_value: 127.5 std_value: 127.5', dtype=dtype)
        lay.setup([])
        x, _ = batches(lay, 1)[0]
        m = numpy.dtype(dtype).type(127.5)
        assert x.dtype == dtype
        assert numpy.array_equal(x, (PIX.astype(dtype) - m) / m)
    only_std = layer('path: "train.bin" batchsize: 10 shape: 6 std_value: 255')
    only_std.setup([])
    x, _ = batches(only_std, 1)[0]
    assert numpy.allclose(x, PIX / 255.0) and x.max() <= 1


def test_mean_and_std_files(rec_file, in_tmp):
    mean = PIX.mean(axis=0).astype(numpy.float32)
    std = PIX.std(axis=0).astype(numpy.float32) + 1
    write_kvfile("mean.bin", [("mean", encode_record(data=mean, shape=[6]))])
    write_kvfile("std.bin", [("std", encode_record(data=std, shape=[6]))])
    lay = layer('path: "train.bin" batchsize: 10 shape: 6 mean_file: "mean.bin" std_file: "std.bin" '
                'mean_value: 1000 std_value: 1000')       # the files win over the values
    lay.setup([])
    x, _ = batches(lay, 1)[0]
    assert numpy.array_equal(x, (PIX.astype(numpy.float32) - mean) / std)
    write_kvfile("mean5.bin", [("mean", encode_record(data=mean[:5]))])
    bad = layer('path: "train.bin" batchsize: 2 shape: 6 mean_file: "mean5.bin"')
    with pytest.raises(DataError, match="(?s)mean_file mean5.bin holds 5 values but the instances of layer 'data' "
                                        "have 6"):
        bad.setup([])
    missing = layer('path: "train.bin" batchsize: 2 shape: 6 std_file: "nope.bin"')
    with pytest.raises(DataError, match="layer 'data', std_file: kvfile nope.bin does not exist"):
        missing.setup([])
    write_kvfile("zero.bin", [("std", encode_record(data=numpy.zeros(6)))])
    with pytest.raises(DataError, match="zero value"):
        layer('path: "train.bin" batchsize: 2 shape: 6 std_file: "zero.bin"').setup([])
    with pytest.raises(ConfigError, match="std_value.*non-zero"):
        layer('path: "train.bin" batchsize: 2 shape: 6 std_value: 0').setup([])


def test_float_records(in_tmp):
    x = RNG.standard_normal((5, 4)).astype(numpy.float32)
    write_kvfile("f.bin", [(str(i), encode_record(label=i, data=x[i])) for i in range(5)])
    lay = layer('path: "f.bin" batchsize: 5 shape: 4')
    lay.setup([])
    (got, y), = batches(lay, 1)
    assert numpy.array_equal(got, x) and y.tolist() == [0, 1, 2, 3, 4]


def test_store_is_loaded_once_per_file_version(rec_file, in_tmp):
    a = layer('path: "train.bin" batchsize: 2 shape: 6')
    b = layer('path: "train.bin" batchsize: 5 shape: 2 shape: 3')
    a.setup([])
    b.setup([])
    assert a.store is b.store
    with pytest.raises(ValueError):
        a.store.values[0, 0] = 1          # shared and read-only
    make_records(in_tmp / "train.bin", pix=PIX[::-1].copy())
    os.utime("train.bin", ns=(1, 1))      # a new version even if the clock did not tick
    c = layer('path: "train.bin" batchsize: 2 shape: 6')
    c.setup([])
    assert c.store is not a.store and numpy.array_equal(c.store.values, PIX[::-1])
    assert load_store("train.bin", "kvfile", 6) is c.store


def test_layers_keep_their_own_position(rec_file):
    a = layer('path: "train.bin" batchsize: 3 shape: 6')
    b = layer('path: "train.bin" batchsize: 3 shape: 6')
    a.setup([])
    b.setup([])
    batches(a, 2)
    (x, _), = batches(b, 1)
    assert numpy.array_equal(x, PIX[:3].astype(numpy.float32))


def test_config_errors(rec_file):
    cases = [
        ('path: "train.bin" shape: 6', r"store_conf.batchsize of layer 'data' \(kRecordInput\).*unset"),
        ('path: "train.bin" batchsize: 0 shape: 6', "positive batch size"),
        ('path: "train.bin" batchsize: 2', r"store_conf.shape.*unset"),
        ('path: "train.bin" batchsize: 2 shape: 0', "positive dimensions"),
        ('batchsize: 2 shape: 6', r"store_conf.path"),
        ('backend: "lmdb" path: "train.bin" batchsize: 2 shape: 6', r"(?s)Expected 'kvfile'. Received: 'lmdb'.*help"),
        ('path: "train.bin" batchsize: 2 shape: 6 random_skip: -1', "random_skip"),
    ]
    for store, msg in cases:
        with pytest.raises(ConfigError, match=msg):
            layer(store).setup([])
    conf = text_format.Parse('name: "d" type: kRecordInput', job_pb2.LayerProto())
    with pytest.raises(ConfigError, match="has no `store_conf`"):
        create_layer(conf, Backend(None)).setup([])
    with pytest.raises(ConfigError, match="Expected none"):
        layer('path: "train.bin" batchsize: 2 shape: 6').setup([(2, 6)])


def test_data_errors(rec_file, in_tmp):
    with pytest.raises(DataError, match=r"(?s)record #0 of train.bin has 6 values per instance, "
                                        r"but the store's shape asks for 784"):
        layer('path: "train.bin" batchsize: 2 shape: 784').setup([])
    with pytest.raises(DataError, match="(?s)nope.bin does not exist.*working directory"):
        layer('path: "nope.bin" batchsize: 2 shape: 6').setup([])
    open("empty.bin", "wb").close()
    with pytest.raises(DataError, match="empty.bin is empty"):
        layer('path: "empty.bin" batchsize: 2 shape: 6').setup([])
    raw = open("train.bin", "rb").read()
    with open("cut.bin", "wb") as f:
        f.write(raw[:-7])
    with pytest.raises(DataError, match=r"cut.bin is truncated or corrupt.*record #9"):
        layer('path: "cut.bin" batchsize: 2 shape: 6').setup([])


def test_csv_input(in_tmp):
    clear_store_cache()
    rows = ["%d,%s" % (LAB[i], ",".join(str(v) for v in PIX[i])) for i in range(N)]
    with open("d.csv", "w") as f:
        f.write("\n".join(rows) + "\n")
    lay = layer('backend: "textfile" path: "d.csv" batchsize: 4 shape: 6 mean_value: 1', type_="kCSVInput")
    assert isinstance(lay, CSVInputLayer)
    lay.setup([])
    got = batches(lay, 3)
    order = numpy.arange(12) % N
    for b, (x, y) in enumerate(got):
        assert numpy.array_equal(x, PIX[order[b * 4:(b + 1) * 4]] - numpy.float32(1))
        assert y.tolist() == LAB[order[b * 4:(b + 1) * 4]].tolist()
    with open("n.csv", "w") as f:
        f.write("1.5;2\r\n\n3;4.25\r\n")
    nolab = layer('path: "n.csv" batchsize: 2 shape: 2 separator: ";" has_label: false', type_="kCSVInput")
    nolab.setup([])
    (x, y), = batches(nolab, 1)
    assert y is None and nolab.aux is None and x.tolist() == [[1.5, 2.0], [3.0, 4.25]]
    # CSV strings stored as kvfile values
    write_kvfile("c.bin", [(str(i), r.encode()) for i, r in enumerate(rows)])
    kvl = layer('backend: "kvfile" path: "c.bin" batchsize: 10 shape: 6', type_="kCSVInput")
    kvl.setup([])
    (x, y), = batches(kvl, 1)
    assert numpy.array_equal(x, PIX.astype(numpy.float32)) and y.tolist() == LAB.tolist()


def test_csv_errors(in_tmp):
    with open("bad.csv", "w") as f:
        f.write("1,2,3\n0,1,2,3\n")
    with pytest.raises(DataError, match=r"(?s)line 2 of bad.csv has 3 value\(s\) after the label; expected 2"):
        layer('path: "bad.csv" batchsize: 1 shape: 2', type_="kCSVInput").setup([])
    with open("nan.csv", "w") as f:
        f.write("1,2,x\n")
    with pytest.raises(DataError, match="line 1 of nan.csv has a field that is not a number: 'x'"):
        layer('path: "nan.csv" batchsize: 1 shape: 2', type_="kCSVInput").setup([])
    with open("lab.csv", "w") as f:
        f.write("1,2,3\n0.5,2,3\n")
    with pytest.raises(DataError, match="line 2 of lab.csv has a label that is not an integer"):
        layer('path: "lab.csv" batchsize: 1 shape: 2', type_="kCSVInput").setup([])
    with open("blank.csv", "w") as f:
        f.write("\n\n")
    with pytest.raises(DataError, match="blank.csv holds no records"):
        layer('path: "blank.csv" batchsize: 1 shape: 2', type_="kCSVInput").setup([])
    with pytest.raises(DataError, match="textfile none.csv does not exist"):
        layer('path: "none.csv" batchsize: 1 shape: 2', type_="kCSVInput").setup([])


def test_next_batch(rec_file):
    lay = layer('path: "train.bin" batchsize: 3 shape: 6')
    lay.setup([])
    x, y = lay.next_batch()
    assert x is lay.data and y.tolist() == LAB[:3].tolist()


def test_textfile_store_round_trip(in_tmp):
    from singa.io.textfile import TextFileReader, TextFileWriter, format_csv_record, read_csv_file
    x = numpy.array([[0.5, 2.0, -1.0], [3.0, 0.1, 7.0]], dtype=numpy.float32)
    with TextFileWriter("t.csv") as w:
        assert not os.path.exists("t.csv")           # published on close only
        for i in range(2):
            assert w.insert("ignored-key", format_csv_record(x[i], label=i))
        assert not w.insert("k", "")
        assert not w.insert("k", "a\nb")
    assert open("t.csv").read().splitlines()[0] == "0,0.5,2,-1"
    with TextFileReader("t.csv") as r:
        assert [k for k, _ in r] == ["0", "1"] and r.count() == 2
    vals, lab = read_csv_file("t.csv", 3)
    assert numpy.array_equal(vals, x) and lab.tolist() == [0, 1]
    with TextFileWriter("t.csv", mode="append") as w:
        w.insert(None, b"5,1,1,1")
    assert TextFileReader("t.csv").count() == 3
    with pytest.raises(RuntimeError):
        with TextFileWriter("t.csv") as w:
            w.insert(None, "9,9,9,9")
            raise RuntimeError("interrupted")
    assert TextFileReader("t.csv").count() == 3 and sorted(os.listdir(".")) == ["t.csv"]
