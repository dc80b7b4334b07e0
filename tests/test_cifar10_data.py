# covers: singa/datasets/cifar10.py
"""singa.datasets.cifar10 on small files written in CIFAR-10's exact binary format."""
import io
import os
import tarfile

import numpy as np
import pytest

from singa.datasets import cifar10
from singa.errors import DataError
from singa.io.record import load_record_file


def write_batches(folder, n=4, seed=0):
    """data_batch_1..5.bin and test_batch.bin: each record a label byte then 3072 bytes (CHW)."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    out = {}
    for name in cifar10.BATCH_FILES:
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        pixels = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        np.concatenate([labels[:, None], pixels], axis=1).tofile(os.path.join(folder, name))
        out[name] = (pixels, labels)
    return out


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("SINGA_CIFAR10_DIR", raising=False)


def test_missing_is_a_clear_error(in_tmp, no_env):
    with pytest.raises(DataError) as e:
        cifar10.load_data()
    assert "examples/cifar10" in str(e.value) and "SINGA_CIFAR10_DIR" in str(e.value) and "help:" in str(e.value)


def test_binary_batches_are_converted_with_mean(in_tmp, no_env):
    data = write_batches(in_tmp / "raw" / "cifar-10-batches-bin")
    X_train, X_test, ws = cifar10.load_data(data_dir=str(in_tmp / "raw"))
    assert ws == "examples/cifar10"
    s = X_train.layer.store_conf
    assert list(s.shape) == [3, 32, 32] and list(s.batchsize) == [64] and s.random_skip == 5000
    assert s.mean_file.endswith("image_mean.bin") and X_test.layer.store_conf.mean_file == s.mean_file
    pixels, labels = load_record_file(s.path)[:2]
    train = [data[f] for f in cifar10.BATCH_FILES[:5]]
    assert np.array_equal(pixels, np.concatenate([p for p, _ in train]))
    assert np.array_equal(labels, np.concatenate([l for _, l in train]))
    mean = load_record_file(s.mean_file)[0]
    np.testing.assert_allclose(mean[0], pixels.astype(np.float64).mean(axis=0), rtol=1e-6)


def test_archive_and_env_var(in_tmp, no_env, monkeypatch):
    write_batches(in_tmp / "b")
    buf = in_tmp / "arch" / cifar10.ARCHIVE
    os.makedirs(buf.parent)
    with tarfile.open(buf, "w:gz") as tar:
        for f in cifar10.BATCH_FILES:
            tar.add(in_tmp / "b" / f, arcname="cifar-10-batches-bin/" + f)
    monkeypatch.setenv("SINGA_CIFAR10_DIR", str(buf.parent))
    assert cifar10.available()
    tr, te, mean = cifar10.locate()
    assert load_record_file(te)[0].shape == (4, 3072)


def test_wrong_length_batch_file(in_tmp, no_env):
    write_batches(in_tmp / "raw")
    with open(in_tmp / "raw" / "data_batch_3.bin", "ab") as f:
        f.write(b"\x00" * 100)
    with pytest.raises(DataError, match="data_batch_3.bin"):
        cifar10.load_data(data_dir=str(in_tmp / "raw"))


def test_singa_place_first(in_tmp, no_env):
    write_batches(in_tmp / "raw")
    tr, te, mean = cifar10.locate(data_dir=str(in_tmp / "raw"))
    os.makedirs("examples/cifar10")
    for p in (tr, te, mean):
        os.link(p, os.path.join("examples/cifar10", os.path.basename(p)))
    X_train, _, _ = cifar10.load_data(batchsize=100, random=0)
    assert X_train.layer.store_conf.path == "examples/cifar10/train_data.bin"
    assert list(X_train.layer.store_conf.batchsize) == [100]


def test_import_lines():
    from examples.datasets import cifar10 as a
    from singa.datasets import cifar10 as b
    assert a.load_data is b.load_data


def test_processes_converting_at_once_all_get_the_records(tmp_path):
    """The ranks of an MPI job all load the data at start-up: one converts, the others wait."""
    import subprocess
    import sys
    from tests.conftest import ROOT
    write_batches(tmp_path / "raw", n=30)
    code = ("import os, singa.io.create_data as cd\n"
            "real = cd.convert_cifar10\n"
            "def counted(*a, **k):\n    print('CONVERTED')\n    import time; time.sleep(1.0)   # a slow conversion: the others check meanwhile\n    return real(*a, **k)\n"
            "cd.convert_cifar10 = counted\n"
            "from singa.datasets import cifar10\nt, s, m = cifar10.locate(%r)\n"
            "print(os.path.getsize(t), os.path.getsize(s), os.path.getsize(m))" % str(tmp_path / "raw"))
    env = dict(os.environ, PYTHONPATH=ROOT, SINGA_CACHE=str(tmp_path / "cache"))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    assert sum(o.count("CONVERTED") for o, _ in outs) == 1          # one converted, three reused its records
    assert len({o.replace("CONVERTED\n", "") for o, _ in outs}) == 1
    assert not [f for f in os.listdir(tmp_path / "cache" / "cifar10") if f.endswith(".tmp")]
