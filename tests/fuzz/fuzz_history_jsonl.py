"""Fuzz singa.history.History.from_jsonl. Seeds: histories written with History.to_jsonl."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from singa.history import History  # noqa: E402
from fuzz_history_csv import sample_histories  # noqa: E402

_DIR = tempfile.mkdtemp(prefix="singa-fuzz-hjsonl-")
_PATH = os.path.join(_DIR, "history.jsonl")


def one_input(data: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(data)
    History.from_jsonl(_PATH)


def seeds():
    out = []
    for i, h in enumerate(sample_histories()):
        path = h.to_jsonl(os.path.join(_DIR, "seed%d.jsonl" % i))
        with open(path, "rb") as f:
            out.append(f.read())
    return out


if __name__ == "__main__":
    from _runner import main
    main(one_input, seeds)
