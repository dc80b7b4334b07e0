"""SINGA's ``from examples.datasets import cifar10`` import line keeps working."""
from singa.datasets.cifar10 import available, load_arrays, load_data, locate  # noqa: F401
