# covers: singa/io/kvfile.py
"""kvfile store: SINGA's byte layout, writer semantics (duplicates, append, atomic create) and the
strict reader's errors for every kind of damage."""
import os
import struct

import numpy
import pytest

from singa.errors import ConfigError, DataError
from singa.io.kvfile import KVFileReader, KVFileWriter, read_kvfile, write_kvfile


def rec(key, value):
    return struct.pack("<Q", len(key)) + key + struct.pack("<Q", len(value)) + value


TWO = rec(b"k1", b"hello") + rec(b"key2", b"\x00\x01\x02")


def test_writer_layout_is_byte_exact(tmp_path):
    p = tmp_path / "a.bin"
    with KVFileWriter(p) as w:
        assert w.insert("k1", b"hello")
        assert w.insert(b"key2", b"\x00\x01\x02")
    assert p.read_bytes() == TWO


def test_reader_on_hand_built_bytes(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(TWO)
    r = KVFileReader(p)
    assert list(r) == [(b"k1", b"hello"), (b"key2", b"\x00\x01\x02")]
    assert r.count() == 2
    r.seek_to_first()
    assert r.read() == (b"k1", b"hello")
    assert r.read() == (b"key2", b"\x00\x01\x02")
    assert r.read() is None
    r.seek_to_first()
    assert r.read()[0] == b"k1"
    assert r.read_all() == ([b"k1", b"key2"], [b"hello", b"\x00\x01\x02"])
    assert r.fixed_value_matrix() is None      # different sizes


def test_duplicate_keys_and_empty_values_are_refused(tmp_path):
    p = tmp_path / "a.bin"
    with KVFileWriter(p) as w:
        assert w.insert("a", b"1")
        assert not w.insert("a", b"2")
        assert not w.insert(b"a", b"3")
        assert not w.insert("b", b"")
        assert w.insert("b", bytearray(b"x"))
        assert w.count == 2
    assert read_kvfile(p) == [(b"a", b"1"), (b"b", b"x")]
    with pytest.raises(DataError, match="duplicate key"):
        write_kvfile(tmp_path / "c.bin", [("x", b"1"), ("x", b"2")])
    assert not (tmp_path / "c.bin").exists()


def test_small_buffer_flushes_and_large_records(tmp_path):
    p = tmp_path / "a.bin"
    big = bytes(range(256)) * 100
    with KVFileWriter(p, bufsize=64) as w:
        for i in range(20):
            w.insert("%03d" % i, big[: 1 + i * 1000])
    got = read_kvfile(p)
    assert [k for k, _ in got] == [b"%03d" % i for i in range(20)]
    assert all(v == big[: 1 + i * 1000] for i, (_, v) in enumerate(got))


def test_create_is_atomic(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(TWO)
    with pytest.raises(RuntimeError):
        with KVFileWriter(p) as w:
            w.insert("new", b"value")
            w.flush()
            raise RuntimeError("interrupted")
    assert p.read_bytes() == TWO                 # old file untouched
    assert os.listdir(tmp_path) == ["a.bin"]     # no temporary left behind
    w = KVFileWriter(tmp_path / "b.bin")
    w.insert("k", b"v")
    w.flush()
    assert not (tmp_path / "b.bin").exists()     # nothing under the real name before close
    w.close()
    assert read_kvfile(tmp_path / "b.bin") == [(b"k", b"v")]


def test_append_drops_partial_record_and_keeps_keys(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(TWO + rec(b"k3", b"cut off")[:-3])
    with KVFileWriter(p, mode="append") as w:
        assert w.count == 2
        assert not w.insert("k1", b"again")      # existing key
        assert w.insert("k3", b"whole")
    assert p.read_bytes() == TWO + rec(b"k3", b"whole")
    with KVFileWriter(tmp_path / "new.bin", mode="append") as w:
        w.insert("x", b"y")
    assert read_kvfile(tmp_path / "new.bin") == [(b"x", b"y")]


def test_shard_dat_fallback(tmp_path):
    d = tmp_path / "shard"
    d.mkdir()
    (d / "shard.dat").write_bytes(TWO)
    assert KVFileReader(d).count() == 2
    assert KVFileReader(str(d)).path.endswith("shard.dat")


def test_fixed_size_fast_path(tmp_path):
    p = tmp_path / "a.bin"
    vals = [bytes([i]) * 5 for i in range(7)]
    write_kvfile(p, [("%02d" % i, v) for i, v in enumerate(vals)])
    r = KVFileReader(p)
    m = r.fixed_value_matrix()
    assert m.shape == (7, 5) and m.dtype == numpy.uint8
    assert numpy.array_equal(m, numpy.repeat(numpy.arange(7, dtype=numpy.uint8)[:, None], 5, axis=1))
    keys, values = r.read_all()
    assert values == vals and keys == [b"%02d" % i for i in range(7)]
    assert r.count() == 7


def test_missing_and_empty(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="(?s)does not exist.*working directory.*singa-create-data"):
        KVFileReader("nope.bin")
    (tmp_path / "e.bin").write_bytes(b"")
    with pytest.raises(DataError, match=r"e\.bin is empty"):
        KVFileReader("e.bin")
    (tmp_path / "dir").mkdir()
    with pytest.raises(DataError, match="folder without a shard.dat"):
        KVFileReader("dir")


@pytest.mark.parametrize("cut", [1, 5, 8, 9, 12, 17, len(rec(b"key2", b"\x00\x01\x02")) - 1])
def test_truncated_tail(tmp_path, cut):
    p = tmp_path / "t.bin"
    first = rec(b"k1", b"hello")
    p.write_bytes(first + rec(b"key2", b"\x00\x01\x02")[:cut])
    with pytest.raises(DataError) as e:
        list(KVFileReader(p))
    msg = str(e.value)
    assert str(p) in msg and "record #1" in msg and "byte offset %d" % len(first) in msg
    assert "singa-create-data" in msg and "strict=False" in msg
    with pytest.raises(DataError):
        KVFileReader(p).count()
    # SINGA's behaviour on request: the truncated record ends the iteration
    r = KVFileReader(p, strict=False)
    assert list(r) == [(b"k1", b"hello")]
    assert r.count() == 1


def test_absurd_lengths(tmp_path):
    p = tmp_path / "t.bin"
    p.write_bytes(TWO + struct.pack("<Q", 2 ** 62) + b"xxxxxxxxxxxxxxxxxxxx")
    with pytest.raises(DataError, match=r"(?s)key length 4611686018427387904 exceeds.*record #2 at byte offset %d"
                       % len(TWO)):
        list(KVFileReader(p))
    p.write_bytes(struct.pack("<Q", 1) + b"k" + struct.pack("<Q", 10 ** 12) + b"abc")
    with pytest.raises(DataError, match=r"(?s)value length 1000000000000 exceeds the 3 bytes left.*record #0"):
        list(KVFileReader(p))
    with pytest.raises(DataError):
        KVFileReader(p).read_all()
    assert KVFileReader(p, strict=False).read_all() == ([], [])


def test_bad_mode(tmp_path):
    with pytest.raises(ConfigError, match="'create' or 'append'"):
        KVFileWriter(tmp_path / "x", mode="w")
