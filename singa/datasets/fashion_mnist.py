"""Fashion-MNIST (Zalando), in MNIST's idx format: same ``load_data`` as singa.datasets.mnist.

Also found in Debian's package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
"""
from singa.datasets._idx import IdxDataset, dataset_functions

DATASET = IdxDataset(
    "fashion_mnist", singa_dir="examples/fashion_mnist", env_var="SINGA_FASHION_MNIST_DIR",
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    md5={"train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
         "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
         "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
         "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310"})


load_data, available, load_arrays = dataset_functions(DATASET)
