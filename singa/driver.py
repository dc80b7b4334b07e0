"""Driver: runs a JobProto (SINGA's Driver::Train / Driver::Test) and returns its Results.

The Python API (singa.model) and job.conf files (``singa-run -conf``) both end here. Training
runs in four phases, a method each: ``_build`` (check the job; make the nets, the parameter
servers' stub and a worker per local group: a singa.training_setup.TrainingSetup), ``_start``
(checkpoints in, fresh values for the rest, rank 0's values everywhere), ``_loop`` (the steps,
with the test rounds and checkpoints due) and ``_finish`` (the final rounds and checkpoint, the
servers' end, the Results). What checkpoints hold is singa.train_state's business; how the
gradients of a step are exchanged, singa.exchange's.
"""
import os
import re
import sys
import time

import numpy

from singa.backends import Backend
from singa.callbacks import CallbackList, Run, TerminateOnNaN
from singa.progress import Progress, resolve_verbose
from singa.cluster import mpi, param_servers, runstatus
from singa.cluster.topology import Topology, assign_gpus
from singa.errors import ConfigError, DataError
from singa.layers.base import check_types, type_name
from singa.io import checkpoint as ckpt
from singa.io.checkpoint import CheckpointOrderWarning  # noqa: F401  (where users import it from)
from singa.io.workspace import WorkspaceLock
from singa import interrupt, switches, train_state
from singa.neuralnet import NeuralNet, layers_in_phase
from singa.partition import wants_partitioning
from singa.proto import enum_name, job_pb2
from singa.random import RandomStreams
from singa.results import Results
from singa.training_setup import (TrainingSetup, WorkerGroup, check_train_net, evaluation_plan, link_group_params,
                                  worker_slices)
from singa.updaters import create_updater
from singa.partition_worker import PartitionWorker
from singa.worker import BPTTWorker, BPWorker, CDWorker


def every(step, freq, after):
    """SINGA's DisplayNow/TestNow/CheckpointNow rule: freq > 0, step >= after, (step-after) % freq == 0."""
    return freq > 0 and step >= after and (step - after) % freq == 0


# set by singa-run when it restarts a failed job: the checkpoint that job wrote last
RESUME_FROM_ENV = "SINGA_RESUME_FROM"


def _restart_checkpoint(ws):
    """The checkpoint singa-run's restart names, when it is in workspace ``ws`` (the workspace may
    hold newer ones from an earlier run; a script training several stages resumes each in its own)."""
    path = switches.raw(RESUME_FROM_ENV)
    if path and os.path.abspath(os.path.dirname(path)) == os.path.abspath(os.path.join(ws, "checkpoint")):
        return path
    return None


def user_worker(job):
    """The worker class a job registered from Python names (``train_one_batch { user_alg: ... }``, or
    an ``alg`` value registered with singa.register_worker), else None."""
    from singa import registry
    alg = job.train_one_batch
    return registry.workers.user(alg, "train_one_batch") or (registry.workers.enum(alg.alg)
                                          if alg.alg not in (job_pb2.kBP, job_pb2.kCD, job_pb2.kBPTT) else None)


class Driver:
    """``argv``: the script's command line, as SINGA's Driver::Init read it: ``-resume`` there
    resumes training from the workspace's latest checkpoint (``python mnist_rbm1.py -resume``)."""

    def __init__(self, argv=None, seed=0, verbose=True, comm=False):
        self.argv = list(argv or [])
        self.seed = seed
        # comm: a singa.cluster.mpi.Comm, None for in-process, or False: the MPI world if mpiexec
        # started this process with more than one rank
        self.comm = mpi.world() if comm is False else comm
        self.rank = self.comm.rank if self.comm else 0
        # verbose: 0 silent, 1 a progress bar on a terminal (lines otherwise), 2 lines; one rank prints
        self.progress = Progress(resolve_verbose(verbose) if self.rank == 0 else 0)
        self.verbose = self.progress.verbose > 0

    # SINGA v0.3's SWIG Driver: Init(argv) once before interactive training; InitLog(name) names the log
    def Init(self, argv=None):
        """Keep ``argv`` (``-resume`` there resumes training); returns self."""
        self.argv = list(argv or [])
        return self

    def InitLog(self, name=None):
        return self

    def log(self, msg):
        if self.verbose:
            self.progress.print(msg)

    def warn(self, msg):
        """A warning, once per run, on rank 0's stderr (shown even when not verbose)."""
        if self.rank == 0:
            print("warning: " + msg, file=sys.stderr, flush=True)

    # -- building ---------------------------------------------------------------
    def _check_job(self, job, training):
        if not job.HasField("neuralnet") or not job.neuralnet.layer:
            raise ConfigError("the job has no `neuralnet` layers.\nhelp: add layers to the model "
                              "(m.add(Dense(...))) or a `neuralnet { layer { ... } }` block to job.conf")
        # every unimplemented layer of the nets this run builds at once, before devices and data
        phases = ([job_pb2.kTrain] + ([job_pb2.kTest] if job.test_steps > 0 else [])
                  + ([job_pb2.kVal] if job.validate_steps > 0 else [])) if training else [job_pb2.kTest]
        check_types([lp for ph in phases for lp in layers_in_phase(job.neuralnet, ph)])
        from singa.conf_checks import inert_fields
        for msg in inert_fields(job):
            self.warn(msg)
        if not job.cluster.workspace:
            raise ConfigError("Invalid value for `cluster.workspace`. Expected a directory for checkpoints. "
                              "Received: ''.\nhelp: Cluster(workspace='path') or `cluster { workspace: \"path\" }`")
        topo = Topology.for_world(job.cluster, self.comm.size if self.comm else 1)
        self.topology = topo
        # parameter servers of their own (Downpour, Hogwild, Sandblaster) or every worker
        # updating its replica from the group's summed gradients (AllReduce)
        self.ps = not topo.synchronous or topo.separate
        if training:
            alg = job.train_one_batch.alg
            if user_worker(job) is None and alg not in (job_pb2.kBP, job_pb2.kCD, job_pb2.kBPTT):
                name = enum_name(job_pb2.AlgType, alg)
                raise ConfigError("Invalid value for `train_one_batch.alg`. Expected kBP (back-propagation), kCD "
                                  "(contrastive divergence, for RBMs) or kBPTT (back-propagation through time, for "
                                  "unrolled nets), or a worker registered with @singa.register_worker and named by "
                                  "`user_alg`. Received: %s.\nhelp: set `train_one_batch { alg: kBP }` or "
                                  "fit(alg='bp')" % name)
            if job.train_steps <= 0:
                raise ConfigError("Invalid value for `train_steps`. Expected a positive number of steps. "
                                  "Received: %d.\nhelp: fit(nb_epoch=N) or `train_steps: N`" % job.train_steps)
        self.partitions = self._partitions(job, topo) if training else 1

    def _partitions(self, job, topo):
        """How many partitions the train net is split into: the group's workers when a layer is
        split by features (partition_dim 1; singa.partition), else 1 (a group splits only its
        batch, which BPWorker's replicas or the MPI ranks do without connection layers)."""
        W = topo.nworkers_per_group
        if not wants_partitioning(layers_in_phase(job.neuralnet, job_pb2.kTrain), job.neuralnet.partition_dim):
            return 1
        if W == 1:
            return 1        # one worker: SINGA ignored partition_dim
        unsupported = None
        nprocs = self.comm.size if self.comm is not None else 1
        if nprocs > 1 and topo.nworkers_per_procs != 1 or nprocs == 1 and topo.nworkers_per_procs < W:
            unsupported = ("the group's %d workers on %d processes, %d per process (a group's workers must be all in "
                           "one process, or one per process)" % (W, nprocs, topo.nworkers_per_procs))
        elif topo.nworker_groups > 1 or self.ps:
            unsupported = "%d worker groups / parameter servers (%s)" % (topo.nworker_groups, topo.framework())
        elif job.train_one_batch.alg != job_pb2.kBP:
            unsupported = "alg %s" % enum_name(job_pb2.AlgType, job.train_one_batch.alg)
        if unsupported:
            raise ConfigError("a net with layers split by features (partition_dim 1) among the %d workers of a group "
                              "cannot train with %s.\nhelp: one worker group, in one process (cluster { "
                              "nworker_groups: 1 nworkers_per_group: %d nworkers_per_procs: %d }) or on %d processes "
                              "(nworkers_per_procs: 1, mpiexec -n %d), alg kBP; or partition_dim 0 everywhere for "
                              "data parallelism" % (W, unsupported, W, W, W, W))
        return W

    def _backend(self, job):
        """The backend of this process's workers. ``job.gpu`` (``device=``) lists one GPU id per
        worker of this process (the i-th local worker gets gpu[i]) or, with several processes on
        a machine, per worker of the machine (``assign_gpus``). Checked before any training: the
        count, then CuPy and every id (Backend raises a clear error for each)."""
        gpus = list(job.gpu)
        self.partition_backends = None
        if not gpus:
            return Backend(None)
        topo = getattr(self, "topology", None)
        local = len(topo.workers_of(self.rank)) if topo is not None else 1
        before, machine = 0, local
        if self.comm is not None:       # the workers of the processes on this machine, in rank order
            what = "the count of the workers on each machine (device=)"
            node = self.comm.split_shared(what)
            counts = node.allgather_object(local, what)
            before, machine = sum(counts[:node.rank]), sum(counts)
            node.free()
        ids = assign_gpus(gpus, local, before, machine)
        if not ids:                     # servers only: they update on the CPU
            return Backend(None)
        backends = [Backend(g) for g in sorted(set(ids))]
        if len(backends) > 1 and getattr(self, "partitions", 1) == len(ids) == local:
            # the partitions of a group in this process, worker k on device ids[k] (cudnn_hybrid.conf)
            self.partition_backends = [Backend(g) for g in ids]
            return self.partition_backends[0].use()
        if len(backends) > 1:
            raise ConfigError("several GPUs in one process (device=%s gives this process's workers %s) are not "
                              "supported yet.\nhelp: one worker per process (nworkers_per_procs: 1, mpiexec -n %d) "
                              "with one id each" % (gpus, ids, len(gpus)))
        return backends[0].use()        # bound before the nets allocate anything

    def _workspace(self, job):
        """Create the workspace and (rank 0, the only writer) lock it for this run; then remove the
        temporary files killed runs left there (no other live writer exists once we hold the lock).
        Test-only runs never call this: they only read checkpoints, so they need no lock."""
        ws = job.cluster.workspace
        try:
            os.makedirs(os.path.join(ws, "checkpoint"), exist_ok=True)
            if self.rank == 0:
                self._ws_lock = WorkspaceLock(ws).acquire()
        except OSError as e:
            raise DataError("cannot use workspace %s: %s (%s).\nhelp: give `cluster { workspace: ... }` a writable "
                            "folder path (not an existing file, each name under 255 bytes) on a disk with free space"
                            % (ws, e.strerror or e, e.filename or ws)) from None
        if self.rank == 0:
            ckpt.remove_stale_temporaries(ws)
        return ws

    def _release_workspace(self):
        lock, self._ws_lock = getattr(self, "_ws_lock", None), None
        if lock is not None:
            lock.release()

    # -- running ----------------------------------------------------------------
    def train(self, job, resume=False, callbacks=None, terminate_on_nan=True):
        """Train ``job``; in a multi-process job every rank runs this and gets the same Results
        (rank 0 prints, tests and writes checkpoints). An exception on any rank aborts them all.
        ``callbacks``: singa.callbacks.Callback objects; ``terminate_on_nan`` adds TerminateOnNaN
        unless one is given.

        Ctrl-C (SIGINT) or SIGTERM (called in the main thread): the step in progress finishes, the
        loop stops there (every rank of a synchronous MPI job at the same step), the final
        test/validation rounds are skipped, rank 0 writes the checkpoint ``step<N>-worker0`` (N:
        the next step; atomically) and this raises ``singa.interrupt.TrainingInterrupted`` (a
        KeyboardInterrupt) carrying ``checkpoint``, ``step``, ``signal``, ``exit_code`` and
        ``resume``. In a script (not interactive) rank 0 first prints one message to stderr --
        ``Interrupted (Ctrl-C) after step 12 of 500: checkpoint written to ws/checkpoint/step13-worker0
        ... Resume with: python train.py -resume`` -- and the exception is also a SystemExit, so the
        process exits with status 130 (SIGINT) or 143 (SIGTERM) and no traceback. In the REPL,
        IPython or Jupyter it is only a KeyboardInterrupt (the kernel lives on), shown as its
        message. A second signal interrupts at once (KeyboardInterrupt, no checkpoint of that
        step). The handlers in place before are restored when training ends."""
        cbs = CallbackList(callbacks)
        if terminate_on_nan and not any(isinstance(c, TerminateOnNaN) for c in cbs):
            cbs.callbacks.append(TerminateOnNaN())
        self._signals = interrupt.StopSignals()
        try:
            with self._signals:
                results = mpi.abort_on_error(self.comm, self._train, job, resume, cbs)
        except BaseException:
            self.progress.end()         # a traceback (a second Ctrl-C, an error) starts on a fresh line
            raise
        finally:
            self._release_workspace()
        sig = results.interrupted or self._signals.received
        if sig:
            raise self._interrupted(job, sig, results)
        return results

    def _interrupted(self, job, sig, results):
        """The TrainingInterrupted of a run stopped by signal ``sig`` (printed first by a script's rank 0)."""
        path = results.checkpoint
        step = ckpt.step_of(path)
        if step is None:
            step = max(results.train) + 1 if results.train else None
        how = interrupt.SIGNALS[sig][2]
        live = interrupt.interactive()
        command = None if live else interrupt.resume_command(nprocs=self.comm.size if self.comm else 1)
        launcher = re.search(r"(^| )singa-run |python -m singa ", command or "") is not None    # a job.conf: no fit()
        if step is not None and step >= job.train_steps:
            resume = None
            msg = "Interrupted (%s) after the last step: training is complete, checkpoint written to %s" % (how, path)
        elif path is None:
            resume = None
            msg = "Interrupted (%s) after step %s: no checkpoint written (%s)" % (how, step - 1 if step else "?",
                                                                                 results.stopped)
        else:
            if command is not None and self.argv:
                resume = command + ("" if launcher else "   (or fit(..., resume=True))")
            elif command is not None:   # the script does not hand its argv to the Model/Driver: -resume is not seen
                resume = ("fit(..., resume=True) in the script (or pass sys.argv to the model, Sequential('name', "
                          "sys.argv), and run %s)" % command)
            else:
                resume = "fit(..., resume=True)  (Driver().train(job, resume=True))"
            msg = ("Interrupted (%s) after step %d of %d: checkpoint written to %s (resumes at step %d).\nResume "
                   "with: %s" % (how, step - 1, job.train_steps, path, step, resume))
        cls = interrupt.TrainingInterrupted if live else interrupt.TrainingInterruptedExit
        if not live and self.rank == 0:
            sys.stdout.flush()
            sys.stderr.write(msg + "\n")
            sys.stderr.flush()
        return cls(msg, signal=sig, step=step, checkpoint=path, resume=resume, results=results)

    # -- training: build, start, loop, finish ---------------------------------------
    def _train(self, job, resume, cbs=None):
        cbs = cbs if cbs is not None else CallbackList([])
        s = self._build(job)
        start = self._start(s, job, resume)
        run = self._begin(s, job, start, cbs)
        step = self._loop(s, job, run, start, cbs)
        return self._finish(s, job, run, step, cbs)

    def _build(self, job):
        """Check the job, then make what training needs: the backend, the workspace, the three
        nets, the parameter servers' stub and a worker per worker group of this process."""
        self._check_job(job, training=True)
        backend = self._backend(job)
        ws = self._workspace(job)
        streams = RandomStreams(self.seed)
        train_net = NeuralNet(job.neuralnet, job_pb2.kTrain, backend, streams, npartitions=self.partitions)
        check_train_net(job, train_net)
        shared = train_net.owners
        test_net = (NeuralNet(job.neuralnet, job_pb2.kTest, backend, streams, shared_params=shared)
                    if job.test_steps > 0 else None)
        val_net = (NeuralNet(job.neuralnet, job_pb2.kVal, backend, streams, shared_params=shared)
                   if job.validate_steps > 0 else None)
        updater = create_updater(job.updater)
        mine = self.topology.workers_of(self.rank)     # [(group, id)] of this process's workers
        stub = group_comm = None
        if self.ps:
            if job.train_one_batch.alg == job_pb2.kCD:
                raise ConfigError("alg kCD (RBMs) runs with synchronous workers only (AllReduce).\nhelp: one worker "
                                  "group without `server_worker_separate`")
            stub, group_comm = param_servers.start(self.comm, self.topology, train_net.owner_params, updater, mine)
        s = TrainingSetup(backend, ws, streams, train_net, test_net, val_net, updater, stub)
        s.groups = self._build_groups(job, s, mine, group_comm)
        if s.worker is not None and not self.ps:       # with parameter servers the servers hold it
            s.updater_state = s.worker.state
        return s

    def _build_groups(self, job, s, mine, group_comm):
        """A worker per worker group of this process (BPWorker: the process's workers of the group
        as its replicas), each group but the first with a train net of its own (in-process
        Downpour/Hogwild); each net's data layers read only this process's rows of the batches."""
        groups, B, topo = [], s.batch, self.topology
        for k, g in enumerate(sorted({g for g, _ in mine})):
            net = s.train_net if k == 0 else NeuralNet(job.neuralnet, job_pb2.kTrain, s.backend, s.streams)
            ids = [i for gg, i in mine if gg == g]
            if self.partitions > 1:     # the group's workers are the net's partitions
                part = slices = slice_ids = None
            else:
                part, slices, slice_ids = worker_slices(topo, self.comm is not None, self.ps, B, g, ids)
            wstub = param_servers.worker_stub(s.stub, g, net, group_comm) if s.stub is not None else None
            user = user_worker(job)
            if user is not None:
                if self.partitions > 1:
                    raise ConfigError("a user worker (%s) cannot train a net split among a group's workers.\nhelp: "
                                      "one worker per group" % user.__name__)
                worker = user(net, s.updater, s.test_net if k == 0 else None, s.val_net if k == 0 else None,
                              comm=group_comm if self.ps else self.comm, slices=slices, slice_ids=slice_ids,
                              batch=B, ps=wstub)
            elif self.partitions > 1:
                worker = PartitionWorker(net, s.updater, s.test_net, s.val_net, comm=self.comm,
                                         device_nets=self._device_nets(job, s, net))
            elif job.train_one_batch.alg == job_pb2.kCD:
                worker = CDWorker(net, s.updater, s.test_net, s.val_net, cd_k=job.train_one_batch.cd_conf.cd_k,
                                  comm=self.comm, slices=slices, slice_ids=slice_ids, batch=B)
            else:
                cls = BPTTWorker if job.train_one_batch.alg == job_pb2.kBPTT else BPWorker
                worker = cls(net, s.updater, s.test_net if k == 0 else None, s.val_net if k == 0 else None,
                             comm=group_comm if self.ps else self.comm, slices=slices, slice_ids=slice_ids,
                             batch=B, ps=wstub, replicas=1 if self.partitions > 1 else None)
            if part is not None:
                stride = B * (topo.nworker_groups if self.ps else 1)
                for layer in net.data_layers:
                    layer.read_part(part[0], part[1], stride)
            groups.append(WorkerGroup(g, worker, wstub, net))
        return groups

    def _device_nets(self, job, s, first):
        """For partitions on devices of their own (``partition_backends``): the train net, then a
        copy of it on each further device (None otherwise)."""
        backends = getattr(self, "partition_backends", None)
        if not backends:
            return None
        nets = [first]
        for b in backends[1:]:
            with b.bound():
                nets.append(NeuralNet(job.neuralnet, job_pb2.kTrain, b, s.streams, npartitions=self.partitions))
        return nets

    def _start(self, s, job, resume):
        """The params' values: a checkpoint's (resume, or job.checkpoint_path), fresh ones for the
        rest, then rank 0's on every rank and group. Returns the step training starts at."""
        start = job.step
        if resume or job.resume or "-resume" in self.argv:
            # resume: True (the workspace's newest checkpoint) or the path of the checkpoint to continue
            path = resume if isinstance(resume, str) else _restart_checkpoint(s.ws)
            start, loaded = train_state.resume(s.ws, s.train_net, s.updater_state, s.nets, s.streams, path, self.log)
            if start >= job.train_steps:
                self.log("Nothing to train: the checkpoint is at step %d and train_steps is %d (that run had "
                         "finished).\nhelp: raise train_steps (fit(nb_epoch=N)) to train on from it" % (
                             start, job.train_steps))
        else:
            loaded = ckpt.load_params(list(job.checkpoint_path), s.train_net)
            if job.reset_param_version:
                for p in s.train_net.owner_params:
                    if p.name in loaded:
                        p.version = start
        train_state.init_params(s.train_net, s.streams, loaded)
        self._share_values(s, job)
        return start

    def _share_values(self, s, job):
        """Every rank and the servers start from rank 0's values (they agree already when all ranks
        read the same files with the same seed; this makes it so whatever each rank could read);
        the other groups of this process take the first's."""
        params = s.train_net.owner_params
        if self.comm is not None or s.stub is not None:
            flat = mpi.FlatBuffer([p.shape for p in params], params[0].dtype)
            for p, v in zip(params, flat.views):
                v[...] = s.backend.to_host(p.data)
            if self.comm is not None:
                self.comm.bcast(flat.flat, what="the Bcast of rank 0's initial parameters")
            for p, v in zip(params, flat.views):
                p.set_values(v)
            if s.stub is not None:
                s.stub.load(flat.flat)
        for g in s.groups:
            if g.net is not s.train_net:
                link_group_params(g.net, s.train_net, job.cluster.share_memory)
        if self.ps:                               # worker group g reads batches g, g+G, g+2G, ... of the data
            base = {l.name: l.pos for l in s.train_net.data_layers}
            for g in s.groups:
                for layer in g.net.data_layers:
                    if getattr(layer, "store", None) is None:
                        raise ConfigError(
                            "data layer '%s' (%s) cannot share its batches out between the worker groups of a "
                            "parameter-server framework (it reads a text, not a store of records).\nhelp: train "
                            "it with one worker group (AllReduce: cluster { nworker_groups: 1 }, any number of "
                            "workers in it)" % (layer.name, type_name(layer.conf.type)))
                    layer.pos = (base[layer.name] + g.id * s.batch) % len(layer.store)

    def _where(self, s):
        """How the run is spread, for the opening line ('' for one plain process)."""
        topo, worker = self.topology, s.worker
        if self.ps:
            where = ", %d processes: %s (%s)" % (topo.nprocs, topo.framework(), topo.describe())
        elif self.partitions > 1:
            backends = getattr(self, "partition_backends", None)
            where = (", split among the group's %d workers (partition_dim 1 layers by features, the others by the "
                     "batch; %s)" % (self.partitions, "one per process (MPI)" if self.comm is not None else
                                     "threads of this process on %s" % ", ".join(map(repr, backends)) if backends
                                     else "threads of this process"))
        elif self.comm is not None:
            where = ", %d processes x %d worker(s) (MPI, synchronous: %s%s)" % (
                self.comm.size, worker.nreplicas, topo.framework(),
                "" if s.backend.device is None else "; gradients reduced in GPU buffers (CUDA-aware MPI)"
                if self.comm.cuda_aware else "; gradients staged through the host, one copy each way per step")
        elif worker.nreplicas > 1:
            where = ", as %d data-parallel replicas (threads; SINGA_REPLICAS=1 for one)" % worker.nreplicas
        else:
            where = ""
        if self.comm is not None and mpi.core_share() is not None:   # each rank's share of the node's cores
            where += ", " + mpi.core_share().describe()
        return where

    def _begin(self, s, job, start, cbs):
        """Say what the run will do, and start the callbacks; returns their Run."""
        self.log("Training %r: %d steps from step %d, batch %d, on %s%s" % (
            job.name, job.train_steps, start, s.batch, s.backend, self._where(s)))
        for line in evaluation_plan(job, "test", s.test_net) + evaluation_plan(job, "validation", s.val_net):
            self.log(line)
        run = Run(job, s.train_net, s.worker, s.updater, Results("train"), rank=self.rank, test_net=s.test_net,
                  val_net=s.val_net)
        run.step = start
        cbs.on_train_begin(run)
        return run

    def _loop(self, s, job, run, start, cbs):
        """Train from step ``start`` to train_steps, or until a stop; returns the step after the
        last one trained."""
        worker, B = s.worker, s.batch
        # a stop asked on one rank of a synchronous multi-process job stops every rank at that step
        stop_flag = numpy.zeros(1, numpy.int8) if self.comm is not None and not self.ps else None
        train_time, n0 = 0.0, start  # training time only (tests excluded) since the last display
        step = start
        progress = self.progress
        progress.begin(start, job.train_steps, B)
        dog = mpi.watchdog()
        if dog is not None:     # what a stalled job's message names: the last checkpoint, the resume command
            dog.note_run(lambda n: ckpt.checkpoint_file(s.ws, n, 0), interrupt.resume_command(nprocs=self.comm.size))
        while worker is not None and step < job.train_steps:
            run.step = step
            if dog is not None:
                dog.note_step(step)
            saving = every(step, job.checkpoint_freq, job.checkpoint_after) and step != start
            if saving or any(every(step, f, a) for f, a in ((job.test_freq, job.test_after),
                                                             (job.validate_freq, job.validate_after))):
                self._gather(s)
            self._rounds(s, job, run, cbs, step, final=False)
            if saving and self.rank == 0:
                self._save(s, run, cbs, step)
            t = time.perf_counter()
            for g in s.groups:
                g.worker.train_one_batch(step)
            dt = time.perf_counter() - t
            train_time += dt
            progress.step(step, worker.train_metrics.last, dt)
            cbs.on_step_end(run, step, worker.train_metrics.last)
            if every(step, job.disp_freq, job.disp_after):
                run.results.train[step] = m = worker.train_metrics.pop()
                rate = (step + 1 - n0) * B / max(train_time, 1e-9)
                self.log("Train @ step %d: %s (%.0f samples/s%s, ETA %s)%s" % (
                    step, fmt(m), rate, " in group 0" if self.topology.nworker_groups > 1 else "", progress.eta(),
                    worker.display_suffix(m, fmt)))
                progress.displayed()
                cbs.on_display(run, step, m)
                train_time, n0 = 0.0, step + 1
            if s.stub is not None:
                s.stub.serve()                    # answer the other groups' pushes to servers here
            step += 1
            if self._stop(run, stop_flag):
                run.stop_reason = run.stop_reason or "a callback asked to stop (after step %d)" % (step - 1)
                self.log("Training stopped after step %d: %s" % (step - 1, run.stop_reason))
                break
        progress.end()
        return step

    @staticmethod
    def _gather(s):
        """Every rank's slices of the feature-split params into the whole ones (a partitioned net
        over processes), before rank 0 tests or writes a checkpoint. Collective."""
        gather = getattr(s.worker, "gather_params", None)
        if gather is not None:
            gather()

    def _rounds(self, s, job, run, cbs, step, final):
        """Rank 0's validation, then test round at ``step``: those due (every validate_freq /
        test_freq steps) in the loop; after the last step (``final``), each not run at that step
        (also when the freq is 0: data and steps given mean at least one round)."""
        if self.rank != 0:
            return
        for which, net, freq, after, steps, flag, label in (
                ("validation", s.val_net, job.validate_freq, job.validate_after, job.validate_steps, job_pb2.kVal,
                 "Validation"),
                ("test", s.test_net, job.test_freq, job.test_after, job.test_steps, job_pb2.kTest, "Test")):
            done = getattr(run.results, which)
            if net is not None and (step not in done if final else every(step, freq, after)):
                done[step] = m = s.worker.test(net, steps, flag)
                self.log("%s @ step %d: %s" % (label, step, fmt(m)))
                cbs.on_test_end(run, step, which, m)

    def _save(self, s, run, cbs, step, log=False):
        """Rank 0 writes the checkpoint of ``step``; the watchdogs, singa-run and the callbacks learn it."""
        run.last_checkpoint = path = train_state.save(s.ws, step, s.train_net, s.updater_state, s.nets, self.seed,
                                                      s.streams)
        dog = mpi.watchdog()
        if dog is not None:
            dog.note_checkpoint(step)
        runstatus.update(workspace=s.ws, checkpoint=path, step=step)
        if log:
            self.log("Checkpoint written to %s" % path)
        cbs.on_checkpoint(run, step, path)

    def _finish(self, s, job, run, step, cbs):
        """The end: the metrics since the last display, the servers' end, the final validation
        and test rounds of the values training ended with and the final checkpoint (neither
        after a NaN; no rounds after Ctrl-C / SIGTERM), then the Results every rank returns."""
        if not run.stop_training:
            step = max(step, job.train_steps)
        last, worker, results = step - 1, s.worker, run.results
        if worker is not None and worker.train_metrics.n:  # metrics since the last display (all if disp_freq is 0)
            results.train[last] = m = worker.train_metrics.pop()
            self.log("Train @ step %d: %s%s" % (last, fmt(m), worker.display_suffix(m, fmt)))
            cbs.on_display(run, last, m)
        cluster = None
        if s.stub is not None:
            cluster = param_servers.finish(s.stub, s.groups, self.comm, self.topology, self.rank, self.log)
        run.step = step
        if not run.diverged:
            self._gather(s)
            if not run.interrupted:
                self._rounds(s, job, run, cbs, step, final=True)
            if self.rank == 0:
                self._save(s, run, cbs, step, log=True)
        results = Results("train", results.train, results.validation, results.test, cluster,
                          stopped=run.stop_reason, checkpoint=run.last_checkpoint, interrupted=run.interrupted)
        if self.comm is not None:     # every rank returns rank 0's results (tests ran there)
            results = self.comm.bcast_object(results)
        cbs.on_train_end(run, results)
        return results

    def _stop(self, run, flag):
        """Whether a callback asked to stop or a Ctrl-C/SIGTERM came (``run.interrupted``); in a
        synchronous multi-process job, whether any rank did (one tiny Allreduce per step, so every
        rank leaves the loop at the same step, and knows whether it was an interrupt)."""
        sig = getattr(getattr(self, "_signals", None), "received", None)
        if sig and not run.interrupted:
            run.stop_training, run.interrupted = True, sig
            run.stop_reason = "interrupted (%s)" % interrupt.SIGNALS[sig][2]
        if flag is None:
            return run.stop_training
        flag[0] = interrupt.FLAG_CODES[run.interrupted] if run.interrupted else 1 if run.stop_training else 0
        self.comm.allreduce_max(flag, "the Allreduce of the per-step stop flag")
        codes = {v: k for k, v in interrupt.FLAG_CODES.items()}
        if int(flag[0]) in codes and not run.interrupted:
            run.interrupted = codes[int(flag[0])]
            run.stop_reason = "interrupted (%s on another rank)" % interrupt.SIGNALS[run.interrupted][2]
        if flag[0] and not run.stop_training:
            run.stop_training = True
            run.stop_reason = run.stop_reason or "another rank's callback asked to stop"
        return bool(flag[0])

    def test(self, job):
        """Test only: load ``job.checkpoint_path`` and run ``test_steps`` batches of the kTest net."""
        self._check_job(job, training=False)
        if not job.checkpoint_path:
            raise ConfigError("a test-only run needs a checkpoint.\nhelp: evaluate(X_test, checkpoint_path="
                              "workspace + '/checkpoint/step100-worker0'), or `checkpoint_path:` in job.conf")
        backend = self._backend(job)
        streams = RandomStreams(self.seed)
        net = NeuralNet(job.neuralnet, job_pb2.kTest, backend, streams)
        loaded = ckpt.load_params(list(job.checkpoint_path), net)
        missing = ckpt.missing_params(net, loaded)
        if missing:
            raise DataError("the checkpoint(s) %s hold no values for param(s) %s of the test net.\nhelp: pass the "
                            "checkpoint written by training this net" % (list(job.checkpoint_path), missing))
        nsteps = job.test_steps if job.test_steps > 0 else 10
        if job.train_one_batch.alg == job_pb2.kBPTT:     # per-step means; dynamic_srclayer rewiring
            m = BPTTWorker.test(net, nsteps, job_pb2.kTest)
        elif CDWorker._pairs(net):        # an RBM: positive pass and one reconstruction
            m = CDWorker.test(net, nsteps, job_pb2.kTest)
        else:
            m = BPWorker.test(net, nsteps, job_pb2.kTest)
        step = ckpt.step_of(job.checkpoint_path[-1]) or 0
        self.log("Test @ step %d: %s" % (step, fmt(m)))
        return Results("test", test={step: m})


def fmt(metrics):
    names = {"acc": "accuracy", "se": "Squared Error"}
    return ", ".join("%s = %.6f" % (names.get(k, k), v) for k, v in sorted(metrics.items(), key=lambda kv: kv[0] != "loss"))
