"""SINGA's "textfile" store and the CSV lines kCSVInput reads (SINGA-V0.md 5.1, 5.2).

A textfile store holds one value per line; a value's key is its line number (0-based, as a
decimal string) and keys given to the writer are ignored. kCSVInput parses each value as
``label<sep>v1<sep>v2...`` (``has_label``, default true; separator default ",").
"""
import os

import numpy

from singa.errors import ConfigError, DataError
from singa.io.atomic import PublishOnClose

_HINT = "check the path (relative to the working directory %s) and the file"


class TextFileReader:
    """Iterate ``(key, line)`` over a text file: key = line number as a string, line without its newline."""

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise DataError("textfile %s does not exist.\nhelp: %s" % (self.path, _HINT % os.getcwd()))
        self._lines = None

    def lines(self):
        if self._lines is None:
            try:
                with open(self.path, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise DataError("textfile %s cannot be read (%s).\nhelp: check the file's permissions" % (
                    self.path, e.strerror or e)) from None
            lines = decode_text_store(data, self.path).split("\n")
            if lines and lines[-1] == "":
                lines.pop()    # the newline that ends the last line starts no record
            self._lines = [l[:-1] if l.endswith("\r") else l for l in lines]
        return self._lines

    def __iter__(self):
        for i, line in enumerate(self.lines()):
            yield str(i), line

    def count(self):
        return len(self.lines())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def decode_text_store(data, source):
    """The UTF-8 text of a textfile store; a byte that is not UTF-8 is a DataError naming the file,
    the line and the byte offset (SINGA wrote what it was given, so an old store may hold Latin-1)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError("textfile %s line %d (byte offset %d) holds byte 0x%02x, which is not UTF-8.\nhelp: "
                        "convert the file to UTF-8, e.g. `iconv -f latin1 -t utf-8 old > new`" % (
                            source, line, e.start, data[e.start])) from None


class TextFileWriter(PublishOnClose):
    """Write one value per line; ``mode='create'`` publishes the file atomically on close."""

    def __init__(self, path, mode="create"):
        if mode not in ("create", "append"):
            raise ConfigError("Invalid value for `mode`. Expected 'create' or 'append'. Received: %r" % (mode,))
        self.path = os.fspath(path)
        if mode == "create":
            self._f = self._open_temporary("w", encoding="utf-8", newline="\n")
        else:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8", newline="\n")
        self.count = 0
        self.closed = False

    def insert(self, key, value):
        """Append ``value`` as a line (``key`` is ignored, as in SINGA). False for an empty value."""
        if isinstance(value, (bytes, bytearray)):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ConfigError("Invalid value for `value` of record %r. Expected UTF-8 text. Received: %r "
                                  "(byte %d is not UTF-8).\nhelp: a textfile store holds text lines; decode the "
                                  "value first or use a kvfile store" % (key, bytes(value[:40]), e.start)) from None
        if not value or "\n" in value:
            return False
        self._f.write(value + "\n")
        self.count += 1
        return True

    def flush(self):
        self._f.flush()

    def close(self):
        if self.closed:
            return
        self._finish()

    def abort(self):
        if self.closed:
            return
        self._discard()


def format_csv_record(values, label=None, separator=","):
    """A kCSVInput/kCSVOutput line: ``[label,]v1,...,vn``."""
    vals = separator.join(repr(float(v)) if not float(v).is_integer() else str(int(v))
                          for v in numpy.asarray(values).reshape(-1))
    return vals if label is None else "%d%s%s" % (int(label), separator, vals)


def parse_csv_records(lines, count=None, has_label=True, separator=",", source="<csv>", first_line=0):
    """(values float32 (N, count), labels int32 (N,) or None) from CSV lines.

    Blank lines are skipped. Every row needs ``count`` values (after the label); a row with
    another number of fields, a non-numeric field or a non-integer label is a DataError
    naming the source and its line number.
    """
    if not separator:
        raise DataError("Invalid value for `separator`. Expected a non-empty string. Received: %r" % (separator,))
    rows, where = [], []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        rows.append(line.split(separator))
        where.append(first_line + i)
    if not rows:
        return numpy.zeros((0, count or 0), numpy.float32), (numpy.zeros(0, numpy.int32) if has_label else None)
    width = (count + 1 if has_label else count) if count is not None else len(rows[0])
    for r, ln in zip(rows, where):
        if len(r) != width:
            got = len(r) - 1 if has_label else len(r)
            raise DataError(
                "line %d of %s has %d value(s)%s; expected %d%s.\nhelp: check `separator` (%r) and `has_label`, "
                "and set `shape` in store_conf to the number of values per line" % (
                    ln + 1, source, got, " after the label" if has_label else "", width - 1 if has_label else width,
                    " (the product of store_conf.shape)" if count is not None else " like the first line",
                    separator))
    try:
        arr = numpy.array(rows, dtype=numpy.float64)
    except ValueError:
        for r, ln in zip(rows, where):
            for f in r:
                try:
                    float(f)
                except ValueError:
                    raise DataError("line %d of %s has a field that is not a number: %r.\nhelp: check `separator` "
                                    "(%r) and the file" % (ln + 1, source, f, separator)) from None
        # numpy refused a field Python's float() takes: still the file's fault, never a bare ValueError
        raise DataError("%s holds a field numpy cannot read as a number.\nhelp: write plain decimal numbers, "
                        "e.g. with format_csv_record" % source) from None
    if not has_label:
        return arr.astype(numpy.float32), None
    lab = arr[:, 0]
    # |label| < 2^31 too: inf or 1e10 would be cast to a garbage int32 class, with only a warning
    with numpy.errstate(invalid="ignore"):
        bad = numpy.flatnonzero((lab != numpy.floor(lab)) | ~(numpy.abs(lab) < 2 ** 31))
    if bad.size:
        raise DataError("line %d of %s has a label that is not an integer below 2^31: %r.\nhelp: put the "
                        "integer class label first on every line, or set `has_label: false`" % (
                            where[bad[0]] + 1, source, rows[bad[0]][0]))
    return numpy.ascontiguousarray(arr[:, 1:], dtype=numpy.float32), lab.astype(numpy.int32)


def read_csv_file(path, count=None, has_label=True, separator=","):
    """Parse a whole CSV textfile store; see parse_csv_records."""
    with TextFileReader(path) as r:
        return parse_csv_records(r.lines(), count, has_label, separator, source=r.path)
