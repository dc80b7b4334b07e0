"""Fuzz SINGA's textfile/CSV store: singa.io.textfile.read_csv_file (TextFileReader + the
kCSVInput line parser), with and without a label and a fixed value count.

Seeds: stores written with TextFileWriter and format_csv_record.
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from singa.errors import SingaError  # noqa: E402
from singa.io.textfile import TextFileWriter, format_csv_record, read_csv_file  # noqa: E402

_DIR = tempfile.mkdtemp(prefix="singa-fuzz-csv-")
_PATH = os.path.join(_DIR, "store.csv")


# The reader's settings: (count, has_label, separator); every input is read with each.
SETTINGS = ((None, True, ","), (None, False, ","), (3, True, ","), (None, True, ";"))


def one_input(data: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(data)
    error = None
    for count, has_label, separator in SETTINGS:
        try:
            read_csv_file(_PATH, count=count, has_label=has_label, separator=separator)
            return
        except SingaError as e:      # the oracle's own answer; try the next settings
            error = e
    raise error


def _store(lines):
    path = os.path.join(_DIR, "seed.csv")
    w = TextFileWriter(path)
    for i, line in enumerate(lines):
        w.insert(str(i), line)
    w.close()
    with open(path, "rb") as f:
        return f.read()


def seeds():
    return [
        _store([format_csv_record([0.5, -1, 2.25], label=i % 3) for i in range(4)]),
        _store([format_csv_record([1, 2, 3, 4, 5]) for _ in range(3)]),
        _store([format_csv_record([0.1, 0.2, 0.3], label=1)]),
        _store([format_csv_record([7, 8], label=2, separator=";"), format_csv_record([9, 1e-3], label=0, separator=";")]),
    ]


if __name__ == "__main__":
    from _runner import main
    main(one_input, seeds)
