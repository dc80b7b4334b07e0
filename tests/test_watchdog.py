# covers: singa/cluster/watchdog.py
"""No silent hang under mpiexec (issue 14, items 1 and 2): a rank that leaves with status 0, or
stops answering (frozen here by SIGSTOP, as a hung host or a cut link looks to its peers), ends
the whole job within a bound, with a message naming it, the last checkpoint and the resume
command; ranks that end at different times still end cleanly."""
import os
import re

import pytest

from singa.cluster import watchdog
from singa.errors import ConfigError
from tests.test_mpi import JOB, MPIEXEC, mpirun, write_records

SCRIPT = """
import os, signal, sys, time
from singa.model import *
from singa.cluster import mpi
from singa.driver import Driver
from singa.proto import parse_job_conf
from singa.callbacks import Callback
how, who = sys.argv[1], int(sys.argv[2])
comm = mpi.world()
if how == "exit-before" and comm.rank == who:
    sys.exit(0)

class Misbehave(Callback):
    def on_checkpoint(self, run, step, path):
        time.sleep(0.5)           # a real step's length: the heartbeat carries the checkpoint first
    def on_step_end(self, run, step, metrics):
        if step == 15 and comm.rank == who:
            if how == "exit-in-callback":
                sys.exit(0)
            if how == "freeze":
                os.kill(os.getpid(), signal.SIGSTOP)

Driver().train(parse_job_conf(open("job.conf").read()), callbacks=[Misbehave()])
if how == "late" and comm.rank == who:
    time.sleep(3)                 # the others wait for it at the exit, heartbeating
print("finished rank", comm.rank, flush=True)
"""

needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'singa[mpi]')")


@pytest.fixture
def job_dir(in_tmp):
    write_records(in_tmp / "train.bin")
    (in_tmp / "job.conf").write_text((JOB % dict(steps=40, ws="ws", cluster="")).replace(
        "disp_freq: 5", "disp_freq: 5 checkpoint_freq: 10"))
    (in_tmp / "job.py").write_text(SCRIPT)
    return in_tmp


@needs_mpi
@pytest.mark.parametrize("how", ["exit-before", "exit-in-callback"])
def test_a_rank_leaving_with_status_0_ends_the_job(job_dir, how):
    # before: rank 1 waited in MPI_Finalize and rank 0 in the Allreduce, forever, without a word
    r, secs = mpirun(2, ["job.py", how, "1"], job_dir, timeout=60)
    assert r.returncode != 0 and secs < 30, (r.returncode, secs, r.stderr)
    assert "finished rank" not in r.stdout
    text = re.sub(r"\s+", " ", r.stderr)
    assert "rank 0 of 2 stops the job: rank 1 (pid" in text, r.stderr
    if how == "exit-before":
        assert "(its script returned or called sys.exit) before training" in text
    else:
        assert "(sys.exit(0) in training) after step 15" in text
        assert "Last checkpoint: ws/checkpoint/step10-worker0 (step 10)" in r.stderr
        assert "Resume with: mpiexec -n 2 python job.py exit-in-callback 1 -resume" in r.stderr
    assert "help: every rank must run to the same end" in text


@needs_mpi
@pytest.mark.parametrize("who", [1, 0])
def test_a_rank_that_stops_answering_ends_the_job_naming_it(job_dir, who):
    # a frozen process answers nothing, like a host behind a cut link; before, the others waited forever
    r, secs = mpirun(2, ["job.py", "freeze", str(who)], job_dir, timeout=60, env={"SINGA_STALL_TIMEOUT": "2"})
    assert r.returncode != 0 and secs < 30, (r.returncode, secs, r.stderr)
    other = 1 - who
    text = re.sub(r"\s+", " ", r.stderr)
    assert "rank %d of 2 (host " % other in text and "stops the job: no heartbeat from rank %d (pid " % who in text
    # 2 s, or 5 times the longest step (the one with the checkpoint's 0.5 s) if longer
    assert re.search(r"\(the stall timeout is [\d.]+ s\) while rank %d waits in the Allreduce" % other, text), r.stderr
    assert "at step 15" in text
    # every rank knows rank 0's last checkpoint (its heartbeat carries it), also when rank 0 is the silent one
    assert "Last checkpoint: ws/checkpoint/step10-worker0 (step 10)" in r.stderr
    assert "Resume with: mpiexec -n 2 python job.py freeze %d -resume" % who in r.stderr


@needs_mpi
def test_ranks_ending_at_different_times_end_cleanly(job_dir):
    # rank 0 is busy for 3 s after fit (longer than the stall timeout): its peer waits at the exit, heartbeating
    r, secs = mpirun(2, ["job.py", "late", "0"], job_dir, timeout=60, env={"SINGA_STALL_TIMEOUT": "1"})
    assert r.returncode == 0, r.stderr
    assert sorted(re.findall(r"finished rank (\d)", r.stdout)) == ["0", "1"]
    assert "stops the job" not in r.stderr


@needs_mpi
def test_the_watchdog_can_be_turned_off(in_tmp):
    # one write per rank: two ranks' print() pieces can interleave in mpiexec's output
    (in_tmp / "w.py").write_text("import os\nfrom singa.cluster import mpi\n"
                                 "os.write(1, b'watchdog %s\\n' % str(mpi.world().watchdog).encode())\n")
    r, _ = mpirun(2, ["w.py"], in_tmp, timeout=60, env={"SINGA_STALL_TIMEOUT": "off"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("watchdog None") == 2


def test_the_stall_timeout_setting_is_checked(monkeypatch):
    monkeypatch.delenv("SINGA_STALL_TIMEOUT", raising=False)
    assert watchdog.stall_timeout_from_env() == watchdog.DEFAULT_STALL_S
    monkeypatch.setenv("SINGA_STALL_TIMEOUT", "7.5")
    assert watchdog.stall_timeout_from_env() == 7.5
    monkeypatch.setenv("SINGA_STALL_TIMEOUT", "off")
    assert watchdog.stall_timeout_from_env() is None
    for bad in ("-3", "nan", "inf", "soon"):
        monkeypatch.setenv("SINGA_STALL_TIMEOUT", bad)
        with pytest.raises(ConfigError, match=r"Invalid value for `SINGA_STALL_TIMEOUT`.*Received: '%s'" % bad):
            watchdog.stall_timeout_from_env()


class _Ranks:
    """Only what the constructor asks of a communicator (the timeout arithmetic needs no MPI)."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size


def test_the_stall_timeout_grows_with_the_longest_step():
    dog = watchdog.Watchdog(_Ranks(0, 2), MPI=None, stall_timeout=20)
    for step, now in enumerate([100.0, 101.0, 110.0, 110.5]):     # steps of 1 s, then 9 s, then 0.5 s
        dog.note_step(step, now)
    assert dog.longest_step == 9.0
    assert dog.timeout == watchdog.STEP_FACTOR * 9.0        # 45 s > the 20 s floor
    assert watchdog.Watchdog(_Ranks(1, 2), MPI=None, stall_timeout=20).timeout == 20


def test_the_host_name_round_trips_through_a_heartbeat():
    for name in ("vm", "node-17.cluster.example.org", "ü" * 40):
        n, words = watchdog._pack_host(name)
        back = watchdog._unpack_host(n, words)
        assert name.startswith(back.rstrip("\ufffd")) and len(back.encode()) <= 64
