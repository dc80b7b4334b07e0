"""Default values per init type (SINGA's initializations.get_init_values, SINGA-V0.md 1.6).

``get_init_values(identifier, **kwargs)`` returns the ParamGenProto fields (or, for 'lrn2d' and
'conv2d', the LRN/convolution fields) for ``identifier``, each taken from ``kwargs`` when given
and from SINGA's Python default otherwise:

=====================  ==================================================================
'uniform'              low = -scale, high = +scale, scale = 0.05; ``low``/``high`` override
'gaussian'             mean 0, std 0.01
'constant'             value 0 (the proto default is 1)
'none'                 {} (no init message at all: values come from a checkpoint or share)
'uniformsqrtfanin'     low -1, high 1 (U(low, high) * sqrt(3 / fan_in) in the engine)
'uniformsqrtfaninout'  low -1, high 1 (U(low, high) / sqrt(fan_in + fan_out))
'gaussiansqrtfanin'    mean 0, std 1 (N(mean, std) / sqrt(fan_in))
'lrn2d'                alpha 1, beta 0.75, knorm 1
'conv2d'               stride 1, pad 0
=====================  ==================================================================

'gauss' and 'const' (used by SINGA's README) are accepted for 'gaussian' and 'constant'; SINGA's
Python rejected them and the three fan-in methods, which its C++ engine supported. For the random
methods an explicit ``value`` is kept: the engine multiplies the samples by it when it is not 1.
Keys that do not apply to the chosen type are ignored, as SINGA did (``init='constant', mean=0``).
"""
from singa.errors import ConfigError

INIT_ALIASES = {"gauss": "gaussian", "const": "constant"}
INIT_METHODS = ("uniform", "gaussian", "constant", "none",
                "uniformsqrtfanin", "gaussiansqrtfanin", "uniformsqrtfaninout")
_RANDOM_UNIFORM = ("uniform", "uniformsqrtfanin", "uniformsqrtfaninout")


def init_name(identifier):
    """The canonical init name for ``identifier`` ('gauss' -> 'gaussian', 'kUniform' -> 'uniform')."""
    if isinstance(identifier, str):
        key = identifier.strip().lower()
        key = INIT_ALIASES.get(key, key)
        if key in INIT_METHODS:
            return key
        if key.startswith("k") and key[1:] in INIT_METHODS:   # enum names such as 'kGaussian'
            return key[1:]
    raise ConfigError(
        "Invalid value for `init`. Expected one of %s (or the aliases 'gauss', 'const'). Received: %r\n"
        "help: e.g. Parameter(init='gaussian', std=0.01) or Dense(10, init='uniform')"
        % (", ".join("'%s'" % n for n in INIT_METHODS), identifier))


def get_init_values(identifier, **kwargs):
    """The field values for ``identifier`` (see the module doc); unknown init names raise ConfigError."""
    if identifier == "lrn2d":
        names, values = ("alpha", "beta", "knorm"), (1, 0.75, 1)
    elif identifier == "conv2d":
        names, values = ("stride", "pad"), (1, 0)
    else:
        kind = init_name(identifier)
        if kind == "none":
            return {}
        if kind in _RANDOM_UNIFORM:
            scale = kwargs.get("scale", 0.05 if kind == "uniform" else 1.0)
            names, values = ("low", "high"), (-scale, scale)
        elif kind == "gaussian":
            names, values = ("mean", "std"), (0, 0.01)
        elif kind == "gaussiansqrtfanin":
            names, values = ("mean", "std"), (0, 1)
        else:  # constant
            names, values = ("value",), (0,)
        if kind != "constant" and "value" in kwargs:
            names, values = names + ("value",), values + (kwargs["value"],)
    return {n: kwargs.get(n, v) for n, v in zip(names, values)}
