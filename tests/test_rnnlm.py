# covers: singa/layers/rnnlm.py, singa/results.py, singa/worker.py
"""SINGA's rnnlm user layers (kData, kEmbedding, kHidden, kLoss), their word-weighted 'ppl', and
rnnlm-job.conf running unchanged on the fortunes words."""
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import CONF_DIR, retrain_last_checkpoint
from singa.backends import Backend
from singa.errors import ConfigError, DataError
from singa.io.kvfile import KVFileWriter
from singa.proto import rnnlm_pb2
from singa.results import MetricSums, Weighted
from singa.testing.gradcheck import Source, build_layer, check_layer_gradients
from singa.worker import MetricAverager

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOB_CONF = os.path.join(CONF_DIR, "rnnlm-job.conf")
FLT_MIN = float(np.finfo(np.float32).tiny)

# 12 words in 3 classes: [0, 3), [3, 7), [7, 12)
CLASSES = [(0, 3), (3, 7), (7, 12)]


def row(word):
    c = next(k for k, (lo, hi) in enumerate(CLASSES) if lo <= word < hi)
    return [word, c, CLASSES[c][0], CLASSES[c][1]]


def rows(words):
    return np.array([row(w) for w in words], dtype=np.float64)


HIDDEN = 'name: "hidden" user_type: "kHidden" srclayers: "embedding" param { name: "w2" }'
EMBED = ('name: "embedding" user_type: "kEmbedding" srclayers: "data" [embedding_conf] { word_dim: 4 vocab_size: 12 } '
         'param { name: "w1" }')
LOSS = ('name: "loss" user_type: "kLoss" srclayers: "hidden" srclayers: "data" '
        '[loss_conf] { nclass: 3 vocab_size: 12 } param { name: "w3" } param { name: "w4" }')


def data_conf(path, max_window=3):
    return 'name: "data" user_type: "kData" [data_conf] { path: "%s" max_window: %d }' % (path, max_window)


def test_hidden_gradients_over_several_steps():
    check_layer_gradients(HIDDEN, [(6, 4)])               # 6 time steps: the recurrence's h.W terms


def test_loss_gradients_and_the_sum_over_words():
    data = rows([1, 4, 0, 9, 11, 5])                      # targets: rows 1..5
    h = np.random.default_rng(3).standard_normal((6, 4))
    # the gradient is of the summed loss; the reported loss is per word (5 of them)
    check_layer_gradients(LOSS, [(6, 4), (6, 4)], inputs=[h, data], data_srcs={1}, loss_grad_factor=5)


def test_embedding_gradients():
    check_layer_gradients(EMBED, [(5, 4)], inputs=[rows([3, 7, 3, 0, 11])], data_srcs={0})


def test_embedding_adds_a_repeated_words_gradients():
    layer = build_layer(EMBED, [(6, 4)])
    layer.weight.set_values(np.random.default_rng(0).standard_normal((12, 4)))
    src = Source("data", rows([5, 2, 5, 5, 0, 0]), is_data=True)
    src.window = 5                                        # row 5 is not an input
    y = layer.forward(0, [src])
    assert np.array_equal(y[:5], layer.weight.data[[5, 2, 5, 5, 0]]) and not y[5].any()
    g = np.random.default_rng(1).standard_normal((6, 4))
    layer.backward(0, [src], g)
    want = np.zeros((12, 4))
    np.add.at(want, [5, 2, 5, 5, 0], g[:5])               # SINGA kept only word 5's last row
    assert np.allclose(layer.weight.grad, want)


def write_records(path, words):
    with KVFileWriter(str(path)) as w:
        for k, word in enumerate(words):
            r = row(word)
            rec = rnnlm_pb2.WordRecord(word="w%d" % word, word_index=r[0], class_index=r[1], class_start=r[2],
                                       class_end=r[3])
            w.insert("%05d" % k, rec.SerializeToString())


def windows(layer, n):
    out = []
    for _ in range(n):
        layer.forward(0, [])
        out.append([int(x) for x in layer.rows[:layer.window + 1, 0]])
        assert not layer.rows[layer.window + 1:].any()
        assert np.array_equal(layer.data[:, 0], layer.rows[:, 0])
    return out


def test_data_windows_end_at_sentence_ends_and_max_window_and_wrap(tmp_path):
    path = tmp_path / "d.bin"
    write_records(path, [0, 4, 5, 0, 7, 8, 9, 10, 11, 0, 3])
    layer = build_layer(data_conf(path), [])
    assert layer.out_shape == (4, 4)
    got = windows(layer, 6)
    assert got == [[0, 4, 5, 0],          # a sentence end stops the window
                   [0, 7, 8, 9],          # max_window 3
                   [9, 10, 11, 0],        # starts with the last row used
                   [0, 3, 0],             # wraps at EOF to record 0 (a </s>)
                   [0, 4, 5, 0],
                   [0, 7, 8, 9]]
    # the position checkpoints and resumes: a fresh layer set to it continues identically
    layer2 = build_layer(data_conf(path), [])
    windows(layer2, 2)
    again = build_layer(data_conf(path), [])
    again.pos = layer2.pos
    assert windows(again, 3) == got[2:5]
    with pytest.raises(DataError, match=r"position 12 .*\[0, 11\]"):
        again.pos = 12


def test_data_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"(?s)\[data_conf\] of layer 'data' \(user_type kData\).*help:"):
        build_layer('name: "data" user_type: "kData"', [])
    with pytest.raises(ConfigError, match=r"\[data_conf\]\.max_window .*unset"):
        build_layer('name: "data" user_type: "kData" [data_conf] { path: "x" }', [])
    with pytest.raises(ConfigError, match=r"backend .*'kvfile'"):
        build_layer('name: "data" user_type: "kData" [data_conf] { path: "x" max_window: 2 backend: "lmdb" }', [])
    layer = build_layer(data_conf(tmp_path / "missing.bin"), [])
    with pytest.raises(DataError, match=r"(?s)\[data_conf\]\.path` .*missing\.bin.*help:"):
        layer.forward(0, [])
    with pytest.raises(ConfigError, match="cannot be split"):
        layer.read_part(0, 2, 4)


def test_missing_extension_fields_are_named():
    with pytest.raises(ConfigError, match=r"(?s)\[embedding_conf\]\.vocab_size of layer 'embedding'.*unset.*help:"):
        build_layer('name: "embedding" user_type: "kEmbedding" [embedding_conf] { word_dim: 4 } param { name: "w" }',
                    [(4, 4)])
    with pytest.raises(ConfigError, match=r"(?s)\[loss_conf\] of layer 'loss'.*help: add `\[loss_conf\]"):
        build_layer('name: "loss" user_type: "kLoss" param { name: "a" } param { name: "b" }', [(4, 4), (4, 4)])
    with pytest.raises(ConfigError, match=r"\[loss_conf\]\.nclass .*Received: 0"):
        build_layer('name: "loss" user_type: "kLoss" [loss_conf] { nclass: 0 vocab_size: 5 } param { name: "a" } '
                    'param { name: "b" }', [(4, 4), (4, 4)])


def test_a_word_outside_its_class_range_and_a_wrong_vocab_size_are_data_errors():
    loss = build_layer(LOSS, [(4, 4), (4, 4)])
    bad = rows([1, 4, 5, 0])
    bad[2, 0] = 2                                          # word 2 in class 1's range [3, 7)
    with pytest.raises(DataError, match=r"class_start <= word_index < class_end. Received: 2, class range \[3, 7\)"):
        loss.forward(0, [Source("hidden", np.zeros((4, 4))), Source("data", bad, is_data=True)])
    small = build_layer(LOSS.replace("vocab_size: 12", "vocab_size: 10"), [(4, 4), (4, 4)])
    with pytest.raises(DataError, match=r"(?s)\[loss_conf\]\.vocab_size is 10\). Received: 11.*help:"):
        small.forward(0, [Source("hidden", np.zeros((4, 4))), Source("data", rows([1, 11, 0, 2]), is_data=True)])
    emb = build_layer(EMBED.replace("vocab_size: 12", "vocab_size: 8"), [(4, 4)])
    with pytest.raises(DataError, match=r"word_index .*\[embedding_conf\]\.vocab_size is 8\). Received: 9"):
        emb.forward(0, [Source("data", rows([9, 1, 0, 2]), is_data=True)])
    fewer = build_layer(LOSS.replace("nclass: 3", "nclass: 2"), [(4, 4), (4, 4)])
    with pytest.raises(DataError, match=r"class_index .*nclass is 2\). Received: 2"):
        fewer.forward(0, [Source("hidden", np.zeros((4, 4))), Source("data", rows([1, 11, 0, 2]), is_data=True)])


@pytest.mark.parametrize("scale", [0.5, 60.0])             # 60: probabilities below FLT_MIN, clamped
def test_ppl_is_exp_loss_up_to_the_clamp(scale):
    loss = build_layer(LOSS, [(5, 4), (5, 4)])
    rng = np.random.default_rng(7)
    for p in loss.params:
        p.set_values(rng.standard_normal(p.shape) * scale)
    data = rows([1, 4, 0, 9, 11])
    h = rng.standard_normal((5, 4))
    loss.forward(0, [Source("hidden", h), Source("data", data, is_data=True)])
    m = loss.metrics()
    assert m["loss"].weight == 4 and m["ppl"].geometric
    # the reference: SINGA's sums over the four targets
    Ww, Wc = loss.params[0].data, loss.params[1].data
    ln = lg = 0.0
    for t in range(4):
        w, c, lo, hi = (int(x) for x in data[t + 1])
        zw, zc = Ww[lo:hi] @ h[t], Wc @ h[t]
        pw = np.exp(zw - zw.max()) / np.exp(zw - zw.max()).sum()
        pc = np.exp(zc - zc.max()) / np.exp(zc - zc.max()).sum()
        p = max(pw[w - lo] * pc[c], FLT_MIN)
        ln, lg = ln - math.log(p), lg + math.log10(p)
    assert m["loss"] == pytest.approx(ln / 4, rel=1e-12) and m["ppl"] == pytest.approx(10 ** (-lg / 4), rel=1e-12)
    assert m["ppl"] == pytest.approx(math.exp(m["loss"]), rel=1e-9)
    if scale > 10:
        assert m["loss"] <= -math.log(FLT_MIN) + 1e-9     # the clamp bounds a word's loss at 87.3


def test_ppl_averages_over_the_words_since_the_display_not_over_batches():
    # two windows: 1 word at loss 1.0, 9 words at loss 3.0 (SINGA: loss = 28/10, ppl = e^2.8)
    batches = [{"loss": Weighted(1.0, 1), "ppl": Weighted(math.e, 1, geometric=True)},
               {"loss": Weighted(3.0, 9), "ppl": Weighted(math.e ** 3, 9, geometric=True)}]
    avg = MetricAverager()
    for b in batches:
        avg.add(b)
    assert avg.last is batches[1] and avg.n == 2
    m = avg.pop()
    assert m["loss"] == pytest.approx(2.8) and m["ppl"] == pytest.approx(math.exp(2.8))
    assert m["ppl"] != pytest.approx((math.e + math.e ** 3) / 2)     # the mean of per-batch ppl differs
    assert avg.pop() == {} and avg.n == 0
    plain = MetricSums()                                   # unweighted metrics keep the per-batch mean
    plain.add({"acc": 0.5})
    plain.add({"acc": 1.0})
    assert plain.means() == {"acc": 0.75}


def test_a_net_of_the_four_layers_on_numpy_and_the_stand_in(tmp_path):
    from singa.neuralnet import NeuralNet
    from singa.proto import job_pb2, parse_job_conf
    from singa.random import RandomStreams
    from singa.testing.gradcheck import device_backends
    path = tmp_path / "d.bin"
    write_records(path, [0, 4, 5, 0, 7, 8, 9, 10, 11, 0, 3, 1, 2, 0])
    text = ("neuralnet { layer { %s } layer { %s } layer { %s } layer { %s } }"
            % (data_conf(path, 4), EMBED, HIDDEN, LOSS)).replace('param { name: "w', 'param { init { type: kUniform '
                                                                  'low: -0.3 high: 0.3 } name: "w')
    job = parse_job_conf(text)
    out = []
    for backend in [Backend(None)] + list(device_backends()):
        net = NeuralNet(job.neuralnet, job_pb2.kTrain, backend, RandomStreams(1), dtype=np.float64)
        ms = []
        for _ in range(4):
            net.forward(job_pb2.kTrain)
            ms.append(net.metrics())
            net.backward(job_pb2.kTrain)
        out.append(([float(m["loss"]) for m in ms], [np.array(backend.to_host(p.grad)) for p in net.owner_params]))
    names = [p.name for p in net.owner_params]
    assert names == ["w1", "w2", "w3", "w4"]
    for losses, grads in out[1:]:
        assert np.allclose(losses, out[0][0], rtol=1e-9)
        assert all(np.allclose(a, b, rtol=1e-9, atol=1e-12) for a, b in zip(grads, out[0][1]))


def fortunes_rnnlm(tmp):
    """The fortunes words (vocab 3720) and their WordRecord files, as the issue's commands make them."""
    from singa.datasets.fortunes import write_parts
    from singa.io.rnnlm_data import create_rnnlm_data
    write_parts(str(tmp / "out"), vocab_size=3720)
    words = {p: str(tmp / "out" / ("fortunes-words-%s.txt" % p)) for p in ("train", "valid", "test")}
    return create_rnnlm_data(words["train"], words["valid"], words["test"], 100, str(tmp / "examples" / "rnnlm"))


def test_rnnlm_job_conf_runs_unchanged_on_the_fortunes_words(tmp_path):
    if not os.path.isfile(JOB_CONF):
        pytest.skip("the SINGA v0.3 confs are not here")
    summary = fortunes_rnnlm(tmp_path)
    assert summary["vocab_size"] == 3720 and summary["nclass"] == 100
    shutil.copy(JOB_CONF, tmp_path / "rnnlm-job.conf")
    exe = os.path.join(os.path.dirname(sys.executable), "singa-run")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "singa"]
    cmd += ["-conf", "rnnlm-job.conf", "-cpu", "-set", "train_steps=30", "-set", "disp_freq=10",
            "-set", "validate_freq=30", "-set", "validate_steps=5"]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr + r.stdout
    import re
    lines = re.findall(r"Train @ step (\d+): loss = ([\d.]+), ppl = ([\d.]+)", r.stdout)
    assert [int(s) for s, _, _ in lines] == [0, 10, 20, 29], r.stdout
    for _, loss, ppl in lines:
        assert float(ppl) == pytest.approx(math.exp(float(loss)), rel=1e-4)
    assert re.search(r"Validation @ step 30: loss = [\d.]+, ppl = [\d.]+", r.stdout), r.stdout
    ck = tmp_path / "examples" / "rnnlm" / "checkpoint" / "step30-worker0"
    from singa.io import checkpoint as ckpt
    shapes = {n: v.shape for n, v, _ in ckpt.read_checkpoint(str(ck))}
    assert shapes == {"w1": (3720, 15), "w2": (15, 15), "w3": (3720, 15), "w4": (100, 15)}


def small_job(tmp, steps=20, disp=10, extra=""):
    """A tiny rnnlm job (12 words, 3 classes) on a hand-made record file, in ``tmp``."""
    path = tmp / "words.bin"
    rng = np.random.default_rng(5)
    write_records(path, [0] + [int(w) for w in rng.integers(0, 12, 200)])
    init = 'init { type: kUniform low: -0.3 high: 0.3 }'
    layers = [data_conf(path, 4) + " include: kTrain", data_conf(path, 4) + " include: kVal", EMBED, HIDDEN, LOSS]
    net = " ".join("layer { %s }" % l.replace('param { name: "w', 'param { %s name: "w' % init) for l in layers)
    return ('name: "tiny-rnnlm" train_steps: %d disp_freq: %d validate_steps: 3 validate_freq: 10 %s '
            'train_one_batch { alg: kBP } updater { type: kSGD learning_rate { type: kFixed base_lr: 0.1 } } '
            'neuralnet { %s } cluster { workspace: "%s" }' % (steps, disp, extra, net, tmp / "ws"))


def test_a_resumed_run_continues_the_word_stream_bit_identically(tmp_path):
    text = small_job(tmp_path, steps=20, extra="checkpoint_freq: 10")
    full, res, again = retrain_last_checkpoint(text, tmp_path / "ws/checkpoint/step20-worker0")
    assert min(res.train) >= 10            # it resumed from step 10, with kData's position
    assert full.keys() == again.keys() and all(np.array_equal(full[n], again[n]) for n in full)


@pytest.mark.slow
def test_rnnlm_on_the_fortunes_words_beats_the_unigram_model(tmp_path, monkeypatch):
    """The measurement (minutes on 2 cores, not in CI): rnnlm-job.conf as shipped (81350 steps)
    plus a kTest data layer on test_data.bin and one pass over it; the unigram model of the train
    words' frequencies scored on the same targets (every test record after the first). The issue
    wants rnnlm's test ppl at least 40% lower."""
    import re
    from singa.driver import Driver
    from singa.io.rnnlm_data import read_word_records
    from singa.proto import parse_job_conf
    if not os.path.isfile(JOB_CONF):
        pytest.skip("the SINGA v0.3 confs are not here")
    fortunes_rnnlm(tmp_path)
    monkeypatch.chdir(tmp_path)
    text = open(JOB_CONF).read().replace("layer{\n  name: \"embedding\"", 'layer { name: "data" user_type: "kData" '
                                         '[data_conf] { path: "examples/rnnlm/test_data.bin" max_window: 10 } '
                                         'include: kTest }\nlayer{\n  name: "embedding"', 1)
    test = read_word_records("examples/rnnlm/test_data.bin")[0]
    windows, pos = 0, 1                  # kData's windows in one pass over the test records
    while pos < len(test):
        end = min(pos + 10, len(test))
        stop = next((i for i in range(pos, end) if test[i, 0] == 0), end - 1)
        pos, windows = stop + 1, windows + 1
    text = re.sub(r"validate_steps:\d+", "validate_steps:683\ntest_steps:%d" % windows, text)
    res = Driver(verbose=False).train(parse_job_conf(text))
    ppl = res.test[max(res.test)]["ppl"]
    train = read_word_records("examples/rnnlm/train_data.bin")[0]
    p = np.bincount(train[:, 0], minlength=3720) / len(train)
    unigram = math.exp(-np.mean(np.log(np.maximum(p[test[1:, 0]], FLT_MIN))))
    print("rnnlm test ppl %.2f, unigram %.2f: %.1f%% lower" % (ppl, unigram, 100 * (1 - ppl / unigram)))
    assert ppl <= 0.6 * unigram


def test_each_validation_continues_where_the_last_one_stopped(tmp_path):
    """As in SINGA, the validation net's kData persists: round k reads the windows after round k-1's."""
    from singa.callbacks import Callback
    from singa.driver import Driver
    from singa.proto import parse_job_conf
    seen = []

    class Pos(Callback):
        def on_test_end(self, run, step, phase, metrics):
            seen.append(run.val_net.data_layers[0].pos)

    Driver(verbose=False).train(parse_job_conf(small_job(tmp_path)), callbacks=[Pos()])
    fresh = build_layer(data_conf(tmp_path / "words.bin", 4), [])
    want = []
    for _ in range(3):                       # 3 rounds (steps 0, 10, 20) of validate_steps 3
        for _ in range(3):
            fresh.forward(0, [])
        want.append(fresh.pos)
    assert seen == want and len(set(seen)) == 3
