# covers: singa/utils/arguments.py, singa/errors.py (invalid, Stated)
"""The user API's argument checks: each gives the value as the JobProto takes it, or the standard
"Invalid value for `x` of owner. Expected ... Received: ..." ConfigError."""
import numpy as np
import pytest

from singa.errors import ConfigError, DataError, Stated, invalid
from singa.proto import job_pb2
from singa.utils.arguments import alg_value, check_job_kwargs, gpu_ids, paths, positive_int, short


def test_invalid_names_the_owner_and_states_words_as_they_are():
    e = invalid("batch_size", "a positive integer", 0, where="fit()", hint="batch_size=32")
    assert isinstance(e, ConfigError)
    assert str(e) == ("Invalid value for `batch_size` of fit(). Expected a positive integer. Received: 0\n"
                      "help: batch_size=32")
    assert str(invalid("x", "a path", "a")) == "Invalid value for `x`. Expected a path. Received: 'a'"
    assert str(invalid("x", "y", Stated("both"), cls=DataError)).endswith("Received: both")
    assert isinstance(invalid("x", "y", 1, cls=DataError), DataError)


def test_positive_int():
    assert positive_int(3, "n") == 3 and type(positive_int(np.int64(2), "n")) is int
    for bad in (0, -1, True, 2.0, "3", None):
        with pytest.raises(ConfigError, match=r"Invalid value for `n` of Dense\. Expected a positive integer"):
            positive_int(bad, "n", "Dense")


def test_paths_gpu_ids_alg_and_short():
    assert paths(None, "p") == [] and paths("a", "p") == ["a"] and paths(("a", "b"), "p") == ["a", "b"]
    with pytest.raises(ConfigError, match="Expected a path or a list of paths"):
        paths(["a", 1], "p")
    assert gpu_ids(1) == [1] and gpu_ids([0, 2]) == [0, 2]
    for bad in (-1, [True], "0", 1.0):
        with pytest.raises(ConfigError, match="Invalid value for `device`"):
            gpu_ids(bad)
    assert alg_value("BP", "fit") == alg_value("kBP", "fit") == alg_value(job_pb2.kBP, "fit") == job_pb2.kBP
    assert alg_value("cd", "fit") == job_pb2.kCD
    with pytest.raises(ConfigError, match=r"(?s)of evaluate\(\).*batch_size=64"):
        alg_value(64, "evaluate")
    assert short(np.zeros((2, 3))) == "array of shape (2, 3)" and len(short("x" * 100)) == 60


def test_job_kwargs_are_job_fields_or_the_extras():
    check_job_kwargs("fit()", {"disp_freq": 1, "batch_size": 2}, ("batch_size",))
    with pytest.raises(ConfigError, match=r"(?s)`disp_frq` \(a keyword argument of fit\(\)\).*batch_size"):
        check_job_kwargs("fit()", {"disp_frq": 1}, ("batch_size",))
