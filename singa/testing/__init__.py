"""What a user writing a layer needs to test it, as the project tests its own (Chainer ships
``chainer.testing`` and ``gradient_check`` likewise):

* ``check_layer_gradients(conf, src_shapes)``: float64 finite differences of every source and
  param gradient of one layer, then the same layer on every device backend (the stand-in, and
  CuPy on a GPU) against NumPy (``singa.testing.gradcheck``);
* ``build_layer``, ``Source``: one layer on a backend, and the sources it reads;
* ``singa.testing.standin``: the strict CuPy stand-in (``SINGA_GPU_STANDIN=1``), device arrays on
  the CPU that refuse to mix with NumPy, so a layer's device path runs without a GPU.
"""
from singa.testing.gradcheck import (GradientMismatch, Source, as_layer_conf, build_layer, check_layer_gradients,
                                     device_backends)

__all__ = ["GradientMismatch", "Source", "as_layer_conf", "build_layer", "check_layer_gradients",
           "device_backends"]
