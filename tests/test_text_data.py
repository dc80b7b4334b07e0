# covers: singa/datasets/fortunes.py, singa/io/rnnlm_data.py (the fortunes text; rnnlm's vocabulary, classes, records)
"""Debian's fortunes as text (where, which files, cleaning, parts, words) and rnnlm's WordRecord data."""
import os

import numpy
import pytest

from singa import switches
from singa.datasets import fortunes as F
from singa.errors import DataError
from singa.io import rnnlm_data as R
from singa.io.create_data import main
from singa.io.kvfile import KVFileWriter, read_kvfile
from singa.proto import rnnlm_pb2

needs_fortunes = pytest.mark.skipif(not os.path.isfile(os.path.join(F.DEBIAN_DIR, "computers"))
                                    and not os.environ.get("CI"),
                                    reason="Debian's fortunes is not installed (run.sh installs it)")


def fortune_dir(tmp_path, files=None):
    d = tmp_path / "fortunes"
    d.mkdir()
    files = files or {"b": "second\n%\nthird one\nline two\n%\n", "a": "first\n%\n"}
    for name, text in files.items():
        (d / name).write_text(text)
    (d / "a.dat").write_bytes(b"\x00\x00\x00\x02 not text")          # strfile's index
    os.symlink("a", d / "a.u8")
    (d / "off").mkdir()
    (d / "off" / "rude").write_text("offensive\n%\n")                  # fortunes-off: never read
    (d / "notes.txt").write_text("a dotted name: not a fortune file\n%\n")
    return str(d)


def test_files_order_and_what_is_skipped(tmp_path):
    d = fortune_dir(tmp_path)
    assert [os.path.basename(p) for p in F.source_files(d)] == ["a", "b"]
    assert F.fortunes(d) == ["first", "second", "third one\nline two"]
    assert F.load_text("all", d) == "first\n\nsecond\n\nthird one\nline two\n"


def test_cleaning_overstrike_control_and_non_ascii():
    assert F.clean("_\x08B_\x08o_\x08l_\x08d and b\x08bo\x08ol\x08ld") == "Bold and bold"
    assert F.clean("\n\nbell\x07 caf\u00e9 \u00a3\tx\n\n  \n") == "bell caf \tx"
    assert F.clean("\n \n") == ""
    assert F.split_fortunes("a\n%\nb\r\n%\r\nc") == ["a", "b\r", "c"]


def test_parts_follow_the_position_rule(tmp_path):
    d = fortune_dir(tmp_path, {"x": "".join("f%d\n%%\n" % k for k in range(45))})
    assert F.part_fortunes("valid", d) == ["f18", "f38"]
    assert F.part_fortunes("test", d) == ["f19", "f39"]
    train = F.part_fortunes("train", d)
    assert len(train) == 41 and "f18" not in train and train[:3] == ["f0", "f1", "f2"]
    with pytest.raises(DataError, match="part") as e:
        F.load_text("held-out", d)
    assert "help:" in str(e.value)


def test_where_it_looks_env_var_and_the_missing_error(tmp_path, monkeypatch):
    d = fortune_dir(tmp_path)
    monkeypatch.setattr(F, "DEBIAN_DIR", str(tmp_path / "no-debian"))
    monkeypatch.delenv("SINGA_FORTUNES_DIR", raising=False)
    assert not F.available()
    with pytest.raises(DataError) as e:
        F.load_text()
    msg = str(e.value)
    assert "no-debian" in msg and "apt-get install fortunes" in msg and "SINGA_FORTUNES_DIR" in msg and "help:" in msg
    with switches.using(SINGA_FORTUNES_DIR=d):
        assert F.available() and F.locate() == d and F.load_text("all").startswith("first")
        (tmp_path / "o").mkdir()
        other = fortune_dir(tmp_path / "o", {"z": "from data_dir\n"})
        assert F.load_text("all", other) == "from data_dir\n"       # data_dir= comes first


def test_non_utf8_file_is_a_data_error(tmp_path):
    d = fortune_dir(tmp_path)
    with open(os.path.join(d, "c"), "wb") as f:
        f.write(b"ok\n%\nbad \xff byte\n")
    with pytest.raises(DataError, match=r"c is not UTF-8.*0xff at offset 9") as e:
        F.fortunes(d)
    assert "help:" in str(e.value)


def test_fortune_file_cut_inside_a_utf8_character_is_a_data_error(tmp_path):
    d = fortune_dir(tmp_path)
    with open(os.path.join(d, "c"), "wb") as f:
        f.write("caf\u00e9\n%\nna\u00efve".encode("utf-8")[:-3])       # the last 2-byte character cut in half
    with pytest.raises(DataError, match=r"c is not UTF-8 text \(byte 0xc3 at offset 10\)"):
        F.fortunes(d)


def test_sentences_and_unk():
    assert F.sentences("Don't PANIC!  It's 42... 'quoted' e.g. x.y\n\t\t-- Douglas Adams") == [
        "don't panic", "it's 42", "quoted e g", "x y douglas adams"]      # "e.g" does not end one: no space
    assert F.sentences("-- ... --") == []
    tr, te = F.unk_rare(["a b a c", "b a d"], 4, ["a e", "c"])
    assert tr == ["a b a <unk>", "b a <unk>"] and te == ["a <unk>", "<unk>"]   # kept: a (3), b (2)
    with pytest.raises(DataError, match="vocab_size"):
        F.unk_rare(["a"], 2)


def test_sentence_ends_take_linear_time_in_a_run_of_punctuation():
    # found while fuzzing (a timing probe beside fuzz_fortunes.py: libFuzzer's inputs of a few KiB are too
    # short to cross the 10 s bound): a run of . ! ? not followed by white space was tried again from each
    # of its characters, quadratic: 40000 dots before a letter took 15 s
    import time
    t0 = time.monotonic()
    assert F.sentences("." * 30000 + "x") == ["x"] and F.sentences("a" + "?!." * 3000 + "b c.") == ["a b c"]
    assert time.monotonic() - t0 < 1         # a few ms; 9 s before the fix
    assert F.sentences("Hi... there!? a.b. c ?!x ok. ") == ["hi", "there", "a b", "c x ok"]


@needs_fortunes
def test_the_real_fortunes_text():
    assert [os.path.basename(p) for p in F.source_files(F.DEBIAN_DIR)][:3] == ["art", "ascii-art", "computers"]
    all_f = F.fortunes(F.DEBIAN_DIR)
    assert len(all_f) > 15000
    text = {p: F.load_text(p, F.DEBIAN_DIR) for p in F.PARTS}
    assert len(text["train"]) > 2_000_000 and len(text["test"]) > 100_000 and len(text["valid"]) > 100_000
    vocab = set(F.load_text("all", F.DEBIAN_DIR))
    assert len(vocab) <= 101 and all(c in "\t\n" or " " <= c <= "~" for c in vocab)
    assert sum(len(F.part_fortunes(p, F.DEBIAN_DIR)) for p in F.PARTS) == len(all_f)
    test_words = F.words("test", F.DEBIAN_DIR)
    assert len(test_words) > 1000 and all(line == line.lower() and "  " not in line for line in test_words)


# -- rnnlm's create_data -----------------------------------------------------------------------------

def test_read_words_is_rnnlmlibs_readword():
    assert R.read_words(b"a b\n\nc\td \r\n  e") == [b"a", b"b", b"</s>", b"</s>", b"c", b"d", b"</s>"]
    assert R.read_words(b"x" * 150 + b" y\n") == [b"x" * 99, b"y", b"</s>"]
    assert R.read_words(b"") == [] and R.read_words(b"last") == []
    assert R.read_words(b"\xff\x00a \xc3\n") == [b"\xff\x00a", b"\xc3", b"</s>"]    # bytes, not text: no decoding


def _selection_sort(words, counts):
    """rnnlmlib's sortVocab, literally."""
    w, c = list(words), list(counts)
    for a in range(1, len(w)):
        m = a
        for b in range(a + 1, len(w)):
            if c[m] < c[b]:
                m = b
        w[a], w[m] = w[m], w[a]
        c[a], c[m] = c[m], c[a]
    return w, c


def test_vocab_sort_matches_rnnlmlibs_unstable_selection_sort():
    rng = numpy.random.default_rng(0)
    toks = [b"w%d" % k for k in rng.integers(0, 60, 2000)] + [b"</s>"] * 5
    rng.shuffle(toks)
    words, counts = R.build_vocab(toks)
    first = [b"</s>"] + list(dict.fromkeys(t for t in toks if t != b"</s>"))
    ref = _selection_sort(first, [toks.count(w) for w in first])
    assert (words, counts) == ref and words[0] == b"</s>" and counts[0] == 5
    # ties: the unstable sort is not "first seen first" -- the test above would miss that only if no ties
    assert len(set(counts[1:])) < len(counts) - 1


def _classes_reference(counts, class_size):
    total = sum(counts)
    a, df, out = 0, 0.0, []
    for c in counts:
        df = min(df + c / float(total), 1.0)
        out.append(a)
        if df > (a + 1) / float(class_size):
            if a < class_size - 1:
                a += 1
    return out


@pytest.mark.parametrize("class_size", [1, 3, 10])
def test_classes_are_contiguous_frequency_ranges(class_size):
    counts = [40, 30, 30, 20, 10, 5, 5, 3, 2, 1, 1, 1]
    cls, start, end = R.assign_classes(counts, class_size)
    assert cls == _classes_reference(counts, class_size) and cls == sorted(cls)
    for c in set(cls):
        assert [i for i, k in enumerate(cls) if k == c] == list(range(start[c], end[c]))
    assert R.assign_classes([5, 5, 5], 2)[0] == [0, 0, 1]
    cls, start, end = R.assign_classes([5, 5], 2)       # df reaches 1/2 exactly: not past it, class 1 is empty
    assert cls == [0, 0] and (start[1], end[1]) == (0x7f7f7f7f, 0)


def _texts(tmp_path):
    paths = {}
    for part, text in (("train", "the cat sat\nthe dog sat on the cat\n"), ("valid", "the bird sat\n"),
                       ("test", "a cat\nthe")):
        paths[part] = str(tmp_path / (part + ".txt"))
        with open(paths[part], "w") as f:
            f.write(text)
    return paths


def test_records_round_trip(tmp_path, capsys):
    p = _texts(tmp_path)
    out = tmp_path / "rnnlm"
    assert main(["rnnlm", "-train", p["train"], "-valid", p["valid"], "-test", p["test"], "-class_size", "3",
                 "-out", str(out)]) == 0
    assert "6 words in 3 classes" in capsys.readouterr().out
    # train: </s> x2, the x3, cat x2, sat x2, dog, on -> sorted: </s>(0) the cat sat dog on
    recs = read_kvfile(out / "train_data.bin")
    assert [k for k, _ in recs] == [b"%05d" % i for i in range(11)]
    parsed = [rnnlm_pb2.WordRecord.FromString(v) for _, v in recs]
    assert [r.word for r in parsed[:4]] == ["the", "cat", "sat", "</s>"]
    rows, words = R.read_word_records(out / "train_data.bin")
    assert rows.shape == (11, 4) and words[:4] == ["the", "cat", "sat", "</s>"]
    vocab = dict(zip(words, rows[:, 0]))
    assert vocab == {"</s>": 0, "the": 1, "cat": 2, "sat": 3, "dog": 4, "on": 5}
    cls, start, end = R.assign_classes([2, 3, 2, 2, 1, 1], 3)
    for (wi, ci, cs, ce) in rows:
        assert ci == cls[wi] and (cs, ce) == (start[ci], end[ci]) and cs <= wi < ce
    vrows, vwords = R.read_word_records(out / "valid_data.bin")
    assert vwords == ["the", "sat", "</s>"]                               # "bird" is not in train: skipped
    trows, twords = R.read_word_records(out / "test_data.bin")
    assert twords == ["cat", "</s>"]                                      # "a" skipped, the last "the" dropped (EOF)


def test_rnnlm_errors(tmp_path):
    p = _texts(tmp_path)
    with pytest.raises(DataError, match="class_size") as e:
        R.create_rnnlm_data(p["train"], p["valid"], p["test"], class_size=7, out_dir=str(tmp_path))
    assert "at most the vocabulary's size, 6" in str(e.value) and "help:" in str(e.value)
    with pytest.raises(DataError, match="class_size"):
        R.create_rnnlm_data(p["train"], p["valid"], p["test"], class_size=0, out_dir=str(tmp_path))
    with pytest.raises(DataError, match="`valid`.*missing") as e:
        R.create_rnnlm_data(p["train"], str(tmp_path / "missing"), p["test"], out_dir=str(tmp_path))
    empty = tmp_path / "empty.txt"
    empty.write_text("   ")
    with pytest.raises(DataError, match="at least one word"):
        R.create_rnnlm_data(str(empty), p["valid"], p["test"], out_dir=str(tmp_path))
    assert main(["rnnlm", "-train", str(empty), "-valid", p["valid"], "-test", p["test"]]) == 1


def test_corrupt_record_files_are_data_errors(tmp_path):
    p = _texts(tmp_path)
    R.create_rnnlm_data(p["train"], p["valid"], p["test"], class_size=2, out_dir=str(tmp_path))
    good = tmp_path / "train_data.bin"
    data = good.read_bytes()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data[:-3])
    with pytest.raises(DataError, match="cut.bin"):
        R.read_word_records(cut)
    bad = tmp_path / "bad.bin"
    with KVFileWriter(str(bad)) as w:
        w.insert("00000", rnnlm_pb2.WordRecord(word="x", word_index=0, class_index=0, class_start=0,
                                               class_end=1).SerializeToString())
        w.insert("00001", b"\xff\xff\xff")
    with pytest.raises(DataError, match=r"record #1 \(key b?'00001'\) is not a WordRecord"):
        R.read_word_records(bad)
    out_of_range = tmp_path / "range.bin"
    with KVFileWriter(str(out_of_range)) as w:
        w.insert("00000", rnnlm_pb2.WordRecord(word="x", word_index=5, class_index=0, class_start=0,
                                               class_end=3).SerializeToString())
    with pytest.raises(DataError, match=r"word_index 5.*class range \[0, 3\)") as e:
        R.read_word_records(out_of_range)
    assert "help:" in str(e.value)


def test_word_record_whose_word_is_not_utf8_is_a_data_error(tmp_path):
    # found by the fuzz replay: protobuf hands a proto2 string field back as bytes when its bytes are not UTF-8,
    # so read_word_records returned a bytes word among the str ones
    p = tmp_path / "word.bin"
    with KVFileWriter(str(p)) as w:
        w.insert("00000", rnnlm_pb2.WordRecord(word="ok", word_index=0, class_index=0, class_start=0,
                                               class_end=2).SerializeToString())
        w.insert("00001", b"\x0a\x03ca\xff" + rnnlm_pb2.WordRecord(word_index=1, class_index=0, class_start=0,
                                                                   class_end=2).SerializeToString())
    with pytest.raises(DataError, match=r"(?s)word.bin: record #1 \(key b?'00001'\) has a word that is not UTF-8; "
                                        r"expected a UTF-8 string. Received: b'ca\\xff' \(byte 0xff at offset 2\)"
                                        r".*help: ") as e:
        R.read_word_records(p)
    assert "singa-create-data rnnlm" in str(e.value)
    # what create_rnnlm_data writes for a byte that is not UTF-8 reads back: U+FFFD
    R.write_records(str(p), [b"ca\xff"], {b"ca\xff": 0}, [0], [0], [1])
    assert R.read_word_records(p)[1] == ["ca\ufffd"]


def test_word_records_cut_anywhere_or_empty_are_the_records_before_the_cut_or_a_data_error(tmp_path):
    p = _texts(tmp_path)
    R.create_rnnlm_data(p["train"], p["valid"], p["test"], class_size=2, out_dir=str(tmp_path))
    data = (tmp_path / "train_data.bin").read_bytes()
    rows, words = R.read_word_records(tmp_path / "train_data.bin")
    cut = tmp_path / "cut.bin"
    whole = 0
    for n in range(len(data)):
        cut.write_bytes(data[:n])
        try:
            r, w = R.read_word_records(cut)
        except DataError as e:
            assert "cut.bin" in str(e) and "help:" in str(e)
            continue
        whole += 1          # cut at a record boundary: the records before it
        numpy.testing.assert_array_equal(r, rows[:len(r)])
        assert w == words[:len(w)] and 0 < len(r) < len(rows)
    assert whole == len(rows) - 1
    cut.write_bytes(b"")
    with pytest.raises(DataError, match=r"cut.bin is empty"):
        R.read_word_records(cut)


def test_fortunes_subcommand_then_rnnlm_with_vocab_size(tmp_path, capsys):
    d = fortune_dir(tmp_path, {"x": "".join("Fortune number %d. The end!\n%%\n" % k for k in range(40))})
    out = tmp_path / "texts"
    assert main(["fortunes", str(out), "-vocab_size", "6", "-data_dir", d]) == 0
    names = sorted(os.listdir(out))
    assert names == ["fortunes-%s.txt" % p for p in ("test", "train", "valid")] + \
        ["fortunes-words-%s.txt" % p for p in ("test", "train", "valid")]
    train = (out / "fortunes-words-train.txt").read_text().split("\n")
    assert train[:2] == ["fortune number <unk>", "the end"]
    w = {p: str(out / ("fortunes-words-%s.txt" % p)) for p in F.PARTS}
    s = R.create_rnnlm_data(w["train"], w["valid"], w["test"], class_size=2, out_dir=str(tmp_path / "rn"))
    assert s["vocab_size"] == 6 and s["test_data.bin"]["skipped"] == 0      # </s> <unk> fortune number the end
    assert "wrote" in capsys.readouterr().out


@needs_fortunes
def test_real_fortunes_give_rnnlm_job_confs_vocabulary(tmp_path):
    F.write_parts(str(tmp_path), F.DEBIAN_DIR, vocab_size=3720)
    w = {p: str(tmp_path / ("fortunes-words-%s.txt" % p)) for p in F.PARTS}
    s = R.create_rnnlm_data(w["train"], w["valid"], w["test"], class_size=100, out_dir=str(tmp_path))
    assert (s["vocab_size"], s["nclass"]) == (3720, 100)                 # rnnlm-job.conf's vocab_size, nclass
    rows, _ = R.read_word_records(tmp_path / "test_data.bin")
    assert len(rows) > 20000 and rows[:, 0].max() < 3720 and rows[:, 1].max() == 99
