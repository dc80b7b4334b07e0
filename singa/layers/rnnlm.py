"""SINGA's rnnlm example layers (SINGA-V0-REST.md 4.3-4.7), shipped as user types: kData,
kEmbedding, kHidden and kLoss (``user_type: "kData"`` etc.; a user type is its own namespace, so
this kEmbedding is not the built-in LayerType kEmbedding of singa/layers/gru.py). Their confs are
the LayerProto extensions of rnnlm.proto: ``[data_conf]``, ``[embedding_conf]``, ``[loss_conf]``.

A batch is one window of a word stream (alg kBP: time is inside the layers). kData's output
``data`` holds ``max_window + 1`` rows ``[word_index, class_index, class_start, class_end]``
(also ``rows``, on the host) and ``window``, the rows used: inputs are rows 0..window-1, targets
rows 1..window. Downstream layers carry ``window``; rows at or after it are zero.

FIXES against v0.3: kEmbedding adds the gradients of a word repeated in a window (SINGA kept the
last occurrence's); indices are checked against vocab_size and nclass (SINGA read out of bounds
or CHECK-failed). kLoss's metrics are ``singa.results.Weighted`` by the window's words, so a
display's 'loss' and 'ppl' are SINGA's ToString figures over all its words (ppl = 10^(-sum log10
p / words) = exp(loss) up to the FLT_MIN clamp), not means of per-window values.
"""
import math
import os

import numpy

from singa.backends import blas
from singa.errors import ConfigError, DataError, Stated, invalid
from singa.layers.base import DataLayer, Layer, register
from singa.proto import job_pb2, rnnlm_pb2
from singa.results import Weighted

FLT_MIN = float(numpy.finfo(numpy.float32).tiny)    # SINGA clamps a word's probability here before log
LOG10 = math.log(10.0)


def _where(layer):
    return "layer '%s' (user_type %s)" % (layer.name, layer.conf.user_type)


def _ext(layer, ext, fields, example):
    """The layer's ``[ext]`` conf, each of ``fields`` set and positive; else a ConfigError."""
    name = ext.name
    conf = layer.conf.Extensions[ext]
    if not layer.conf.HasExtension(ext):
        raise invalid("[%s] of %s" % (name, _where(layer)), "the %s extension (rnnlm.proto)" % name,
                      Stated("none"), hint="add `[%s] { %s }`" % (name, example))
    for f in fields:
        v = getattr(conf, f)
        if not conf.HasField(f) or v <= 0:
            raise invalid("[%s].%s of %s" % (name, f, _where(layer)), "a positive integer",
                          Stated(str(v) if conf.HasField(f) else "unset"), hint="`[%s] { %s }`" % (name, example))
    return conf


def _window(src):
    """(rows: host (n, 4) ints or None, window) of a source: kData's, or carried by a layer above it."""
    rows = getattr(src, "rows", None)
    w = getattr(src, "window", None)
    if w is None:
        w = int(src.data.shape[0]) if rows is None else int(src.data.shape[0]) - 1
    return rows, int(w)


def _check_range(layer, what, values, n, field, hint):
    if values.size and (values.min() < 0 or values.max() >= n):
        bad = values[(values < 0) | (values >= n)][0]
        raise DataError("Invalid %s for %s. Expected values in [0, %d) (%s is %d). Received: %d\nhelp: %s"
                        % (what, _where(layer), n, field, n, int(bad), hint))


def _to_sink(param, g):
    """Write gradient ``g`` into the param's sink (target = alpha * g + beta * target)."""
    param.write_grad(g)


@register("kData")
class RNNLMDataLayer(DataLayer):
    """kData: windows of a WordRecord kvfile (singa.io.rnnlm_data.read_word_records), read at the
    first batch. A window starts with the last row of the previous one (the first: record 0)
    and reads up to ``max_window`` more records, stopping after a ``</s>`` (word 0); at the end of
    the file it wraps to record 0. ``pos`` (checkpointed, restored by a resume) is the next record
    to read, 1..N; 0 before the first window."""
    grad_free = True

    def setup(self, src_shapes):
        if src_shapes:
            raise invalid("srclayers of %s" % _where(self), "none: a data layer reads its file",
                          Stated("%d source layer(s)" % len(src_shapes)), hint="remove its `srclayers`")
        dc = _ext(self, rnnlm_pb2.data_conf, ("max_window",), 'path: "train_data.bin" max_window: 10')
        if not dc.path:
            raise invalid("[data_conf].path of %s" % _where(self), "the WordRecord kvfile's path", dc.path,
                          hint="make it with singa-create-data rnnlm, e.g. path: \"examples/rnnlm/train_data.bin\"")
        if dc.backend != "kvfile":
            raise invalid("[data_conf].backend of %s" % _where(self), "'kvfile' (the only store SINGA's rnnlm "
                          "read)", dc.backend, hint="remove `backend` or set backend: \"kvfile\"")
        self.max_window = int(dc.max_window)
        self.records = None
        self._pos = 0
        self.window = 0
        self.rows = numpy.zeros((self.max_window + 1, 4), numpy.int64)
        self.out_shape = (self.max_window + 1, 4)
        return self.out_shape

    def load(self):
        """Read the records (once); call it to check the file before training."""
        if self.records is None:
            from singa.io.rnnlm_data import read_word_records
            path = self.conf.Extensions[rnnlm_pb2.data_conf].path
            if not path or not os.path.isfile(path):
                raise DataError("Invalid value for `[data_conf].path` of %s. Expected an existing WordRecord kvfile "
                                "(relative to the working directory %s). Received: %r\nhelp: make it with "
                                "singa-create-data rnnlm" % (_where(self), os.getcwd(), path))
            recs, _ = read_word_records(path)
            if len(recs) < 2:
                raise DataError("Invalid data %s for %s. Expected at least 2 word records. Received: %d\nhelp: "
                                "write it again with singa-create-data rnnlm" % (path, _where(self), len(recs)))
            self.records = recs
        return self.records

    @property
    def pos(self):
        return self._pos

    @pos.setter
    def pos(self, value):
        n = len(self.load())
        value = int(value)
        if not 0 <= value <= n:
            raise DataError("Invalid position %d for %s. Expected a record position in [0, %d].\nhelp: resume with "
                            "the same data file" % (value, _where(self), n))
        self._pos = value

    def forward(self, flag, srcs):
        recs = self.load()
        rows, pos = self.rows, self._pos
        if pos == 0:
            rows[0], pos = recs[0], 1
        else:
            rows[0] = recs[pos - 1]        # SINGA copies the last row used to row 0
        window = self.max_window
        for i in range(1, self.max_window + 1):
            if pos == len(recs):
                pos = 0                    # EOF: SeekToFirst
            rows[i] = recs[pos]
            pos += 1
            if rows[i, 0] == 0:            # </s> ends the window
                window = i
                break
        rows[window + 1:] = 0
        self._pos, self.window = pos, window
        self.data = self.backend.asarray(rows, dtype=self.dtype)
        return self.data

    def read_part(self, lo, hi, stride):
        if (lo, hi, stride) != (0, self.out_shape[0], self.out_shape[0]):
            raise ConfigError("%s reads one window of a word stream a step; it cannot be split between workers or "
                              "groups (asked for rows [%d, %d), stride %d).\nhelp: one worker, as rnnlm-job.conf's "
                              "cluster has" % (_where(self), lo, hi, stride))


@register("kEmbedding")
class RNNLMEmbeddingLayer(Layer):
    """kEmbedding: ``out[t] = E[word_index of row t]`` for t < window, E (vocab_size, word_dim)."""

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        ec = _ext(self, rnnlm_pb2.embedding_conf, ("word_dim", "vocab_size"), "word_dim: 15 vocab_size: 3720")
        self.vocab_size, self.word_dim = int(ec.vocab_size), int(ec.word_dim)
        self.weight = self.make_param(0, (self.vocab_size, self.word_dim), "embedding table")
        self.out_shape = (int(src_shapes[0][0]), self.word_dim)
        return self.out_shape

    def forward(self, flag, srcs):
        rows, w = _window(srcs[0])
        if rows is None:
            rows = numpy.asarray(self.backend.to_host(srcs[0].data)).astype(numpy.int64)
        idx = numpy.ascontiguousarray(rows[:w, 0])
        _check_range(self, "word_index", idx, self.vocab_size, "[embedding_conf].vocab_size",
                     "vocab_size must be the data's vocabulary size (singa-create-data rnnlm prints it)")
        self._idx, self.window = idx, w
        y = self.xp.zeros(self.out_shape, dtype=self.dtype)
        y[:w] = self.weight.data[self.xp.asarray(idx)]
        self.data = y
        return y

    def backward(self, flag, srcs, grad):
        w = self.window
        target, alpha, beta, done = self.weight.grad_sink()
        if self.xp is numpy:
            # FIX: a repeated word's gradients are added (SINGA kept the last). A scatter-add of
            # the window's w rows: the one-hot GEMM below costs 2 * vocab_size * w * word_dim
            # FLOPs (8x the rest of the step's) and a (w, vocab_size) buffer for the same sums
            if beta == 0.0:
                target[...] = 0
            elif beta != 1.0:
                target *= beta
            numpy.add.at(target, self._idx, grad[:w] if alpha == 1.0 else alpha * grad[:w])
        else:
            oh = numpy.zeros((w, self.vocab_size), self.dtype)
            oh[numpy.arange(w), self._idx] = 1
            blas.gemm(self.xp.asarray(oh).T, grad[:w], target, alpha, beta)
        done()
        return [None]


@register("kHidden")
class RNNLMHiddenLayer(Layer):
    """kHidden: a sigmoid RNN, ``h_0 = sigmoid(s_0)``, ``h_t = sigmoid(h_{t-1} W + s_t)`` (h.W, no
    bias), W (D, D) with D the source's width."""

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        shape = tuple(int(s) for s in src_shapes[0])
        if len(shape) != 2:
            raise invalid("source shape of %s" % _where(self), "(rows, dim), kEmbedding's output", shape,
                          hint="srclayers: \"embedding\"")
        self.weight = self.make_param(0, (shape[1], shape[1]), "weight")
        self.out_shape = shape
        return shape

    def forward(self, flag, srcs):
        _, w = _window(srcs[0])
        s, W, xp = srcs[0].data, self.weight.data, self.xp
        h = xp.zeros(self.out_shape, dtype=self.dtype)
        for t in range(w):
            a = s[t] if t == 0 else h[t - 1] @ W + s[t]
            h[t] = 1.0 / (1.0 + xp.exp(-a))
        self.window, self.data = w, h
        return h

    def backward(self, flag, srcs, grad):
        w, h, W = self.window, self.data, self.weight.data
        d = self.xp.zeros(self.out_shape, dtype=self.dtype)
        for t in range(w - 1, -1, -1):
            g = grad[t] if t == w - 1 else grad[t] + d[t + 1] @ W.T
            d[t] = h[t] * (1 - h[t]) * g
        target, alpha, beta, done = self.weight.grad_sink()
        if w > 1:
            blas.gemm(h[:w - 1].T, d[1:w], target, alpha, beta)
        else:
            target *= beta                 # no pair of steps: a zero gradient
        done()
        return [d]


@register("kLoss")
class RNNLMLossLayer(Layer):
    """kLoss: the class-factorised softmax. srclayers [hidden, data]; params [Ww (vocab_size, d),
    Wc (nclass, d)]. For t < window, with row t+1's (word, class, start, end):
    ``p = softmax(s_t Ww[start:end]^T)[word - start] * softmax(s_t Wc^T)[class]``; the loss is
    -sum_t ln max(p, FLT_MIN) (no normalisation: its gradient), reported per word."""
    is_loss = True
    has_metrics = True

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 2)
        lc = _ext(self, rnnlm_pb2.loss_conf, ("nclass", "vocab_size"), "nclass: 100 vocab_size: 3720")
        self.nclass, self.vocab_size = int(lc.nclass), int(lc.vocab_size)
        d = int(numpy.prod(src_shapes[0][1:]))
        self.word_weight = self.make_param(0, (self.vocab_size, d), "word weight")
        self.class_weight = self.make_param(1, (self.nclass, d), "class weight")
        self.out_shape = tuple(int(s) for s in src_shapes[0])
        self._metrics = {}
        return self.out_shape

    def _targets(self, src):
        rows, w = _window(src)
        if rows is None:
            rows = numpy.asarray(self.backend.to_host(src.data)).astype(numpy.int64)
        tg = rows[1:w + 1]
        wid, cid, lo, hi = tg[:, 0], tg[:, 1], tg[:, 2], tg[:, 3]
        hint = "vocab_size and nclass must be the data's (singa-create-data rnnlm prints them)"
        _check_range(self, "class_index", cid, self.nclass, "[loss_conf].nclass", hint)
        _check_range(self, "class_end - 1", hi - 1, self.vocab_size, "[loss_conf].vocab_size", hint)
        bad = numpy.flatnonzero((lo > wid) | (wid >= hi))
        if bad.size:
            t = int(bad[0])
            raise DataError("Invalid word_index for %s. Expected class_start <= word_index < class_end. Received: %d, "
                            "class range [%d, %d) (target row %d)\nhelp: write the data again with singa-create-data "
                            "rnnlm" % (_where(self), wid[t], lo[t], hi[t], t + 1))
        return tg

    def _softmax(self, z):
        e = self.xp.exp(z - z.max())
        return e / e.sum()

    def forward(self, flag, srcs):
        s, Ww, Wc = srcs[0].data, self.word_weight.data, self.class_weight.data
        tg = self._targets(srcs[1])
        self.srcs_data, self.tg, self.probs = s, tg, []
        loss = log10 = 0.0
        for t, (wid, cid, lo, hi) in enumerate(tg):
            pw = self._softmax(Ww[lo:hi] @ s[t])
            pc = self._softmax(Wc @ s[t])
            p = max(float(pw[wid - lo]) * float(pc[cid]), FLT_MIN)
            loss -= math.log(p)
            log10 += math.log10(p)
            self.probs.append((pw, pc))
        n = len(tg)
        self._metrics = {"loss": Weighted(loss / n, n), "ppl": Weighted(10.0 ** (-log10 / n), n, geometric=True)}
        self.data = s
        return s

    def metrics(self):
        return dict(self._metrics)

    def backward(self, flag, srcs, grad):
        s, xp = self.srcs_data, self.xp
        gw = xp.zeros(self.word_weight.shape, dtype=self.dtype)
        gc = xp.zeros(self.class_weight.shape, dtype=self.dtype)
        ds = xp.zeros(s.shape, dtype=self.dtype)
        Ww, Wc = self.word_weight.data, self.class_weight.data
        for t, ((wid, cid, lo, hi), (pw, pc)) in enumerate(zip(self.tg, self.probs)):
            pw, pc = pw.copy(), pc.copy()
            pw[wid - lo] -= 1
            pc[cid] -= 1
            gw[lo:hi] += xp.outer(pw, s[t])
            gc += xp.outer(pc, s[t])
            ds[t] = pw @ Ww[lo:hi] + pc @ Wc
        _to_sink(self.word_weight, gw)
        _to_sink(self.class_weight, gc)
        return [ds, None]
