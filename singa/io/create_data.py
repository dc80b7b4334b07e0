"""``singa-create-data``: SINGA's create_data tools for MNIST, CIFAR-10, char-rnn and rnnlm (SINGA-V0.md 5.3).

    singa-create-data mnist IMAGES_IDX LABELS_IDX OUT.bin
    singa-create-data cifar10 INPUT_FOLDER OUTPUT_FOLDER
    singa-create-data fortunes OUTPUT_FOLDER [-vocab_size N]
    singa-create-data char-rnn TEXT OUTPUT_FOLDER [-name linux_input.txt] [-vocab_size N]
    singa-create-data rnnlm -train F -valid F -test F [-class_size 100] [-out OUTPUT_FOLDER]

MNIST: one record per image, key ``"%08d" % i``, value RecordProto{shape: [rows, cols] (from
the idx header), label, pixel: rows*cols bytes}. CIFAR-10 (the binary version's files
data_batch_1..5.bin and test_batch.bin, each record a label byte then 3072 bytes CHW):
``train_data.bin`` and ``test_data.bin`` with keys ``"%05d"`` and RecordProto{shape: [3, 32, 32],
label, pixel}, plus ``image_mean.bin`` holding one record, key ``"mean"``, with the 3072
per-pixel means over the training images as float ``data``.

char-rnn (SINGA's examples/char-rnn/data.py): ``vocab.txt`` holds the text's distinct characters
concatenated, no separator and no trailing newline, in code point order (data.py used Python's
set order, which is arbitrary; kCharRNN indexes a character by its position in vocab.txt); the
text is written beside it, under the name char-rnn-job.conf reads (``linux_input.txt``) unless
``-name`` says otherwise. ``-vocab_size N`` pads vocab.txt with control characters the text does
not hold, so a conf sized for another alphabet (char-rnn-job.conf's 101) runs unchanged. Both are UTF-8; on ASCII text (the fortunes) characters and bytes agree,
as SINGA's C++ layer, which read bytes, needs. rnnlm: see singa/io/rnnlm_data.py. fortunes: the
texts of singa/datasets/fortunes.py (char parts and word parts) as files.
"""
import argparse
import os
import sys

import numpy

from singa.errors import DataError, SingaError
from singa.io.idx import read_mnist
from singa.io.atomic import write_bytes_atomic
from singa.io.kvfile import KVFileWriter
from singa.io.record import encode_pixel_records, encode_record, encode_shard_record

CIFAR_TRAIN = ["data_batch_%d.bin" % i for i in range(1, 6)]
CIFAR_TEST = "test_batch.bin"
CIFAR_SHAPE = (3, 32, 32)
CIFAR_RECORD = 1 + 3 * 32 * 32


def _write_records(out, keys_fmt, pixels, labels, shape, start=0, writer=None, shard=False):
    recs = encode_pixel_records(pixels, labels, shape)
    if shard:
        recs = [encode_shard_record(r) for r in recs]
    own = writer is None
    w = writer or KVFileWriter(out)
    try:
        for i, v in enumerate(recs):
            w.insert(keys_fmt % (start + i), v)
    except BaseException:
        if own:
            w.abort()
        raise
    if own:
        w.close()
    return len(recs)


def convert_idx_to_kvfile(images, labels, out):
    """Convert MNIST idx files (plain or .gz) to a SINGA kvfile of RecordProtos; returns the record count."""
    imgs, labs = read_mnist(images, labels)
    if imgs.ndim != 3:
        raise DataError("Invalid value for the images file %s. Expected 3 dimensions (count, rows, cols). "
                        "Received: %d" % (images, imgs.ndim))
    return _write_records(out, "%08d", imgs, labs, imgs.shape[1:])


def _shard(folder):
    """A v0.1 DataShard folder's file (created)."""
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, "shard.dat")


def convert_idx_to_shard(images, labels, out):
    """SINGA v0.1's create_shard for MNIST: the folder ``out`` with shard.dat, keys '%08d', each a
    Record{image: {shape [rows, cols], label, pixel}}; returns the record count."""
    imgs, labs = read_mnist(images, labels)
    if imgs.ndim != 3:
        raise DataError("Invalid value for the images file %s. Expected 3 dimensions (count, rows, cols). "
                        "Received: %d" % (images, imgs.ndim))
    return _write_records(_shard(out), "%08d", imgs, labs, imgs.shape[1:], shard=True)


def _read_cifar_file(path):
    if not os.path.isfile(path):
        raise DataError("CIFAR-10 file %s does not exist.\nhelp: unpack cifar-10-binary.tar.gz (the *binary* "
                        "version) and pass its cifar-10-batches-bin folder" % path)
    try:
        raw = numpy.fromfile(path, dtype=numpy.uint8)
    except OSError as e:
        raise DataError("CIFAR-10 file %s cannot be read (%s).\nhelp: check its permissions, or download "
                        "cifar-10-binary.tar.gz again" % (path, e.strerror or e)) from None
    if raw.size == 0 or raw.size % CIFAR_RECORD:
        raise DataError("CIFAR-10 file %s has %d bytes, which is not a positive multiple of %d (a label byte and "
                        "3072 pixel bytes per image): it is truncated or not from the binary version.\nhelp: "
                        "download cifar-10-binary.tar.gz again" % (path, raw.size, CIFAR_RECORD))
    rec = raw.reshape(-1, CIFAR_RECORD)
    labels = rec[:, 0]
    if labels.max() > 9:
        bad = int(numpy.flatnonzero(labels > 9)[0])
        raise DataError("CIFAR-10 file %s: image #%d has label %d; labels are 0..9.\nhelp: the file is not a "
                        "CIFAR-10 binary batch (CIFAR-100 has two label bytes)" % (path, bad, labels[bad]))
    return rec[:, 1:], labels


def _cifar_folder(src):
    if not os.path.isfile(os.path.join(src, CIFAR_TEST)):
        sub = os.path.join(src, "cifar-10-batches-bin")
        if os.path.isfile(os.path.join(sub, CIFAR_TEST)):
            return sub
    return src


def convert_cifar10(src, out):
    """Write ``train_data.bin``, ``test_data.bin`` and ``image_mean.bin`` into ``out`` from the CIFAR-10
    binary batches in ``src``; returns {file name: number of records}."""
    src = _cifar_folder(os.fspath(src))
    os.makedirs(out, exist_ok=True)
    batches = [_read_cifar_file(os.path.join(src, f)) for f in CIFAR_TRAIN]
    test = _read_cifar_file(os.path.join(src, CIFAR_TEST))
    total = numpy.zeros(CIFAR_RECORD - 1, dtype=numpy.float64)
    n = 0
    with KVFileWriter(os.path.join(out, "train_data.bin")) as w:
        for pixels, labels in batches:
            _write_records(None, "%05d", pixels, labels, CIFAR_SHAPE, start=n, writer=w)
            total += pixels.sum(axis=0, dtype=numpy.float64)
            n += len(labels)
    ntest = _write_records(os.path.join(out, "test_data.bin"), "%05d", test[0], test[1], CIFAR_SHAPE)
    with KVFileWriter(os.path.join(out, "image_mean.bin")) as w:
        w.insert("mean", encode_record(shape=CIFAR_SHAPE, data=(total / n).astype(numpy.float32)))
    return {"train_data.bin": n, "test_data.bin": ntest, "image_mean.bin": 1}


def convert_cifar10_shards(src, out):
    """SINGA v0.1's CIFAR-10 create_shard: ``out``/cifar10_train_shard and cifar10_test_shard
    (shard.dat, keys '%05d', Records of 3x32x32 pixels) and ``out``/image_mean.bin, the mean image
    as one serialized record (a binary SingleLabelImageRecord, not a shard); returns the counts."""
    src = _cifar_folder(os.fspath(src))
    batches = [_read_cifar_file(os.path.join(src, f)) for f in CIFAR_TRAIN]
    test = _read_cifar_file(os.path.join(src, CIFAR_TEST))
    total = numpy.zeros(CIFAR_RECORD - 1, dtype=numpy.float64)
    n = 0
    with KVFileWriter(_shard(os.path.join(out, "cifar10_train_shard"))) as w:
        for pixels, labels in batches:
            _write_records(None, "%05d", pixels, labels, CIFAR_SHAPE, start=n, writer=w, shard=True)
            total += pixels.sum(axis=0, dtype=numpy.float64)
            n += len(labels)
    ntest = _write_records(_shard(os.path.join(out, "cifar10_test_shard")), "%05d", test[0], test[1], CIFAR_SHAPE,
                           shard=True)
    write_bytes_atomic(os.path.join(out, "image_mean.bin"),
                       encode_record(shape=CIFAR_SHAPE, data=(total / n).astype(numpy.float32)))
    return {"cifar10_train_shard": n, "cifar10_test_shard": ntest, "image_mean.bin": 1}


# Padding characters for -vocab_size: single-byte control characters no text here holds
_PADDING = bytes(c for c in range(1, 32) if c not in b"\t\n\r") + b"\x7f"


def convert_char_rnn(text_path, out_dir, name="linux_input.txt", vocab_size=None):
    """Write ``vocab.txt`` and the text (as ``name``) into ``out_dir``, as char-rnn's data.py did;
    returns (number of characters, vocabulary size). A character is a byte, as data.py (Python 2
    strings) and kCharRNN (std::string) had it, so a UTF-8 letter outside ASCII is two or more
    characters; the vocabulary is the text's distinct bytes in increasing order. ``vocab_size``: pad
    it to that many entries with bytes the text does not hold (so a conf's
    ``onehot_conf.vocab_size``, e.g. char-rnn-job.conf's 101, fits a smaller alphabet)."""
    try:
        with open(text_path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError("Invalid value for `TEXT` of singa-create-data char-rnn. Expected a readable text file. "
                        "Received: %r (%s)\nhelp: e.g. singa-create-data fortunes OUT, then OUT/fortunes-train.txt"
                        % (text_path, e.strerror or e)) from None
    if len(data) < 2:
        raise DataError("Invalid value for `TEXT` of singa-create-data char-rnn. Expected a text of at least 2 "
                        "characters (a character and the next one to predict). Received: %r, %d byte(s)"
                        "\nhelp: pass a longer text" % (text_path, len(data)))
    if os.path.basename(name) != name or name in ("", ".", "..", "vocab.txt"):
        raise DataError("Invalid value for `-name` of singa-create-data char-rnn. Expected a plain file name other "
                        "than vocab.txt. Received: %r\nhelp: -name linux_input.txt (char-rnn-job.conf's)" % (name,))
    vocab = bytes(sorted(set(data)))
    if vocab_size is not None:
        vocab = _padded(vocab, vocab_size)
    os.makedirs(out_dir, exist_ok=True)
    write_bytes_atomic(os.path.join(out_dir, "vocab.txt"), vocab)
    dest = os.path.join(out_dir, name)
    if not (os.path.exists(dest) and os.path.samefile(dest, text_path)):
        write_bytes_atomic(dest, data)
    return len(data), len(vocab)


def _padded(vocab, size):
    """``vocab`` (bytes) and then unused padding bytes, ``size`` in all."""
    pad = bytes(c for c in _PADDING if c not in vocab)
    if not len(vocab) <= size <= len(vocab) + len(pad):
        raise DataError("Invalid value for `-vocab_size` of singa-create-data char-rnn. Expected at least the text's "
                        "%d distinct characters and at most %d. Received: %d\nhelp: leave -vocab_size out to write "
                        "the text's own alphabet, and set the conf's onehot_conf.vocab_size and ip1's num_output to "
                        "%d" % (len(vocab), len(vocab) + len(pad), size, len(vocab)))
    return vocab + pad[:size - len(vocab)]


def build_parser():
    p = argparse.ArgumentParser(
        prog="singa-create-data",
        description="Convert MNIST or CIFAR-10 into SINGA kvfile record files (what SINGA v0.3's "
                    "examples/*/create_data did), readable by kRecordInput layers; write char-rnn's vocab.txt "
                    "and rnnlm's WordRecord files from a text; write the fortunes texts.")
    sub = p.add_subparsers(dest="dataset", metavar="DATASET")
    sub.required = True
    m = sub.add_parser("mnist", help="MNIST/Fashion-MNIST idx files -> one kvfile",
                       description="Write one record per image: key '%%08d', RecordProto{shape: [rows, cols], label, "
                                   "pixel}. The idx files may be gzip-compressed.")
    m.add_argument("images", metavar="IMAGES_IDX", help="e.g. train-images-idx3-ubyte[.gz]")
    m.add_argument("labels", metavar="LABELS_IDX", help="e.g. train-labels-idx1-ubyte[.gz]")
    m.add_argument("out", metavar="OUT.bin", help="output kvfile, e.g. examples/mnist/train_data.bin")
    c = sub.add_parser("cifar10", help="CIFAR-10 binary batches -> train_data.bin, test_data.bin, image_mean.bin",
                       description="Read data_batch_1..5.bin and test_batch.bin (cifar-10-binary.tar.gz) and write "
                                   "train_data.bin, test_data.bin (keys '%%05d') and image_mean.bin (key 'mean').")
    c.add_argument("src", metavar="INPUT_FOLDER", help="the cifar-10-batches-bin folder")
    c.add_argument("out", metavar="OUTPUT_FOLDER", help="where to write the three files, e.g. examples/cifar10")
    ms = sub.add_parser("mnist-shard", help="MNIST idx files -> a v0.1 DataShard folder (kShardData)",
                        description="SINGA v0.1's create_shard: OUT_FOLDER/shard.dat, keys '%%08d', each a "
                                    "Record{image: {shape [rows, cols], label, pixel}}.")
    ms.add_argument("images", metavar="IMAGES_IDX")
    ms.add_argument("labels", metavar="LABELS_IDX")
    ms.add_argument("out", metavar="OUT_FOLDER", help="e.g. examples/mnist/mnist_train_shard")
    cs = sub.add_parser("cifar10-shard", help="CIFAR-10 binary batches -> v0.1 DataShard folders and image_mean.bin",
                        description="SINGA v0.1's CIFAR-10 create_shard: cifar10_train_shard/ and cifar10_test_shard/ "
                                    "(keys '%%05d') and image_mean.bin (one serialized record) in OUTPUT_FOLDER.")
    cs.add_argument("src", metavar="INPUT_FOLDER", help="the cifar-10-batches-bin folder")
    cs.add_argument("out", metavar="OUTPUT_FOLDER", help="e.g. examples/cifar10")
    _text_parsers(sub)
    return p


def _text_parsers(sub):
    f = sub.add_parser("fortunes", help="Debian's fortunes -> fortunes-{train,valid,test}.txt and "
                                        "fortunes-words-{train,valid,test}.txt",
                       description="Write the texts of singa.datasets.fortunes: the character text of each part "
                                   "and its words, a sentence a line (rare words <unk> with -vocab_size).")
    f.add_argument("out", metavar="OUTPUT_FOLDER")
    f.add_argument("-vocab_size", "--vocab-size", type=int, default=None,
                   help="keep the N-2 most frequent train words, the others become <unk> (rnnlm-job.conf: 3720)")
    f.add_argument("-data_dir", "--data-dir", default=None, help="the fortune files' folder (default: "
                                                                 "$SINGA_FORTUNES_DIR, then Debian's)")
    c = sub.add_parser("char-rnn", help="a text -> vocab.txt and the text beside it (char-rnn's data.py)",
                       description="Write vocab.txt (the distinct characters in code point order, no separator, "
                                   "no newline) and the text into OUTPUT_FOLDER.")
    c.add_argument("text", metavar="TEXT")
    c.add_argument("out", metavar="OUTPUT_FOLDER", help="e.g. examples/char-rnn")
    c.add_argument("-name", "--name", default="linux_input.txt",
                   help="the text's file name there (default linux_input.txt, which char-rnn-job.conf reads)")
    c.add_argument("-vocab_size", "--vocab-size", type=int, default=None,
                   help="pad vocab.txt to this many characters with control characters the text does not hold "
                        "(101 fits char-rnn-job.conf's onehot_conf.vocab_size unchanged)")
    r = sub.add_parser("rnnlm", help="train/valid/test texts -> WordRecord kvfiles (rnnlm's create_data)",
                       description="Write train_data.bin, valid_data.bin, test_data.bin: one WordRecord per "
                                   "in-vocabulary word, with rnnlmlib's frequency classes.")
    for name in ("train", "valid", "test"):
        r.add_argument("-" + name, "--" + name, required=True, metavar="FILE")
    r.add_argument("-class_size", "--class-size", type=int, default=100, help="number of word classes (100)")
    r.add_argument("-out", "--out", default=".", metavar="OUTPUT_FOLDER", help="where to write (default: here, "
                                                                              "as SINGA's did)")


def _run_text(args):
    if args.dataset == "fortunes":
        from singa.datasets.fortunes import write_parts
        for name, n in write_parts(args.out, args.data_dir, args.vocab_size).items():
            print("wrote %s (%d %s)" % (os.path.join(args.out, name), n, "lines" if "words" in name else "chars"))
    elif args.dataset == "char-rnn":
        n, v = convert_char_rnn(args.text, args.out, args.name, args.vocab_size)
        print("data has %d characters (bytes), %d in vocab.txt; wrote %s and %s" % (
            n, v, os.path.join(args.out, "vocab.txt"), os.path.join(args.out, args.name)))
    else:
        from singa.io.rnnlm_data import create_rnnlm_data
        s = create_rnnlm_data(args.train, args.valid, args.test, args.class_size, args.out)
        print("vocabulary: %d words in %d classes" % (s["vocab_size"], s["nclass"]))
        for name in ("train_data.bin", "valid_data.bin", "test_data.bin"):
            print("wrote %d record(s) to %s (%d out-of-vocabulary token(s) skipped)"
                  % (s[name]["records"], os.path.join(args.out, name), s[name]["skipped"]))


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.dataset == "mnist":
            n = convert_idx_to_kvfile(args.images, args.labels, args.out)
            print("wrote %d records to %s" % (n, args.out))
        elif args.dataset == "mnist-shard":
            n = convert_idx_to_shard(args.images, args.labels, args.out)
            print("wrote %d records to %s" % (n, os.path.join(args.out, "shard.dat")))
        elif args.dataset == "cifar10-shard":
            for name, n in convert_cifar10_shards(args.src, args.out).items():
                print("wrote %d record(s) to %s" % (n, os.path.join(args.out, name)))
        elif args.dataset in ("fortunes", "char-rnn", "rnnlm"):
            _run_text(args)
        else:
            counts = convert_cifar10(args.src, args.out)
            for name, n in counts.items():
                print("wrote %d record(s) to %s" % (n, os.path.join(args.out, name)))
    except (SingaError, OSError) as e:
        print("singa-create-data: error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
