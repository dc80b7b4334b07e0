# covers: singa/datasets/mnist.py, singa/datasets/fashion_mnist.py, singa/datasets/_idx.py,
#         singa/datasets/__init__.py
"""singa.datasets: where MNIST-format data is found, conversion to kvfile records, load_data's Data layers."""
import os

import numpy as np
import pytest

from singa.datasets import fashion_mnist, mnist
from singa.errors import DataError
from singa.io.idx import write_idx
from singa.io.kvfile import KVFileReader
from singa.io.record import load_record_file
from tests.conftest import FASHION_DIR

needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION_DIR) and not os.environ.get("CI"),
                                   reason="Debian's dataset-fashion-mnist is not installed (run.sh installs it)")


def write_mnist_idx(folder, n_train=50, n_test=20, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    ext = ".gz" if gz else ""
    imgs = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(os.path.join(folder, "%s-images-idx3-ubyte%s" % (split, ext)), x)
        write_idx(os.path.join(folder, "%s-labels-idx1-ubyte%s" % (split, ext)), y)
        imgs[split] = (x, y)
    return imgs


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("SINGA_MNIST_DIR", raising=False)
    monkeypatch.delenv("SINGA_FASHION_MNIST_DIR", raising=False)


def test_missing_mnist_is_a_clear_error(in_tmp, no_env):
    with pytest.raises(DataError) as e:
        mnist.load_data()
    msg = str(e.value)
    assert "examples/mnist" in msg and "SINGA_MNIST_DIR" in msg and "help:" in msg
    assert not mnist.available()


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_in_data_dir_are_converted_once(in_tmp, no_env, gz):
    data = write_mnist_idx(in_tmp / "raw", gz=gz)
    X_train, X_test, ws = mnist.load_data(data_dir=str(in_tmp / "raw"))
    assert ws == "examples/mnist" and os.path.isdir(ws)
    tr = X_train.layer.store_conf
    assert tr.path.endswith("train_data.bin") and tr.path.startswith(str(in_tmp / "cache"))
    assert list(tr.batchsize) == [64] and list(tr.shape) == [784] and tr.random_skip == 5000
    assert tr.mean_value == 127.5 and tr.std_value == 127.5
    assert X_test.layer.store_conf.random_skip == 0
    keys, _ = KVFileReader(tr.path).read_all()
    assert keys[0] == b"00000000" and len(keys) == 50
    pixels, labels = load_record_file(X_test.layer.store_conf.path)[:2]
    assert np.array_equal(pixels.reshape(-1, 28, 28), data["t10k"][0]) and np.array_equal(labels, data["t10k"][1])
    mtime = os.path.getmtime(tr.path)
    mnist.load_data(data_dir=str(in_tmp / "raw"))
    assert os.path.getmtime(tr.path) == mtime  # cached, not converted again


def test_env_var_and_singa_place(in_tmp, no_env, monkeypatch):
    write_mnist_idx(in_tmp / "envdir")
    monkeypatch.setenv("SINGA_MNIST_DIR", str(in_tmp / "envdir"))
    assert mnist.available()
    X_train, _, _ = mnist.load_data(batchsize=32, shape=784, std_value=255)
    assert list(X_train.layer.store_conf.batchsize) == [32]
    assert not X_train.layer.store_conf.HasField("mean_value")
    # SINGA's own place wins: records at examples/mnist/ under the working directory.
    os.makedirs("examples/mnist", exist_ok=True)
    for f in ("train_data.bin", "test_data.bin"):
        os.link(X_train.layer.store_conf.path, os.path.join("examples/mnist", f))
    X_train, X_test, _ = mnist.load_data()
    assert X_train.layer.store_conf.path == "examples/mnist/train_data.bin"


def test_rbm_checkpoints_listed_newest_first(in_tmp, no_env):
    write_mnist_idx(in_tmp / "raw")
    X_train, _, _ = mnist.load_data(data_dir=str(in_tmp / "raw"), nb_rbm=4, checkpoint_steps=6000)
    assert X_train.checkpoint == ["examples/rbm/rbm%d/checkpoint/step6000-worker0" % i for i in (3, 2, 1)]


def test_download_verifies_md5(in_tmp, no_env):
    path = in_tmp / "f.gz"
    path.write_bytes(b"not mnist")
    assert not mnist.DATASET._md5_ok(str(path), "train-images-idx3-ubyte")
    ds = type(mnist.DATASET)("x", "examples/x", "X_DIR", md5={"a": "0" * 32})
    assert ds._md5_ok(str(path), "unlisted")


@needs_fashion
def test_fashion_mnist_from_debian_package(in_tmp, no_env):
    X_train, X_test, ws = fashion_mnist.load_data()
    assert ws == "examples/fashion_mnist"
    pixels, labels = load_record_file(X_test.layer.store_conf.path)[:2]
    assert pixels.shape == (10000, 784) and labels.shape == (10000,)
    assert np.bincount(labels).tolist() == [1000] * 10  # Fashion-MNIST's test set is balanced


def test_old_import_lines():
    from examples.datasets import mnist as m1
    from singa.datasets import mnist as m2
    assert m1.load_data is m2.load_data
