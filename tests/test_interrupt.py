# covers: singa/interrupt.py, singa/driver.py (Ctrl-C and SIGTERM)
"""Ctrl-C (SIGINT) and SIGTERM during training, with real signals on real processes: the run stops
after the step, writes a loadable checkpoint, says where and how to resume, exits 130/143 with no
traceback, and the resumed run ends bit-identical to an uninterrupted one of the same seed."""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from singa import interrupt
from singa.driver import Driver
from singa.io import checkpoint as ckpt
from singa.callbacks import Callback
from tests.conftest import ROOT
from tests.test_driver import make_job, write_blobs

# What a user types (the seed's style); PressCtrlC stands in for a hand on the keyboard.
SCRIPT = """\
import os, signal, sys, time
from singa.model import *
from singa.callbacks import Callback

class PressCtrlC(Callback):
    def on_step_end(self, run, step, metrics):
        if step == int(os.environ.get('CTRL_C_AT', -1)):          # Ctrl-C during this step
            for _ in range(int(os.environ.get('PRESSES', 1))):
                os.kill(os.getpid(), signal.SIGINT)
        if os.environ.get('SLOW'):                                # slow steps: time to signal from outside
            if step == 2:
                open('started', 'w').close()
            time.sleep(float(os.environ['SLOW']))

X_train = Data(load='recordinput', phase='train',
               conf=Store(path='train.bin', backend='kvfile', batchsize=16, shape=8, std_value=4, random_skip=5))

m = Sequential('mlp', sys.argv)
m.add(Dense(16, init='uniform', activation='stanh'))
m.add(Dense(3, init='uniform', activation='softmax'))

sgd = SGD(lr=0.1, momentum=0.9)
m.compile(loss='categorical_crossentropy', optimizer=sgd, cluster=Cluster('ws'))
m.fit(X_train, nb_epoch=int(os.environ.get('STEPS', 30)), seed=7, callbacks=[PressCtrlC()])
print('done:', m.last_checkpoint_path)
"""


def env(**extra):
    e = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1")
    for k in ("CTRL_C_AT", "PRESSES", "SLOW", "STEPS"):
        e.pop(k, None)
    e.update({k: str(v) for k, v in extra.items()})
    return e


@pytest.fixture
def script_dir(in_tmp):
    write_blobs(in_tmp / "train.bin", 400, 1)
    (in_tmp / "train.py").write_text(SCRIPT)
    return in_tmp


def run(cwd, *args, timeout=60, **extra):
    return subprocess.run([sys.executable, "train.py"] + list(args), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env(**extra))


def params(path):
    return {n: v for n, v, _ in ckpt.read_checkpoint(str(path))}


def uninterrupted(tmp, steps):
    """The same script with the same seed, never interrupted, in a folder of its own."""
    d = tmp / ("clean%d" % steps)
    d.mkdir()
    shutil.copy(tmp / "train.bin", d)
    shutil.copy(tmp / "train.py", d)
    r = run(d, STEPS=steps)
    assert r.returncode == 0, r.stderr
    return params(d / ("ws/checkpoint/step%d-worker0" % steps))


def assert_bit_identical(a, b):
    assert a.keys() == b.keys() == {"w1", "b1", "w2", "b2"}
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_ctrl_c_writes_a_checkpoint_says_how_to_resume_and_resume_is_bit_identical(script_dir):
    r = run(script_dir, CTRL_C_AT=9)
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr and "KeyboardInterrupt" not in r.stderr, r.stderr
    assert "done:" not in r.stdout          # the script ends at fit(), as with any Ctrl-C
    path = "ws/checkpoint/step10-worker0"
    assert ("Interrupted (Ctrl-C) after step 9 of 30: checkpoint written to %s (resumes at step 10)" % path
            in r.stderr)
    assert "Resume with: python train.py -resume   (or fit(..., resume=True))" in r.stderr
    assert "Training stopped after step 9: interrupted (Ctrl-C)" in r.stdout
    # the checkpoint loads, with its state (updater history, random streams, data positions)
    assert ckpt.latest_checkpoint_step(str(script_dir / "ws")) == 10
    loaded = ckpt.read_checkpoint(str(script_dir / path))
    assert {n for n, _, _ in loaded} == {"w1", "b1", "w2", "b2"}
    arrays, meta = ckpt.read_state(str(script_dir / path))
    assert meta["step"] == 10 and arrays
    assert not [f for f in os.listdir(script_dir / "ws/checkpoint") if ".tmp" in f]   # published by rename
    # resume as the message says: the end is bit-identical to a run never interrupted
    r = run(script_dir, "-resume")
    assert r.returncode == 0, r.stderr
    assert "Resuming from %s (step 10)" % path in r.stdout
    assert_bit_identical(params(script_dir / "ws/checkpoint/step30-worker0"), uninterrupted(script_dir, 30))


def test_sigterm_from_outside_stops_cleanly_with_status_143(script_dir):
    p = subprocess.Popen([sys.executable, "train.py"], cwd=script_dir, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env(STEPS=5000, SLOW=0.02))
    try:
        deadline = time.time() + 30
        while not os.path.exists(script_dir / "started") and time.time() < deadline and p.poll() is None:
            time.sleep(0.01)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 143, err
    assert "Traceback" not in err, err
    found = re.search(r"Interrupted \(SIGTERM\) after step (\d+) of 5000: checkpoint written to "
                      r"(ws/checkpoint/step(\d+)-worker0) \(resumes at step (\d+)\)", err)
    assert found, err
    last, path, n = int(found.group(1)), found.group(2), int(found.group(3))
    assert n == last + 1 == int(found.group(4)) and 3 <= n < 5000
    assert "Resume with: python train.py -resume" in err
    assert ckpt.latest_checkpoint_step(str(script_dir / "ws")) == n
    assert len(params(script_dir / path)) == 4
    # resumed to a few steps further, the values of an uninterrupted run to there
    r = run(script_dir, "-resume", STEPS=n + 4)
    assert r.returncode == 0, r.stderr
    assert_bit_identical(params(script_dir / ("ws/checkpoint/step%d-worker0" % (n + 4))),
                         uninterrupted(script_dir, n + 4))


def test_on_a_terminal_the_message_starts_on_a_fresh_line_below_the_bar(script_dir):
    import pty
    leader, follower = pty.openpty()        # stdout and stderr on one terminal: the live bar is drawn
    p = subprocess.Popen([sys.executable, "train.py"], cwd=script_dir, stdout=follower, stderr=follower,
                         env=env(CTRL_C_AT=9))
    os.close(follower)
    out = b""
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:                 # EIO: the process closed the terminal
                break
            if not chunk:
                break
            out += chunk
        p.wait(timeout=30)
    finally:
        p.kill()
        os.close(leader)
    text = out.decode()
    assert p.returncode == 130, text
    assert "\x1b[2K[" in text and "Traceback" not in text        # the bar was drawn; no traceback
    lines = text.replace("\r\n", "\n").split("\n")
    msg = [l for l in lines if "Interrupted (Ctrl-C) after step 9" in l]
    assert msg and msg[0].startswith("Interrupted"), text      # not glued to the bar


def test_a_second_ctrl_c_interrupts_at_once(script_dir):
    r = run(script_dir, CTRL_C_AT=9, PRESSES=2)
    assert r.returncode == -signal.SIGINT       # Python's own end for an uncaught KeyboardInterrupt
    assert "KeyboardInterrupt: second Ctrl-C: training interrupted at once" in r.stderr
    assert "Interrupted (Ctrl-C) after" not in r.stderr
    assert not os.path.exists(script_dir / "ws/checkpoint/step10-worker0")


def test_job_conf_under_singa_run_behaves_the_same(script_dir):
    (script_dir / "job.conf").write_text(JOB_CONF)
    p = subprocess.Popen([sys.executable, "-m", "singa", "-conf", "job.conf"], cwd=script_dir,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        for line in p.stdout:               # the run is going: Ctrl-C
            if line.startswith("Train @ step 20:"):
                break
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 130, err
    assert "Traceback" not in err, err
    found = re.search(r"checkpoint written to ws/checkpoint/step(\d+)-worker0", err)
    assert found, err
    assert "Resume with: python -m singa -conf job.conf -resume\n" in err      # no fit() for a job.conf
    assert len(params(script_dir / ("ws/checkpoint/step%s-worker0" % found.group(1)))) == 4


JOB_CONF = """
name: "conf"
train_steps: 1000000
disp_freq: 1
train_one_batch { alg: kBP }
updater { type: kSGD momentum: 0.9 learning_rate { type: kFixed base_lr: 0.1 } }
cluster { workspace: "ws" }
neuralnet {
  layer { name: "data" type: kRecordInput
          store_conf { backend: "kvfile" path: "train.bin" batchsize: 16 shape: 8 std_value: 4 } }
  layer { name: "fc1" type: kInnerProduct srclayers: "data" innerproduct_conf { num_output: 16 }
          param { name: "w1" init { type: kGaussian std: 0.1 } } param { name: "b1" init { type: kConstant value: 0 } } }
  layer { name: "act1" type: kSTanh srclayers: "fc1" }
  layer { name: "fc2" type: kInnerProduct srclayers: "act1" innerproduct_conf { num_output: 3 }
          param { name: "w2" init { type: kUniform low: -0.1 high: 0.1 } } param { name: "b2" init { type: kConstant value: 0 } } }
  layer { name: "loss" type: kSoftmaxLoss srclayers: "fc2" srclayers: "data" }
}
"""


# -- in this process ------------------------------------------------------------------------
class CtrlCAt(Callback):
    def __init__(self, step):
        self.at, self.handler_during = step, None

    def on_step_end(self, run, step, metrics):
        self.handler_during = signal.getsignal(signal.SIGINT)
        if step == self.at:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture
def job_dir(in_tmp):
    write_blobs(in_tmp / "train.bin", 400, 1)
    write_blobs(in_tmp / "test.bin", 100, 2)
    return in_tmp


def test_in_a_script_it_is_a_keyboard_interrupt_and_a_system_exit(job_dir, capsys):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    cb = CtrlCAt(4)
    with pytest.raises(KeyboardInterrupt) as info:
        Driver(verbose=False).train(make_job(steps=40, test_freq=10), callbacks=[cb])
    e = info.value
    assert isinstance(e, interrupt.TrainingInterruptedExit) and isinstance(e, SystemExit)
    assert (e.code, e.exit_code, e.signal, e.step) == (130, 130, "SIGINT", 5)
    assert e.checkpoint == "ws/checkpoint/step5-worker0" and os.path.isfile(e.checkpoint)
    assert e.results.stopped == "interrupted (Ctrl-C)" and max(e.results.train) == 4
    assert 5 not in e.results.test              # no final test round after an interrupt
    assert "checkpoint written to ws/checkpoint/step5-worker0" in capsys.readouterr().err
    # the handlers were the Driver's during training and are the previous ones again after it
    assert cb.handler_during not in before
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_interactive_sessions_get_a_keyboard_interrupt_only(job_dir, capsys, monkeypatch):
    monkeypatch.setattr(interrupt, "interactive", lambda: True)     # the REPL, IPython, Jupyter
    with pytest.raises(interrupt.TrainingInterrupted) as info:
        Driver(verbose=False).train(make_job(steps=40, test_freq=0), callbacks=[CtrlCAt(7)])
    e = info.value
    assert not isinstance(e, SystemExit)        # a notebook's kernel, or the REPL, lives on
    assert e.exit_code == 130 and e.checkpoint == "ws/checkpoint/step8-worker0"
    assert e.resume.startswith("fit(..., resume=True)")
    assert e._render_traceback_() == ["TrainingInterrupted: " + str(e)]   # what Jupyter shows
    assert "checkpoint written to ws/checkpoint/step8-worker0" in str(e)
    assert capsys.readouterr().err == ""
    res = Driver(verbose=False).train(make_job(steps=40, test_freq=0), resume=True)
    assert max(res.train) == 39 and res.checkpoint.endswith("step40-worker0")


def test_no_handlers_outside_the_main_thread(job_dir):
    cb, errors = CtrlCAt(-1), []

    def train():
        try:
            Driver(verbose=False).train(make_job(steps=5, test_freq=0), callbacks=[cb])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
    t = threading.Thread(target=train)
    t.start()
    t.join()
    assert not errors and cb.handler_during is signal.default_int_handler


# -- MPI ----------------------------------------------------------------------------------
MPI_SCRIPT = """\
import os, signal, sys
from singa.model import *
from singa.callbacks import Callback

class Terminate(Callback):              # SIGTERM reaches rank 1 only, during step 5
    def on_step_end(self, run, step, metrics):
        if run.rank == 1 and step == 5 and not os.environ.get('NOSTOP'):
            os.kill(os.getpid(), signal.SIGTERM)

X_train = Data(load='recordinput', phase='train',
               conf=Store(path='train.bin', backend='kvfile', batchsize=16, shape=8, std_value=4, random_skip=5))
m = Sequential('mlp', sys.argv)
m.add(Dense(16, init='uniform', activation='stanh'))
m.add(Dense(3, init='uniform', activation='softmax'))
m.compile(loss='categorical_crossentropy', optimizer=SGD(lr=0.1, momentum=0.9), cluster=Cluster('ws'))
r = m.fit(X_train, nb_epoch=20, seed=7, callbacks=[Terminate()])
rank = os.environ.get('PMI_RANK', os.environ.get('OMPI_COMM_WORLD_RANK', '0'))
open('done-rank' + rank, 'w').write(str(max(r.train)))
"""


def test_a_signal_on_one_rank_stops_every_rank_at_the_same_step(in_tmp):
    from tests.test_mpi import MPIEXEC, mpirun
    if MPIEXEC is None:
        pytest.skip("no mpiexec (pip install 'singa[mpi]')")
    write_blobs(in_tmp / "train.bin", 400, 1)
    (in_tmp / "train.py").write_text(MPI_SCRIPT)
    r, secs = mpirun(2, ["train.py"], in_tmp, timeout=60)
    assert r.returncode == 143 and secs < 30, r.stderr + r.stdout
    assert "Traceback" not in r.stderr and "failed" not in r.stderr, r.stderr
    assert r.stderr.count("Interrupted (SIGTERM) after step 5 of 20: checkpoint written to "
                          "ws/checkpoint/step6-worker0") == 1           # rank 0 says it, once
    assert "Resume with: mpiexec -n 2 python train.py -resume" in r.stderr
    assert "Training stopped after step 5: interrupted (SIGTERM on another rank)" in r.stdout
    assert ckpt.latest_checkpoint_step(str(in_tmp / "ws")) == 6
    r, _ = mpirun(2, ["train.py", "-resume"], in_tmp, timeout=60)
    # each rank writes its last step to a file (their stdout lines may interleave under mpiexec)
    assert r.returncode == 0, r.stderr
    assert [(in_tmp / ("done-rank%d" % k)).read_text() for k in (0, 1)] == ["19", "19"]
    resumed = params(in_tmp / "ws/checkpoint/step20-worker0")
    os.rename(in_tmp / "ws", in_tmp / "resumed")
    r, _ = mpirun(2, ["train.py"], in_tmp, timeout=60, env={"NOSTOP": "1"})
    assert r.returncode == 0, r.stderr
    assert_bit_identical(resumed, params(in_tmp / "ws/checkpoint/step20-worker0"))
