# covers: singa/callbacks.py, singa/history.py
"""Callbacks (singa.callbacks) and History (singa.history) on real training runs."""
import csv
import json
import os

import numpy as np
import pytest

from singa.callbacks import (Callback, CSVLogger, EarlyStopping, LearningRateScheduler, ModelCheckpoint,
                             TerminateOnNaN, parse_monitor)
from singa.driver import Driver
from singa.errors import ConfigError, DataError
from singa.history import History
from singa.io import checkpoint as ckpt
from tests.test_driver import job_dir, make_job  # noqa: F401  (fixture)


def params(path):
    return {n: v for n, v, _ in ckpt.read_checkpoint(str(path))}


def test_history_keeps_every_step_display_and_test(job_dir):
    h = History()
    res = Driver(verbose=False).train(make_job(steps=30, disp=10, test_freq=10), callbacks=[h])
    assert sorted(h.step) == list(range(30)) and set(h.step[0]) == {"loss", "acc"}
    assert h.train == res.train and h.test == res.test and h.validation == {}
    # a display step's metrics are the mean of the steps since the previous display
    assert h.train[10]["loss"] == pytest.approx(np.mean([h.step[s]["loss"] for s in range(1, 11)]), rel=1e-9)


def test_history_round_trips_through_csv_and_jsonl(job_dir, in_tmp):
    h = History()
    Driver(verbose=False).train(make_job(steps=12, disp=5, test_freq=6), callbacks=[h])
    h.step[3]["loss"] = float("nan")            # a diverged step survives both formats
    for save, load, name in ((h.to_csv, History.from_csv, "h.csv"), (h.to_jsonl, History.from_jsonl, "h.jsonl")):
        back = load(save(str(in_tmp / name)))
        assert back.metrics() == h.metrics() and np.isnan(back.step[3]["loss"])
        back.step[3]["loss"] = h.step[3]["loss"] = 0.0
        assert back == h
        h.step[3]["loss"] = float("nan")
    (in_tmp / "bad.csv").write_text("step,loss\n1,2\n")
    with pytest.raises(DataError, match="not a History CSV"):
        History.from_csv(str(in_tmp / "bad.csv"))
    (in_tmp / "bad.jsonl").write_text('{"phase": "train", "step": 1, "loss": 1}\n{"phase": "nope", "step": 2}\n')
    with pytest.raises(DataError, match="line 2.*phase 'nope'"):
        History.from_jsonl(str(in_tmp / "bad.jsonl"))
    (in_tmp / "bad.jsonl").write_text('{"phase": "train", "step": 1, "loss": 1}\nnot json\n')
    with pytest.raises(DataError, match="line 2 is not a History record"):
        History.from_jsonl(str(in_tmp / "bad.jsonl"))


def test_history_plot_writes_a_png(job_dir, in_tmp):
    pytest.importorskip("matplotlib")
    h = History()
    Driver(verbose=False).train(make_job(steps=40, disp=10, test_freq=10), callbacks=[h])
    path = h.plot(str(in_tmp / "curves.png"), title="tiny")
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000


def test_terminate_on_nan_stops_at_the_step_and_keeps_the_last_good_checkpoint(job_dir):
    job = make_job(steps=200, disp=10, test_freq=0, extra="checkpoint_freq: 2\n")
    job.updater.learning_rate.base_lr = 1e37           # the weights overflow within a few steps
    with np.errstate(all="ignore"):
        res = Driver(verbose=False).train(job)
    assert res.stopped and res.stopped.startswith("TerminateOnNaN")
    step = int(res.stopped.split(" at step ")[1].split(";")[0])
    assert step < 199 and max(res.train) == step
    assert "first non-finite values: the output of layer 'fc" in res.stopped or "param" in res.stopped
    # no checkpoint of the diverged values; the last good one is named and exists
    written = sorted(int(f[4:].split("-")[0]) for f in os.listdir(job_dir / "ws" / "checkpoint")
                     if f.startswith("step") and f.endswith("worker0"))
    assert written and max(written) <= step
    assert res.checkpoint == ckpt.checkpoint_file("ws", max(written), 0) and res.checkpoint in res.stopped
    assert all(np.isfinite(v).all() for v in params(res.checkpoint).values())
    # turned off, the run goes on to the end (with NaNs)
    job.train_steps = 20
    with np.errstate(all="ignore"):
        res = Driver(verbose=False).train(job, terminate_on_nan=False)
    assert res.stopped is None and 19 in res.train and np.isnan(res.train[19]["loss"])


def test_early_stopping_on_the_test_loss(job_dir):
    # mode 'max' on a falling test loss: the first round is the best, the second stops the run
    es = EarlyStopping(monitor="test_loss", mode="max", patience=1)
    res = Driver(verbose=False).train(make_job(steps=100, disp=5, test_freq=10), callbacks=[es])
    assert es.best_step == 0 and es.stopped_step == 20
    assert max(res.train) == 20 and "EarlyStopping: test_loss did not improve" in res.stopped
    assert os.path.isfile(res.checkpoint) and res.checkpoint.endswith("step21-worker0")


def test_model_checkpoint_keeps_the_best_and_the_last(job_dir):
    mc = ModelCheckpoint(monitor="test_acc")
    res = Driver(verbose=False).train(make_job(steps=40, disp=10, test_freq=10), callbacks=[mc])
    info = json.loads(open(mc.best_path + ".json").read())
    best = max(res.test, key=lambda s: (res.test[s]["acc"], -s))
    assert info == {"step": best, "monitor": "test_acc", "value": res.test[best]["acc"]}
    assert mc.best_path.endswith(os.path.join("checkpoint", "best-worker0"))
    last = params(mc.last_path)
    final = params(res.checkpoint)
    for k in final:
        np.testing.assert_array_equal(last[k], final[k])
    # the best checkpoint evaluates to the recorded value
    job = make_job(steps=40, disp=10, test_freq=10, extra='checkpoint_path: "%s"\n' % mc.best_path)
    again = Driver(verbose=False).test(job)
    assert list(again.test.values())[0]["acc"] == pytest.approx(info["value"], abs=1e-6)


def test_csv_logger_writes_train_and_test_rows(job_dir, in_tmp):
    Driver(verbose=False).train(make_job(steps=20, disp=10, test_freq=10), callbacks=[CSVLogger("log.csv")])
    rows = list(csv.reader(open(in_tmp / "log.csv")))
    assert rows[0] == ["step", "phase", "acc", "loss"]
    assert [(r[0], r[1]) for r in rows[1:]] == [("0", "test"), ("0", "train"), ("10", "test"), ("10", "train"),
                                                ("19", "train"), ("20", "test")]
    Driver(verbose=False).train(make_job(steps=5, disp=0, test_freq=0), callbacks=[CSVLogger("log.csv", append=True,
                                                                                             every_step=True)])
    rows2 = list(csv.reader(open(in_tmp / "log.csv")))
    # test_freq 0 still tests once, after the last step
    assert rows2[:len(rows)] == rows and len(rows2) == len(rows) + 6 and rows2[-2][:2] == ["4", "train"]
    assert rows2[-1][:2] == ["5", "test"]


def test_learning_rate_scheduler_sees_and_replaces_the_rate(job_dir):
    seen = []

    def zero(step, lr):
        seen.append((step, lr))
        return 0.0
    res = Driver(verbose=False).train(make_job(steps=8, test_freq=0), callbacks=[LearningRateScheduler(zero)])
    assert seen and all(lr == pytest.approx(0.1) for _, lr in seen) and {s for s, _ in seen} >= set(range(8))
    # rate 0 throughout: the same values as a job whose own rate is 0
    job = make_job(steps=8, test_freq=0)
    job.updater.learning_rate.base_lr = 0.0
    final = params(res.checkpoint)
    ref = Driver(verbose=False).train(job)
    for k, v in params(ref.checkpoint).items():
        np.testing.assert_array_equal(final[k], v)
    # and a rate that does move them
    moved = Driver(verbose=False).train(make_job(steps=8, test_freq=0),
                                        callbacks=[LearningRateScheduler(lambda s, lr: 2 * lr)])
    assert any(not np.array_equal(params(moved.checkpoint)[k], final[k]) for k in final)
    with pytest.raises(ConfigError, match="schedule gave -1.0 for step 0"):
        Driver(verbose=False).train(make_job(steps=3, test_freq=0), callbacks=[LearningRateScheduler(lambda s, lr: -1)])


def test_a_callback_can_stop_the_run_and_sees_the_net(job_dir):
    class StopAt(Callback):
        def on_step_end(self, run, step, metrics):
            if step == 6:
                self.names = sorted(run.param_values())
                run.stop_training = True
    cb = StopAt()
    res = Driver(verbose=False).train(make_job(steps=50, disp=5, test_freq=0), callbacks=[cb])
    assert cb.names == ["b1", "b2", "w1", "w2"]
    assert max(res.train) == 6 and res.stopped == "a callback asked to stop (after step 6)"


def test_bad_callbacks_and_monitors_fail_clearly(job_dir):
    with pytest.raises(ConfigError, match="Expected singa.callbacks.Callback objects"):
        Driver(verbose=False).train(make_job(steps=3), callbacks=[print])
    with pytest.raises(ConfigError, match=r"test metrics have no 'accuracy' \(they have \['acc', 'loss'\]\)"):
        Driver(verbose=False).train(make_job(steps=3, test_freq=1), callbacks=[EarlyStopping("test_accuracy")])
    with pytest.raises(ConfigError, match="mode"):
        EarlyStopping(mode="biggest")
    with pytest.raises(ConfigError, match="patience"):
        EarlyStopping(patience=-1)
    assert parse_monitor("val_acc") == ("validation", "acc") and parse_monitor("loss") == ("train", "loss")
    assert TerminateOnNaN() is not None


def test_ppl_reaches_results_history_and_callbacks_averaged_over_the_words(tmp_path):
    import math
    from singa.proto import parse_job_conf
    from tests.test_rnnlm import small_job
    h, seen = History(), []

    class Seen(Callback):
        def on_display(self, run, step, metrics):
            seen.append(("display", step, dict(metrics)))

        def on_test_end(self, run, step, phase, metrics):
            seen.append((phase, step, dict(metrics)))

    stop = EarlyStopping(monitor="val_ppl", patience=10)
    log = CSVLogger(str(tmp_path / "log.csv"))
    res = Driver(verbose=False).train(parse_job_conf(small_job(tmp_path)), callbacks=[h, Seen(), stop, log])
    assert sorted(res.train) == [0, 10, 19] and all(set(m) == {"loss", "ppl"} for m in res.train.values())
    assert set(res.validation[20]) == {"loss", "ppl"} and stop.mode == "min" and stop.best is not None
    assert [s for k, s, _ in seen if k == "display"] == [0, 10, 19] and ("validation", 20, res.validation[20]) in seen
    # a display's ppl: exp of the per-word loss over all the words of its steps (not the mean of their ppl)
    steps = [h.step[s] for s in range(1, 11)]
    words = sum(m["ppl"].weight for m in steps)
    want = math.exp(sum(m["loss"] * m["loss"].weight for m in steps) / words)
    assert res.train[10]["ppl"] == pytest.approx(want, rel=1e-9)
    assert res.train[10]["ppl"] == pytest.approx(math.exp(res.train[10]["loss"]), rel=1e-6)
    assert res.train[10]["ppl"] != pytest.approx(sum(m["ppl"] for m in steps) / len(steps), rel=1e-6)
    # the files keep it
    back = History.from_csv(h.to_csv(str(tmp_path / "h.csv")))
    assert back.metrics() == ["loss", "ppl"] and back.train[10]["ppl"] == pytest.approx(res.train[10]["ppl"])
    back = History.from_jsonl(h.to_jsonl(str(tmp_path / "h.jsonl")))
    assert back.validation[20] == pytest.approx(res.validation[20])
    with open(tmp_path / "log.csv") as f:
        assert next(csv.reader(f)) == ["step", "phase", "loss", "ppl"]
    pytest.importorskip("matplotlib")
    assert os.path.getsize(h.plot(str(tmp_path / "curves.png"))) > 0
