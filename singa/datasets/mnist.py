"""MNIST, as SINGA's ``examples/datasets/mnist.py``: ``X_train, X_test, workspace = load_data()``.

Real MNIST only: if its files are not found this raises a DataError saying where it looked
(see singa.datasets._idx); it never substitutes another dataset.
"""
from singa.datasets._idx import IdxDataset, load_arrays as _arrays, load_data as _load

DATASET = IdxDataset(
    "mnist", singa_dir="examples/mnist", env_var="SINGA_MNIST_DIR",
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    md5={"train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
         "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
         "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
         "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c"})


def load_data(workspace=None, backend="kvfile", nb_rbm=0, checkpoint_steps=0, data_dir=None, download=False,
              nb_valid=0, **pvalues):
    """``X_train, X_test, workspace`` (Data layers and the workspace folder), or with ``nb_valid=N``
    ``X_train, X_valid, X_test, workspace``; see singa.datasets._idx.load_data for every argument."""
    return _load(DATASET, workspace, backend, nb_rbm, checkpoint_steps, data_dir, download, nb_valid=nb_valid,
                 **pvalues)


def available(data_dir=None):
    """True when MNIST's files are found without downloading."""
    return DATASET.available(data_dir)


def load_arrays(data_dir=None, download=False):
    """((x_train, y_train), (x_test, y_test)): uint8 images (N, 28, 28) and int32 labels."""
    return _arrays(DATASET, data_dir, download)
