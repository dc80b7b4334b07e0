# covers: singa/io/checkpoint.py
"""Checkpoints: SINGA's BlobProtos bytes, the 0# prefix, paths, damage detection and the state file."""
import os

import numpy
import pytest

from singa.errors import DataError
from singa.io.checkpoint import (checkpoint_file, decode_checkpoint, encode_checkpoint, latest_checkpoint_step,
                                 read_checkpoint, read_state, state_file, strip_prefix, with_prefix,
                                 write_checkpoint, write_state)
from singa.proto import common_pb2
from singa.random import RandomStreams


def params():
    rng = numpy.random.default_rng(0)
    return [("w1", rng.standard_normal((4, 3)).astype(numpy.float32), 7),
            ("b1", rng.standard_normal(4).astype(numpy.float32), 7),
            ("w2", rng.standard_normal((2, 2, 2)), 0)]      # float64 in, float32 stored


def proto_checkpoint(items, prefix="0#"):
    m = common_pb2.BlobProtos()
    for name, arr, version in items:
        m.version.append(version)
        m.name.append(prefix + name)
        b = m.blob.add()
        b.shape.extend(arr.shape)
        b.data.extend(numpy.asarray(arr, numpy.float32).ravel().tolist())
    return m.SerializeToString()


def test_bytes_equal_protobuf_serialisation(tmp_path):
    p = write_checkpoint(tmp_path / "c", params())
    assert open(p, "rb").read() == proto_checkpoint(params())
    write_checkpoint(tmp_path / "d", params(), prefix=False)
    assert (tmp_path / "d").read_bytes() == proto_checkpoint(params(), prefix="")


def test_round_trip(tmp_path):
    p = tmp_path / "ws" / "checkpoint" / "step5-worker0"
    write_checkpoint(p, params())
    got = read_checkpoint(p)
    assert [n for n, _, _ in got] == ["w1", "b1", "w2"]
    for (n, a, v), (n2, a2, v2) in zip(params(), got):
        assert a2.dtype == numpy.float32 and a2.shape == a.shape and v2 == v
        assert numpy.array_equal(a2, a.astype(numpy.float32))
    a2 = got[0][1]
    a2 += 1   # returned arrays are writable copies
    assert [n for n, _, _ in read_checkpoint(p, strip=False)] == ["0#w1", "0#b1", "0#w2"]


def test_names_with_and_without_prefix(tmp_path):
    (tmp_path / "v01").write_bytes(proto_checkpoint(params()[:1], prefix=""))
    (tmp_path / "v03").write_bytes(proto_checkpoint(params()[:1], prefix="0#"))
    assert read_checkpoint(tmp_path / "v01")[0][0] == read_checkpoint(tmp_path / "v03")[0][0] == "w1"
    write_checkpoint(tmp_path / "x", [("0#w1", numpy.zeros(2), 1), ("3#h", numpy.zeros(1), 1)])
    assert read_checkpoint(tmp_path / "x", strip=False)[0][0] == "0#w1"      # not doubled
    assert strip_prefix("12#w") == "w" and strip_prefix("a#w") == "a#w" and with_prefix("w") == "0#w"


def test_paths_and_latest_step(tmp_path):
    ws = str(tmp_path / "ws")
    assert checkpoint_file(ws, 300) == os.path.join(ws, "checkpoint", "step300-worker0")
    assert checkpoint_file(ws, 3, worker=2).endswith("step3-worker2")
    assert latest_checkpoint_step(ws) is None
    for s in (0, 100, 1200, 30):
        write_checkpoint(checkpoint_file(ws, s), params())
    write_state(checkpoint_file(ws, 1200), {"a": numpy.zeros(1)})
    open(os.path.join(ws, "checkpoint", "step9999-worker0.tmp"), "w").close()
    os.mkdir(os.path.join(ws, "checkpoint", "step5000-worker0.d"))
    assert latest_checkpoint_step(ws) == 1200


def test_missing_and_empty(tmp_path):
    ws = tmp_path / "ws"
    write_checkpoint(checkpoint_file(ws, 100), params())
    with pytest.raises(DataError, match=r"(?s)step7-worker0 does not exist \(steps with a checkpoint there: \[100\]\)"
                                        r".*help:"):
        read_checkpoint(checkpoint_file(ws, 7))
    (tmp_path / "e").write_bytes(b"")
    with pytest.raises(DataError, match="is empty.*interrupted"):
        read_checkpoint(tmp_path / "e")


def test_every_truncation_is_detected(tmp_path):
    raw = proto_checkpoint(params())
    p = tmp_path / "t"
    for cut in range(1, len(raw)):
        p.write_bytes(raw[:cut])
        with pytest.raises(DataError, match=r"(?s)truncated or corrupt.*help:") as e:
            read_checkpoint(p)
        assert str(p) in str(e.value)


def test_corrupt_and_inconsistent(tmp_path):
    p = tmp_path / "c"
    p.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_checkpoint(p)
    m = common_pb2.BlobProtos()
    m.name.append("w")
    m.version.append(1)
    b = m.blob.add()
    b.shape.extend([2, 3])
    b.data.extend([1.0] * 5)
    p.write_bytes(m.SerializeToString())
    with pytest.raises(DataError, match=r"blob #0 \('w'\) has shape \(2, 3\) \(6 values\) but holds 5 values"):
        read_checkpoint(p)
    m.name.append("extra")
    b.data.append(1.0)
    p.write_bytes(m.SerializeToString())
    with pytest.raises(DataError, match="2 names, 1 versions and 1 blobs"):
        read_checkpoint(p)


def test_decode_accepts_unpacked_data_and_unknown_fields():
    m = common_pb2.BlobProtos()
    m.id.append(3)
    m.version.append(2)
    m.name.append("0#w")
    m.blob.add().shape.extend([2])
    raw = m.SerializeToString()
    # blob data written unpacked (fixed32 per value): a valid encoding protobuf readers accept
    blob_body = b"\x08\x02" + b"\x15" + numpy.float32(1.5).tobytes() + b"\x15" + numpy.float32(-2).tobytes()
    raw = raw[: raw.index(b"\x2a")] + b"\x2a" + bytes([len(blob_body)]) + blob_body
    (name, arr, ver), = decode_checkpoint(raw)
    assert name == "w" and ver == 2 and arr.tolist() == [1.5, -2.0]


def test_failed_write_keeps_old_file(tmp_path):
    p = tmp_path / "c"
    write_checkpoint(p, params())
    before = p.read_bytes()
    with pytest.raises(DataError, match="Expected \\(name, array, version\\)"):
        write_checkpoint(p, [("w", numpy.zeros(2))])
    with pytest.raises(DataError, match="numeric array"):
        write_checkpoint(p, [("w", numpy.array(["a"]), 1)])
    assert p.read_bytes() == before and os.listdir(tmp_path) == ["c"]


def test_encode_chunks_join_to_file(tmp_path):
    assert b"".join(encode_checkpoint(params())) == proto_checkpoint(params())


def test_state_round_trip(tmp_path):
    ck = tmp_path / "step10-worker0"
    write_checkpoint(ck, params())
    assert read_state(ck) == (None, None)
    streams = RandomStreams(3)
    streams.stream("init/w1").random(5)
    hist = {"updater/w1/history": numpy.arange(6.0).reshape(2, 3), "plain": numpy.int64(4)}
    p = write_state(ck, hist, {"step": 10, "rng": streams.state()})
    assert p == state_file(ck) and p.endswith(".state.npz")
    arrays, meta = read_state(ck)
    assert set(arrays) == set(hist) and numpy.array_equal(arrays["updater/w1/history"], hist["updater/w1/history"])
    assert meta["step"] == 10
    other = RandomStreams(3)
    other.set_state(meta["rng"])
    assert numpy.array_equal(other.stream("init/w1").random(3), streams.stream("init/w1").random(3))


def test_state_errors(tmp_path):
    ck = tmp_path / "c"
    write_checkpoint(ck, params())
    write_state(ck, {"a": numpy.ones(2)}, {"step": 1})
    write_checkpoint(ck, params()[:2])     # checkpoint replaced: its state file is stale
    with pytest.raises(DataError, match="(?s)written for another version of checkpoint.*delete the state file"):
        read_state(ck)
    with open(state_file(ck), "wb") as f:
        f.write(b"garbage")
    with pytest.raises(DataError, match="is corrupt"):
        read_state(ck)
    with pytest.raises(DataError, match="JSON"):
        write_state(ck, {}, {"x": object()})
    with pytest.raises(DataError, match="__meta__"):
        write_state(ck, {"__meta__": numpy.zeros(1)})


def test_step_of_reads_the_step_from_a_checkpoint_file_name():
    from singa.io.checkpoint import step_of
    assert step_of("ws/checkpoint/step120-worker0") == 120
    assert step_of("step0-worker3.state.npz") == 0
    assert step_of("ws/step7-worker0/weights.bin") is None    # only the file's own name counts
    assert step_of(None) is None and step_of("") is None and step_of("final.bin") is None


class _Param:
    """What load_params needs of a net's param."""

    def __init__(self, name, shape):
        self.name, self.shape, self.size = name, shape, int(numpy.prod(shape))
        self.owner = self.aliased = None
        self.values, self.version = None, -1

    def set_values(self, v):
        self.values = numpy.asarray(v).reshape(self.shape)


class _Net:
    def __init__(self, *params):
        self.owner_params = list(params)
        self.owners = {p.name: p for p in params}


def test_load_params_fills_a_net_by_name_later_files_winning(tmp_path):
    from singa.io.checkpoint import CheckpointOrderWarning, load_params, missing_params
    a, b = tmp_path / "a", tmp_path / "b"
    write_checkpoint(a, [("w1", numpy.ones((4, 3), numpy.float32), 5), ("extra", numpy.zeros(2, numpy.float32), 1)])
    write_checkpoint(b, [("w1", numpy.full((4, 3), 2, numpy.float32), 0)])
    net = _Net(_Param("w1", (4, 3)), _Param("b1", (4,)))
    with pytest.warns(CheckpointOrderWarning, match="SINGA-107"):    # b's w1 (version 0) listed after a's (5)
        loaded = load_params([str(a), str(b)], net)
    assert loaded == {"w1": str(b)} and net.owners["w1"].version == 0
    assert (net.owners["w1"].values == 2).all()
    assert missing_params(net, loaded) == ["b1"]
    with pytest.raises(DataError, match="shape"):
        load_params([str(a)], _Net(_Param("w1", (3, 4))))
    with pytest.raises(DataError, match="`checkpoint_path`: .* does not exist"):
        load_params([str(tmp_path / "none")], net)


def test_empty_blob_with_a_huge_shape_is_a_data_error():
    # found by the checkpoint fuzzer: a blob of 0 values whose other dims multiply to 2.6e18, which
    # passed the int64 bound but not numpy's (the bytes, 4 per value, pass int64)
    import base64
    buf = base64.b64decode("GDEiBDAnYjEqHggDCAIKGAAAAAAAAAAxgAAAIBAQEBAQEBAQEBAQEA==")
    with pytest.raises(DataError, match=r"blob #0 .* has shape"):
        decode_checkpoint(buf)
