"""Fuzz the fortunes text parser (singa/datasets/fortunes.py): a fortune file read (``_read``, UTF-8),
cut at its ``%`` lines (``split_fortunes``), cleaned (``clean``: overstriking, non-prose characters,
blank end lines), tokenised for rnnlm (``sentences``, ``unk_rare``), the whole ``fortunes(data_dir)``
and ``load_text`` path over a folder holding the file; and rnnlmlib's tokeniser
(``singa.io.rnnlm_data.read_words``) on the raw bytes and on the sentences as rnnlm reads them.

Seeds: fortune files as Debian ships them (``%`` lines, overstrike, a tab, CRLF, UTF-8 quotes, a
bell), written as text; the input's first byte also picks unk_rare's vocabulary size.
"""
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from singa.datasets import fortunes as F  # noqa: E402
from singa.io import rnnlm_data  # noqa: E402

_DIR = tempfile.mkdtemp(prefix="singa-fuzz-fortunes-")
_FOLDER = os.path.join(_DIR, "fortunes")
os.makedirs(_FOLDER)
_PATH = os.path.join(_FOLDER, "input")          # no dot in the name: a fortune file
_PROSE = re.compile(r"[\t\n\x20-\x7e]*\Z")
_LINE = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*(?: [a-z0-9]+(?:'[a-z0-9]+)*)*\Z")


def one_input(data: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(data)
    tokens = rnnlm_data.read_words(data)
    assert all(t and len(t) <= rnnlm_data.MAX_WORD and not re.search(rb"[ \t\r\n]", t) or t == rnnlm_data.EOS
               for t in tokens), tokens[:20]
    text = F._read(_PATH)                        # a DataError when it is not UTF-8
    cleaned = []
    for piece in F.split_fortunes(text):
        c = F.clean(piece)
        assert _PROSE.match(c), repr(c[:200])
        lines = c.split("\n")
        assert not c or (lines[0].strip() and lines[-1].strip()), repr(c[:200])
        if c:
            cleaned.append(c)
        for s in F.sentences(c) + F.sentences(piece):      # the raw piece too: any str must tokenise
            assert _LINE.match(s), repr(s[:200])
    assert F.fortunes(_FOLDER) == cleaned
    assert F.load_text("all", _FOLDER) == F.join(cleaned)
    lines = [s for c in cleaned for s in F.sentences(c)]
    vocab_size = 3 + (data[0] % 8 if data else 0)
    kept, = F.unk_rare(lines, vocab_size)
    assert len({w for line in kept for w in line.split()}) <= vocab_size - 1        # </s> is not in the text
    words = rnnlm_data.read_words("".join(s + "\n" for s in kept).encode("ascii"))
    assert words.count(rnnlm_data.EOS) == len(kept)


def seeds():
    files = [
        "A fortune.\n%\nTwo lines,\n\tindented.  The end!\n%\n\n%\nlast one, no newline",
        "%\n%\n\"Don't panic.\" -- D. Adams\r\n%\r\nW\bWh\bho\bo?  _\bu_\bn_\bd_\be_\br\n%\n",
        "\u201cQuoted\u201d caf\xe9\x07 bell... end?!\nI.B.M. 3.14 isn't 42 ... ok\n%\n",
    ]
    return [f.encode("utf-8") for f in files] + [b"\x05" + files[0].encode("ascii")]


if __name__ == "__main__":
    from _runner import main
    main(one_input, seeds)
