"""Fuzz rnnlm's WordRecord reader (singa.io.rnnlm_data.read_word_records): the kvfile underneath,
each value as a WordRecord, the class-range check, and the (N, 4) rows kData reads.

Seeds: files written with the module's own writers (create_rnnlm_data's train/valid/test files,
write_records with a hand-made vocabulary holding a non-ASCII word and an empty one).
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from singa.io import rnnlm_data  # noqa: E402

_DIR = tempfile.mkdtemp(prefix="singa-fuzz-word-records-")
_PATH = os.path.join(_DIR, "input.bin")


def one_input(data: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(data)
    rows, words = rnnlm_data.read_word_records(_PATH)
    assert rows.ndim == 2 and rows.shape == (len(words), 4), (rows.shape, len(words))
    assert all(isinstance(w, str) for w in words), [type(w) for w in words]
    if len(rows):
        wi, ci, cs, ce = rows.T
        assert ((cs <= wi) & (wi < ce) & (ci >= 0) & (cs >= 0)).all()


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def seeds():
    texts = {"train": b"the cat sat\nthe dog sat on the cat\n\n", "valid": b"the bird sat\n",
             "test": b"a cat\nthe"}
    paths = {}
    for part, text in texts.items():
        paths[part] = os.path.join(_DIR, "seed-%s.txt" % part)
        with open(paths[part], "wb") as f:
            f.write(text)
    out = os.path.join(_DIR, "seed-rnnlm")
    rnnlm_data.create_rnnlm_data(paths["train"], paths["valid"], paths["test"], class_size=3, out_dir=out)
    made = [_read(os.path.join(out, name)) for name in ("train_data.bin", "valid_data.bin", "test_data.bin")]
    tokens = rnnlm_data.read_words("caf\xe9 na\xefve caf\xe9\n\xff x\n".encode("utf-8") + b"\xff\n")
    words, counts = rnnlm_data.build_vocab(tokens)
    cls, start, end = rnnlm_data.assign_classes(counts, 2)
    path = os.path.join(_DIR, "seed-hand.bin")
    rnnlm_data.write_records(path, tokens, {w: i for i, w in enumerate(words)}, cls, start, end)
    return made + [_read(path)]


if __name__ == "__main__":
    from _runner import main
    main(one_input, seeds)
