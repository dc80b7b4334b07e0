"""Debian's ``fortunes`` (about 2.5 MB of real English prose) as text for char-rnn and rnnlm.

Where it is looked for, in order: ``data_dir`` given to a function here; the folder in
``$SINGA_FORTUNES_DIR``; Debian's place ``/usr/share/games/fortunes`` (``apt-get install fortunes``).
The first of those holding fortune files is used; none is a DataError saying where it looked.

Which files: the regular files of that folder whose names hold no dot (``art``, ``computers``, ...,
``zippy``), in sorted name order. Skipped: the ``.dat`` indexes (strfile's), the ``.u8`` names
(symbolic links to the same files), any other symbolic link, and every subfolder, so ``off/``
(Debian's fortunes-off, the offensive ones) is never read, even where it is installed.

The text: each file (UTF-8) is cut into fortunes at its ``%`` lines (a line holding only ``%``).
Each fortune is cleaned so that the text is plain ASCII prose: overstriking (``x<BS>y``, old
terminals' bold and underline) keeps the character printed last, and every character other than
tab, newline and printable ASCII (32..126) is dropped (about 50 of 2.5 million: bells and a few
mis-encoded quotes). Blank lines at either end of a fortune are dropped and a fortune that is
empty after cleaning is skipped. A part's text is its fortunes, each ending with a newline, one
blank line between two (``"\\n".join(f + "\\n" for f in fortunes)``). Its vocabulary is at most 97
characters, within char-rnn-job.conf's 101.

The parts, by a fixed rule on a fortune's position k (0, 1, ...) in that order: k % 20 == 18 is
``valid``, k % 20 == 19 is ``test``, every other one ``train`` (90 / 5 / 5 %, spread over all
files, so each part has every topic). ``held-out`` text means ``test``.

For rnnlm, ``words(part)`` is the same fortunes as rnnlmlib reads text: one sentence per line, words
separated by one space (see ``sentences``), and ``unk_rare(lines, vocab_size)`` keeps a fixed
vocabulary (the Penn Treebank way: rarer words become ``<unk>``).
"""
import collections
import os
import re

from singa import switches
from singa.errors import DataError

ENV_VAR = "SINGA_FORTUNES_DIR"
DEBIAN_DIR = "/usr/share/games/fortunes"
PARTS = ("train", "valid", "test")
HINT = ("install Debian's package: apt-get install fortunes (it puts the files in %s), or set %s to a "
        "folder holding fortune files" % (DEBIAN_DIR, ENV_VAR))


def part_of(k):
    """The part fortune number ``k`` (0-based, in the documented order) belongs to."""
    r = k % 20
    return "valid" if r == 18 else "test" if r == 19 else "train"


def source_files(folder):
    """The fortune files of ``folder``, sorted by name (see the module's docstring for which)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    out = []
    for name in names:
        path = os.path.join(folder, name)
        if "." not in name and not os.path.islink(path) and os.path.isfile(path):
            out.append(path)
    return out


def candidate_dirs(data_dir=None):
    dirs = [data_dir] if data_dir else []
    if switches.path(ENV_VAR):
        dirs.append(switches.path(ENV_VAR))
    dirs.append(DEBIAN_DIR)
    return dirs


def locate(data_dir=None):
    """The folder the fortunes are read from; a DataError with a help: hint when there is none."""
    looked = []
    for d in candidate_dirs(data_dir):
        looked.append(d)
        if source_files(d):
            return d
    raise DataError("the fortunes text was not found: no fortune files (files without a dot in their name) in %s."
                    "\nhelp: %s" % (", ".join(looked), HINT))


def available(data_dir=None):
    return any(source_files(d) for d in candidate_dirs(data_dir))


_OVERSTRIKE = re.compile(r"[^\n]\x08")
_NOT_PROSE = re.compile(r"[^\t\n\x20-\x7e]")


def clean(fortune):
    """One fortune's text as plain ASCII prose (overstriking resolved, other characters dropped)."""
    prev = None
    while prev != fortune:           # "_<BS>_<BS>x" nests: resolve until nothing changes
        prev, fortune = fortune, _OVERSTRIKE.sub("", fortune)
    lines = _NOT_PROSE.sub("", fortune).split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def _read(path):
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError("fortune file %s is not UTF-8 text (byte 0x%02x at offset %d).\nhelp: %s"
                        % (path, data[e.start], e.start, "reinstall it (apt-get install --reinstall fortunes), "
                           "or point %s at a folder of UTF-8 fortune files" % ENV_VAR)) from None


def split_fortunes(text):
    """The fortunes of one file's text: the pieces between its ``%`` lines."""
    pieces, cur = [], []
    for line in text.split("\n"):
        if line.rstrip("\r") == "%":
            pieces.append("\n".join(cur))
            cur = []
        else:
            cur.append(line)
    pieces.append("\n".join(cur))
    return pieces


def fortunes(data_dir=None):
    """Every cleaned, non-empty fortune, in the documented order."""
    out = []
    for path in source_files(locate(data_dir)):
        out.extend(c for c in (clean(p) for p in split_fortunes(_read(path))) if c)
    return out


def _check_part(part):
    if part not in PARTS + ("all",):
        raise DataError("Invalid value for `part` of singa.datasets.fortunes. Expected one of %s. Received: %r"
                        "\nhelp: part='train' (90%%), 'valid' or 'test' (5%% each), or 'all'"
                        % (", ".join(PARTS + ("all",)), part))


def part_fortunes(part="train", data_dir=None):
    _check_part(part)
    return [f for k, f in enumerate(fortunes(data_dir)) if part == "all" or part_of(k) == part]


def join(fortunes_list):
    """A part's text: each fortune ends with a newline; one blank line between two."""
    return "\n".join(f + "\n" for f in fortunes_list)


def load_text(part="train", data_dir=None):
    """The text of ``part`` ('train', 'valid', 'test' or 'all'), as described in the module's docstring."""
    return join(part_fortunes(part, data_dir))


# A run of . ! ? is tried from its first character only (the lookbehind): re-trying it from every
# character of the run was quadratic (a fortune of 40000 dots before a letter took 15 s).
_SENTENCE_END = re.compile(r"(?<![.!?])[.!?]+(?=\s|$)")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def sentences(fortune):
    """rnnlm's tokenisation of one fortune: lower case; a sentence ends at ``.``, ``!`` or ``?``
    followed by white space, and at the fortune's end; its words are the runs of letters and digits,
    with inner apostrophes kept (``don't``); everything else separates words. Sentences without
    words are dropped. Returns the sentences as lines of single-space separated words."""
    out = []
    for piece in _SENTENCE_END.split(fortune.lower()):
        ws = _WORD.findall(piece)
        if ws:
            out.append(" ".join(ws))
    return out


def words(part="train", data_dir=None):
    """The sentences (lines of words, see ``sentences``) of ``part``'s fortunes."""
    return [s for f in part_fortunes(part, data_dir) for s in sentences(f)]


def unk_rare(train_lines, vocab_size, *others):
    """Replace rare words by ``<unk>`` so that rnnlm's vocabulary (``</s>``, ``<unk>`` and the words
    kept) has at most ``vocab_size`` entries: the ``vocab_size - 2`` most frequent words of
    ``train_lines`` stay (ties: the word seen first in the text), every other word in ``train_lines``
    and in each of ``others`` becomes ``<unk>``. Returns the list of line lists, train first."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 3:
        raise DataError("Invalid value for `vocab_size` of fortunes.unk_rare(). Expected an int >= 3 (</s>, <unk> "
                        "and at least one word). Received: %r\nhelp: rnnlm-job.conf's vocab_size is 3720"
                        % (vocab_size,))
    counts = collections.Counter(w for line in train_lines for w in line.split())
    keep = {w for w, _ in counts.most_common(vocab_size - 2)}     # most_common orders ties by first seen
    return [[" ".join(w if w in keep else "<unk>" for w in line.split()) for line in lines]
            for lines in (train_lines,) + others]


def write_parts(out_dir, data_dir=None, vocab_size=None):
    """Write ``fortunes-{train,valid,test}.txt`` (char-rnn's text) and ``fortunes-words-{...}.txt``
    (rnnlm's: a sentence a line; with ``vocab_size``, rare words as ``<unk>``) into ``out_dir``.
    Returns {file name: number of characters or lines}."""
    all_f = fortunes(data_dir)
    by_part = {p: [f for k, f in enumerate(all_f) if part_of(k) == p] for p in PARTS}
    lines = [[s for f in by_part[p] for s in sentences(f)] for p in PARTS]
    if vocab_size is not None:
        lines = unk_rare(lines[0], vocab_size, *lines[1:])
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    for p, ls in zip(PARTS, lines):
        for name, text, n in (("fortunes-%s.txt" % p, join(by_part[p]), None),
                              ("fortunes-words-%s.txt" % p, "".join(s + "\n" for s in ls), len(ls))):
            with open(os.path.join(out_dir, name), "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
            written[name] = len(text) if n is None else n
    return written
