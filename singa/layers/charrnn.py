"""The char-rnn layers (SINGA-V0-REST.md 3): kCharRNN, kOneHot, kRNNLabel, kRNNDummy, kArgSort
and kCharRNNOutput.

kCharRNN is a data layer with ``unroll_len + 1`` blobs, ``datavec`` (a list of (B,) arrays of
character indices); copy i of a consumer (its ``conf.unroll_index``) reads ``datavec[i]``
(kOneHot, kEmbedding) or ``datavec[i + 1]`` (kRNNLabel: the next character is the label).
A source without ``datavec`` has one blob, its ``data`` (SINGA's default ``datavec_ = [&data_]``).

Files are read as bytes, as SINGA did (std::string; data.py under Python 2 made the vocabulary
of the text's distinct bytes): a character is a byte, and ``vocab_size`` counts bytes.
FIXES against v0.3: a character's index is its position in vocab.txt (v0.3's evaluation
order gave the first one -1); a repeated vocabulary character is an error; reads wrap before
they would leave a batch row's segment of the text (v0.3 read past the end of the buffer in the
last row); one-hot indices are bounds-checked.
"""
import codecs
import math
import os
import sys

import numpy

from singa.errors import ConfigError, DataError, Stated, invalid
from singa.layers.base import DataLayer, Layer, flat2d, register, scratch, type_name
from singa.proto import job_pb2


def _where(layer):
    return "layer '%s' (%s)" % (layer.name, type_name(layer.conf.type))


def unrolled_blob(layer, src, k):
    """Blob ``k`` of source ``src``: ``src.datavec[k]``, or ``src.data`` for a one-blob source."""
    vec = getattr(src, "datavec", None)
    if vec is None:
        vec = [src.data]
    if not 0 <= k < len(vec):
        raise invalid("unroll_index of %s" % _where(layer),
                      "a blob of source '%s', which has %d (0..%d)" % (src.name, len(vec), len(vec) - 1),
                      Stated("blob %d" % k),
                      hint="the data layer's char_rnn_conf.unroll_len must equal the net's unroll_len")
    return vec[k]


def check_indices(layer, blob, n, field):
    """The (B,) integer indices held by float ``blob``, each in [0, n); else a DataError naming
    the layer and ``field`` (the conf field that says n)."""
    xp = layer.xp
    v = blob.reshape(-1)
    if v.size:
        lo, hi = float(v.min()), float(v.max())
        whole = not bool((xp.floor(v) != v).any()) if v.dtype.kind == "f" else True
        if not whole or lo < 0 or hi >= n:
            host = numpy.asarray(layer.backend.to_host(v))
            bad = (host < 0) | (host >= n) | (numpy.floor(host) != host)
            row = int(numpy.flatnonzero(bad)[0])
            raise DataError("Invalid index for %s. Expected integer indices in [0, %d) (%s is %d). Received: %r "
                            "(row %d of the batch)\nhelp: %s must be the vocabulary size (the characters in "
                            "vocab.txt), and the source must give character indices"
                            % (_where(layer), n, field, n, host[row].item(), row, field))
    return v.astype(numpy.int64)


def read_vocab(layer, path, field):
    """The vocabulary file's bytes: a DataError naming ``field`` if missing, empty or repeating a byte."""
    if not path:
        raise invalid("%s of %s" % (field, _where(layer)), "the path of vocab.txt (its distinct characters, "
                      "concatenated)", path, hint="make it with singa-create-data")
    if not os.path.isfile(path):
        raise DataError("Invalid value for `%s` of %s. Expected an existing vocabulary file (relative to the "
                        "working directory %s). Received: %r\nhelp: make it with singa-create-data"
                        % (field, _where(layer), os.getcwd(), path))
    with open(path, "rb") as f:
        vocab = f.read()
    counts = numpy.bincount(numpy.frombuffer(vocab, numpy.uint8), minlength=256)
    if not vocab or counts.max() > 1:
        rep = bytes(numpy.flatnonzero(counts > 1).astype(numpy.uint8))
        raise DataError("Invalid value for `%s` of %s. Expected a vocabulary file holding each character once. "
                        "Received: %s, %s\nhelp: vocab.txt must hold the text's distinct characters, no separator "
                        "(as data.py wrote it)" % (field, _where(layer), path, "an empty file" if not vocab
                                                   else "%d bytes, repeating %r" % (len(vocab), rep)))
    return vocab


@register(job_pb2.kCharRNN)
class CharRNNLayer(DataLayer):
    """kCharRNN: batch row i reads its own segment of the text, [i*S, (i+1)*S) with S = len // B;
    each call gives blobs l = 0..U of ``text[start_i + offset + l]`` then advances offset by U
    (consecutive calls overlap by one character), wrapping to 0 when the next read would leave
    the segment. There is no epoch end and no shuffling, as in SINGA. The files are read at the
first batch (``load``), as SINGA did."""
    grad_free = True

    def _field(self, name):
        return "char_rnn_conf.%s of %s" % (name, _where(self))

    def setup(self, src_shapes):
        if src_shapes:
            raise invalid("srclayers of %s" % _where(self), "none: a data layer reads its files",
                          Stated("%d source layer(s)" % len(src_shapes)), hint="remove its `srclayers`")
        cc = self.conf.char_rnn_conf
        B, U = int(cc.batchsize), int(cc.unroll_len)
        if B <= 0:
            raise invalid(self._field("batchsize"), "a positive batch size", B, hint="e.g. `batchsize: 50`")
        if U <= 0:
            raise invalid(self._field("unroll_len"), "a positive number of time steps (the net's unroll_len)", U,
                          hint="e.g. `unroll_len: 50`, the same as the net's")
        self.batchsize, self.unroll_len = B, U
        self._vocab = self.text = None
        self.offset = 0
        self.read_part(0, B, B)
        return self.out_shape

    def load(self):
        """Read vocab.txt and the text (once). As in SINGA this happens at the first batch, not in
        setup, so a net can be built without its data; call it to check the files earlier."""
        if self.text is not None:
            return
        cc = self.conf.char_rnn_conf
        B, U = self.batchsize, self.unroll_len
        vocab = read_vocab(self, cc.vocab_path, "char_rnn_conf.vocab_path")
        lut = numpy.full(256, -1, numpy.int32)
        lut[numpy.frombuffer(vocab, numpy.uint8)] = numpy.arange(len(vocab), dtype=numpy.int32)
        text = self._read_text(cc.path, lut)
        if len(text) // B <= U:
            raise DataError("Invalid text %s for %s. Expected at least batchsize * (unroll_len + 1) = %d * %d = %d "
                            "characters (one segment of unroll_len + 1 per batch row). Received: %d\nhelp: use a "
                            "longer text, or a smaller char_rnn_conf.batchsize or unroll_len"
                            % (cc.path, _where(self), B, U + 1, B * (U + 1), len(text)))
        self._vocab, self.text = vocab, text
        self.segment = len(text) // B     # SINGA's max_offset

    @property
    def vocab(self):
        """vocab.txt's bytes; a character's index is its position here."""
        self.load()
        return self._vocab

    @property
    def vocab_size(self):
        """The number of characters in vocab.txt: kOneHot's vocab_size must equal it."""
        return len(self.vocab)

    @property
    def pos(self):
        """The offset of the next read in every row's segment: what a checkpoint's state saves and
        a resume restores (singa.train_state), as a RecordInputLayer's record position."""
        return self.offset

    @pos.setter
    def pos(self, value):
        self.load()
        value = int(value)
        if not 0 <= value <= self.segment - 1 - self.unroll_len:
            raise DataError("Invalid position %d for %s. Expected an offset in [0, %d] (its rows' segments hold %d "
                            "characters).\nhelp: resume with the same text and char_rnn_conf"
                            % (value, _where(self), self.segment - 1 - self.unroll_len, self.segment))
        self.offset = value

    def _read_text(self, path, lut):
        if not path or not os.path.isfile(path):
            raise DataError("Invalid value for `char_rnn_conf.path` of %s. Expected an existing text file "
                            "(relative to the working directory %s). Received: %r\nhelp: check char_rnn_conf.path "
                            "(singa-create-data makes the text and its vocab.txt)" % (_where(self), os.getcwd(), path))
        with open(path, "rb") as f:
            raw = numpy.frombuffer(f.read(), numpy.uint8)
        idx = lut[raw]
        if raw.size and idx.min() < 0:
            pos = int(numpy.flatnonzero(idx < 0)[0])
            raise DataError("Invalid text %s for %s. Expected only characters of the vocabulary %s. Received: %r "
                            "at byte %d\nhelp: make vocab.txt from this text (singa-create-data)"
                            % (path, _where(self), self.conf.char_rnn_conf.vocab_path, bytes(raw[pos:pos + 1]), pos))
        return idx

    def read_part(self, lo, hi, stride):
        """Only batch rows [lo, hi), and ``stride // batchsize`` batches per call (a worker's part of
        its group's batch; every G-th batch for G asynchronous groups), as RecordInputLayer.read_part."""
        B = self.batchsize
        if not (0 <= lo < hi <= B) or stride < B or stride % B:
            raise ValueError("read_part(%r, %r, %r): expected 0 <= lo < hi <= batchsize (%d) and a stride that is "
                             "a multiple of it" % (lo, hi, stride, B))
        self.part, self.stride = (int(lo), int(hi)), int(stride)
        self.out_shape = (hi - lo,)

    def _advance(self):
        self.offset += self.unroll_len
        if self.offset + self.unroll_len > self.segment - 1:     # FIX: the next read would leave the segment
            self.offset = 0

    def forward(self, flag, srcs):
        self.load()
        U = self.unroll_len
        starts = numpy.arange(*self.part, dtype=numpy.int64) * self.segment
        pos = starts[None, :] + self.offset + numpy.arange(U + 1)[:, None]    # (U+1, rows)
        blobs = self.backend.asarray(self.text[pos], dtype=self.dtype)
        self.datavec = [blobs[l] for l in range(U + 1)]
        self.data = self.datavec[0]
        for _ in range(self.stride // self.batchsize):
            self._advance()
        return self.data


@register(job_pb2.kOneHot)
class OneHotLayer(Layer):
    """kOneHot: (B, vocab_size) rows with a 1 at each index of the source's blob ``unroll_index``."""
    grad_free = True
    HINT = "e.g. `onehot_conf { vocab_size: 101 }`: the number of characters in vocab.txt"

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        D = int(self.conf.onehot_conf.vocab_size)
        if D < 0:
            raise invalid("onehot_conf.vocab_size of %s" % _where(self), "the vocabulary size (> 0)", D,
                          hint=self.HINT)
        if D == 0:
            # SINGA's unchecked default (char-rnn's sample.conf leaves it unset) built a zero-width
            # one-hot, so sample.conf could not load job.conf's checkpoint. FIX: take the number of
            # indices the source draws (kRNNDummy's integer [0, high)); without one the net still
            # builds, and the first forward says what is missing
            srcs = getattr(self, "src_layers", None) or [None]
            D = int(getattr(srcs[0], "index_count", 0) or 0)
        self.vocab_size = D
        self.out_shape = (int(src_shapes[0][0]), D)
        return self.out_shape

    def forward(self, flag, srcs):
        src = srcs[0]
        if self.vocab_size == 0:
            raise invalid("onehot_conf.vocab_size of %s" % _where(self), "the vocabulary size (> 0)",
                          Stated("0 (unset)"), hint=self.HINT)
        vs = getattr(src, "vocab_size", None)
        if vs is not None and vs != self.vocab_size:
            raise invalid("onehot_conf.vocab_size of %s" % _where(self),
                          "the size of the vocabulary of '%s' (%d)" % (src.name, vs), self.vocab_size,
                          hint="set vocab_size to the number of characters in vocab.txt", cls=ConfigError)
        idx = check_indices(self, unrolled_blob(self, src, self.conf.unroll_index), self.vocab_size,
                            "onehot_conf.vocab_size")
        y = scratch(self, "y", (idx.shape[0], self.vocab_size))
        y[...] = 0
        y[self.xp.arange(idx.shape[0]), idx] = 1
        self.data = y
        return y

    def backward(self, flag, srcs, grad):
        return [None]


@register(job_pb2.kRNNLabel)
class RNNLabelLayer(Layer):
    """kRNNLabel: the labels of step i, blob ``unroll_index + 1`` of the source as int32, in ``aux``
    (what kSoftmaxLoss reads from a data source). SINGA's layer has no data blob; ``data`` is
    the same labels."""
    grad_free = True

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        self.out_shape = (int(src_shapes[0][0]),)
        return self.out_shape

    def forward(self, flag, srcs):
        v = unrolled_blob(self, srcs[0], self.conf.unroll_index + 1)
        self.aux = v.reshape(-1).astype(numpy.int32)
        self.data = self.aux
        return self.data

    def backward(self, flag, srcs, grad):
        return [None]


@register(job_pb2.kRNNDummy)
class RNNDummyLayer(Layer):
    """kRNNDummy: without a source, uniform [low, high) numbers of ``rnn_dummy_conf.shape`` from
    the layer's seeded ``rng`` (floored if ``integer``); with one, that source's data in the
    set-up shape (the element counts must match). In test nets the BPTT worker replaces the
    source from step 1 on by ``dynamic_src`` (the sampled output fed back). No gradient."""
    grad_free = True

    def setup(self, src_shapes):
        rc = self.conf.rnn_dummy_conf
        if len(src_shapes) > 1:
            raise invalid("srclayers of %s" % _where(self), "at most 1 source", len(src_shapes),
                          hint="give it one source, or none and rnn_dummy_conf shape/low/high")
        self.dynamic_srclayer = rc.dynamic_srclayer
        self.dynamic_src = "%d#%s" % (self.conf.unroll_index, rc.dynamic_srclayer) if rc.dynamic_srclayer else ""
        if src_shapes:
            self.out_shape = tuple(int(s) for s in src_shapes[0])
            return self.out_shape
        shape = tuple(int(s) for s in rc.shape)
        if not shape or any(s <= 0 for s in shape):
            raise invalid("rnn_dummy_conf.shape of %s" % _where(self), "positive dimensions (no source is given)",
                          shape, hint="e.g. `rnn_dummy_conf { shape: 1 integer: true low: 0 high: 101 }`")
        if not (math.isfinite(rc.low) and math.isfinite(rc.high)) or rc.low == rc.high:
            raise invalid("rnn_dummy_conf.low/high of %s" % _where(self), "a non-empty range [low, high)",
                          (rc.low, rc.high), hint="e.g. `low: 0 high: 101` for a random character of 101")
        self.out_shape = shape
        return shape

    @property
    def index_count(self):
        """How many indices it draws, [0, ceil(high)), when it draws integers from low >= 0 without a
        source (what a kOneHot above it needs as vocab_size); else None."""
        rc = self.conf.rnn_dummy_conf
        if self.conf.srclayers or not rc.integer or not 0 <= rc.low < rc.high or not math.isfinite(rc.high):
            return None
        return int(math.ceil(rc.high))

    def forward(self, flag, srcs):
        if srcs:
            x = srcs[0].data
            n = math.prod(self.out_shape)
            if x.size != n:
                raise invalid("source of %s" % _where(self), "%d values (set up with shape %s)" % (n, self.out_shape),
                              Stated("%d values from '%s'" % (x.size, srcs[0].name)),
                              hint="the dynamic source must give as many values as rnn_dummy_conf.shape")
            self.data = x.reshape(self.out_shape)
            return self.data
        rc = self.conf.rnn_dummy_conf
        if not rc.shape or rc.low == rc.high:
            raise ConfigError("%s has no source this step and no rnn_dummy_conf shape/low/high to draw from.\n"
                              "help: set e.g. `shape: 1 integer: true low: 0 high: 101`" % _where(self))
        if self.rng is None:
            raise ConfigError("%s draws random numbers but has no random stream.\nhelp: build it through NeuralNet, "
                              "or set layer.rng = numpy.random.default_rng(seed)" % _where(self))
        v = self.rng.uniform(rc.low, rc.high, self.out_shape)
        if rc.integer:
            v = numpy.floor(v)
        self.data = self.backend.asarray(v, dtype=self.dtype)
        return self.data

    def backward(self, flag, srcs, grad):
        raise ConfigError("%s has no gradient: use it in test nets only (as SINGA did)" % _where(self))


@register(job_pb2.kArgSort)
class ArgSortLayer(Layer):
    """kArgSort: (B, topk) float indices of each row's largest values, descending by (value,
    index), so ties go to the larger index. No gradient."""
    grad_free = True

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        shape = tuple(int(s) for s in src_shapes[0])
        self.dim = math.prod(shape[1:])
        k = int(self.conf.argsort_conf.topk)
        if not 1 <= k <= self.dim:
            raise invalid("argsort_conf.topk of %s" % _where(self), "an integer in [1, %d]" % self.dim, k,
                          hint="topk is at most the source's number of values per sample")
        self.topk = k
        self.out_shape = (shape[0], k)
        return self.out_shape

    def forward(self, flag, srcs):
        xp = self.xp
        x = flat2d(srcs[0].data)
        rev = x[:, ::-1]       # reversed columns: a stable descending sort puts the larger index first
        if self.topk == 1:
            order = xp.argmax(rev, axis=1)[:, None]
        else:
            order = xp.argsort(-rev, axis=1, kind="stable")[:, :self.topk]
        y = scratch(self, "y", (x.shape[0], self.topk))
        y[...] = (self.dim - 1) - order
        self.data = y
        return y

    def backward(self, flag, srcs, grad):
        return [None]


@register(job_pb2.kCharRNNOutput)
class CharRNNOutputLayer(Layer):
    """kCharRNNOutput: writes the character of each row's index (its first column: SINGA's flat
    indexing mixed the columns for topk > 1) to ``self.stream`` (sys.stdout when None), with no
    newline, and flushes. Bytes are decoded as UTF-8 across calls (a multi-byte character may be
    sampled one byte per step); an invalid sequence prints U+FFFD."""
    grad_free = True

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        self.vocab = None      # read at the first forward, as kCharRNN reads its files
        self.stream = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.out_shape = tuple(int(s) for s in src_shapes[0])
        return self.out_shape

    def forward(self, flag, srcs):
        x = numpy.asarray(self.backend.to_host(srcs[0].data))
        col = x.reshape(x.shape[0], -1)[:, 0] if x.ndim else x.reshape(1)
        if self.vocab is None:
            self.vocab = read_vocab(self, self.conf.char_rnn_conf.vocab_path, "char_rnn_conf.vocab_path")
        n = len(self.vocab)
        if col.size and (col.min() < 0 or col.max() >= n or (numpy.floor(col) != col).any()):
            raise DataError("Invalid index for %s. Expected integer indices in [0, %d) (the characters of %s). "
                            "Received: %s\nhelp: use the vocab.txt the net was trained with" % (
                                _where(self), n, self.conf.char_rnn_conf.vocab_path, col[:8].tolist()))
        text = self._decoder.decode(bytes(self.vocab[int(i)] for i in col))
        out = self.stream if self.stream is not None else sys.stdout
        out.write(text)
        out.flush()
        self.data = None
        return None

    def backward(self, flag, srcs, grad):
        return [None]
