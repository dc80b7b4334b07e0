# covers: singa/heldout.py, examples/singa-v0/char-rnn/char-rnn-sample-1gru.conf, examples/singa-v0/char-rnn/char-rnn-job-2gru.conf, benchmarks/compare_charrnn.py, benchmarks/rnn_layer_times.py
"""char-rnn runs end to end: the held-out loss of a trained checkpoint (singa.heldout, through
Driver.test), sampling with the one-GRU sample conf, and (slow) the comparison with PyTorch."""
import io
import math
import os
import re
import string
import sys
from contextlib import redirect_stdout

import numpy
import pytest

from singa.driver import Driver
from singa.errors import ConfigError, DataError
from singa.heldout import heldout_job, heldout_loss, main as heldout_main, passes_of
from singa.io.create_data import convert_char_rnn
from singa.proto import job_pb2, parse_job_conf, read_job_conf
from tests.conftest import CONF_DIR, ROOT

SAMPLE_1GRU = os.path.join(CONF_DIR, "char-rnn", "char-rnn-sample-1gru.conf")
JOB = os.path.join(CONF_DIR, "char-rnn-job.conf")
JOB_2GRU = os.path.join(CONF_DIR, "char-rnn", "char-rnn-job-2gru.conf")
SAMPLE = os.path.join(CONF_DIR, "char-rnn-sample.conf")      # SINGA's, verbatim

# a small char-rnn: kCharRNN -> kOneHot / kRNNLabel -> kGRU -> kInnerProduct -> kSoftmaxLoss, BPTT
SMALL = """name: "small-charrnn" train_steps: %(steps)d disp_freq: 100
train_one_batch { alg: kBPTT }
updater { type: kRMSProp rmsprop_conf { rho: 0.95 } learning_rate { type: kFixed base_lr: 0.01 } }
neuralnet { unroll_len: 5
  layer { name: "data" type: kCharRNN unroll_len: 1
          char_rnn_conf { path: "train.txt" vocab_path: "vocab.txt" batchsize: 4 unroll_len: 5 } }
  layer { name: "onehot" type: kOneHot srclayers: "data" unroll_conn_type: kUnrollOneToAll
          onehot_conf { vocab_size: %(V)d } }
  layer { name: "label" type: kRNNLabel srclayers: "data" unroll_conn_type: kUnrollOneToAll }
  layer { name: "gru1" type: kGRU srclayers: "onehot" gru_conf { dim_hidden: 8 }
          %(params)s }
  layer { name: "ip1" type: kInnerProduct srclayers: "gru1" innerproduct_conf { num_output: %(V)d }
          param { name: "w" init { type: kUniform low: -0.08 high: 0.08 } }
          param { name: "b" init { type: kUniform low: -0.08 high: 0.08 } } }
  layer { name: "loss" type: kSoftmaxLoss srclayers: "ip1" srclayers: "label" }
}
cluster { workspace: "ws" }
"""
GRU_PARAMS = " ".join('param { name: "%s" init { type: kUniform low: -0.08 high: 0.08 } }' % n
                      for n in ("z_hx", "r_hx", "c_hx", "z_hh", "r_hh", "c_hh", "z_b", "r_b", "c_b"))


def text_of(n, seed):
    rng = numpy.random.default_rng(seed)
    words = ["the ", "cat ", "sat ", "on ", "a ", "mat. ", "\n"]
    out = "".join(words[i] for i in rng.integers(0, len(words), n))
    return out[:n]


@pytest.fixture
def small_run(in_tmp):
    """(job, checkpoint) of the small char-rnn trained 6 steps in in_tmp, and its held-out text."""
    (in_tmp / "raw.txt").write_text(text_of(900, 0))
    convert_char_rnn(str(in_tmp / "raw.txt"), str(in_tmp), name="train.txt")
    V = len((in_tmp / "vocab.txt").read_bytes())
    (in_tmp / "test.txt").write_text(text_of(300, 1))
    job = parse_job_conf(SMALL % dict(steps=6, V=V, params=GRU_PARAMS))
    Driver(seed=0, verbose=False).train(job)
    ckpt = os.path.join("ws", "checkpoint", "step6-worker0")
    assert os.path.isfile(ckpt)
    return job, ckpt, "test.txt"


def test_heldout_loss_is_driver_test_on_the_heldout_text_over_one_pass(small_run):
    job, ckpt, text = small_run
    r = heldout_loss(job, ckpt, text)
    n = passes_of(os.path.getsize(text), 4, 5)
    assert r["steps"] == n == (300 // 4 - 1) // 5
    assert math.isfinite(r["nats"]) and 0 < r["nats"] < 2 * math.log(10)
    assert r["bits"] == pytest.approx(r["nats"] / math.log(2))
    # the same as editing the conf by hand and running Driver.test (the tool adds nothing to the numbers)
    by_hand = job_pb2.JobProto()
    by_hand.CopyFrom(job)
    by_hand.neuralnet.layer[0].char_rnn_conf.path = text
    by_hand.checkpoint_path.append(ckpt)
    by_hand.test_steps = n
    (m,) = Driver(seed=0, verbose=False).test(by_hand).test.values()
    assert m["loss"] == pytest.approx(r["nats"], rel=1e-12)
    # one pass: n windows are every window kCharRNN reads before it wraps, so 2n steps average the same
    assert heldout_loss(job, ckpt, text, steps=10 * n)["steps"] == n
    assert heldout_loss(job, ckpt, text, steps=1)["steps"] == 1
    # the training text gives a different (lower or not) but finite loss: the path really changed
    assert heldout_loss(job, ckpt, "train.txt")["nats"] != pytest.approx(r["nats"], rel=1e-9)


def test_heldout_job_leaves_the_conf_alone_and_refuses_what_it_cannot_test(small_run):
    job, ckpt, text = small_run
    before = job.SerializeToString()
    tj = heldout_job(job, ckpt, text)
    assert job.SerializeToString() == before
    assert list(tj.checkpoint_path) == [ckpt] and tj.neuralnet.layer[0].char_rnn_conf.path == text
    with pytest.raises(DataError, match=r"`-text`.*'nope.txt'"):
        heldout_job(job, ckpt, "nope.txt")
    with open("short.txt", "w") as f:
        f.write("the " * 5)
    with pytest.raises(DataError, match=r"batchsize \* \(unroll_len \+ 1\) = 24 characters. Received: 20\nhelp:"):
        heldout_job(job, ckpt, "short.txt")
    nochar = job_pb2.JobProto()
    nochar.CopyFrom(job)
    nochar.neuralnet.layer[0].type = job_pb2.kRNNDummy
    with pytest.raises(ConfigError, match=r"(?s)kCharRNN data layer.*help:"):
        heldout_job(nochar, ckpt, text)


def test_heldout_command_line_prints_nats_and_bits(small_run, capsys):
    job, ckpt, text = small_run
    with open("job.conf", "w") as f:
        f.write(SMALL % dict(steps=6, V=len(open("vocab.txt", "rb").read()), params=GRU_PARAMS))
    assert heldout_main(["-conf", "job.conf", "-checkpoint", ckpt, "-text", text]) == 0
    out = capsys.readouterr().out
    m = re.search(r"(\d+) steps, loss per char = ([\d.]+) nats = ([\d.]+) bits", out)
    assert m and int(m.group(1)) == 14, out
    assert float(m.group(3)) == pytest.approx(float(m.group(2)) / math.log(2), abs=2e-6)
    assert heldout_main(["-conf", "job.conf", "-checkpoint", "ws/none", "-text", text]) == 1
    assert "singa.heldout: error:" in capsys.readouterr().err


def test_sample_conf_with_one_gru_prints_text_from_a_job_conf_checkpoint(in_tmp):
    """examples/singa-v0/char-rnn/char-rnn-sample-1gru.conf tests a char-rnn-job.conf checkpoint (one step
    of training on a short text here) and prints test_steps characters of the vocabulary."""
    from singa.__main__ import main as singa_run
    chars = numpy.array(list(string.printable[:95] + "\n"))     # 96 characters, padded to 101
    (in_tmp / "raw.txt").write_text("".join(numpy.random.default_rng(2).choice(chars, 3000)))
    convert_char_rnn(str(in_tmp / "raw.txt"), str(in_tmp / "examples" / "char-rnn"), vocab_size=101)
    job = read_job_conf(JOB)
    job.ClearField("gpu")
    job.train_steps = 1
    Driver(seed=0, verbose=False).train(job)
    ckpt = "examples/char-rnn/checkpoint/step1-worker0"
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = singa_run(["-conf", SAMPLE_1GRU, "-cpu", "-test", "-set", "checkpoint_path=" + ckpt])
    out = buf.getvalue()
    assert rc == 0, out
    vocab = set(open("examples/char-rnn/vocab.txt", "rb").read().decode("latin-1"))
    sampled = out.split("Test @ step 1:")[0]
    assert len(sampled) >= 100 - 1 and set(sampled) <= vocab | {"\ufffd"}, repr(out)
    conf = read_job_conf(SAMPLE_1GRU)
    names = {ly.name for ly in conf.neuralnet.layer}
    assert "gru2" not in names and not conf.checkpoint_path and conf.test_steps == 100
    onehot = [ly for ly in conf.neuralnet.layer if ly.name == "onehot"][0]
    assert onehot.onehot_conf.vocab_size == 101


def _printable_text(in_tmp):
    chars = numpy.array(list(string.printable[:95] + "\n"))     # 96 characters, padded to 101
    (in_tmp / "raw.txt").write_text("".join(numpy.random.default_rng(2).choice(chars, 3000)))
    convert_char_rnn(str(in_tmp / "raw.txt"), str(in_tmp / "examples" / "char-rnn"), vocab_size=101)


def _train_as_step2000(conf):
    """conf trained one step, its checkpoint put where sample.conf's checkpoint_path points."""
    job = read_job_conf(conf)
    job.ClearField("gpu")
    job.train_steps = 1
    Driver(seed=0, verbose=False).train(job)
    os.replace("examples/char-rnn/checkpoint/step1-worker0", "examples/char-rnn/checkpoint/step2000-worker0")


def test_singas_sample_conf_runs_unchanged_on_a_2gru_job_checkpoint(in_tmp):
    """SINGA's sample.conf, verbatim (vocab_size unset, two GRUs), tests the checkpoint of
    char-rnn-job-2gru.conf: kOneHot takes 101 from kRNNDummy's [0, 101) and gru2 is loaded."""
    from singa.__main__ import main as singa_run
    _printable_text(in_tmp)
    job2 = read_job_conf(JOB_2GRU)
    assert [ly.name for ly in job2.neuralnet.layer] == ["data", "onehot", "label", "gru1", "gru2", "ip1", "loss"]
    _train_as_step2000(JOB_2GRU)
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = singa_run(["-conf", SAMPLE, "-cpu", "-test", "-set", "test_steps=30"])
    out = buf.getvalue()
    assert rc == 0, out
    vocab = set(open("examples/char-rnn/vocab.txt", "rb").read().decode("latin-1"))
    sampled = out.split("Test @ step 1:")[0]
    assert len(sampled) >= 29 and set(sampled) <= vocab | {"\ufffd"}, repr(out)


def test_singas_sample_conf_on_a_1gru_job_checkpoint_names_gru2s_missing_params(in_tmp, capsys):
    from singa.__main__ import main as singa_run
    _printable_text(in_tmp)
    _train_as_step2000(JOB)
    assert singa_run(["-conf", SAMPLE, "-cpu", "-test", "-set", "test_steps=3"]) != 0
    err = capsys.readouterr().err
    assert "hold no values for param(s) ['z_hx2', 'r_hx2', 'c_hx2', 'z_hh2', 'r_hh2', 'c_hh2']" in err, err


def test_onehot_vocab_size_comes_from_a_dummy_source_only_when_unset():
    from singa.backends import Backend
    from singa.neuralnet import NeuralNet
    from singa.random import RandomStreams
    net_text = """neuralnet {
      layer { name: "data" type: kRNNDummy rnn_dummy_conf { shape: 4 integer: true low: 0 high: %s } }
      layer { name: "onehot" type: kOneHot srclayers: "data" %s } }"""
    def width(high, conf=""):
        job = parse_job_conf(net_text % (high, conf), check_required=False)
        return NeuralNet(job.neuralnet, job_pb2.kTest, Backend(None), RandomStreams(0)).by_name["onehot"].out_shape
    assert width(101) == (4, 101)
    assert width(7.5) == (4, 8)                     # floor of [0, 7.5): 0..7
    assert width(101, "onehot_conf { vocab_size: 50 }") == (4, 50)     # a set size wins


@pytest.mark.slow
def test_compare_charrnn_runs_both_sides_from_ln_101(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    sys.path.insert(0, ROOT)
    from benchmarks import compare_charrnn
    from singa.datasets import fortunes
    if not fortunes.available():
        pytest.skip("the fortunes text is not installed")
    buf = io.StringIO()
    monkeypatch.chdir(tmp_path)
    with redirect_stdout(buf):
        assert compare_charrnn.main(["--steps", "5", "--workdir", str(tmp_path)]) == 0
    out = buf.getvalue()
    m = re.search(r"step 0 loss per char: singa ([\d.]+) nats, torch ([\d.]+) nats", out)
    assert m and abs(float(m.group(1)) - math.log(101)) < 0.05 and abs(float(m.group(2)) - math.log(101)) < 0.05
    assert re.search(r"singa / torch = [\d.]+", out), out


def test_rnn_layer_times_lists_every_layer_of_the_step(tmp_path):
    import subprocess
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "rnn_layer_times.py"), "1"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = re.findall(r"^  (\w+)\s+(forward|backward)\s+([\d.]+) ms", r.stdout, re.M)
    assert {(k, m) for k, m, _ in rows} >= {("gru1", "forward"), ("gru1", "backward"), ("ip1", "backward"),
                                             ("loss", "forward")}, r.stdout
    step = float(re.search(r"^step ([\d.]+) ms", r.stdout, re.M).group(1))
    assert sum(float(t) for _, _, t in rows) <= step
