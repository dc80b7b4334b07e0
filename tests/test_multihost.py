# covers: singa/cluster/mpi.py, singa/cluster/launch.py (two hosts over TCP)
"""Two "hosts" on one machine (issue 14): two network namespaces joined by a veth pair, MPICH's
hydra starting one rank in each through a launcher script that stands in for ssh, the traffic
forced through the network module (MPIR_CVAR_NOLOCAL=1, UCX over TCP on the veth devices, not
lo) so it crosses the link.

It shows: synchronous training across the two hosts equals one process; setting the link down
mid-run ends the job within the stall timeout with a message naming the silent rank and the last
checkpoint; ``-resume`` once the link is back ends bit-identical to an uninterrupted run.

Needs root (``ip netns add``); skipped with the reason otherwise.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from singa.driver import Driver
from singa.proto import parse_job_conf
from tests.conftest import ROOT
from tests.test_mpi import JOB, MPIEXEC, params, write_records

STALL_S = 4           # SINGA_STALL_TIMEOUT for the cut: the bound checked below is this plus a margin

LAUNCHER = """#!%(python)s
# hydra's -launcher-exec in place of ssh: `launcher [ssh options] HOST COMMAND...` runs COMMAND
# in the network namespace of HOST
import os, sys
hosts = dict(pair.split("=") for pair in %(hosts)r.split(","))
args = sys.argv[1:]
while args and args[0].startswith("-"):
    args.pop(0)
os.execvp("ip", ["ip", "netns", "exec", hosts[args[0]], "sh", "-c", " ".join(args[1:])])
"""

SCRIPT = """
import sys, time
from singa.model import *
from singa.driver import Driver
from singa.proto import parse_job_conf
from singa.callbacks import Callback

class Pace(Callback):        # a real step's length, so the cut lands mid-run
    def on_step_end(self, run, step, metrics):
        time.sleep(0.02)

Driver(sys.argv).train(parse_job_conf(open(sys.argv[1]).read()), callbacks=[Pace()])
print("finished", flush=True)
"""


def _ip(*args, check=True):
    return subprocess.run(["ip"] + list(args), capture_output=True, text=True, check=check, timeout=30)


def wait_until_up(ns, dev, timeout=10):
    """Until both ends of the veth pair have carrier (UCX skips an interface that is not running yet)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        states = [_ip("netns", "exec", n, "cat", "/sys/class/net/%s/operstate" % d, check=False).stdout.strip()
                  for n, d in zip(ns, dev)]
        if states == ["up", "up"]:
            return
        time.sleep(0.1)
    raise AssertionError("the veth pair %s did not come up: %s" % (dev, states))


@pytest.fixture
def hosts(tmp_path):
    """Two namespaces A and B with a veth pair on a private /24; their addresses, names and a run function."""
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2) to create network namespaces")
    if MPIEXEC is None:
        pytest.skip("no mpiexec (pip install 'singa[mpi]')")
    tag = "%d" % (os.getpid() % 100000)
    ns = ("sgA" + tag, "sgB" + tag)
    dev = ("vA" + tag, "vB" + tag)
    net = "10.97.%d" % (os.getpid() % 250)
    addr = (net + ".1", net + ".2")
    made = []
    try:
        for n in ns:
            r = _ip("netns", "add", n, check=False)
            if r.returncode != 0:
                pytest.skip("this machine allows no network namespaces (`ip netns add` says: %s)" % r.stderr.strip())
            made.append(n)
        _ip("link", "add", dev[0], "netns", ns[0], "type", "veth", "peer", "name", dev[1], "netns", ns[1])
        for n, d, a in zip(ns, dev, addr):
            _ip("-n", n, "addr", "add", a + "/24", "dev", d)
            _ip("-n", n, "link", "set", d, "up")
            _ip("-n", n, "link", "set", "lo", "up")
        wait_until_up(ns, dev)
        launcher = tmp_path / "nslaunch.py"
        launcher.write_text(LAUNCHER % dict(python=sys.executable, hosts="%s=%s,%s=%s" % (addr[0], ns[0], addr[1],
                                                                                        ns[1])))
        launcher.chmod(0o755)

        def start(args, cwd, env=None):
            """mpiexec, run in A, one rank on each host, through the launcher."""
            env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1", MPIR_CVAR_NOLOCAL="1",
                       UCX_TLS="tcp,self", UCX_NET_DEVICES=",".join(dev), **(env or {}))   # not lo
            cmd = ["ip", "netns", "exec", ns[0], MPIEXEC, "-launcher", "ssh", "-launcher-exec", str(launcher),
                   "-hosts", ",".join(addr), "-iface", dev[0], "-n", "2", sys.executable] + list(args)
            return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)

        def link_bytes():
            stats = "/sys/class/net/%s/statistics/" % dev[0]
            out = _ip("netns", "exec", ns[0], "cat", stats + "tx_bytes", stats + "rx_bytes").stdout.split()
            return int(out[0]) + int(out[1])

        yield dict(ns=ns, dev=dev, addr=addr, start=start, link_bytes=link_bytes,
                   link_up=lambda: (_ip("-n", ns[0], "link", "set", dev[0], "up"), wait_until_up(ns, dev)))
    finally:
        for n in made:
            _ip("netns", "del", n, check=False)      # takes its end of the veth pair with it


def processes_in(folder):
    """The pids of processes other than this one whose working directory is ``folder`` (the job's
    ranks and hydra's proxies run there)."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and int(pid) != os.getpid() and os.readlink("/proc/%s/cwd" % pid) == str(folder):
                found.append(int(pid))
        except OSError:
            pass
    return found


def finish(p, timeout=120):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        err += "\n[test] timed out after %d s" % timeout
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return p.returncode, out, err


def test_training_across_two_hosts_survives_a_cut_link_and_resumes_bit_identical(hosts, in_tmp):
    write_records(in_tmp / "train.bin")
    for ws in ("one", "two", "cut"):
        (in_tmp / (ws + ".conf")).write_text((JOB % dict(steps=200, ws=ws, cluster="")).replace(
            "disp_freq: 5", "disp_freq: 50 checkpoint_freq: 20"))
    (in_tmp / "job.py").write_text(SCRIPT)
    Driver(verbose=False, comm=None).train(parse_job_conf((in_tmp / "one.conf").read_text()))

    # 1. synchronous training across the hosts equals one process; the gradients crossed the link
    before = hosts["link_bytes"]()
    rc, out, err = finish(hosts["start"](["job.py", "two.conf"], in_tmp))
    crossed = hosts["link_bytes"]() - before
    assert rc == 0, err + out
    assert "2 processes x 1 worker(s) (MPI, synchronous: AllReduce)" in out and out.count("finished") == 2
    a, b = params(in_tmp / "one/checkpoint/step200-worker0"), params(in_tmp / "two/checkpoint/step200-worker0")
    for k in a:        # the sum of the two half-batch gradients: equal to float32 rounding
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=2e-6, err_msg=k)
    nvalues = sum(v.size for v in a.values())
    assert crossed > 200 * nvalues * 4, crossed          # at least every step's gradients, once
    print("bytes across the link for 200 steps: %d (%d float32 gradient values per step)" % (crossed, nvalues))

    # 2. the link goes down mid-run: the job ends within the stall timeout, naming the silent rank
    p = hosts["start"](["job.py", "cut.conf"], in_tmp, env={"SINGA_STALL_TIMEOUT": str(STALL_S)})
    deadline = time.time() + 60
    while not os.path.exists(in_tmp / "cut/checkpoint/step60-worker0") and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    _ip("-n", hosts["ns"][0], "link", "set", hosts["dev"][0], "down")
    cut = time.time()
    rc, out, err = finish(p, timeout=STALL_S + 60)
    ended = time.time() - cut
    hosts["link_up"]()
    assert rc != 0 and "finished" not in out, (rc, err)
    assert ended < STALL_S + 15, ended
    text = re.sub(r"\s+", " ", err)
    assert re.search(r"stops the job: no heartbeat from rank [01] \(pid \d+ on host", text), err
    found = re.search(r"Last checkpoint: cut/checkpoint/step(\d+)-worker0", err)
    assert found and int(found.group(1)) >= 60, err
    assert "Resume with: mpiexec -n 2 python job.py cut.conf -resume" in err
    print("from the cut to the end of the job: %.1f s (stall timeout %d s)" % (ended, STALL_S))
    # the rank beyond the cut, which mpiexec cannot reach to end it, ends itself (its own watchdog)
    deadline = time.time() + STALL_S + 15
    while processes_in(in_tmp) and time.time() < deadline:
        time.sleep(0.2)
    assert not processes_in(in_tmp), [open("/proc/%d/cmdline" % p).read() for p in processes_in(in_tmp)]

    # 3. -resume with the link back: the same values as the uninterrupted run, to the bit
    rc, out, err = finish(hosts["start"](["job.py", "cut.conf", "-resume"], in_tmp))
    assert rc == 0, err + out
    resumed = re.search(r"200 steps from step (\d+),", out)
    assert resumed and int(resumed.group(1)) >= int(found.group(1)), out
    c = params(in_tmp / "cut/checkpoint/step200-worker0")
    for k in b:
        assert np.array_equal(c[k], b[k]), k
