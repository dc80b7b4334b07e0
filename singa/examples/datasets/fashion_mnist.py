"""``from examples.datasets import fashion_mnist``: Fashion-MNIST with mnist's load_data."""
from singa.datasets.fashion_mnist import DATASET, available, load_arrays, load_data  # noqa: F401
