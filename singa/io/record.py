"""SINGA's RecordProto values (SINGA-V0.md 5.2): encoding, and decoding many at once.

RecordProto (common.proto): ``shape = 1`` (repeated int32, unpacked), ``label = 2`` (int32),
``pixel = 3`` (bytes, one unsigned byte per value), ``data = 4`` (repeated float, packed).
kRecordInput takes ``data`` when it is non-empty, else ``pixel``; the record's own ``shape``
is not checked, only its element count against the store's shape.

Encoding writes the fields in field-number order, which is what protobuf (C++ and Python)
serialises, so files are byte-identical to SINGA's create_data output. Decoding a file of
same-length records (MNIST, CIFAR-10) works on all records at once with NumPy; anything else
goes through the protobuf parser record by record.
"""
import numpy

from singa.errors import DataError
from singa.proto import common_pb2

# -- protobuf wire format helpers (shared with checkpoint.py) -------------------------------

def varint(value):
    """Protobuf base-128 varint of an int (negative int32/int64 as 10-byte two's complement)."""
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(buf, pos, end):
    """(value, new pos); raises ValueError when the varint runs past ``end`` or is over 10 bytes."""
    result = shift = 0
    while True:
        if pos >= end:
            raise ValueError("varint runs past the end of its message")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint longer than 10 bytes")


def as_int32(v):
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= (1 << 31) else v


def iter_fields(buf, pos, end):
    """Yield (field number, wire type, tag offset, value) over a message in ``buf[pos:end]``.
    value: the int for varints, (start, stop) of the payload for length-delimited, fixed32 and
    fixed64 fields. Raises ValueError on malformed input."""
    while pos < end:
        tag_at = pos
        tag, pos = read_varint(buf, pos, end)
        fnum, wt = tag >> 3, tag & 7
        if fnum == 0:
            raise ValueError("field number 0 at byte %d" % tag_at)
        if wt == 0:
            v, pos = read_varint(buf, pos, end)
        elif wt == 2:
            n, pos = read_varint(buf, pos, end)
            if n > end - pos:
                raise ValueError("field %d claims %d bytes but only %d remain" % (fnum, n, end - pos))
            v = (pos, pos + n)
            pos += n
        elif wt in (1, 5):
            n = 8 if wt == 1 else 4
            if n > end - pos:
                raise ValueError("fixed-size field %d runs past the end" % fnum)
            v = (pos, pos + n)
            pos += n
        else:
            raise ValueError("unsupported wire type %d (field %d) at byte %d" % (wt, fnum, tag_at))
        yield fnum, wt, tag_at, v


# -- encoding ---------------------------------------------------------------------------------

_TAG_SHAPE, _TAG_LABEL, _TAG_PIXEL, _TAG_DATA = b"\x08", b"\x10", b"\x1a", b"\x22"


def _shape_bytes(shape):
    if shape is None:
        return b""
    if isinstance(shape, (int, numpy.integer)):
        shape = (shape,)
    return b"".join(_TAG_SHAPE + varint(int(s)) for s in shape)


def encode_record(label=None, pixel=None, data=None, shape=None):
    """Serialized RecordProto. ``pixel``: bytes or a uint8 array; ``data``: floats (stored as float32);
    ``label`` None leaves the field unset (0 is written, as a set proto2 field)."""
    parts = [_shape_bytes(shape)]
    if label is not None:
        parts.append(_TAG_LABEL + varint(int(label)))
    if pixel is not None:
        if not isinstance(pixel, (bytes, bytearray)):
            pixel = numpy.ascontiguousarray(pixel, dtype=numpy.uint8).tobytes()
        parts.append(_TAG_PIXEL + varint(len(pixel)) + bytes(pixel))
    if data is not None:
        raw = numpy.ascontiguousarray(data, dtype="<f4").tobytes()
        if raw:   # packed repeated fields are omitted when empty
            parts.append(_TAG_DATA + varint(len(raw)) + raw)
    return b"".join(parts)


def encode_pixel_records(pixels, labels, shape=None):
    """Serialized RecordProto{shape, label, pixel} for every row of ``pixels`` (N, ...) uint8."""
    pixels = numpy.ascontiguousarray(pixels, dtype=numpy.uint8)
    n = pixels.shape[0]
    if shape is None:
        shape = pixels.shape[1:]
    flat = pixels.reshape(n, -1)
    head = _shape_bytes(shape)
    ptag = _TAG_PIXEL + varint(flat.shape[1])
    labels = numpy.asarray(labels).reshape(-1)
    if labels.shape[0] != n:
        raise DataError("Invalid value for `labels`. Expected one label per image (%d). Received: %d labels"
                        % (n, labels.shape[0]))
    lab = [_TAG_LABEL + varint(int(v)) for v in range(256)] if labels.dtype == numpy.uint8 else None
    raw = flat.tobytes()
    m = flat.shape[1]
    out = []
    for i in range(n):
        lb = lab[labels[i]] if lab is not None else _TAG_LABEL + varint(int(labels[i]))
        out.append(b"".join((head, lb, ptag, raw[i * m:(i + 1) * m])))
    return out


# -- decoding ---------------------------------------------------------------------------------

def parse_record(value, source="<record>", index=0):
    """A RecordProto from its serialized bytes; DataError naming the source and record if corrupt."""
    rec = common_pb2.RecordProto()
    try:
        rec.ParseFromString(bytes(value))
    except Exception as e:  # protobuf's DecodeError
        raise DataError("record #%d of %s is not a valid RecordProto (%s).\nhelp: the file is corrupt or "
                        "not a SINGA record file; re-create it (e.g. with singa-create-data)"
                        % (index, source, e)) from None
    return rec


def record_values(rec):
    """The instance values of a RecordProto: float32 ``data`` if non-empty, else uint8 ``pixel``."""
    if len(rec.data):
        return numpy.array(rec.data, dtype=numpy.float32)
    return numpy.frombuffer(rec.pixel, dtype=numpy.uint8)


def _count_error(source, index, got, want, key=None):
    return DataError(
        "record #%d%s of %s has %d values per instance, but the store's shape asks for %d.\nhelp: set "
        "`shape` in store_conf to the records' shape (e.g. shape: 784 for MNIST, shape: 3 shape: 32 shape: 32 "
        "for CIFAR-10), or re-create the file for this shape" % (
            index, "" if key is None else " (key %r)" % key, source, got, want))


def _fixed_layout(row):
    """Wire layout of one RecordProto value: dict or None when the vectorised path cannot be used."""
    lay = {"label": None, "pixel": None, "data": None}
    varying = []   # byte ranges that may differ between records: (start, stop)
    n = len(row)
    try:
        for fnum, wt, tag_at, v in iter_fields(row, 0, n):
            tag, after_tag = read_varint(row, tag_at, n)
            if row[tag_at:after_tag] != varint(tag):
                # a non-canonical tag (e.g. 0x90 0x00 for the label): valid protobuf, but not the
                # layout this path assumes; protobuf reads it right
                return None
            if fnum == 2 and wt == 0:
                if lay["label"] is not None:
                    return None   # a repeated optional field: protobuf's last-wins is left to protobuf
                # the varint's bytes: from after the tag to where the field ends
                lay["label"] = (after_tag, read_varint(row, after_tag, n)[1])
            elif fnum == 3 and wt == 2:
                if lay["pixel"] is not None:
                    return None
                lay["pixel"] = v
            elif fnum == 4 and wt == 2:
                if lay["data"] is not None or (v[1] - v[0]) % 4:
                    return None
                lay["data"] = v
            elif fnum == 1 and wt == 0:
                pass
            else:
                return None   # unknown fields, unpacked floats, ...: leave it to protobuf
    except ValueError:
        return None
    if lay["label"] is not None:
        varying.append(lay["label"])
    for k in ("pixel", "data"):
        if lay[k] is not None:
            varying.append(lay[k])
    fixed = numpy.ones(n, dtype=bool)
    for a, b in varying:
        fixed[a:b] = False
    lay["fixed_cols"] = numpy.flatnonzero(fixed)
    return lay


def _decode_matrix(mat, count, source):
    """Vectorised decoding of an (N, L) uint8 matrix of same-length values; None if not applicable."""
    n = mat.shape[0]
    lay = _fixed_layout(bytes(mat[0]))
    if lay is None:
        return None
    cols = lay["fixed_cols"]
    if len(cols) and not (mat[:, cols] == mat[0, cols]).all():
        return None
    if lay["label"] is not None:
        a, b = lay["label"]
        lb = mat[:, a:b]
        if not ((lb & 0x80) == (lb[0] & 0x80)).all():
            return None
        lv = numpy.zeros(n, dtype=numpy.uint64)
        for j in range(b - a):
            lv |= (lb[:, j] & 0x7F).astype(numpy.uint64) << numpy.uint64(7 * j)
        labels = (lv & numpy.uint64(0xFFFFFFFF)).astype(numpy.uint32).view(numpy.int32)
    else:
        labels = numpy.zeros(n, dtype=numpy.int32)
    if lay["data"] is not None and lay["data"][1] > lay["data"][0]:
        a, b = lay["data"]
        values = numpy.ascontiguousarray(mat[:, a:b]).view("<f4").astype(numpy.float32, copy=False)
    elif lay["pixel"] is not None:
        a, b = lay["pixel"]
        values = mat[:, a:b]
    else:
        values = numpy.zeros((n, 0), dtype=numpy.uint8)
    if count is not None and values.shape[1] != count:
        raise _count_error(source, 0, values.shape[1], count)
    return values, labels


def decode_records(values, count=None, source="<records>", keys=None):
    """Decode serialized RecordProtos into (values (N, count), labels int32 (N,)).

    ``values``: a list of bytes, or an (N, L) uint8 matrix of same-length values (see
    KVFileReader.fixed_value_matrix). The value matrix is uint8 when every record stores
    ``pixel`` (no float ``data``), else float32. ``count``: the expected values per instance
    (product of the store's shape); a record with another count is a DataError naming the
    source, the record and both counts. It may be a view into ``values``.
    """
    if isinstance(values, numpy.ndarray):
        if values.ndim != 2 or values.dtype != numpy.uint8:
            raise DataError("Invalid value for `values`. Expected a list of bytes or an (N, L) uint8 matrix. "
                            "Received: array %s %s" % (values.dtype, values.shape))
        if values.shape[0] == 0:
            return numpy.zeros((0, count or 0), numpy.uint8), numpy.zeros(0, numpy.int32)
        out = _decode_matrix(values, count, source)
        if out is not None:
            return out
        values = [bytes(r) for r in values]
    n = len(values)
    labels = numpy.empty(n, dtype=numpy.int32)
    pixels, floats = [], {}
    rec = common_pb2.RecordProto()
    for i, v in enumerate(values):
        rec.Clear()
        try:
            rec.ParseFromString(v)
        except Exception as e:
            raise DataError("record #%d%s of %s is not a valid RecordProto (%s).\nhelp: the file is corrupt or "
                            "not a SINGA record file; re-create it (e.g. with singa-create-data)" % (
                                i, "" if keys is None else " (key %r)" % keys[i], source, e)) from None
        labels[i] = rec.label
        if len(rec.data):
            x = numpy.array(rec.data, dtype=numpy.float32)
            floats[i] = x
            pixels.append(None)
            got = x.size
        else:
            pixels.append(rec.pixel)
            got = len(rec.pixel)
        if count is None:
            count = got
        if got != count:
            raise _count_error(source, i, got, count, None if keys is None else keys[i])
    if count is None:
        count = 0
    if not floats:
        mat = numpy.frombuffer(b"".join(pixels), dtype=numpy.uint8).reshape(n, count)
        return mat, labels
    mat = numpy.empty((n, count), dtype=numpy.float32)
    for i, p in enumerate(pixels):
        mat[i] = floats[i] if p is None else numpy.frombuffer(p, dtype=numpy.uint8)
    return mat, labels


def decode_batch(values, shape, source="<records>"):
    """(float32 (N, prod(shape)), int32 labels (N,)) from serialized RecordProtos (list or matrix)."""
    count = int(numpy.prod(shape)) if shape is not None else None
    mat, labels = decode_records(values, count, source)
    return numpy.asarray(mat, dtype=numpy.float32), labels


def encode_shard_record(image):
    """A v0.1 DataShard value: ``Record{type: kSingleLabelImage, image}`` around the serialized
    RecordProto ``image`` (v0.1's SingleLabelImageRecord, wire-identical)."""
    image = bytes(image)
    return b"\x08\x00" + b"\x2a" + varint(len(image)) + image


def shard_image(value, source="<shard>", index=0):
    """The RecordProto bytes of a v0.1 DataShard value: a ``Record`` (type 1, user_type 2, image 5)
    gives its ``image``; a value without field 5 is taken as a RecordProto itself (v0.3 tools wrote
    those into shards)."""
    value = bytes(value)
    try:
        for fnum, wt, _, v in iter_fields(value, 0, len(value)):
            if fnum == 5 and wt == 2:
                return value[v[0]:v[1]]
    except ValueError as e:
        raise DataError("record #%d of %s is not a valid Record (%s).\nhelp: the shard is corrupt; re-create it"
                        % (index, source, e)) from None
    return value


def load_shard_file(path, count=None):
    """(values (N, count), labels int32) of every record of a v0.1 DataShard (the kvfile layout)."""
    from singa.io.kvfile import KVFileReader
    with KVFileReader(path) as r:
        keys, values = r.read_all()
        source = r.path
    return decode_records([shard_image(v, source, i) for i, v in enumerate(values)], count, source, keys=keys)


def load_record_file(path, count=None, strict=True):
    """(values (N, count) uint8 or float32, labels int32) of every record in a kvfile of RecordProtos."""
    from singa.io.kvfile import KVFileReader
    with KVFileReader(path, strict=strict) as r:
        mat = r.fixed_value_matrix()
        out = _decode_matrix(mat, count, r.path) if mat is not None and len(mat) else None
        if out is not None:
            # the result may view the file's buffer: copy once so it does not pin the parsing layout
            vals, labels = out
            return numpy.ascontiguousarray(vals), labels
        # the per-record path, with the keys, so that an error names the damaged record's key
        keys, values = r.read_all()
        return decode_records(values, count, r.path, keys=keys)


def first_record_values(path, source_field="mean_file"):
    """Float32 values of the first record of a kvfile (a mean_file or std_file)."""
    from singa.io.kvfile import KVFileReader
    with KVFileReader(path) as r:
        first = r.read()
        rpath = r.path
    if first is None:
        raise DataError("%s %s holds no record.\nhelp: re-create it" % (source_field, rpath))
    rec = parse_record(first[1], rpath, 0)
    return record_values(rec).astype(numpy.float32)
