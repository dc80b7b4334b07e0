"""Runtime layers. Importing this package registers every implemented LayerType in
``singa.layers.base.LAYERS`` (a user's own layers go to ``USER_LAYERS`` by their ``user_type``:
docs/user-layers.md); ``create_layer(conf, backend)`` builds one."""
import importlib.util

from singa.layers.base import LAYERS, USER_LAYERS, DataLayer, Layer, create_layer, register  # noqa: F401
from singa.layers import neuron, dense, loss  # noqa: F401
from singa.layers import pooling  # noqa: F401
from singa.layers import lrn  # noqa: F401
from singa.layers import conv  # noqa: F401
from singa.layers import rbm  # noqa: F401
from singa.layers import charrnn, gru  # noqa: F401
from singa.layers import connection  # noqa: F401
from singa.layers import batchnorm  # noqa: F401
from singa.layers import preprocess  # noqa: F401
from singa.layers import output  # noqa: F401
from singa.layers import legacy  # noqa: F401
from singa.layers import rnnlm  # noqa: F401

# The data layers live in their own module; import it when present, but let a real error inside
# it surface instead of hiding it behind a bare `except ImportError`.
if importlib.util.find_spec("singa.layers.input") is not None:
    from singa.layers import input  # noqa: F401
