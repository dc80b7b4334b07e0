# covers: singa/io/record.py
"""RecordProto values: encoding equals protobuf's bytes, and the vectorised and per-record
decoders agree, check counts and name the damaged record."""
import numpy
import pytest

from singa.errors import DataError
from singa.io.kvfile import KVFileReader, write_kvfile
from singa.io.record import (decode_batch, decode_records, encode_pixel_records, encode_record, iter_fields,
                             load_record_file, parse_record, read_varint, record_values, varint)
from singa.proto import common_pb2


def proto_bytes(label=None, pixel=None, data=None, shape=None):
    r = common_pb2.RecordProto()
    if shape is not None:
        r.shape.extend(shape)
    if label is not None:
        r.label = label
    if pixel is not None:
        r.pixel = pixel
    if data is not None:
        r.data.extend(data)
    return r.SerializeToString()


@pytest.mark.parametrize("kw", [
    dict(label=0, pixel=bytes(range(10)), shape=[2, 5]),
    dict(label=7, pixel=b"\xff" * 784, shape=[28, 28]),
    dict(label=300, data=[0.5, -1.25, 3.0], shape=[3]),
    dict(label=-1, pixel=b"\x01\x02"),
    dict(shape=[3, 32, 32], data=[float(i) / 7 for i in range(12)]),
    dict(label=2 ** 31 - 1, pixel=b"a", data=[1.0], shape=[1]),
])
def test_encode_matches_protobuf(kw):
    assert encode_record(**kw) == proto_bytes(**kw)


def test_mnist_record_bytes_by_hand():
    pix = bytes(range(256)) * 3 + bytes(16)
    want = b"\x08\x1c\x08\x1c\x10\x05\x1a\x90\x06" + pix   # shape 28, 28; label 5; pixel 784 bytes
    assert encode_record(label=5, pixel=pix, shape=[28, 28]) == want


def test_varint_helpers():
    for v in (0, 1, 127, 128, 300, 2 ** 31 - 1, 2 ** 63):
        b = varint(v)
        assert read_varint(b, 0, len(b)) == (v, len(b))
    assert len(varint(-1)) == 10
    with pytest.raises(ValueError):
        read_varint(b"\x80\x80", 0, 2)
    with pytest.raises(ValueError):
        list(iter_fields(b"\x1a\x05ab", 0, 4))


def test_encode_pixel_records_matches_single():
    rng = numpy.random.default_rng(1)
    pix = rng.integers(0, 256, (6, 4, 3), dtype=numpy.uint8)
    lab = numpy.array([0, 1, 9, 200, 255, 3], dtype=numpy.uint8)
    got = encode_pixel_records(pix, lab)
    assert got == [encode_record(label=int(l), pixel=p.tobytes(), shape=[4, 3]) for p, l in zip(pix, lab)]
    got = encode_pixel_records(pix, lab.astype(numpy.int64) * 1000, shape=[12])
    assert got[3] == proto_bytes(label=200000, pixel=pix[3].tobytes(), shape=[12])
    with pytest.raises(DataError, match="one label per image"):
        encode_pixel_records(pix, lab[:3])


def matrix(values):
    return numpy.frombuffer(b"".join(values), numpy.uint8).reshape(len(values), -1)


def test_vectorised_and_list_paths_agree_on_pixels():
    rng = numpy.random.default_rng(2)
    pix = rng.integers(0, 256, (50, 12), dtype=numpy.uint8)
    lab = rng.integers(0, 10, 50)
    vals = [encode_record(label=int(l), pixel=p.tobytes(), shape=[3, 4]) for p, l in zip(pix, lab)]
    a, la = decode_records(vals, 12)
    b, lb = decode_records(matrix(vals), 12)
    assert a.dtype == b.dtype == numpy.uint8
    assert numpy.array_equal(a, pix) and numpy.array_equal(b, pix)
    assert la.dtype == lb.dtype == numpy.int32
    assert numpy.array_equal(la, lab) and numpy.array_equal(lb, lab)
    x, y = decode_batch(vals, (3, 4))
    assert x.dtype == numpy.float32 and numpy.array_equal(x, pix.astype(numpy.float32))


def test_vectorised_labels_multi_byte_and_negative():
    # same-length values whose labels need 2-byte varints, and negative labels (10-byte varints)
    for labels in ([128, 200, 16383, 1000], [-1, -5, -2 ** 31, -100]):
        vals = [encode_record(label=l, pixel=b"xy", shape=[2]) for l in labels]
        assert len(set(map(len, vals))) == 1
        m, lab = decode_records(matrix(vals), 2)
        assert lab.tolist() == labels


def test_same_length_labels_of_different_varint_lengths_fall_back():
    # label 5 (1-byte varint) with a 3-byte pixel, label 200 (2 bytes) with a 2-byte pixel: equal lengths
    a = encode_record(label=5, pixel=b"abc")
    b = encode_record(label=200, pixel=b"ab")
    assert len(a) == len(b)
    with pytest.raises(DataError, match="record #1 of s has 2 values per instance, but the store's shape asks for 3"):
        decode_records(matrix([a, b]), 3, "s")
    m, lab = decode_records(matrix([a, a, a]), 3)
    assert lab.tolist() == [5] * 3


def test_same_length_but_different_structure_falls_back():
    # equal lengths, but the label field sits in different places: the vectorised check must notice
    a = encode_record(label=1, pixel=b"abc", shape=[3])
    b_bytes = b"\x1a\x03abc\x10\x01\x08\x03"      # same fields, another order
    assert len(a) == len(b_bytes)
    m, lab = decode_records(matrix([a, b_bytes]), 3)
    assert lab.tolist() == [1, 1] and m.tolist() == [[97, 98, 99]] * 2


def test_float_data_records():
    rng = numpy.random.default_rng(3)
    x = rng.standard_normal((5, 6)).astype(numpy.float32)
    vals = [encode_record(label=i, data=x[i], shape=[6]) for i in range(5)]
    for v in (vals, matrix(vals)):
        m, lab = decode_records(v, 6)
        assert m.dtype == numpy.float32 and numpy.array_equal(m, x) and lab.tolist() == list(range(5))
    # data wins over pixel; pixel-only and float records mix into float32
    both = encode_record(label=1, pixel=b"\x01" * 6, data=x[0], shape=[6])
    only_pix = encode_record(label=2, pixel=bytes(range(6)))
    m, lab = decode_records([both, only_pix], 6)
    assert m.dtype == numpy.float32
    assert numpy.array_equal(m[0], x[0]) and m[1].tolist() == list(range(6))
    assert numpy.array_equal(record_values(parse_record(both)), x[0])


def test_count_mismatch_names_record_and_counts():
    vals = [encode_record(label=0, pixel=b"\x00" * 4) for _ in range(3)] + [encode_record(label=0, pixel=b"\x00" * 5)]
    with pytest.raises(DataError, match=r"(?s)record #3 \(key b'k3'\) of f.bin has 5 values per instance, but the "
                                        r"store's shape asks for 4.*shape"):
        decode_records(vals, 4, "f.bin", keys=[b"k0", b"k1", b"k2", b"k3"])
    with pytest.raises(DataError, match="has 4 values per instance, but the store's shape asks for 784"):
        decode_records(matrix(vals[:3]), 784, "f.bin")
    with pytest.raises(DataError, match="has 4 values.*asks for 6"):
        decode_batch(vals[:3], (2, 3))


def test_corrupt_value():
    with pytest.raises(DataError, match=r"record #1 of src is not a valid RecordProto"):
        decode_records([encode_record(label=1, pixel=b"ab"), b"\x1a\x7fab"], 2, "src")
    with pytest.raises(DataError, match="record #4 of s is not a valid RecordProto"):
        parse_record(b"\xff\xff", "s", 4)


def test_load_record_file(tmp_path):
    rng = numpy.random.default_rng(4)
    pix = rng.integers(0, 256, (20, 8), dtype=numpy.uint8)
    p = tmp_path / "r.bin"
    write_kvfile(p, [("%08d" % i, encode_record(label=i % 3, pixel=pix[i].tobytes(), shape=[8])) for i in range(20)])
    assert KVFileReader(p).fixed_value_matrix() is not None
    m, lab = load_record_file(p, 8)
    assert m.flags.c_contiguous and numpy.array_equal(m, pix) and lab.tolist() == [i % 3 for i in range(20)]
    q = tmp_path / "v.bin"      # keys of different lengths: the per-record path
    write_kvfile(q, [(str(i), encode_record(label=i, pixel=pix[i].tobytes())) for i in range(20)])
    assert KVFileReader(q).fixed_value_matrix() is None
    m2, lab2 = load_record_file(q, 8)
    assert numpy.array_equal(m2, pix) and lab2.tolist() == list(range(20))
    with pytest.raises(DataError, match=r"record #0 \(key b'0'\) of .*v\.bin has 8 values.*asks for 9"):
        load_record_file(q, 9)
