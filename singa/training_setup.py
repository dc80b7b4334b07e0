"""What a training run is built from (singa.driver's build phase): the worker groups of this
process, the setup the later phases take, the split of a group's batch among its workers, and
the checks and plans said before the first step."""
import dataclasses
from collections import namedtuple
from typing import Optional

from singa.backends import Backend
from singa.errors import ConfigError
from singa.neuralnet import NeuralNet
from singa.proto import enum_name, is_input_layer, job_pb2
from singa.random import RandomStreams

WorkerGroup = namedtuple("WorkerGroup", "id worker wstub net")
WorkerGroup.__doc__ = """A worker group of this process: its id, worker, WorkerStub (None without
parameter servers) and train net."""


@dataclasses.dataclass
class TrainingSetup:
    """What Driver._build made for one training run; the later phases take it from there."""
    backend: Backend
    ws: str                                  # the workspace
    streams: RandomStreams
    train_net: NeuralNet
    test_net: Optional[NeuralNet]            # None when test_steps is 0
    val_net: Optional[NeuralNet]             # None when validate_steps is 0
    updater: object
    stub: object = None                      # this process's parameter-server Stub, or None
    groups: list = dataclasses.field(default_factory=list)   # WorkerGroups (none on a process of servers only)
    # what checkpoints hold of the updater: the first worker's state ({} when servers hold it)
    updater_state: dict = dataclasses.field(default_factory=dict)

    @property
    def worker(self):
        """The worker of this process's first group (it tests and displays), or None."""
        return self.groups[0].worker if self.groups else None

    @property
    def batch(self):
        """The batch of a worker group."""
        return self.train_net.batch_size

    @property
    def nets(self):
        return [n for n in (self.train_net, self.test_net, self.val_net) if n is not None]


def check_train_net(job, net):
    """The train net can train with the job's algorithm: it reads data, and has a loss (kBP, kBPTT) or RBMs
    (kCD); an unrolled net trains with kBPTT."""
    if not net.data_layers:
        raise ConfigError("the training net has no data layer.\nhelp: fit(X_train, ...) with the Data layer "
                          "from load_data(), or a kRecordInput layer with `include: kTrain`")
    rbms = [l.name for l in net.layers if getattr(l, "trains_with_cd", False)]
    if rbms and job.train_one_batch.alg != job_pb2.kCD:
        raise ConfigError("layers %s are RBM layers, which train with contrastive divergence, but the job's alg "
                          "is %s.\nhelp: `train_one_batch { alg: kCD }` (fit(alg='cd'))"
                          % (rbms, enum_name(job_pb2.AlgType, job.train_one_batch.alg)))
    if net.unrolled and job.train_one_batch.alg != job_pb2.kBPTT:
        # kBP would overwrite the shared gradient buffer copy by copy (SINGA's kBP broke its stub too)
        raise ConfigError("Invalid value for `train_one_batch.alg`. Expected kBPTT for a net that sets `unroll_len` "
                          "(its copies share their params' gradients). Received: %s.\nhelp: `train_one_batch { alg: "
                          "kBPTT }` (fit(alg='bptt'))" % enum_name(job_pb2.AlgType, job.train_one_batch.alg))
    if job.train_one_batch.alg != job_pb2.kCD and not any(l.is_loss for l in net.layers):
        raise ConfigError("the training net has no loss layer.\nhelp: compile(loss='categorical_crossentropy'"
                          " or 'mean_squared_error'), or add a kSoftmaxLoss/kEuclideanLoss layer")


def link_group_params(net, first, share_memory):
    """Another local group's params: the first group's arrays (``share_memory``, SINGA's default:
    the groups read the values the last reply brought, whichever group asked), else a copy."""
    for name, p in net.owners.items():
        src = first.owners[name]
        if share_memory:
            net.rebind(p, src.data)
        else:
            p.set_values(src.host_values())


def worker_slices(topo, multiprocess, ps, batch, group, ids):
    """For this process's workers ``ids`` of worker group ``group``: the part of each group
    batch the process reads, the workers' rows within that part, and the workers' global ids
    (which name their random streams): the batch split evenly among the group's workers
    (SINGA's partition_dim 0). (None, None, None) for the default in-process engine (BPWorker
    picks its replicas)."""
    W = topo.nworkers_per_group
    if not multiprocess and W == 1 and not ps:
        return None, None, None
    if batch < W:
        raise ConfigError("the batch (%d) is smaller than the number of workers it is split among (%d).\nhelp: "
                          "a batch of at least %d, or fewer workers" % (batch, W, W))
    bounds = [(batch * i // W, batch * (i + 1) // W) for i in ids]
    lo, hi = bounds[0][0], bounds[-1][1]
    gids = [group * W + i for i in ids]
    if not multiprocess and not ps:
        return None, bounds, gids
    return (lo, hi), [(a - lo, b - lo) for a, b in bounds], gids


def _phase_data_layers(job, phase):
    """Names of the data layers that ``job`` includes explicitly in ``phase`` (a layer without
    ``include`` serves every phase and says nothing about the user's intent)."""
    return [lp.name for lp in job.neuralnet.layer if not lp.srclayers and is_input_layer(lp) and phase in lp.include]


def evaluation_plan(job, which, net):
    """What the run will do with its test or validation data, said before training: when it
    tests (every N steps and/or after the last step), or why it never will."""
    phase, steps, freq, after, call = (
        (job_pb2.kTest, job.test_steps, job.test_freq, job.test_after, "evaluate(X_test, test_steps=N)")
        if which == "test" else
        (job_pb2.kVal, job.validate_steps, job.validate_freq, job.validate_after,
         "fit(X_train, validate_data=X_valid, validate_steps=N)"))
    data = _phase_data_layers(job, phase)
    prefix = "Test" if which == "test" else "Validation"
    if net is None:
        if not data:
            return []
        return ["%s: none. The net has %s data (layer %s) but %s_steps is 0, so no %s round will run.\n"
                "help: %s, or `%s_steps: N` in job.conf" % (
                    prefix, which, ", ".join(repr(n) for n in data), "test" if which == "test" else "validate",
                    which, call, "test" if which == "test" else "validate")]
    when = "after the last step"
    if freq > 0:
        when = "every %d steps%s and after the last step" % (freq, " from step %d" % after if after else "")
    else:
        key = "test_freq" if which == "test" else "validate_freq"
        when += " (%s is 0; %s=N adds a round every N steps)" % (key, key)
    return ["%s: %d batch(es) %s" % (prefix, steps, when)]
