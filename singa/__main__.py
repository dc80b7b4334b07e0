"""``singa-run`` / ``python -m singa``: SINGA's launcher.

    singa-run -conf job.conf [-resume] [-test] [-seed N] [-cpu] [-set FIELD=VALUE ...] [-show-net] [-module M ...]
                                                           run a job configuration
    singa-run -exec script.py [ARGS...]                    run a user script (as SINGA's -exec did)
    singa-run -conf cluster.conf -exec script.py [ARGS...] the script on the cluster's processes
    singa-run -n 4 -exec script.py [ARGS...]               the script on 4 processes (mpiexec -n 4)

    --max-restarts N   when the job fails (a rank killed, a host lost, a stall), start it again
                       from its last checkpoint, up to N times (not after a configuration or data
                       error, nor after Ctrl-C or SIGTERM)

When the conf's cluster needs more than one process (SINGA-V0.md 3.3) and this is not already an
MPI job, singa-run starts mpiexec itself with that many processes, as SINGA's launcher started
one process per host, and names a rank that gets killed by its rank. Arguments SINGA's launcher
passed to every process (-singa_conf F, -singa_job N, -host H) are accepted and ignored.

    -cpu   run the job on the CPU although its conf names GPUs (``gpu: 0``, as char-rnn-job.conf
           does): the conf's ``gpu`` fields are ignored for this run, the file is not changed
    -show-net
           print the training net that runs, as job.conf text, and exit: the layers after the phase
           filter, unrolling (``unroll_len``) and partitioning (``partition_dim: 1`` in a group of
           ``nworkers_per_group`` workers: the ``name@k`` copies, kSplit/kSlice/kConcate, bridges)
    -module M
           import M before the conf is read (repeatable), so the layers, updaters, learning-rate and
           param generators and workers it registers exist (SINGA's Driver::Register*): a module
           or package name, a .py file, a protoc-made *_pb2.py, or a .proto file that imports
           "job.proto" (compiled with grpc_tools.protoc; its extensions then parse in job.conf)
    -set FIELD=VALUE
           one JobProto field for this run, the file unchanged (repeatable), e.g. fewer steps:
           ``-set train_steps=200 -set disp_freq=20``; nested fields by dots:
           ``-set updater.learning_rate.base_lr=0.01``; a repeated field's first -set replaces
           the conf's values, later ones add: ``-set checkpoint_path=A -set checkpoint_path=B``
"""
import os
import runpy
import sys

from singa import switches
from singa.errors import SingaError
from singa.utils.helptext import plain

USAGE = plain(__doc__)


def _fail(msg, code=2):
    from singa.cluster import mpi
    comm = mpi.world() if mpi.launched_by_mpiexec() else None
    if comm is not None:      # one rank leaving quietly would leave the others waiting in a collective
        mpi._report_and_abort(comm, "singa-run: error (rank %d of %d): %s\n" % (comm.rank, comm.size, msg), code)
    print("singa-run: error: %s" % msg, file=sys.stderr)
    return code


def _launcher_options(argv):
    """(-n N or None, --max-restarts N, the other arguments): the options only singa-run itself
    reads (before -exec; what follows -exec is the script's)."""
    nprocs, restarts, rest = None, 0, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "-exec":
            rest += argv[i:]
            break
        if a in ("-n", "-np", "--max-restarts", "-max-restarts", "-max_restarts"):
            value = argv[i + 1] if i + 1 < len(argv) else None
            try:
                n = int(value)
            except (TypeError, ValueError):
                n = -1
            if n < (1 if a in ("-n", "-np") else 0):
                raise ValueError("Invalid value for `%s`. Expected %s. Received: %s" % (
                    a, "a process count >= 1" if a in ("-n", "-np") else "a number of restarts >= 0",
                    "nothing" if value is None else repr(value)))
            if a in ("-n", "-np"):
                nprocs = n
            else:
                restarts = n
            i += 2
            continue
        rest.append(a)
        i += 1
    return nprocs, restarts, rest


class _Options:
    """What the command line asks for (see the module's doc)."""

    def __init__(self):
        self.conf = self.script = None
        self.resume = self.test = self.cpu = self.show_net = False
        self.seed = 0
        self.settings = []        # -set FIELD=VALUE, in order
        self.modules = []         # -module M: user extensions imported before the conf is read
        self.rest = []            # the script's arguments


def _parse(argv):
    """The _Options of ``argv``, or a message (str) for _fail; None for -h."""
    o = _Options()
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help", "-help"):
            return None
        if a == "-exec":
            if i + 1 >= len(argv):
                return "-exec needs a script path, e.g. `singa-run -exec examples/mnist_mlp.py`"
            o.script, o.rest = argv[i + 1], argv[i + 2:]
            break
        if a in ("-conf", "-singa_conf", "-singa_job", "-host", "-seed", "-set", "-module"):
            if i + 1 >= len(argv):
                return "%s needs a value" % a
            v = argv[i + 1]
            if a == "-conf":
                o.conf = v
            elif a == "-seed":
                try:
                    o.seed = int(v)
                except ValueError:
                    return "Invalid value for `-seed`. Expected an integer. Received: %r" % v
            elif a == "-set":
                o.settings.append(v)
            elif a == "-module":
                o.modules.append(v)
            i += 2
            continue
        if a in ("-resume", "-test", "-cpu", "-show-net"):
            setattr(o, a[1:].replace("-", "_"), True)
        else:
            return "unknown argument %r\n%s" % (a, USAGE)
        i += 1
    return o


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        nprocs, restarts, argv = _launcher_options(argv)
    except ValueError as e:
        return _fail(str(e))
    o = _parse(argv)
    if o is None:
        print(USAGE)
        return 0
    if isinstance(o, str):
        return _fail(o)
    try:
        code = _launch_processes(o.conf, argv, nprocs, restarts)
    except SingaError as e:
        return _fail(str(e))
    if code is not None:
        return code
    if o.modules:
        from singa.registry import import_modules
        try:
            import_modules(o.modules)
        except SingaError as e:
            return _fail(str(e))
    if o.script is not None:
        return _run_script(o)
    if o.conf is None:
        return _fail("nothing to run: pass -conf job.conf or -exec script.py\n%s" % USAGE)
    return _run_conf(o, argv)


def _run_script(o):
    if o.cpu:
        return _fail("-cpu applies to a job.conf run (-conf job.conf -cpu); a script chooses its device "
                     "itself: leave out device= (fit/evaluate) to run it on the CPU")
    if o.settings:
        return _fail("-set applies to a job.conf run (-conf job.conf -set FIELD=VALUE); a script sets its "
                     "job's fields itself (fit(nb_epoch=...), compile(...))")
    if not os.path.isfile(o.script):
        return _fail("no such script: %r" % o.script)
    sys.argv = [o.script] + o.rest
    sys.path.insert(0, os.path.dirname(os.path.abspath(o.script)))
    runpy.run_path(o.script, run_name="__main__")
    return 0


def _run_conf(o, argv):
    from singa.driver import Driver
    from singa.proto import read_job_conf
    job = None
    try:
        job = read_job_conf(o.conf)
        replaced = set()
        for setting in o.settings:
            _set_field(job, setting, replaced)
        if o.cpu:
            _run_on_cpu(job, o.conf)
        if o.show_net:
            print(_net_text(job), end="")
            return 0
        driver = Driver(argv=[o.conf] + argv, seed=o.seed)
        if o.test:
            driver.test(job)
        else:
            driver.train(job, resume=o.resume)
    except SingaError as e:
        msg = str(e)
        if job is not None and len(job.gpu) and "`device`" in msg:
            msg += "\nhelp: to run %s on the CPU without editing it: singa-run -conf %s -cpu" % (o.conf, o.conf)
        return _fail(msg)
    return 0


def _net_text(job):
    """The training net that runs, as job.conf text (see -show-net)."""
    from singa.neuralnet import runtime_protos
    from singa.partition import as_conf_text, wants_partitioning
    from singa.proto import job_pb2
    from singa.neuralnet import layers_in_phase
    W = job.cluster.nworkers_per_group
    split = W > 1 and wants_partitioning(layers_in_phase(job.neuralnet, job_pb2.kTrain), job.neuralnet.partition_dim)
    protos, _ = runtime_protos(job.neuralnet, job_pb2.kTrain, W if split else 1)
    head = "# the training net of %s: %d layers%s\n" % (job.name or "the job", len(protos),
                                                         ", split among %d workers" % W if split else "")
    return head + as_conf_text(protos)


def _set_field(job, setting, replaced=None):
    """-set FIELD=VALUE: one JobProto field for this run, the file unchanged (``train_steps=200``,
    ``updater.learning_rate.base_lr=0.01``): merged as the job.conf text ``FIELD: VALUE`` would be
    (a string needs no quotes). A repeated field (``checkpoint_path``, ``gpu``) is replaced by the
    first -set of it in ``replaced`` (the names set so far this run) and added to by later ones."""
    from google.protobuf import text_encoding, text_format
    from google.protobuf.descriptor import FieldDescriptor
    from singa.errors import ConfigError, invalid
    path, eq, value = setting.partition("=")
    names, value = path.strip().split("."), value.strip()
    if not eq or not all(n.isidentifier() for n in names) or not value:
        raise invalid("-set", "FIELD=VALUE with a JobProto field path, e.g. -set train_steps=200", setting)
    desc = job.DESCRIPTOR
    for k, n in enumerate(names):
        field = desc.fields_by_name.get(n)
        if field is None or (k < len(names) - 1 and field.message_type is None):
            raise invalid("-set %s" % setting, "a field path of JobProto", path,
                          hint="`%s` has no field %r (its fields: %s)" % (
                              desc.name, n, ", ".join(sorted(desc.fields_by_name))))
        desc = field.message_type
    if field.is_repeated and replaced is not None and path not in replaced:
        owner = job
        for n in names[:-1]:
            owner = getattr(owner, n)
        owner.ClearField(names[-1])
    if replaced is not None:
        replaced.add(path)
    if field.type == FieldDescriptor.TYPE_STRING and not value.startswith(('"', "'")):
        value = '"%s"' % text_encoding.CEscape(value, as_utf8=True)
    text = "".join("%s { " % n for n in names[:-1]) + "%s: %s" % (names[-1], value) + " }" * (len(names) - 1)
    try:
        text_format.Merge(text, job)
    except text_format.ParseError as e:
        raise ConfigError("Invalid value for `-set %s`. Expected a value of the field's type, as a job.conf "
                          "writes `%s`. Received: %s\nhelp: e.g. -set train_steps=200, -set disp_freq=10, -set "
                          "updater.learning_rate.base_lr=0.01" % (setting, text, e)) from None


def _run_on_cpu(job, conf):
    """-cpu: drop the conf's ``gpu`` ids for this run (said once, by rank 0), so every worker uses NumPy."""
    if len(job.gpu):
        if os.environ.get("PMI_RANK", "0") == "0":
            print("singa-run: -cpu: running on the CPU; %s's `gpu: %s` is ignored"
                  % (conf, ", ".join(str(g) for g in job.gpu)), file=sys.stderr, flush=True)
        job.ClearField("gpu")


def _cluster_of(conf):
    """The ClusterProto of a job.conf, or of a file holding only `cluster { ... }` (no check of
    the job's other required fields here: the run itself does that)."""
    from singa.proto import JobConfError, read_job_conf
    try:
        return read_job_conf(conf, check_required=False).cluster
    except JobConfError:
        return None          # the run reports the missing file or the error with its line and column


def _launch_processes(conf, argv, nprocs=None, restarts=0):
    """Run this command as a child job -- under ``mpiexec -n <-n, or the cluster's process
    count>`` when that is more than 1, or as one process when only ``--max-restarts`` asks for a
    parent -- and return its exit code; None to run here (one process, or already under mpiexec)."""
    from singa.cluster import launch, mpi
    from singa.cluster.topology import Topology
    if mpi.launched_by_mpiexec():
        if (restarts or nprocs) and os.environ.get("PMI_RANK", "0") == "0" and not switches.raw("SINGA_RUN_LAUNCHED"):
            print("singa-run: warning: -n and --max-restarts are singa-run's own: under an mpiexec you started they "
                  "do nothing (run `singa-run -n N --max-restarts K ...` without mpiexec)", file=sys.stderr)
        return None
    if nprocs is None:
        cluster = _cluster_of(conf) if conf is not None else None
        nprocs = Topology(cluster).nprocs if cluster is not None else 1
    if nprocs <= 1 and restarts == 0:
        return None
    if nprocs > 1:
        mpiexec = launch.find_mpiexec()
        if mpiexec is None:
            from singa.errors import ConfigError
            raise ConfigError("%s needs %d processes but no mpiexec was found.\nhelp: pip install 'singa[mpi]' "
                              "(mpi4py and MPICH), or start it yourself with `mpiexec -n %d singa-run ...`"
                              % ("the cluster in %s" % conf if conf else "-n %d" % nprocs, nprocs, nprocs))
        print("singa-run: starting %d processes: %s -n %d" % (nprocs, mpiexec, nprocs), file=sys.stderr, flush=True)
    return launch.run(argv, nprocs, restarts)


if __name__ == "__main__":
    sys.exit(main())
