"""CIFAR-10, as SINGA's ``examples/datasets/cifar10.py``: ``X_train, X_test, workspace = load_data()``.

Where the data is looked for, in order: SINGA's place, ``examples/cifar10/`` under the working
directory (train_data.bin, test_data.bin, image_mean.bin as SINGA's create_data wrote them);
``data_dir``; ``$SINGA_CIFAR10_DIR``; the cache (``$SINGA_CACHE`` or ``~/.cache/singa``)/cifar10.
Each folder may hold the three kvfile record files, or the binary batches (data_batch_1..5.bin
and test_batch.bin, or their ``cifar-10-batches-bin`` folder, or ``cifar-10-binary.tar.gz``),
which are converted once into the cache. ``download=True`` fetches the archive (MD5-checked).
"""
import hashlib
import os
import shutil
import tarfile
import urllib.request

from singa import switches
from singa.datasets._idx import cache_root
from singa.errors import DataError

NAME = "cifar10"
LEGACY_DIR = "examples/cifar10"     # where SINGA v0.3 kept the records
ENV_VAR = "SINGA_CIFAR10_DIR"
ARCHIVE = "cifar-10-binary.tar.gz"
ARCHIVE_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
RECORD_FILES = ("train_data.bin", "test_data.bin", "image_mean.bin")
BATCH_FILES = ["data_batch_%d.bin" % i for i in range(1, 6)] + ["test_batch.bin"]


def cache_dir():
    return os.path.join(cache_root(), NAME)


def _candidates(data_dir):
    dirs = [LEGACY_DIR]
    if data_dir:
        dirs.append(data_dir)
    if switches.path(ENV_VAR):
        dirs.append(switches.path(ENV_VAR))
    dirs.append(cache_dir())
    return dirs


def _records(d):
    paths = [os.path.join(d, f) for f in RECORD_FILES]
    return paths if all(os.path.isfile(p) for p in paths) else None


def _batches(d):
    for sub in (d, os.path.join(d, "cifar-10-batches-bin")):
        if all(os.path.isfile(os.path.join(sub, f)) for f in BATCH_FILES):
            return sub
    return None


def _archive(d):
    p = os.path.join(d, ARCHIVE)
    return p if os.path.isfile(p) else None


def _convert(batch_dir):
    from singa.datasets._idx import stamp_matches
    from singa.io.atomic import DirLock, write_text_atomic
    from singa.io.create_data import convert_cifar10
    out = cache_dir()
    stamp = os.path.join(out, "converted-from")
    src = os.path.abspath(batch_dir)
    with DirLock(out):        # one process converts; the others (MPI ranks) wait and reuse it
        if _records(out) and stamp_matches(stamp, src):
            return _records(out)
        convert_cifar10(batch_dir, out)
        write_text_atomic(stamp, src)
    return _records(out)


# The real archive holds 8 entries and six batches of 10,000 images (30,730,000 bytes each):
# anything far beyond that is not CIFAR-10 and must not cost unbounded time, memory or disk.
BATCH_BYTES = 10000 * 3073
MAX_MEMBERS = 1000
MAX_ARCHIVE_BYTES = len(BATCH_FILES) * BATCH_BYTES + (16 << 20)


def _archive_error(archive, what):
    return DataError("%s is not a readable CIFAR-10 archive: %s.\nhelp: download cifar-10-binary.tar.gz (the "
                     "binary version) again; delete the cached copy in %s if it came from there"
                     % (archive, what, cache_dir()))


def _copy_member(tar, m, path):
    """Write member ``m`` to ``path`` through a temporary file (no tarfile extraction: no links,
    modes or paths taken from the archive)."""
    src = tar.extractfile(m)
    tmp = "%s.%d.part" % (path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            shutil.copyfileobj(src, f, 1 << 20)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _check_gzip(archive):
    """Inflate the whole archive once, discarding the output: tarfile stops at the end-of-archive
    blocks and never reaches the gzip trailer, so without this a flipped bit or a cut-off end
    would pass silently. Stops at MAX_ARCHIVE_BYTES of output (a bomb costs no more)."""
    import zlib
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    total = 0
    with open(archive, "rb") as f:
        while not d.eof:
            data = d.unconsumed_tail or f.read(1 << 20)
            try:
                out = d.decompress(data, 1 << 20)
            except zlib.error as e:
                raise _archive_error(archive, "its gzip stream is corrupt (zlib: %s)" % e) from None
            if not data and not out and not d.eof:
                raise _archive_error(archive, "it is truncated (the gzip stream ends before its end marker)")
            total += len(out)
            if total > MAX_ARCHIVE_BYTES:
                raise _archive_error(archive, "it inflates to more than %d bytes" % MAX_ARCHIVE_BYTES)


def _unpack(archive):
    import zlib
    dest = os.path.join(cache_dir(), "batches")
    os.makedirs(dest, exist_ok=True)
    try:
        _check_gzip(archive)
        with tarfile.open(archive, "r:gz") as tar:
            total = 0
            for count, m in enumerate(iter(tar.next, None)):
                if count >= MAX_MEMBERS:
                    raise _archive_error(archive, "it holds more than %d entries" % MAX_MEMBERS)
                total += m.size
                if total > MAX_ARCHIVE_BYTES:
                    raise _archive_error(archive, "its entries add up to more than %d bytes" % MAX_ARCHIVE_BYTES)
                name = os.path.basename(m.name)
                if name not in BATCH_FILES or not m.isreg() or m.sparse is not None:
                    continue
                if m.size > BATCH_BYTES or m.size % 3073:
                    raise _archive_error(archive, "its %s is %d bytes, not a multiple of 3073 up to %d (10,000 "
                                                  "images)" % (m.name, m.size, BATCH_BYTES))
                _copy_member(tar, m, os.path.join(dest, name))
    except DataError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as e:
        raise _archive_error(archive, "%s: %s" % (type(e).__name__, e)) from None
    if not _batches(dest):
        raise DataError("%s does not hold the CIFAR-10 binary batches (%s).\nhelp: use cifar-10-binary.tar.gz, "
                        "not the python or matlab version" % (archive, ", ".join(BATCH_FILES)))
    return dest


def _md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download():
    os.makedirs(cache_dir(), exist_ok=True)
    dest = os.path.join(cache_dir(), ARCHIVE)
    if os.path.isfile(dest) and _md5(dest) == ARCHIVE_MD5:
        return dest
    errors = []
    for mirror in MIRRORS:
        url = mirror + ARCHIVE
        try:
            with urllib.request.urlopen(url, timeout=60) as r, open(dest + ".part", "wb") as f:
                shutil.copyfileobj(r, f)
        except OSError as e:
            errors.append("%s: %s" % (url, e))
            continue
        if _md5(dest + ".part") != ARCHIVE_MD5:
            os.remove(dest + ".part")
            errors.append("%s: MD5 mismatch (expected %s)" % (url, ARCHIVE_MD5))
            continue
        os.replace(dest + ".part", dest)
        return dest
    raise DataError("could not download CIFAR-10:\n  %s\nhelp: download %s by hand and put it in %s, or set %s"
                    % ("\n  ".join(errors), ARCHIVE, cache_dir(), ENV_VAR))


def locate(data_dir=None, download=False):
    """Paths of (train_data.bin, test_data.bin, image_mean.bin), converting binary batches if needed."""
    looked = []
    for d in _candidates(data_dir):
        looked.append(d)
        rec = _records(d)
        if rec:
            return rec
        b = _batches(d)
        if b:
            return _convert(b)
        a = _archive(d)
        if a:
            return _convert(_unpack(a))
    if download:
        return _convert(_unpack(_download()))
    raise DataError(
        "CIFAR-10 not found. Looked for train_data.bin, test_data.bin and image_mean.bin (SINGA kvfile records), "
        "the binary batches (%s) or %s in: %s.\nhelp: put cifar-10-binary.tar.gz (or its unpacked "
        "cifar-10-batches-bin folder) in one of those folders, set %s, pass load_data(data_dir=...), or "
        "load_data(download=True) where a network exists" % (", ".join(BATCH_FILES), ARCHIVE, ", ".join(looked),
                                                              ENV_VAR))


def available(data_dir=None):
    return any(_records(d) or _batches(d) or _archive(d) for d in _candidates(data_dir))


def load_arrays(data_dir=None, download=False):
    """((x_train, y_train), (x_test, y_test), mean): uint8 images (N, 3, 32, 32), int32 labels and
    the float32 mean image (3, 32, 32) that SINGA's CIFAR-10 stores subtract."""
    import numpy
    from singa.io.record import first_record_values, load_record_file
    train, test, mean_file = locate(data_dir, download)
    out = []
    for path in (train, test):
        values, labels = load_record_file(path, 3072)
        out.append((numpy.asarray(values, dtype=numpy.uint8).reshape(-1, 3, 32, 32), numpy.asarray(labels, numpy.int32)))
    mean = numpy.asarray(first_record_values(mean_file), dtype=numpy.float32).reshape(3, 32, 32)
    return out[0], out[1], mean


def load_data(workspace=None, backend="kvfile", batchsize=64, random=5000, shape=(3, 32, 32), std=127.5,
              mean=127.5, data_dir=None, download=False, nb_valid=0):
    """SINGA's cifar10.load_data: (train Data layer, test Data layer, workspace).

    As SINGA's helper: both stores subtract the per-pixel mean image (``mean_file``
    image_mean.bin), the training store skips up to ``random`` records at start, and the
    ``std`` and ``mean`` arguments are accepted but not used. ``nb_valid=N`` also hands out the
    last N training images as a validation Data layer (phase 'val'): then the result is
    ``(X_train, X_valid, X_test, workspace)`` (the mean image stays that of all 50,000).
    """
    from singa.model import Data, Store
    if backend != "kvfile":
        raise DataError("Invalid value for `backend`. Expected 'kvfile'. Received: %r" % (backend,))
    if isinstance(nb_valid, bool) or not isinstance(nb_valid, int) or nb_valid < 0:
        raise DataError("Invalid value for `nb_valid` of load_data(). Expected a number of validation images "
                        "(an int >= 0). Received: %r\nhelp: load_data(nb_valid=5000)" % (nb_valid,))
    train, test, mean_file = locate(data_dir, download)
    valid = None
    if nb_valid:
        from singa.datasets._idx import split_records
        train, valid = split_records(train, nb_valid, os.path.join(cache_dir(), "split-%d" % nb_valid))
    if workspace is None:
        workspace = LEGACY_DIR
    os.makedirs(workspace, exist_ok=True)
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    train_store = Store(path=train, mean_file=mean_file, backend=backend, batchsize=batchsize, shape=shape,
                        random_skip=random)
    test_store = Store(path=test, mean_file=mean_file, backend=backend, batchsize=batchsize, shape=shape)
    X_train = Data(load="recordinput", phase="train", conf=train_store)
    X_test = Data(load="recordinput", phase="test", conf=test_store)
    if valid is None:
        return X_train, X_test, workspace
    valid_store = Store(path=valid, mean_file=mean_file, backend=backend, batchsize=batchsize, shape=shape)
    return X_train, Data(load="recordinput", phase="val", conf=valid_store), X_test, workspace
