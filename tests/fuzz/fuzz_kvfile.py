"""Fuzz SINGA's kvfile reader (singa.io.kvfile): strict and SINGA-like (strict=False) reading,
count(), read_all(), the fixed-size fast path, and append mode (which re-reads the file).

Seeds: files written with write_kvfile (same-size records, mixed sizes, one record).
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from singa.io.kvfile import KVFileReader, KVFileWriter, write_kvfile  # noqa: E402

_DIR = tempfile.mkdtemp(prefix="singa-fuzz-kvfile-")
_PATH = os.path.join(_DIR, "input.bin")


def one_input(data: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(data)
    strict = not (data and data[-1] & 1)     # the last byte picks the mode, so one corpus covers both
    with KVFileReader(_PATH, strict=strict, allow_empty=True) as r:
        n = r.count()
        keys, values = r.read_all()
        assert len(keys) == len(values) == n, (n, len(keys))
        mat = r.fixed_value_matrix()
        if mat is not None:
            assert mat.shape[0] == n and all(bytes(mat[i]) == values[i] for i in range(n))
        assert list(r) == list(zip(keys, values))
    if data and data[0] & 1:
        copy = os.path.join(_DIR, "append.bin")
        shutil.copyfile(_PATH, copy)
        with KVFileWriter(copy, mode="append") as w:
            w.insert(b"fuzz-appended", b"v")


def _written(records):
    path = os.path.join(_DIR, "seed.bin")
    write_kvfile(path, records)
    with open(path, "rb") as f:
        return f.read()


def seeds():
    return [
        _written([("%05d" % i, bytes([i]) * 6) for i in range(4)]),
        _written([(b"a", b"x"), (b"bb", b"yyyy"), (b"", b"z")]),
        _written([(b"mean", b"\x00\xff" * 5)]),
    ]


if __name__ == "__main__":
    from _runner import main
    main(one_input, seeds)
