"""Fuzz the RecordProto reading of kvfile record files: singa.io.record.load_record_file (the
vectorised same-length path and the per-record protobuf path) and first_record_values.
Besides the oracle, whatever the fast path returns must equal protobuf's reading.

Seeds: record files written with encode_pixel_records / encode_record and write_kvfile.
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy  # noqa: E402

from singa.io.kvfile import KVFileReader, write_kvfile  # noqa: E402
from singa.io.record import (decode_records, encode_pixel_records, encode_record,  # noqa: E402
                             first_record_values, load_record_file)

_DIR = tempfile.mkdtemp(prefix="singa-fuzz-record-")
_PATH = os.path.join(_DIR, "input.bin")


def one_input(data: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(data)
    values, labels = load_record_file(_PATH)
    with KVFileReader(_PATH) as r:
        mat = r.fixed_value_matrix()
        if mat is not None:
            # differential check: the per-record protobuf path must read the same
            slow = decode_records([bytes(v) for v in mat], None, _PATH)
            assert numpy.array_equal(slow[1], labels), (slow[1], labels)
            assert numpy.array_equal(numpy.asarray(slow[0], numpy.float64), numpy.asarray(values, numpy.float64),
                                     equal_nan=True)
    first_record_values(_PATH)


def _written(records):
    path = os.path.join(_DIR, "seed.bin")
    write_kvfile(path, records)
    with open(path, "rb") as f:
        return f.read()


def seeds():
    pix = numpy.arange(3 * 8, dtype=numpy.uint8).reshape(3, 2, 4)
    return [
        _written(("%08d" % i, v) for i, v in enumerate(encode_pixel_records(pix, [1, 200, 7]))),
        _written([("mean", encode_record(shape=(2, 2), data=[0.5, -1.0, 3.0, 1e-3]))]),
        _written([("a", encode_record(label=-3, pixel=b"\x01\x02")), ("b", encode_record(label=2, pixel=b"\x03\x04"))]),
    ]


if __name__ == "__main__":
    from _runner import main
    main(one_input, seeds)
