"""Fashion-MNIST (Zalando), in MNIST's idx format: same ``load_data`` as singa.datasets.mnist.

Also found in Debian's package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
"""
from singa.datasets._idx import IdxDataset, load_arrays as _arrays, load_data as _load

DATASET = IdxDataset(
    "fashion_mnist", singa_dir="examples/fashion_mnist", env_var="SINGA_FASHION_MNIST_DIR",
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    md5={"train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
         "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
         "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
         "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310"})


def load_data(workspace=None, backend="kvfile", nb_rbm=0, checkpoint_steps=0, data_dir=None, download=False,
              nb_valid=0, **pvalues):
    """``X_train, X_test, workspace`` (Data layers and the workspace folder), or with ``nb_valid=N``
    ``X_train, X_valid, X_test, workspace``; see singa.datasets._idx.load_data for every argument."""
    return _load(DATASET, workspace, backend, nb_rbm, checkpoint_steps, data_dir, download, nb_valid=nb_valid,
                 **pvalues)


def available(data_dir=None):
    return DATASET.available(data_dir)


def load_arrays(data_dir=None, download=False):
    """((x_train, y_train), (x_test, y_test)): uint8 images (N, 28, 28) and int32 labels."""
    return _arrays(DATASET, data_dir, download)
