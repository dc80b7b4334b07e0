"""Fuzz singa.history.History.from_csv. Seeds: histories written with History.to_csv."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from singa.history import History  # noqa: E402

_DIR = tempfile.mkdtemp(prefix="singa-fuzz-hcsv-")
_PATH = os.path.join(_DIR, "history.csv")


def one_input(data: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(data)
    History.from_csv(_PATH)


def sample_histories():
    a = History()
    for s in range(4):
        a.on_step_end(None, s, {"loss": 2.0 / (s + 1), "acc": 0.1 * s})
    a.on_display(None, 3, {"loss": 0.9, "acc": 0.2})
    a.on_test_end(None, 4, "test", {"loss": 1.1, "acc": 0.5})
    a.on_test_end(None, 4, "validation", {"loss": float("nan"), "se": float("inf")})
    b = History()
    b.on_step_end(None, 0, {"se": 3.5})
    return [a, b, History()]


def seeds():
    out = []
    for i, h in enumerate(sample_histories()):
        path = h.to_csv(os.path.join(_DIR, "seed%d.csv" % i))
        with open(path, "rb") as f:
            out.append(f.read())
    return out


if __name__ == "__main__":
    from _runner import main
    main(one_input, seeds)
