"""Fuzz the CIFAR-10 archive reader (singa.datasets.cifar10._unpack: cifar-10-binary.tar.gz into
the cache's batch folder), followed by the conversion when the batches come out.

An input that starts with the gzip magic is the archive itself; any other input is a tar that
is gzip-compressed here first, so that mutations reach the tar headers behind a valid stream.

Seeds: tar.gz archives (and the same as plain tars) of batches in CIFAR-10's binary format,
laid out as the real archive.
"""
import gzip
import io
import os
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

_DIR = tempfile.mkdtemp(prefix="singa-fuzz-cifar-archive-")
_CACHE = os.path.join(_DIR, "cache")     # the unpacked batches go there, not to ~/.cache

from singa.datasets import cifar10  # noqa: E402
from singa.io.create_data import convert_cifar10  # noqa: E402

_PATH = os.path.join(_DIR, cifar10.ARCHIVE)


def one_input(data: bytes) -> None:
    if data[:2] != b"\x1f\x8b":
        data = gzip.compress(data, compresslevel=1, mtime=0)
    with open(_PATH, "wb") as f:
        f.write(data)
    # set only while the reader runs: the in-process pytest replay shares os.environ with other tests
    saved = os.environ.get("SINGA_CACHE")
    os.environ["SINGA_CACHE"] = _CACHE
    try:
        dest = cifar10._unpack(_PATH)
        convert_cifar10(dest, os.path.join(_DIR, "out"))
    finally:
        if saved is None:
            del os.environ["SINGA_CACHE"]
        else:
            os.environ["SINGA_CACHE"] = saved


def archive(n=1, extra=False):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i, name in enumerate(cifar10.BATCH_FILES):
            body = bytes([i % 10]) + bytes(range(256)) * 12 if n else b""
            body *= max(n, 1)
            info = tarfile.TarInfo("cifar-10-batches-bin/" + name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        if extra:
            info = tarfile.TarInfo("cifar-10-batches-bin/readme.html")
            info.size = 5
            tar.addfile(info, io.BytesIO(b"hello"))
    return buf.getvalue()


def seeds():
    gz = [archive(1), archive(2, extra=True)]
    return gz + [gzip.decompress(s) for s in gz]


if __name__ == "__main__":
    from _runner import main
    main(one_input, seeds)
