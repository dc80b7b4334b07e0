"""``singa-run`` / ``python -m singa``: SINGA's launcher.

    singa-run -conf job.conf [-resume] [-test] [-seed N]   run a job configuration
    singa-run -exec script.py [ARGS...]                    run a user script (as SINGA's -exec did)
    singa-run -conf cluster.conf -exec script.py [ARGS...] the script on the cluster's processes

When the conf's cluster needs more than one process (SINGA-V0.md 3.3) and this is not already an
MPI job, singa-run starts mpiexec itself with that many processes, as SINGA's launcher started
one process per host. Arguments SINGA's launcher passed to every process (-singa_conf F,
-singa_job N, -host H) are accepted and ignored.
"""
import os
import runpy
import sys

from singa.errors import SingaError
from singa.utils.helptext import plain

USAGE = plain(__doc__)


def _fail(msg, code=2):
    from singa.cluster import mpi
    comm = mpi.world() if mpi.launched_by_mpiexec() else None
    if comm is not None:      # one rank leaving quietly would leave the others waiting in a collective
        mpi._report_and_abort(comm, "singa-run: error (rank %d of %d): %s\n" % (comm.rank, comm.size, msg))
    print("singa-run: error: %s" % msg, file=sys.stderr)
    return code


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    conf = script = None
    resume = test = False
    seed = 0
    rest = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help", "-help"):
            print(USAGE)
            return 0
        if a == "-exec":
            if i + 1 >= len(argv):
                return _fail("-exec needs a script path, e.g. `singa-run -exec examples/mnist_mlp.py`")
            script = argv[i + 1]
            rest = argv[i + 2:]
            break
        if a in ("-conf", "-singa_conf", "-singa_job", "-host", "-seed"):
            if i + 1 >= len(argv):
                return _fail("%s needs a value" % a)
            if a == "-conf":
                conf = argv[i + 1]
            elif a == "-seed":
                try:
                    seed = int(argv[i + 1])
                except ValueError:
                    return _fail("Invalid value for `-seed`. Expected an integer. Received: %r" % argv[i + 1])
            i += 2
            continue
        if a == "-resume":
            resume = True
        elif a == "-test":
            test = True
        else:
            return _fail("unknown argument %r\n%s" % (a, USAGE))
        i += 1
    if conf is not None:
        try:
            code = _launch_processes(conf, argv)
        except SingaError as e:
            return _fail(str(e))
        if code is not None:
            return code
    if script is not None:
        if not os.path.isfile(script):
            return _fail("no such script: %r" % script)
        sys.argv = [script] + rest
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        runpy.run_path(script, run_name="__main__")
        return 0
    if conf is None:
        return _fail("nothing to run: pass -conf job.conf or -exec script.py\n%s" % USAGE)
    from singa.driver import Driver
    from singa.proto import read_job_conf
    try:
        job = read_job_conf(conf)
        driver = Driver(argv=[conf] + argv, seed=seed)
        if test:
            driver.test(job)
        else:
            driver.train(job, resume=resume)
    except SingaError as e:
        return _fail(str(e))
    return 0


def _cluster_of(conf):
    """The ClusterProto of a job.conf, or of a file holding only `cluster { ... }` (no check of
    the job's other required fields here: the run itself does that)."""
    from google.protobuf import text_format
    from singa.proto import job_pb2
    try:
        with open(conf) as f:
            text = f.read()
    except OSError:
        return None          # the run reports the missing file
    job = job_pb2.JobProto()
    try:
        text_format.Parse(text, job)
    except text_format.ParseError:
        return None          # the run reports the parse error with its line and column
    return job.cluster


def _launch_processes(conf, argv):
    """Re-run this command under ``mpiexec -n <the cluster's process count>`` when needed;
    returns its exit code, or None to run here."""
    from singa.cluster import mpi
    from singa.cluster.topology import Topology
    if mpi.launched_by_mpiexec():
        return None
    cluster = _cluster_of(conf)
    if cluster is None:
        return None
    nprocs = Topology(cluster).nprocs
    if nprocs <= 1:
        return None
    import shutil
    import subprocess
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        from singa.errors import ConfigError
        raise ConfigError("the cluster in %s needs %d processes but no mpiexec was found.\nhelp: pip install "
                          "'singa[mpi]' (mpi4py and MPICH), or start it yourself with `mpiexec -n %d singa-run ...`"
                          % (conf, nprocs, nprocs))
    print("singa-run: starting %d processes: %s -n %d" % (nprocs, mpiexec, nprocs), file=sys.stderr, flush=True)
    # SINGA_RUN_LAUNCHED: the ranks' "resume with" hint says `singa-run ... -resume` (it starts mpiexec again)
    return _wait_forwarding_signals(subprocess.Popen([mpiexec, "-n", str(nprocs), sys.executable, "-m", "singa"]
                                                     + list(argv), env=dict(os.environ, SINGA_RUN_LAUNCHED="1")))


def _wait_forwarding_signals(child):
    """The exit code of ``child`` (mpiexec), waited for through Ctrl-C and SIGTERM: a Ctrl-C at the
    terminal reaches mpiexec itself (it forwards it to the ranks, which stop cleanly and
    checkpoint); a SIGTERM sent to this process is passed on to mpiexec (which forwards it too)."""
    import signal
    handlers = {signal.SIGINT: lambda s, f: None, signal.SIGTERM: lambda s, f: child.send_signal(signal.SIGTERM)}
    previous = {}
    for num, handler in handlers.items():
        try:
            previous[num] = signal.signal(num, handler)
        except (ValueError, OSError):       # not the main thread
            pass
    try:
        code = child.wait()
        return 128 - code if code < 0 else code     # killed by signal N: the shell's 128 + N
    finally:
        for num, prev in previous.items():
            signal.signal(num, prev if prev is not None else signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
