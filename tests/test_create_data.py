# covers: singa/io/create_data.py
"""singa-create-data: MNIST idx and CIFAR-10 binary batches into SINGA record files."""
import os
import subprocess
import sys

import numpy
import pytest

from singa.errors import DataError
from singa.io.create_data import convert_char_rnn, convert_cifar10, convert_idx_to_kvfile, main
from singa.io.idx import write_idx
from singa.io.kvfile import read_kvfile
from singa.io.record import load_record_file
from singa.proto import common_pb2


def mnist_files(tmp_path, n=7, rows=28, cols=28, gz=False):
    rng = numpy.random.default_rng(0)
    imgs = rng.integers(0, 256, (n, rows, cols), dtype=numpy.uint8)
    labs = rng.integers(0, 10, n).astype(numpy.uint8)
    sfx = ".gz" if gz else ""
    return (write_idx(tmp_path / ("img" + sfx), imgs), write_idx(tmp_path / ("lab" + sfx), labs), imgs, labs)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_records_as_singa_wrote_them(tmp_path, gz):
    ip, lp, imgs, labs = mnist_files(tmp_path, gz=gz)
    out = tmp_path / "out" / "train_data.bin"
    assert convert_idx_to_kvfile(ip, lp, out) == 7
    recs = read_kvfile(out)
    assert [k for k, _ in recs] == [b"%08d" % i for i in range(7)]
    for i, (_, v) in enumerate(recs):
        r = common_pb2.RecordProto()
        r.shape.extend([28, 28])
        r.label = int(labs[i])
        r.pixel = imgs[i].tobytes()
        assert v == r.SerializeToString()
    m, lab = load_record_file(out, 784)
    assert numpy.array_equal(m, imgs.reshape(7, -1)) and numpy.array_equal(lab, labs)


def test_mnist_shape_from_header(tmp_path):
    ip, lp, imgs, _ = mnist_files(tmp_path, n=3, rows=5, cols=4)
    convert_idx_to_kvfile(ip, lp, tmp_path / "o.bin")
    r = common_pb2.RecordProto.FromString(read_kvfile(tmp_path / "o.bin")[0][1])
    assert list(r.shape) == [5, 4] and len(r.pixel) == 20


def test_cli_mnist(tmp_path, capsys):
    ip, lp, _, _ = mnist_files(tmp_path)
    out = str(tmp_path / "t.bin")
    assert main(["mnist", ip, lp, out]) == 0
    assert "wrote 7 records to %s" % out in capsys.readouterr().out
    # swapped inputs: a clear error, exit status 1, no output file
    assert main(["mnist", lp, ip, str(tmp_path / "bad.bin")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("singa-create-data: error:") and "magic" in err and "swapped" in err
    assert not (tmp_path / "bad.bin").exists()
    assert main(["mnist", ip, str(tmp_path / "missing"), out]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_cli_usage(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        main(["mnist", "--help"])
    assert "IMAGES_IDX" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["imagenet", "a"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_cli_as_module_process(tmp_path):
    r = subprocess.run([sys.executable, "-m", "singa.io.create_data", "--help"], capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode == 0 and "cifar10" in r.stdout and "mnist" in r.stdout


def cifar_batch(path, labels, rng):
    pix = rng.integers(0, 256, (len(labels), 3072), dtype=numpy.uint8)
    numpy.concatenate([numpy.asarray(labels, numpy.uint8)[:, None], pix], axis=1).tofile(path)
    return pix


def test_cifar10(tmp_path, capsys):
    src = tmp_path / "cifar-10-batches-bin"
    src.mkdir()
    rng = numpy.random.default_rng(1)
    train_pix, train_lab = [], []
    for b in range(1, 6):
        lab = [(b + i) % 10 for i in range(3)]
        train_pix.append(cifar_batch(src / ("data_batch_%d.bin" % b), lab, rng))
        train_lab += lab
    test_pix = cifar_batch(src / "test_batch.bin", [9, 0], rng)
    out = tmp_path / "examples" / "cifar10"
    # the parent folder of cifar-10-batches-bin is accepted too
    assert main(["cifar10", str(tmp_path), str(out)]) == 0
    assert "wrote 15 record(s)" in capsys.readouterr().out
    tr = read_kvfile(out / "train_data.bin")
    assert [k for k, _ in tr] == [b"%05d" % i for i in range(15)]
    r = common_pb2.RecordProto.FromString(tr[4][1])
    assert list(r.shape) == [3, 32, 32] and r.label == train_lab[4] and r.pixel == train_pix[1][1].tobytes()
    m, lab = load_record_file(out / "test_data.bin", 3072)
    assert numpy.array_equal(m, test_pix) and lab.tolist() == [9, 0]
    (key, val), = read_kvfile(out / "image_mean.bin")
    mean = common_pb2.RecordProto.FromString(val)
    assert key == b"mean" and list(mean.shape) == [3, 32, 32] and not mean.pixel
    want = numpy.concatenate(train_pix).astype(numpy.float64).mean(axis=0)
    numpy.testing.assert_allclose(numpy.array(mean.data), want, rtol=1e-6)


def test_cifar10_errors(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    with pytest.raises(DataError, match="(?s)data_batch_1.bin does not exist.*binary"):
        convert_cifar10(src, tmp_path / "o")
    rng = numpy.random.default_rng(2)
    for b in range(1, 6):
        cifar_batch(src / ("data_batch_%d.bin" % b), [1], rng)
    (src / "test_batch.bin").write_bytes(b"\x01" * 3000)
    with pytest.raises(DataError, match="3000 bytes, which is not a positive multiple of 3073"):
        convert_cifar10(src, tmp_path / "o")
    cifar_batch(src / "test_batch.bin", [42], rng)
    with pytest.raises(DataError, match="image #0 has label 42"):
        convert_cifar10(src, tmp_path / "o")
    assert not (tmp_path / "o" / "train_data.bin").exists()


def test_char_rnn_vocab_as_data_py_wrote_it_the_texts_distinct_bytes(tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_bytes("hello, world\n\tcaf\u00e9!\n".encode("utf-8"))     # e-acute: two bytes, c3 a9
    out = tmp_path / "char-rnn"
    assert main(["char-rnn", str(src), str(out)]) == 0
    assert "21 characters (bytes), 17 in vocab.txt" in capsys.readouterr().out
    vocab = (out / "vocab.txt").read_bytes()
    assert vocab == bytes(sorted(set(src.read_bytes()))) == b"\t\n !,acdefhlorw\xa9\xc3"   # no separator
    assert (out / "linux_input.txt").read_bytes() == src.read_bytes()     # char-rnn-job.conf's name
    assert convert_char_rnn(str(src), str(out), name="fortunes.txt") == (21, 17)
    assert (out / "fortunes.txt").read_bytes() == src.read_bytes()
    assert [vocab.index(c) for c in b"hello"] == [10, 8, 11, 11, 12]        # kCharRNN: index = position


def test_char_rnn_vocab_of_a_non_ascii_text_is_what_kcharrnn_reads(tmp_path):
    """A UTF-8 text outside ASCII (and a Latin-1 one) gives a vocabulary of bytes that kCharRNN
    accepts, and every byte of the text has its index (code points made a vocab.txt with repeated
    bytes, which kCharRNN refused)."""
    from singa.proto import job_pb2
    from singa.testing import build_layer
    for raw in ("caf\u00e9 na\u00efve r\u00e9sum\u00e9 ".encode("utf-8") * 20, b"caf\xe9 " * 40):
        (tmp_path / "raw.txt").write_bytes(raw)
        convert_char_rnn(str(tmp_path / "raw.txt"), str(tmp_path / "o"))
        layer = build_layer('name: "data" type: kCharRNN char_rnn_conf { path: "%s" vocab_path: "%s" batchsize: 2 '
                            'unroll_len: 5 }' % (tmp_path / "o" / "linux_input.txt", tmp_path / "o" / "vocab.txt"), [])
        assert layer.vocab_size == len(set(raw))
        layer.forward(job_pb2.kTrain, [])
        vocab = (tmp_path / "o" / "vocab.txt").read_bytes()
        first = bytes(vocab[int(v[0])] for v in layer.datavec)
        assert first == raw[:6]           # row 0 starts at the text's start: its bytes, by index


def test_char_rnn_same_file_in_place_and_errors(tmp_path):
    d = tmp_path / "cr"
    d.mkdir()
    src = d / "linux_input.txt"
    src.write_text("abcab")
    assert convert_char_rnn(str(src), str(d)) == (5, 3) and src.read_text() == "abcab"
    (tmp_path / "one.txt").write_text("a")
    with pytest.raises(DataError, match="at least 2 characters"):
        convert_char_rnn(str(tmp_path / "one.txt"), str(d))
    with pytest.raises(DataError, match="readable text file"):
        convert_char_rnn(str(tmp_path / "missing.txt"), str(d))
    for bad in ("vocab.txt", "sub/x.txt", ""):
        with pytest.raises(DataError, match="-name"):
            convert_char_rnn(str(src), str(d), name=bad)
    assert main(["char-rnn", str(tmp_path / "one.txt"), str(d)]) == 1


def test_char_rnn_vocab_padded_to_a_confs_size(tmp_path):
    src = tmp_path / "t.txt"
    src.write_text("hello world\n")
    out = tmp_path / "o"
    assert convert_char_rnn(str(src), str(out), vocab_size=12) == (12, 12)
    vocab = (out / "vocab.txt").read_bytes()
    assert vocab[:9] == bytes(sorted(set(b"hello world\n")))       # the text's own characters first, in order
    assert len(vocab) == 12 and len(set(vocab)) == 12 and not set(vocab[9:]) & set(b"hello world\n")
    assert all(c < 32 or c == 127 for c in vocab[9:]) and not set(vocab[9:]) & set(b"\t\n\r")   # control bytes
    for bad in (8, 100):
        with pytest.raises(DataError, match=r"`-vocab_size`.*Received: %d" % bad):
            convert_char_rnn(str(src), str(out), vocab_size=bad)
