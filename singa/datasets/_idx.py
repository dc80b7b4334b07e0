"""Finding, verifying and converting MNIST-format (idx) datasets into SINGA kvfile records.

Where a dataset is looked for, in order:
1. SINGA's own place: kvfile records ``<root>/train_data.bin`` and ``test_data.bin`` under the
   working directory (``examples/mnist`` for MNIST), as SINGA's create_data wrote them;
2. ``data_dir`` given to load_data (kvfile records or the four idx files, .gz or not);
3. the directory in the dataset's environment variable (``SINGA_MNIST_DIR``, ``SINGA_FASHION_MNIST_DIR``);
4. the cache, ``$SINGA_CACHE`` or ``$XDG_CACHE_HOME/singa`` or ``~/.cache/singa``, under the dataset's name;
5. system copies (Debian's dataset-fashion-mnist package for Fashion-MNIST);
6. with ``download=True``, the dataset's mirrors, each file checked against its MD5.
idx files found in 2-6 are converted once into kvfile records in the cache.
"""
import gzip
import hashlib
import os
import shutil
import urllib.request

import numpy

from singa import switches
from singa.errors import DataError
from singa.io.atomic import DirLock, write_text_atomic

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def stamp_matches(path, source):
    """Whether the stamp file ``path`` records ``source``. Compared as bytes: a damaged stamp (say,
    non-UTF-8 bytes) only means "convert again", never a UnicodeDecodeError."""
    try:
        with open(path, "rb") as f:
            return f.read() == source.encode("utf-8", "surrogateescape")
    except OSError:
        return False



def cache_root():
    """``$SINGA_CACHE``, else ``$XDG_CACHE_HOME/singa``, else ``~/.cache/singa``: where converted data sets live."""
    return switches.path("SINGA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "singa")

class IdxDataset:
    def __init__(self, name, singa_dir, env_var, system_dirs=(), mirrors=(), md5=None):
        self.name = name
        self.singa_dir = singa_dir
        self.env_var = env_var
        self.system_dirs = tuple(system_dirs)
        self.mirrors = tuple(mirrors)
        self.md5 = md5 or {}

    # -- locating -------------------------------------------------------------------
    def cache_dir(self):
        return os.path.join(cache_root(), self.name)

    def candidate_dirs(self, data_dir=None):
        dirs = [self.singa_dir]
        if data_dir:
            dirs.append(data_dir)
        if switches.path(self.env_var):
            dirs.append(switches.path(self.env_var))
        dirs.append(self.cache_dir())
        dirs.extend(self.system_dirs)
        return dirs

    @staticmethod
    def _kvfiles(d):
        tr, te = os.path.join(d, "train_data.bin"), os.path.join(d, "test_data.bin")
        return (tr, te) if os.path.isfile(tr) and os.path.isfile(te) else None

    @staticmethod
    def _idx_files(d):
        found = {}
        for key, base in IDX_FILES.items():
            for cand in (base, base + ".gz", base.replace("-idx", ".idx")):
                p = os.path.join(d, cand)
                if os.path.isfile(p):
                    found[key] = p
                    break
        return found if len(found) == 4 else None

    def locate(self, data_dir=None, download=False):
        """(train kvfile, test kvfile), converting idx files into the cache when that is what was found."""
        looked = []
        for d in self.candidate_dirs(data_dir):
            looked.append(d)
            kv = self._kvfiles(d)
            if kv:
                return kv
            idx = self._idx_files(d)
            if idx:
                return self._convert(idx)
        if download:
            return self._convert(self._download())
        raise DataError(
            "%s not found. Looked for kvfile records (train_data.bin, test_data.bin) or the idx files (%s, .gz "
            "or not) in: %s.\nhelp: put the files in one of those folders, set %s to their folder, pass "
            "load_data(data_dir=...), or load_data(download=True)%s" % (
                self.name, ", ".join(IDX_FILES.values()), ", ".join(looked), self.env_var,
                "; on Debian: apt-get install dataset-fashion-mnist" if self.name == "fashion_mnist" else ""))

    def available(self, data_dir=None):
        for d in self.candidate_dirs(data_dir):
            if self._kvfiles(d) or self._idx_files(d):
                return True
        return False

    # -- converting and downloading ----------------------------------------------------
    def _convert(self, idx):
        from singa.io.create_data import convert_idx_to_kvfile
        out = self.cache_dir()
        os.makedirs(out, exist_ok=True)
        train, test = os.path.join(out, "train_data.bin"), os.path.join(out, "test_data.bin")
        stamp = os.path.join(out, "converted-from")
        source = "\n".join(os.path.abspath(idx[k]) for k in sorted(idx))
        with DirLock(out):    # one process converts; the others (MPI ranks) wait and reuse it
            if os.path.isfile(train) and os.path.isfile(test) and stamp_matches(stamp, source):
                return train, test
            convert_idx_to_kvfile(idx["train_images"], idx["train_labels"], train)
            convert_idx_to_kvfile(idx["test_images"], idx["test_labels"], test)
            write_text_atomic(stamp, source)
        return train, test

    def _download(self):
        out = os.path.join(self.cache_dir(), "idx")
        os.makedirs(out, exist_ok=True)
        files = {}
        for key, base in IDX_FILES.items():
            dest = os.path.join(out, base + ".gz")
            if not (os.path.isfile(dest) and self._md5_ok(dest, base)):
                self._fetch(base + ".gz", dest)
            files[key] = dest
        return files

    def _md5_ok(self, path, base):
        want = self.md5.get(base)
        if want is None:
            return True
        h = hashlib.md5()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest() == want

    def _fetch(self, fname, dest):
        errors = []
        for mirror in self.mirrors:
            url = mirror.rstrip("/") + "/" + fname
            tmp = "%s.%d.part" % (dest, os.getpid())
            try:
                with urllib.request.urlopen(url, timeout=30) as r, open(tmp, "wb") as f:
                    shutil.copyfileobj(r, f)
            except OSError as e:
                errors.append("%s: %s" % (url, e))
                continue
            base = fname[:-3]
            if not self._md5_ok(tmp, base):
                os.remove(tmp)
                errors.append("%s: MD5 mismatch (expected %s)" % (url, self.md5.get(base)))
                continue
            os.replace(tmp, dest)
            return
        raise DataError("could not download %s for %s:\n  %s\nhelp: download the idx files by hand and set %s "
                        "to their folder" % (fname, self.name, "\n  ".join(errors) or "no mirror", self.env_var))


def load_arrays(dataset, data_dir=None, download=False):
    """((x_train, y_train), (x_test, y_test)) as NumPy arrays, Keras's layout: uint8 images (N, 28, 28)
    and int32 labels (N,), for fit(x, y) / evaluate(x, y) / predict(x)."""
    from singa.io.record import load_record_file
    out = []
    for path in dataset.locate(data_dir, download):
        values, labels = load_record_file(path, 784)
        out.append((numpy.asarray(values, dtype=numpy.uint8).reshape(-1, 28, 28), numpy.asarray(labels, numpy.int32)))
    return tuple(out)


def split_records(path, nb_valid, out_dir):
    """(train part, validation part) of the kvfile ``path``: its last ``nb_valid`` records go to
    ``valid_data.bin``, the others to ``train_data.bin``, in ``out_dir`` (written once, atomically,
    and reused while the source file is unchanged)."""
    from singa.io.kvfile import KVFileReader, write_kvfile
    train, valid = os.path.join(out_dir, "train_data.bin"), os.path.join(out_dir, "valid_data.bin")
    st = os.stat(path)
    source = "%s\n%d %d" % (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    stamp = os.path.join(out_dir, "split-from")
    os.makedirs(out_dir, exist_ok=True)
    with DirLock(out_dir):
        if os.path.isfile(train) and os.path.isfile(valid) and stamp_matches(stamp, source):
            return train, valid
        with KVFileReader(path) as r:
            keys, values = r.read_all()
        if not 0 < nb_valid < len(keys):
            raise DataError("Invalid value for `nb_valid` of load_data(). Expected a number of validation records "
                            "between 1 and %d (the training file %s holds %d). Received: %r"
                            % (len(keys) - 1, path, len(keys), nb_valid))
        cut = len(keys) - nb_valid
        write_kvfile(train, zip(keys[:cut], values[:cut]))
        write_kvfile(valid, zip(keys[cut:], values[cut:]))
        write_text_atomic(stamp, source)
    return train, valid


def _latest_step(workspace):
    """The step of the newest step<N>-worker0 checkpoint under ``workspace``/checkpoint, or None."""
    from singa.io.checkpoint import latest_checkpoint_step
    try:
        return latest_checkpoint_step(workspace)
    except OSError:
        return None


def earlier_stage_checkpoints(nb_rbm, checkpoint_steps):
    """The checkpoints a stage of SINGA's stacked RBMs starts from: those of the RBMs
    ``examples/rbm/rbm{i}`` for i = nb_rbm-1 .. 1 (newest stage first, SINGA-107's order) at
    ``checkpoint_steps``, or at each stage's newest checkpoint when it is 0. Raises a DataError
    naming the stages to run first when one has none."""
    stages = list(range(nb_rbm - 1, 0, -1))
    if checkpoint_steps > 0:
        return ["examples/rbm/rbm%d/checkpoint/step%d-worker0" % (i, checkpoint_steps) for i in stages]
    steps = {i: _latest_step("examples/rbm/rbm%d" % i) for i in stages}
    missing = sorted(i for i, s in steps.items() if s is None)
    if missing:
        what = "the autoencoder" if nb_rbm == 5 else "RBM stage %d" % nb_rbm
        raise DataError(
            "load_data(nb_rbm=%d): %s starts from the weights the earlier stages trained (RBMs %s), loaded from "
            "their checkpoints examples/rbm/rbm<i>/checkpoint/step<N>-worker0 (relative to the working directory "
            "%s); none found for %s.\nhelp: run the earlier stages first, from this directory: %s (or `bash "
            "run.sh pretrain` for the whole chain); pass checkpoint_steps=N to load step N exactly"
            % (nb_rbm, what, ", ".join(str(i) for i in reversed(stages)), os.getcwd(),
               ", ".join("rbm%d" % i for i in missing),
               " && ".join("python examples/mnist_rbm%d.py" % i for i in range(1, nb_rbm))))
    return ["examples/rbm/rbm%d/checkpoint/step%d-worker0" % (i, steps[i]) for i in stages]


def load_data(dataset, workspace=None, backend="kvfile", nb_rbm=0, checkpoint_steps=0, data_dir=None,
              download=False, nb_valid=0, **pvalues):
    """SINGA's mnist.load_data: (train Data layer, test Data layer, workspace) for ``dataset``.

    ``pvalues`` are StoreProto fields (batchsize, shape, random_skip, mean_value, std_value, ...)
    applied to every store. Unset ones default to SINGA's examples/mnist/job.conf: batch 64,
    shape 784, (x - 127.5) / 127.5, random_skip 5000 for training.

    ``nb_rbm > 0`` (the stacked RBMs and the autoencoder, stage ``nb_rbm``) takes SINGA's RBM
    settings instead: batch 100, pixels scaled to [0, 1] (x / 255; a sigmoid RBM cannot learn
    from [-1, 1]) and, unless given, the workspace ``examples/rbm/rbm{nb_rbm}`` (the autoencoder,
    nb_rbm 5: ``examples/rbm/autoencoder``), where the next stage finds its checkpoints. For ``nb_rbm > 1`` the training Data layer carries the checkpoints of the RBMs
    ``examples/rbm/rbm{i}``, i = nb_rbm-1 .. 1, at ``checkpoint_steps`` (as SINGA's helper did) or,
    when it is 0, at each stage's newest checkpoint (SINGA loaded none and failed).

    ``nb_valid=N`` also hands out a validation set: the last N training records (phase 'val', no
    random skip), for ``fit(X_train, validate_data=X_valid, ...)``; then the result is
    ``(X_train, X_valid, X_test, workspace)``. The two parts are written once into the cache.
    """
    from singa.model import Data, Store
    if backend != "kvfile":
        raise DataError("Invalid value for `backend`. Expected 'kvfile' (the records load_data finds or makes). "
                        "Received: %r" % (backend,))
    if isinstance(nb_valid, bool) or not isinstance(nb_valid, int) or nb_valid < 0:
        raise DataError("Invalid value for `nb_valid` of load_data(). Expected a number of validation records "
                        "(an int >= 0). Received: %r\nhelp: load_data(nb_valid=5000)" % (nb_valid,))
    train_path, test_path = dataset.locate(data_dir, download)
    valid_path = None
    if nb_valid:
        train_path, valid_path = split_records(train_path, nb_valid,
                                               os.path.join(dataset.cache_dir(), "split-%d" % nb_valid))
    if workspace is None:
        # the RBM stages each have their own workspace, where the next stage looks for their checkpoints
        workspace = dataset.singa_dir if nb_rbm <= 0 else \
            "examples/rbm/rbm%d" % nb_rbm if nb_rbm <= 4 else "examples/rbm/autoencoder"
    os.makedirs(workspace, exist_ok=True)
    defaults = {"batchsize": 100 if nb_rbm > 0 else 64, "shape": 784}
    if not any(k in pvalues for k in ("mean_value", "std_value", "mean_file", "std_file")):
        defaults.update(std_value=255) if nb_rbm > 0 else defaults.update(mean_value=127.5, std_value=127.5)
    fields = dict(defaults, **pvalues)
    train_fields = dict(fields)
    train_fields.setdefault("random_skip", 5000)
    test_fields = dict(fields)
    test_fields.pop("random_skip", None)
    checkpoint = earlier_stage_checkpoints(nb_rbm, checkpoint_steps) if nb_rbm > 1 else None
    X_train = Data(load="recordinput", phase="train", conf=Store(path=train_path, backend=backend, **train_fields),
                   checkpoint=checkpoint)
    X_test = Data(load="recordinput", phase="test", conf=Store(path=test_path, backend=backend, **test_fields))
    if valid_path is None:
        return X_train, X_test, workspace
    X_valid = Data(load="recordinput", phase="val", conf=Store(path=valid_path, backend=backend, **test_fields))
    return X_train, X_valid, X_test, workspace


_load_records, _load_images = load_data, load_arrays      # under other names inside dataset_functions


def dataset_functions(dataset):
    """``load_data``, ``available`` and ``load_arrays`` of one dataset's module (singa.datasets.mnist,
    fashion_mnist), bound to its IdxDataset."""
    def load_data(workspace=None, backend="kvfile", nb_rbm=0, checkpoint_steps=0, data_dir=None, download=False,
                  nb_valid=0, **pvalues):
        """``X_train, X_test, workspace`` (Data layers and the workspace folder), or with ``nb_valid=N``
        ``X_train, X_valid, X_test, workspace``; see singa.datasets._idx.load_data for every argument."""
        return _load_records(dataset, workspace, backend, nb_rbm, checkpoint_steps, data_dir, download,
                             nb_valid=nb_valid, **pvalues)

    def available(data_dir=None):
        """True when the dataset's files are found without downloading."""
        return dataset.available(data_dir)

    def load_arrays(data_dir=None, download=False):
        """((x_train, y_train), (x_test, y_test)): uint8 images (N, 28, 28) and int32 labels."""
        return _load_images(dataset, data_dir, download)

    return load_data, available, load_arrays
