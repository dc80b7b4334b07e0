"""singa: Apache SINGA v0.x's Python API and file formats on a NumPy/CuPy engine."""
__version__ = "0.3.100"

from singa import _examples_alias

_examples_alias.install()   # SINGA's `from examples.datasets import mnist` for an installed singa

# SINGA's Driver::Register* for the kinds besides layers (singa.layers.register): see singa.registry
from singa.registry import (register_lr_generator, register_param_generator, register_updater,  # noqa: E402,F401
                            register_worker)
