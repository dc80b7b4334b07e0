"""MNIST, as SINGA's ``examples/datasets/mnist.py``: ``X_train, X_test, workspace = load_data()``.

Real MNIST only: if its files are not found this raises a DataError saying where it looked
(see singa.datasets._idx); it never substitutes another dataset.
"""
from singa.datasets._idx import IdxDataset, dataset_functions

DATASET = IdxDataset(
    "mnist", singa_dir="examples/mnist", env_var="SINGA_MNIST_DIR",
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    md5={"train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
         "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
         "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
         "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c"})


load_data, available, load_arrays = dataset_functions(DATASET)
