import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONF_DIR = os.path.join(ROOT, "examples", "singa-v0")
FASHION_DIR = "/usr/share/datasets/fashion-mnist"

if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from singa.backends import gpu_count  # noqa: E402  (the tests import it from here)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test with the working directory in a fresh temporary folder (SINGA paths are CWD-relative)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SINGA_CACHE", str(tmp_path / "cache"))
    return tmp_path


# Device kinds the device tests run on: the strict CuPy stand-in always, real CuPy where a GPU is.
DEVICE_KINDS = ["standin"] + (["cupy"] if gpu_count() > 0 else [])


def retrain_last_checkpoint(text, last):
    """Train job conf ``text``, remove its last checkpoint ``last`` (and its state file), train again
    with ``resume``: (the first run's params in ``last``, the resumed run's Results, the params the
    resumed run wrote to ``last``). A bit-identical resume gives equal params."""
    from singa.driver import Driver
    from singa.io.checkpoint import read_checkpoint
    from singa.proto import parse_job_conf
    Driver(verbose=False).train(parse_job_conf(text))
    full = {n: v for n, v, _ in read_checkpoint(str(last))}
    os.remove(last)
    os.remove(str(last) + ".state.npz")
    res = Driver(verbose=False).train(parse_job_conf(text), resume=True)
    return full, res, {n: v for n, v, _ in read_checkpoint(str(last))}
