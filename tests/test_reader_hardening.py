# covers: singa/io/idx.py, singa/io/kvfile.py, singa/io/record.py, singa/datasets/cifar10.py
"""Issue 14 items 5-7 for the binary readers: every damaged, hostile or non-canonical input to the
idx, CIFAR-10, kvfile and RecordProto readers gives a DataError (or the right values), never a
foreign exception, and a gzip bomb costs no more memory than its header declares."""
import gzip
import io
import itertools
import os
import struct
import tarfile
import tracemalloc
import zlib

import numpy
import pytest

from singa.datasets import cifar10
from singa.errors import DataError
from singa.io.idx import read_idx, read_mnist_images, write_idx
from singa.io.kvfile import KVFileReader, write_kvfile
from singa.io.record import decode_records, load_record_file, varint
from singa.proto import common_pb2

from tests.test_cifar10_data import write_batches


# -- idx: damaged gzip (item 1) -----------------------------------------------------------------

def _gz_idx(tmp_path, array=None, name="images.gz"):
    array = numpy.arange(4 * 28 * 28, dtype=numpy.uint16).astype(numpy.uint8).reshape(4, 28, 28) \
        if array is None else array
    return write_idx(tmp_path / name, array)


def test_corrupt_deflate_data_is_a_data_error_not_zlib_error(tmp_path):
    p = _gz_idx(tmp_path)
    raw = bytearray(open(p, "rb").read())
    raw[30] ^= 0xFF                          # inside the deflate stream: zlib.error before the fix
    open(p, "wb").write(bytes(raw))
    with pytest.raises(DataError, match=r"(?s)images\.gz is a damaged gzip file: the compressed stream is corrupt"
                                        r".*help:.*delete the cached"):
        read_idx(p)


@pytest.mark.parametrize("cut", [11, 40, -4, -1])
def test_truncated_gzip_names_file_and_cause(tmp_path, cut):
    p = _gz_idx(tmp_path)
    raw = open(p, "rb").read()
    open(p, "wb").write(raw[:cut])
    with pytest.raises(DataError, match=r"images\.gz is (a damaged gzip file|truncated)"):
        read_idx(p)


def test_bad_crc_and_trailing_garbage(tmp_path):
    p = _gz_idx(tmp_path)
    raw = bytearray(open(p, "rb").read())
    raw[-8] ^= 1                                           # the CRC32 in the gzip trailer
    open(p, "wb").write(bytes(raw))
    with pytest.raises(DataError, match="damaged gzip file"):
        read_idx(p)
    raw[-8] ^= 1
    open(p, "wb").write(bytes(raw) + b"GARBAGE")
    with pytest.raises(DataError, match="neither gzip data nor zero padding"):
        read_idx(p)


def test_multi_member_gzip_and_zero_padding_still_read(tmp_path):
    a = numpy.arange(60, dtype=numpy.uint8).reshape(3, 4, 5)
    full = gzip.decompress(open(_gz_idx(tmp_path, a), "rb").read())
    p = tmp_path / "two.gz"
    p.write_bytes(gzip.compress(full[:9]) + gzip.compress(full[9:]) + bytes(7))   # as gzip(1) accepts
    assert numpy.array_equal(read_mnist_images(p), a)


# -- idx: hostile headers (item 2) --------------------------------------------------------------

def test_more_than_64_dims_is_a_data_error(tmp_path):
    p = tmp_path / "many"
    p.write_bytes(struct.pack(">BBBB", 0, 0, 8, 65) + struct.pack(">65I", *([1] * 65)) + b"\x07")
    with pytest.raises(DataError, match=r"(?s)number of dimensions of idx file .*many\. Expected 1 to 64\. "
                                        r"Received: 65"):
        read_idx(p)          # numpy's "maximum supported dimension" ValueError before the fix


@pytest.mark.parametrize("gz", [False, True])
def test_dims_product_that_wraps_int64(tmp_path, gz):
    # 65536**4 == 2**64 wraps to 0 in int64: the header matched an empty body and reshape failed
    body = struct.pack(">BBBB", 0, 0, 8, 4) + struct.pack(">4I", *([65536] * 4))
    p = tmp_path / ("wrap.gz" if gz else "wrap")
    p.write_bytes(gzip.compress(body) if gz else body)
    with pytest.raises(DataError, match=r"(?s)65536x65536x65536x65536"):
        read_idx(p)


def test_gzip_header_promising_more_than_deflate_can_hold(tmp_path):
    body = struct.pack(">BBBBIII", 0, 0, 8, 3, 60000, 1000, 1000)           # 60 GB in a ~40-byte file
    p = tmp_path / "liar.gz"
    p.write_bytes(gzip.compress(body))
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"more than a gzip file of \d+ bytes can hold"):
            read_idx(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * (1 << 20)          # a read buffer, never the 60 GB


# -- idx: gzip bomb (item 3) --------------------------------------------------------------------

def test_gzip_bomb_stops_at_the_declared_size(tmp_path):
    """A header declaring 1000x28x28 (784 kB) followed by 48 MiB of zeros (~48 kB compressed):
    the whole stream used to be inflated in memory; now the reader stops one byte past the size
    its header declares."""
    p = tmp_path / "bomb.gz"
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 22)
    with open(p, "wb") as f:
        f.write(c.compress(struct.pack(">BBBBIII", 0, 0, 8, 3, 1000, 28, 28)))
        for _ in range(12):
            f.write(c.compress(zeros))
        f.write(c.flush())
    del zeros
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"(?s)bomb\.gz is corrupt \(extra bytes at the end\).*784016 bytes.*"
                                            r"decompression bomb"):
            read_idx(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * (1 << 20), peak          # the old reader held all 48 MiB


# -- CIFAR-10 archive and batches (item 4) ---------------------------------------------------------

def _archive(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, body in members:
            info = tarfile.TarInfo("cifar-10-batches-bin/" + name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return str(path)


def _real_archive(tmp_path):
    write_batches(tmp_path / "b", n=2)
    return _archive(tmp_path / cifar10.ARCHIVE,
                    [(f, open(tmp_path / "b" / f, "rb").read()) for f in cifar10.BATCH_FILES])


def test_corrupt_archive_is_a_data_error(in_tmp):
    p = _real_archive(in_tmp)
    raw = bytearray(open(p, "rb").read())
    raw[len(raw) // 2] ^= 0xFF                # zlib.error escaped before the fix
    open(p, "wb").write(bytes(raw))
    with pytest.raises(DataError, match=r"(?s)cifar-10-binary\.tar\.gz is not a readable CIFAR-10 archive.*help:"):
        cifar10._unpack(p)


def test_truncated_archive_is_a_data_error(in_tmp):
    p = _real_archive(in_tmp)
    raw = open(p, "rb").read()
    for cut in (5, 100, len(raw) // 2, len(raw) - 3):
        open(p, "wb").write(raw[:cut])
        with pytest.raises(DataError):
            cifar10._unpack(p)


def test_oversized_batch_member_is_refused_before_it_is_written(in_tmp):
    big = bytes(cifar10.BATCH_BYTES + 3073)        # 10,001 images of zeros: compresses to ~30 kB
    p = _archive(in_tmp / cifar10.ARCHIVE, [("data_batch_1.bin", big)])
    with pytest.raises(DataError, match=r"data_batch_1\.bin is 30733073 bytes, not a multiple of 3073 up to"):
        cifar10._unpack(p)
    assert not os.path.exists(os.path.join(cifar10.cache_dir(), "batches", "data_batch_1.bin"))


def test_archive_with_too_many_entries(in_tmp):
    p = _archive(in_tmp / cifar10.ARCHIVE, [("x%d" % i, b"") for i in range(cifar10.MAX_MEMBERS + 1)])
    with pytest.raises(DataError, match="more than 1000 entries"):
        cifar10._unpack(p)


def test_archive_links_are_not_followed(in_tmp):
    p = in_tmp / cifar10.ARCHIVE
    with tarfile.open(p, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-bin/data_batch_1.bin")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(DataError, match="does not hold the CIFAR-10 binary batches"):
        cifar10._unpack(str(p))
    assert not os.path.lexists(os.path.join(cifar10.cache_dir(), "batches", "data_batch_1.bin"))


def test_cifar_reader_never_unpickles():
    # only the binary version is read: nothing in the reader can execute code from a file
    import singa.datasets.cifar10 as mod
    import singa.io.create_data as cd
    for m in (mod, cd):
        assert "pickle" not in open(m.__file__).read()


# -- non-UTF-8 text (item 7) --------------------------------------------------------------------------

def test_non_utf8_conversion_stamp_means_convert_again(in_tmp):
    write_batches(in_tmp / "raw", n=2)
    tr, te, mean = cifar10.locate(data_dir=str(in_tmp / "raw"))
    with open(os.path.join(cifar10.cache_dir(), "converted-from"), "wb") as f:
        f.write(b"/caf\xe9/raw")                   # Latin-1: UnicodeDecodeError before the fix
    assert cifar10.locate(data_dir=str(in_tmp / "raw")) == [tr, te, mean]
    assert load_record_file(tr)[0].shape == (10, 3072)


def test_non_utf8_keys_are_just_bytes(tmp_path):
    p = tmp_path / "k.bin"
    write_kvfile(p, [(b"caf\xe9", b"v1"), (b"\xff\xfe", b"v2")])
    with KVFileReader(p) as r:
        assert r.read_all() == ([b"caf\xe9", b"\xff\xfe"], [b"v1", b"v2"])


# -- RecordProto fast path vs protobuf (item 5) -------------------------------------------------

def _tag(field, wire, pad=0):
    """A field tag, made ``pad`` bytes longer with redundant continuation bytes (valid protobuf)."""
    t = bytearray(varint(field << 3 | wire))
    for _ in range(pad):
        t[-1] |= 0x80
        t.append(0)
    return bytes(t)


def _label(v, pad=0):
    return _tag(2, 0, pad) + varint(v)


def _pixel(b, pad=0):
    return _tag(3, 2, pad) + varint(len(b)) + b


def _data(fl, pad=0):
    raw = numpy.asarray(fl, "<f4").tobytes()
    return _tag(4, 2, pad) + varint(len(raw)) + raw


def _shape(dims, pad=0):
    return b"".join(_tag(1, 0, pad) + varint(d) for d in dims)


def _protobuf(rows):
    labels, values = [], []
    for r in rows:
        rec = common_pb2.RecordProto()
        rec.ParseFromString(r)
        labels.append(rec.label)
        values.append(numpy.array(rec.data, numpy.float32) if len(rec.data)
                      else numpy.frombuffer(rec.pixel, numpy.uint8).astype(numpy.float32))
    return numpy.array(labels, numpy.int32), numpy.array(values, numpy.float32)


def _layouts():
    """Builders of one record from (label, 4 pixel bytes): canonical and non-canonical encodings."""
    return {
        "canonical": lambda l, p: _shape([2, 2]) + _label(l) + _pixel(p),
        "label tag 0x90 0x00": lambda l, p: _shape([2, 2]) + _label(l, pad=1) + _pixel(p),
        "pixel tag padded": lambda l, p: _label(l) + _pixel(p, pad=2),
        "shape tag padded": lambda l, p: _shape([4], pad=1) + _label(l) + _pixel(p),
        "pixel before label": lambda l, p: _pixel(p) + _label(l) + _shape([4]),
        "label repeated, last wins": lambda l, p: _label(99) + _pixel(p) + _label(l),
        "pixel repeated, last wins": lambda l, p: _label(l) + _pixel(b"\x00" * 4) + _pixel(p),
        "unknown varint field": lambda l, p: _label(l) + _tag(9, 0) + varint(5) + _pixel(p),
        "unknown bytes field": lambda l, p: _tag(15, 2) + b"\x02ab" + _label(l) + _pixel(p),
        "unknown fixed32 field": lambda l, p: _label(l) + _pixel(p) + _tag(7, 5) + b"\x01\x02\x03\x04",
        "label as wrong wire type": lambda l, p: _tag(2, 2) + b"\x01\x05" + _label(l) + _pixel(p),
        "data packed twice": lambda l, p: _label(l) + _data(list(p[:2])) + _data(list(p[2:])),
        "data and pixel": lambda l, p: _label(l) + _pixel(b"\x01" * 4) + _data(list(p)),
        "empty data then pixel": lambda l, p: _label(l) + _tag(4, 2) + b"\x00" + _pixel(p),
        "data tag padded": lambda l, p: _label(l) + _data(list(p), pad=1),
        "unpacked floats": lambda l, p: _label(l) + b"".join(_tag(4, 5) + struct.pack("<f", v) for v in p),
        "no label": lambda l, p: _pixel(p),
    }


LABELS = [0, 1, 5, 127, -1, -7, 2 ** 31 - 1, -2 ** 31]


@pytest.mark.parametrize("name", sorted(_layouts()))
def test_fast_decoder_equals_protobuf(name):
    build = _layouts()[name]
    rng = numpy.random.default_rng(len(name))
    # same-length rows, as the vectorised path needs: labels with the same varint length together
    for group in ([0, 1, 5, 127], [-1, -7, -2 ** 31], [2 ** 31 - 1]):
        rows = [build(l, rng.integers(0, 256, 4, dtype=numpy.uint8).tobytes()) for l in group]
        mat = numpy.frombuffer(b"".join(rows), numpy.uint8).reshape(len(rows), -1)
        want_labels, want_values = _protobuf(rows)
        values, labels = decode_records(mat, 4, "<hand-built>")
        assert labels.tolist() == want_labels.tolist(), name
        assert numpy.array_equal(numpy.asarray(values, numpy.float32), want_values), name
        values, labels = decode_records(rows, 4, "<hand-built>")       # the per-record path too
        assert labels.tolist() == want_labels.tolist()


@pytest.mark.parametrize("label_bytes", [b"\x85\x00", b"\x80\x80\x01", b"\xff\xff\xff\xff\x7f",
                                         b"\x81\x80\x80\x80\x80\x80\x80\x80\x80\x01"])
def test_non_canonical_label_varints_equal_protobuf(label_bytes):
    rows = [_tag(2, 0) + label_bytes + _pixel(bytes([i] * 3)) for i in range(3)]
    mat = numpy.frombuffer(b"".join(rows), numpy.uint8).reshape(3, -1)
    assert decode_records(mat, 3)[1].tolist() == _protobuf(rows)[0].tolist()


def test_fast_path_rows_beyond_the_first_are_checked():
    # row 0 canonical; row 1 the same length, but a padded label tag and label varint and no shape
    rows = [_shape([3]) + _label(4) + _pixel(b"abc"), _tag(2, 0, pad=1) + b"\x85\x00" + _pixel(b"abc")]
    assert len(rows[0]) == len(rows[1])
    mat = numpy.frombuffer(b"".join(rows), numpy.uint8).reshape(2, -1)
    assert decode_records(mat, 3)[1].tolist() == _protobuf(rows)[0].tolist() == [4, 5]


def test_invalid_record_bytes_name_file_and_record(tmp_path):
    p = tmp_path / "r.bin"
    good = _label(1) + _pixel(b"abcd")
    write_kvfile(p, [("a", good), ("b", good[:-6] + b"\xff" * 6)])
    with pytest.raises(DataError, match=r"(?s)record #1 \(key b'b'\) of .*r\.bin is not a valid RecordProto.*help:"):
        load_record_file(p)


def test_all_small_label_pixel_permutations_agree():
    """Every ordering of shape/label/pixel with every tag padding of 0-1 bytes."""
    parts = {"s": lambda l, p, k: _shape([4], k), "l": lambda l, p, k: _label(l, k), "p": lambda l, p, k: _pixel(p, k)}
    for order in itertools.permutations("slp"):
        for pads in itertools.product((0, 1), repeat=3):
            for group in ((3, 9, 100), (77,), (5, 5)):      # one row, or equal labels: nothing varies
                rows = [b"".join(parts[c](l, bytes([l % 256] * 4), k) for c, k in zip(order, pads)) for l in group]
                mat = numpy.frombuffer(b"".join(rows), numpy.uint8).reshape(len(rows), -1)
                values, labels = decode_records(mat, 4)
                want_labels, want_values = _protobuf(rows)
                assert labels.tolist() == want_labels.tolist(), (order, pads, group)
                assert numpy.array_equal(numpy.asarray(values, numpy.float32), want_values), (order, pads)


def test_empty_shape_numpy_cannot_hold(tmp_path):
    """Fuzzer finding (fuzz_idx_gzip, 20 bytes): dims 787456x14803487x2337759236x0 hold no data,
    so the size check passed, but numpy's reshape refused the shape (ValueError)."""
    p = tmp_path / "f"
    p.write_bytes(bytes.fromhex("00000c04000c040000e1e21f8b57600400000000"))
    with pytest.raises(DataError, match=r"(?s)Expected a shape numpy can hold.*787456x14803487x2337759236x0"):
        read_idx(p)
