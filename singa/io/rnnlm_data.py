"""SINGA's examples/rnnlm/create_data (rnnlmlib-0.4's vocabulary and classes): WordRecord kvfiles.

Tokens (rnnlmlib's ``readWord``, on bytes): '\\r' is skipped; ' ', '\\t' and '\\n' separate words; a
'\\n' is also the token ``</s>`` (so a line ``a b`` gives ``a b </s>``, a blank line ``</s>``); a word
keeps its first 99 bytes; a last word with no white space after it, at the end of the file, is dropped.

Vocabulary, from the train file only: index 0 is ``</s>``, then the words in order of first
appearance, each with its count; then rnnlmlib's selection sort of indices 1..V-1 by descending count
(not stable: the tie order is that exact algorithm's). Classes by cumulative frequency (rnnlmlib's
``old_classes``): walking the sorted vocabulary, ``df += count / total``; a word whose df passes
``(a + 1) / class_size`` closes class ``a``. Each class is a contiguous index range
[class_start, class_end).

Records: for every token of a file that is in the train vocabulary (others are skipped, as SINGA
did: there is no ``<unk>`` unless the text has one), a ``WordRecord{word, word_index, class_index,
class_start, class_end}`` under the key ``"%05d"`` of its number in that file (0, 1, ...). The files:
``train_data.bin``, ``valid_data.bin``, ``test_data.bin``. SINGA wrote no vocabulary file; this also
writes none. A word's text is its bytes as UTF-8 (a byte that is not UTF-8 becomes U+FFFD, since
a protobuf string must be UTF-8).
"""
import os

import numpy

from singa.errors import DataError
from singa.io.kvfile import KVFileReader, KVFileWriter

EOS = b"</s>"
MAX_WORD = 99                      # rnnlmlib's MAX_STRING 100, less the terminating 0
RECORD_FILES = {"train": "train_data.bin", "valid": "valid_data.bin", "test": "test_data.bin"}


def read_words(data):
    """The tokens of ``data`` (bytes) as rnnlmlib's readWord returns them, in order."""
    out = []
    word = bytearray()
    for ch in data.replace(b"\r", b""):
        if ch in (32, 9, 10):
            if word:
                out.append(bytes(word[:MAX_WORD]))
                word.clear()
            if ch == 10:
                out.append(EOS)
        else:
            word.append(ch)
    return out                     # a pending word at EOF is dropped, as readWord's caller drops it


def _read_file(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise DataError("Invalid value for `%s` of singa-create-data rnnlm. Expected a readable text file. "
                        "Received: %r (%s)\nhelp: pass the text file's path, e.g. -%s fortunes-words-%s.txt"
                        % (what, path, e.strerror or e, what, what)) from None


def build_vocab(train_tokens):
    """(words, counts) of the train tokens: ``</s>`` first, then rnnlmlib's sort by descending count."""
    index = {EOS: 0}
    words, counts = [EOS], [0]
    for w in train_tokens:
        i = index.get(w)
        if i is None:
            index[w] = len(words)
            words.append(w)
            counts.append(1)
        else:
            counts[i] += 1
    cn = numpy.asarray(counts, dtype=numpy.int64)
    order = numpy.arange(len(words))
    for a in range(1, len(words) - 1):
        # rnnlmlib: max=a; for b>a: if cn[max] < cn[b]: max=b; swap(a, max) -- the first largest count
        m = a + int(numpy.argmax(cn[a:]))
        if m != a:
            cn[a], cn[m] = cn[m], cn[a]
            order[a], order[m] = order[m], order[a]
    return [words[i] for i in order], [int(c) for c in cn]


def assign_classes(counts, class_size):
    """(class_index per word, class_start per class, class_end per class), rnnlmlib's old_classes rule."""
    total = float(sum(counts))
    cls = []
    a, df = 0, 0.0
    for c in counts:
        df += c / total
        if df > 1:
            df = 1.0
        cls.append(a)
        if df > (a + 1) / float(class_size) and a < class_size - 1:
            a += 1
    start = [0x7f7f7f7f] * class_size
    end = [0] * class_size
    for i, c in enumerate(cls):
        start[c] = min(start[c], i)
        end[c] = max(end[c], i + 1)
    return cls, start, end


def _check_class_size(class_size):
    if isinstance(class_size, bool) or not isinstance(class_size, int) or class_size < 1:
        raise DataError("Invalid value for `class_size` of singa-create-data rnnlm. Expected an int >= 1. "
                        "Received: %r\nhelp: -class_size 100 (SINGA's Makefile; rnnlm-job.conf's nclass)"
                        % (class_size,))


def write_records(path, tokens, vocab_index, cls, start, end):
    """One WordRecord per in-vocabulary token into the kvfile ``path``; returns (written, skipped)."""
    from singa.proto import rnnlm_pb2
    n = skipped = 0
    with KVFileWriter(path) as w:
        for t in tokens:
            i = vocab_index.get(t)
            if i is None:
                skipped += 1
                continue
            c = cls[i]
            rec = rnnlm_pb2.WordRecord(word=t.decode("utf-8", errors="replace"), word_index=i, class_index=c,
                                       class_start=start[c], class_end=end[c])
            w.insert("%05d" % n, rec.SerializeToString())
            n += 1
    return n, skipped


def create_rnnlm_data(train, valid, test, class_size=100, out_dir="."):
    """SINGA's create_data: WordRecord kvfiles for the three text files, into ``out_dir``.
    Returns a summary dict: vocab_size, nclass, and per file the records written and tokens skipped."""
    _check_class_size(class_size)
    texts = {k: _read_file(p, k) for k, p in (("train", train), ("valid", valid), ("test", test))}
    tokens = {k: read_words(v) for k, v in texts.items()}
    if not tokens["train"]:
        raise DataError("Invalid value for `train` of singa-create-data rnnlm. Expected a text with at least one "
                        "word. Received: %r (no words)\nhelp: one sentence a line, words separated by spaces"
                        % (train,))
    words, counts = build_vocab(tokens["train"])
    if class_size > len(words):
        raise DataError("Invalid value for `class_size` of singa-create-data rnnlm. Expected at most the "
                        "vocabulary's size, %d. Received: %d\nhelp: a smaller -class_size (classes with no "
                        "word would be empty ranges)" % (len(words), class_size))
    cls, start, end = assign_classes(counts, class_size)
    vocab_index = {w: i for i, w in enumerate(words)}
    os.makedirs(out_dir, exist_ok=True)
    summary = {"vocab_size": len(words), "nclass": class_size}
    for part, name in RECORD_FILES.items():
        n, skipped = write_records(os.path.join(out_dir, name), tokens[part], vocab_index, cls, start, end)
        summary[name] = {"records": n, "skipped": skipped}
    return summary


def read_word_records(path):
    """The WordRecords of a kvfile, checked: a numpy (N, 4) int array of rows [word_index, class_index,
    class_start, class_end] (kData's layout) and the words. A record that does not parse or breaks
    class_start <= word_index < class_end, or whose word is not UTF-8, is a DataError naming the file
    and the record."""
    from google.protobuf.message import DecodeError
    from singa.proto import rnnlm_pb2
    rows, words = [], []
    with KVFileReader(path) as r:
        keys, values = r.read_all()
    for k, (key, v) in enumerate(zip(keys, values)):
        rec = rnnlm_pb2.WordRecord()
        try:
            rec.ParseFromString(v)
        except DecodeError as e:
            raise DataError("kvfile %s: record #%d (key %r) is not a WordRecord (%s).\nhelp: write the file again "
                            "with singa-create-data rnnlm" % (path, k, key, e)) from None
        row = (rec.word_index, rec.class_index, rec.class_start, rec.class_end)
        if not (0 <= rec.class_start <= rec.word_index < rec.class_end and rec.class_index >= 0):
            raise DataError("kvfile %s: record #%d (key %r) has word_index %d, class_index %d, class range [%d, %d); "
                            "expected class_start <= word_index < class_end and class_index >= 0.\nhelp: write the "
                            "file again with singa-create-data rnnlm" % ((path, k, key) + row))
        word = rec.word
        if not isinstance(word, str):
            # protobuf (upb, proto2) gives a string field back as bytes when its bytes are not UTF-8;
            # create_rnnlm_data writes UTF-8 only (U+FFFD for a byte that is not), so this is corruption
            try:
                word = word.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError("kvfile %s: record #%d (key %r) has a word that is not UTF-8; expected a UTF-8 "
                                "string. Received: %r (byte 0x%02x at offset %d)\nhelp: write the file again "
                                "with singa-create-data rnnlm" % (path, k, key, word[:40], word[e.start], e.start)
                                ) from None
        rows.append(row)
        words.append(word)
    return numpy.asarray(rows, dtype=numpy.int64).reshape(-1, 4), words
