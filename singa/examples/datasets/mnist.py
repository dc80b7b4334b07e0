"""SINGA's ``from examples.datasets import mnist`` import line keeps working."""
from singa.datasets.mnist import DATASET, available, load_arrays, load_data  # noqa: F401
