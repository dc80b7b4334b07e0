# covers: singa/cluster/launch.py, singa/cluster/runstatus.py
"""singa-run as the parent of its job (issue 14): a rank killed by a signal is named by its rank,
not only by the pid mpiexec prints, and ``--max-restarts N`` starts a failed job again from its
last checkpoint and finishes it -- with the values of a run that never failed, to the bit."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.test_mpi import JOB, MPIEXEC, params, write_records

# rank `who` kills itself (SIGKILL: no handler, no atexit) at step 25 on the first try only
SCRIPT = """
import os, signal, sys
from singa.driver import Driver
from singa.proto import parse_job_conf
from singa.callbacks import Callback
from singa.cluster import mpi

class Killed(Callback):
    def on_step_end(self, run, step, metrics):
        comm = mpi.world()
        rank = comm.rank if comm else 0
        if step == 25 and rank == int(os.environ["WHO"]) and os.environ.get("SINGA_RESTART_COUNT", "0") in os.environ["KILL_ON"]:
            os.kill(os.getpid(), signal.SIGKILL)

Driver(sys.argv).train(parse_job_conf(open(sys.argv[1]).read()), callbacks=[Killed()])
"""


def singa_run(args, cwd, timeout=180, **env):
    return subprocess.run([sys.executable, "-m", "singa"] + args, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1", **env))


@pytest.fixture
def job_dir(in_tmp):
    write_records(in_tmp / "train.bin")
    for ws in ("ref", "job"):
        (in_tmp / (ws + ".conf")).write_text((JOB % dict(steps=40, ws=ws, cluster="")).replace(
            "disp_freq: 5", "disp_freq: 10 checkpoint_freq: 10"))
    (in_tmp / "job.py").write_text(SCRIPT)
    return in_tmp


def assert_same_values(a_path, b_path):
    a, b = params(a_path), params(b_path)
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'singa[mpi]')")
def test_a_killed_rank_is_named_and_the_job_restarts_from_its_checkpoint(job_dir):
    ref = singa_run(["-n", "2", "-exec", "job.py", "ref.conf"], job_dir, WHO="1", KILL_ON="")
    assert ref.returncode == 0, ref.stderr
    r = singa_run(["-n", "2", "--max-restarts", "2", "-exec", "job.py", "job.conf"], job_dir, WHO="1", KILL_ON="0")
    assert r.returncode == 0, r.stderr
    # before: only MPICH's "PID 22275 RUNNING AT vm ... EXIT CODE: 9"
    assert re.search(r"singa-run: rank 1 of 2 \(pid \d+ on host \S+\) was killed by SIGKILL", r.stderr), r.stderr
    assert ("singa-run: the job failed (exit status 9); restart 1 of 2 in 1 s, from its last checkpoint, "
            "job/checkpoint/step20-worker0 (step 20)") in r.stderr
    assert "Resuming from job/checkpoint/step20-worker0 (step 20)" in r.stdout
    assert_same_values(job_dir / "ref/checkpoint/step40-worker0", job_dir / "job/checkpoint/step40-worker0")


def test_one_process_restarts_too_and_gives_up_after_n(job_dir):
    ref = singa_run(["-exec", "job.py", "ref.conf"], job_dir, WHO="0", KILL_ON="")
    assert ref.returncode == 0, ref.stderr
    r = singa_run(["--max-restarts", "1", "-exec", "job.py", "job.conf"], job_dir, WHO="0", KILL_ON="0")
    assert r.returncode == 0, r.stderr
    assert re.search(r"the job's process \(pid \d+\) was killed by SIGKILL", r.stderr), r.stderr
    assert "restart 1 of 1" in r.stderr and "Resuming from job/checkpoint/step20-worker0" in r.stdout
    assert_same_values(job_dir / "ref/checkpoint/step40-worker0", job_dir / "job/checkpoint/step40-worker0")
    # killed on every try: two restarts, then it gives up with the job's status
    # (in the workspace of the finished run: the restarts resume from this run's step 20, not its step 40)
    r = singa_run(["--max-restarts", "2", "-exec", "job.py", "ref.conf"], job_dir, WHO="0", KILL_ON="012")
    assert r.returncode == 137, r.stderr
    assert r.stderr.count("was killed by SIGKILL") == 3
    assert "restarted 2 time(s), the most --max-restarts allows; giving up" in r.stderr


def test_a_configuration_error_is_not_restarted(in_tmp):
    (in_tmp / "bad.conf").write_text('name: "x" train_steps: 5 neuralnet { layer { name: "d" type: kNoSuchLayer } }')
    r = singa_run(["--max-restarts", "3", "-conf", "bad.conf"], in_tmp)
    assert r.returncode == 2, r.stderr
    assert "restart" not in r.stderr


def test_launcher_options_are_checked(in_tmp):
    for args, text in ((["-n", "0", "-exec", "x.py"], "Invalid value for `-n`. Expected a process count >= 1. "
                                                       "Received: '0'"),
                       (["--max-restarts", "many"], "Invalid value for `--max-restarts`. Expected a number of "
                                                    "restarts >= 0. Received: 'many'"),
                       (["--max-restarts"], "Received: nothing")):
        r = singa_run(args, in_tmp, timeout=60)
        assert r.returncode == 2 and text in r.stderr, r.stderr
