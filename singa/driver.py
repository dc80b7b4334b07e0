"""Driver: runs a JobProto (SINGA's Driver::Train / Driver::Test) and returns its Results.

The Python API (singa.model) and job.conf files (``singa-run -conf``) both end here.
"""
import os
import re
import sys
import time

import numpy

from singa.backends import Backend
from singa.callbacks import CallbackList, Run, TerminateOnNaN
from singa.progress import Progress, resolve_verbose
from singa.cluster import mpi, runstatus
from singa.cluster.topology import Topology, assign_gpus
from singa.errors import ConfigError, DataError
from singa.io import checkpoint as ckpt
from singa.io.checkpoint import CheckpointOrderWarning  # noqa: F401  (where users import it from)
from singa.io.workspace import WorkspaceLock
from singa import interrupt
from singa.neuralnet import NeuralNet, strip_unroll
from singa.proto import job_pb2
from singa.random import RandomStreams
from singa.results import Results
from singa.updaters import create_updater
from singa.worker import BPWorker, CDWorker

# Arguments SINGA's launcher (singa-run.sh) appended to every process; accepted and ignored.
_LAUNCHER_ARGS = {"-singa_conf": 1, "-singa_job": 1, "-host": 1, "-conf": 1}


def every(step, freq, after):
    """SINGA's DisplayNow/TestNow/CheckpointNow rule: freq > 0, step >= after, (step-after) % freq == 0."""
    return freq > 0 and step >= after and (step - after) % freq == 0


# set by singa-run when it restarts a failed job: the checkpoint that job wrote last
RESUME_FROM_ENV = "SINGA_RESUME_FROM"


def _restart_checkpoint(ws):
    """The checkpoint singa-run's restart names, when it is in workspace ``ws`` (the workspace may
    hold newer ones from an earlier run; a script training several stages resumes each in its own)."""
    path = os.environ.get(RESUME_FROM_ENV)
    if path and os.path.abspath(os.path.dirname(path)) == os.path.abspath(os.path.join(ws, "checkpoint")):
        return path
    return None


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

    # -- building ---------------------------------------------------------------
    def _check_job(self, job, training):
        if not job.HasField("neuralnet") or not job.neuralnet.layer:
            raise ConfigError("the job has no `neuralnet` layers.\nhelp: add layers to the model "
                              "(m.add(Dense(...))) or a `neuralnet { layer { ... } }` block to job.conf")
        if not job.cluster.workspace:
            raise ConfigError("Invalid value for `cluster.workspace`. Expected a directory for checkpoints. "
                              "Received: ''.\nhelp: Cluster(workspace='path') or `cluster { workspace: \"path\" }`")
        topo = Topology.for_world(job.cluster, self.comm.size if self.comm else 1)
        self.topology = topo
        if topo.nworkers_per_group > 1:
            split = [lp.name for lp in job.neuralnet.layer if lp.partition_dim == 1]
            if job.neuralnet.partition_dim == 1 or split:
                raise ConfigError(
                    "Invalid value for `partition_dim` (%s). Expected 0 (each worker of a group takes a slice of the "
                    "batch) or -1. Received: 1 (splitting the features among the workers), which this engine does not "
                    "implement.\nhelp: leave partition_dim out (0)" % ("neuralnet" if job.neuralnet.partition_dim == 1
                                                                       else "layers %s" % split))
        # parameter servers of their own (Downpour, Hogwild, Sandblaster) or every worker
        # updating its replica from the group's summed gradients (AllReduce)
        self.ps = not topo.synchronous or topo.separate
        if training:
            alg = job.train_one_batch.alg
            if alg not in (job_pb2.kBP, job_pb2.kCD):
                name = job_pb2.AlgType.Name(alg) if alg in job_pb2.AlgType.values() else alg
                raise ConfigError("Invalid value for `train_one_batch.alg`. Expected kBP (back-propagation) or kCD "
                                  "(contrastive divergence, for RBMs). Received: %s.\nhelp: kBPTT is not implemented "
                                  "yet; set `train_one_batch { alg: kBP }` or fit(alg='bp')" % name)
            if job.train_steps <= 0:
                raise ConfigError("Invalid value for `train_steps`. Expected a positive number of steps. "
                                  "Received: %d.\nhelp: fit(nb_epoch=N) or `train_steps: N`" % job.train_steps)

    def _backend(self, job):
        """The backend of this process's workers. ``job.gpu`` (``device=``) lists one GPU id per
        worker of this process (the i-th local worker gets gpu[i]) or, with several processes on
        a machine, per worker of the machine (``assign_gpus``). Checked before any training: the
        count, then CuPy and every id (Backend raises a clear error for each)."""
        gpus = list(job.gpu)
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

    def _init_params(self, net, streams, loaded):
        # Unlike SINGA (SINGA-107), a param loaded from a checkpoint is never re-initialised, even
        # if the file recorded version 0 for it.
        for p in net.owner_params:
            if p.owner is None and p.name not in loaded:
                p.init_values(streams.stream("init/" + strip_unroll(p.name)))

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
        sig = getattr(results, "interrupted", None) or self._signals.received
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

    def _train(self, job, resume, cbs=None):
        cbs = cbs if cbs is not None else CallbackList([])
        self._check_job(job, training=True)
        backend = self._backend(job)
        ws = self._workspace(job)
        streams = RandomStreams(self.seed)
        train_net = NeuralNet(job.neuralnet, job_pb2.kTrain, backend, streams)
        if not train_net.data_layers:
            raise ConfigError("the training net has no data layer.\nhelp: fit(X_train, ...) with the Data layer "
                              "from load_data(), or a kRecordInput layer with `include: kTrain`")
        rbms = [l.name for l in train_net.layers if getattr(l, "trains_with_cd", False)]
        if rbms and job.train_one_batch.alg != job_pb2.kCD:
            raise ConfigError("layers %s are RBM layers, which train with contrastive divergence, but the job's alg "
                              "is %s.\nhelp: `train_one_batch { alg: kCD }` (fit(alg='cd'))"
                              % (rbms, job_pb2.AlgType.Name(job.train_one_batch.alg)))
        if job.train_one_batch.alg != job_pb2.kCD and not any(l.is_loss for l in train_net.layers):
            raise ConfigError("the training net has no loss layer.\nhelp: compile(loss='categorical_crossentropy'"
                              " or 'mean_squared_error'), or add a kSoftmaxLoss/kEuclideanLoss layer")
        shared = train_net.owners
        test_net = (NeuralNet(job.neuralnet, job_pb2.kTest, backend, streams, shared_params=shared)
                    if job.test_steps > 0 else None)
        val_net = (NeuralNet(job.neuralnet, job_pb2.kVal, backend, streams, shared_params=shared)
                   if job.validate_steps > 0 else None)
        updater = create_updater(job.updater)
        topo = self.topology
        params = train_net.owner_params
        B = train_net.batch_size                  # the batch of a worker group
        mine = topo.workers_of(self.rank)         # [(group, id)] of this process's workers
        local_groups = sorted({g for g, _ in mine})
        stub = group_comm = None
        if self.ps:
            if job.train_one_batch.alg == job_pb2.kCD:
                raise ConfigError("alg kCD (RBMs) runs with synchronous workers only (AllReduce).\nhelp: one worker "
                                  "group without `server_worker_separate`")
            from singa.cluster.stub import GroupComm, Stub, WorkerStub
            stub = Stub(self.comm, topo, params, updater)
            if self.rank == 0:
                stub.expect_finals()
            if self.comm is not None and topo.nworkers_per_group > topo.nworkers_per_procs:
                # the processes of this worker group (servers-only processes join no group)
                sub = self.comm.split(local_groups[0] if mine else None, "the split of the ranks into worker groups")
                group_comm = GroupComm(sub, stub) if mine else None
        # a worker (BPWorker: this process's workers of the group as replicas) per local group
        groups = []                               # (group, worker, WorkerStub or None, train net)
        for k, g in enumerate(local_groups):
            net = train_net if k == 0 else self._group_net(job, backend, streams, train_net)
            part, slices, slice_ids = self._worker_slices(B, g, [i for gg, i in mine if gg == g])
            wstub = WorkerStub(stub, g, net.owner_params, group_comm) if stub is not None else None
            if job.train_one_batch.alg == job_pb2.kCD:
                worker = CDWorker(net, updater, test_net, val_net, cd_k=job.train_one_batch.cd_conf.cd_k,
                                  comm=self.comm, slices=slices, slice_ids=slice_ids, batch=B)
            else:
                worker = BPWorker(net, updater, test_net if k == 0 else None, val_net if k == 0 else None,
                                  comm=group_comm if self.ps else self.comm, slices=slices, slice_ids=slice_ids,
                                  batch=B, ps=wstub)
            if part is not None:                  # this process reads only its rows of its group's batches
                stride = B * (topo.nworker_groups if self.ps else 1)
                for layer in net.data_layers:
                    layer.read_part(part[0], part[1], stride)
            groups.append((g, worker, wstub, net))
        worker = groups[0][1] if groups else None   # a process of servers only has none

        self._nets = [n for n in (train_net, test_net, val_net) if n is not None]
        start = job.step
        if resume or job.resume or "-resume" in self.argv:
            # resume: True (the workspace's newest checkpoint) or the path of the checkpoint to continue
            path = resume if isinstance(resume, str) else _restart_checkpoint(ws)
            start, loaded = self._resume(ws, train_net, worker, streams, path)
            if start >= job.train_steps:
                self.log("Nothing to train: the checkpoint is at step %d and train_steps is %d (that run had "
                         "finished).\nhelp: raise train_steps (fit(nb_epoch=N)) to train on from it" % (
                             start, job.train_steps))
        else:
            loaded = ckpt.load_params(list(job.checkpoint_path), train_net)
            if job.reset_param_version:
                for p in params:
                    if p.name in loaded:
                        p.version = start
        self._init_params(train_net, streams, loaded)
        if self.comm is not None or stub is not None:
            # every rank starts from rank 0's values (they agree already when all ranks read the
            # same files with the same seed; this makes it so whatever each rank could read)
            flat = mpi.FlatBuffer([p.shape for p in params], params[0].dtype)
            for p, v in zip(params, flat.views):
                v[...] = backend.to_host(p.data)
            if self.comm is not None:
                self.comm.bcast(flat.flat, what="the Bcast of rank 0's initial parameters")
            for p, v in zip(params, flat.views):
                p.set_values(v)
            if stub is not None:
                stub.load(flat.flat)
        for g, _, _, net in groups:
            if net is not train_net:              # another group of this process: the same values
                self._link_group_params(net, train_net, job.cluster.share_memory)
        if self.ps:                               # worker group g reads batches g, g+G, g+2G, ... of the data
            base = {l.name: l.pos for l in train_net.data_layers}
            for g, _, _, net in groups:
                for layer in net.data_layers:
                    layer.pos = (base[layer.name] + g * B) % len(layer.store)

        results = Results("train")
        if self.ps:
            where = ", %d processes: %s (%s)" % (topo.nprocs, topo.framework(), topo.describe())
        elif self.comm is not None:
            where = ", %d processes x %d worker(s) (MPI, synchronous: %s%s)" % (
                self.comm.size, worker.nreplicas, topo.framework(),
                "" if backend.device is None else "; gradients reduced in GPU buffers (CUDA-aware MPI)"
                if self.comm.cuda_aware else "; gradients staged through the host, one copy each way per step")
        elif worker.nreplicas > 1:
            where = ", as %d data-parallel replicas (threads; SINGA_REPLICAS=1 for one)" % worker.nreplicas
        else:
            where = ""
        if self.comm is not None and mpi.core_share() is not None:   # each rank's share of the node's cores
            where += ", " + mpi.core_share().describe()
        self.log("Training %r: %d steps from step %d, batch %d, on %s%s" % (
            job.name, job.train_steps, start, B, backend, where))
        for line in _evaluation_plan(job, "test", test_net) + _evaluation_plan(job, "validation", val_net):
            self.log(line)
        run = Run(job, train_net, worker, updater, results, rank=self.rank, test_net=test_net, val_net=val_net)
        run.step = start
        cbs.on_train_begin(run)
        # a stop asked on one rank of a synchronous multi-process job stops every rank at that step
        stop_flag = numpy.zeros(1, numpy.int8) if self.comm is not None and not self.ps else None
        train_time, n0 = 0.0, start  # training time only (tests excluded) since the last display
        step = start
        progress = self.progress
        progress.begin(start, job.train_steps, B)
        dog = mpi.watchdog()
        if dog is not None:     # what a stalled job's message names: the last checkpoint, the resume command
            dog.note_run(lambda n: os.path.join(ws, "checkpoint", "step%d-worker0" % n),
                         interrupt.resume_command(nprocs=self.comm.size))
        while worker is not None and step < job.train_steps:
            run.step = step
            if dog is not None:
                dog.note_step(step)
            if val_net is not None and self.rank == 0 and every(step, job.validate_freq, job.validate_after):
                results.validation[step] = m = worker.test(val_net, job.validate_steps, job_pb2.kVal)
                self.log("Validation @ step %d: %s" % (step, fmt(m)))
                cbs.on_test_end(run, step, "validation", m)
            if test_net is not None and self.rank == 0 and every(step, job.test_freq, job.test_after):
                results.test[step] = m = worker.test(test_net, job.test_steps, job_pb2.kTest)
                self.log("Test @ step %d: %s" % (step, fmt(m)))
                cbs.on_test_end(run, step, "test", m)
            if every(step, job.checkpoint_freq, job.checkpoint_after) and step != start and self.rank == 0:
                run.last_checkpoint = path = self._checkpoint(ws, step, train_net, worker, streams)
                self._note_checkpoint(dog, ws, step, path)
                cbs.on_checkpoint(run, step, path)
            t = time.perf_counter()
            for _, w, _, _ in groups:
                w.train_one_batch(step)
            dt = time.perf_counter() - t
            train_time += dt
            progress.step(step, worker.train_metrics.last, dt)
            cbs.on_step_end(run, step, worker.train_metrics.last)
            if every(step, job.disp_freq, job.disp_after):
                results.train[step] = m = worker.train_metrics.pop()
                rate = (step + 1 - n0) * B / max(train_time, 1e-9)
                self.log("Train @ step %d: %s (%.0f samples/s%s, ETA %s)" % (
                    step, fmt(m), rate, " in group 0" if topo.nworker_groups > 1 else "", progress.eta()))
                progress.displayed()
                cbs.on_display(run, step, m)
                train_time, n0 = 0.0, step + 1
            if stub is not None:
                stub.serve()                      # answer the other groups' pushes to servers here
            step += 1
            if self._stop(run, stop_flag):
                run.stop_reason = run.stop_reason or "a callback asked to stop (after step %d)" % (step - 1)
                self.log("Training stopped after step %d: %s" % (step - 1, run.stop_reason))
                break
        progress.end()
        if not run.stop_training:
            step = max(step, job.train_steps)
        last = step - 1
        if worker is not None and worker.train_metrics.n:  # metrics since the last display (all if disp_freq is 0)
            results.train[last] = m = worker.train_metrics.pop()
            self.log("Train @ step %d: %s" % (last, fmt(m)))
            cbs.on_display(run, last, m)
        if stub is not None:
            results.cluster = self._finish_servers(stub, groups)
        run.step = step
        if run.interrupted:             # Ctrl-C / SIGTERM: the checkpoint at once, no final test rounds
            val_net = test_net = None
        if not run.diverged:
            # the final validation and test, of the values training ended with
            # (also when test_freq / validate_freq is 0: data and steps given mean at least one round)
            if val_net is not None and step not in results.validation and self.rank == 0:
                results.validation[step] = m = worker.test(val_net, job.validate_steps, job_pb2.kVal)
                self.log("Validation @ step %d: %s" % (step, fmt(m)))
                cbs.on_test_end(run, step, "validation", m)
            if test_net is not None and step not in results.test and self.rank == 0:
                results.test[step] = m = worker.test(test_net, job.test_steps, job_pb2.kTest)
                self.log("Test @ step %d: %s" % (step, fmt(m)))
                cbs.on_test_end(run, step, "test", m)
            if self.rank == 0:
                run.last_checkpoint = path = self._checkpoint(ws, step, train_net, worker, streams)
                self._note_checkpoint(dog, ws, step, path)
                self.log("Checkpoint written to %s" % path)
                cbs.on_checkpoint(run, step, path)
        results = Results("train", results.train, results.validation, results.test, getattr(results, "cluster", None))
        results.stopped = run.stop_reason
        results.checkpoint = run.last_checkpoint
        results.interrupted = run.interrupted
        if self.comm is not None:     # every rank returns rank 0's results (tests ran there)
            results = self.comm.bcast_object(results)
        cbs.on_train_end(run, results)
        return results

    @staticmethod
    def _note_checkpoint(dog, ws, step, path):
        """Rank 0 wrote ``path``: the peers' watchdogs and the singa-run that started the job learn it."""
        if dog is not None:
            dog.note_checkpoint(step)
        runstatus.update(workspace=ws, checkpoint=path, step=step)

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

    def _group_net(self, job, backend, streams, first):
        """The train net of another worker group of this process (in-process Downpour/Hogwild)."""
        return NeuralNet(job.neuralnet, job_pb2.kTrain, backend, streams)

    @staticmethod
    def _link_group_params(net, first, share_memory):
        """Another local group's params: the first group's arrays (``share_memory``, SINGA's default:
        the groups read the values the last reply brought, whichever group asked), else a copy."""
        for name, p in net.owners.items():
            src = first.owners[name]
            if share_memory:
                p.data = src.data
                for s in p.shares:
                    s.data = src.data
            else:
                p.set_values(src.host_values())

    def _finish_servers(self, stub, groups):
        """The end of a job with parameter servers: the groups say they are done, the servers
        finish (Hogwild: the last deltas reach the masters), every rank takes the final values,
        and the servers' update counts are checked against the workers' pushes."""
        for _, _, wstub, _ in groups:
            wstub.done()
        stub.finish()
        final = stub.final if self.rank == 0 else numpy.empty(stub.total, stub.dtype)
        if self.comm is not None:
            self.comm.bcast(final)
        for _, _, _, net in groups:
            off = 0
            for p in net.owner_params:
                p.set_values(final[off:off + p.size])
                off += p.size
        pushes = {w.group: w.pushes for _, _, w, _ in groups if w.leader}
        stats = [(stub.stats(), pushes)]
        if self.comm is not None:
            stats = self.comm.gather_object(stats[0])
        stub.close()
        if self.rank != 0:
            return None
        servers, pushed = {}, {}
        for st, pu in stats:
            servers.update(st)
            pushed.update(pu)
        topo = self.topology
        for (g, sid), (updates, by_group, _) in sorted(servers.items()):
            lo, hi = stub.server_range[sid]
            expected = {wg: n for wg, n in pushed.items() if topo.server_group_of(wg) == g} if hi > lo else {}
            if by_group != expected:
                raise RuntimeError("server (%d, %d) applied %s updates by worker group but the groups pushed %s: "
                                   "a gradient was lost or applied twice" % (g, sid, by_group, expected))
        updates = sum(u for u, _, _ in servers.values())
        deltas = sum(d for _, _, d in servers.values())
        self.log("Servers (%s): %d updates applied for %d pushes (%s)%s" % (
            topo.framework(), updates, sum(pushed.values()),
            ", ".join("group %d: %d" % kv for kv in sorted(pushed.items())),
            "; %d deltas synced between server groups" % deltas if topo.nserver_groups > 1 else ""))
        return {"framework": topo.framework(), "pushes": pushed, "updates": {k: v[0] for k, v in servers.items()},
                "deltas": deltas}

    def _worker_slices(self, batch, group, ids):
        """For this process's workers ``ids`` of worker group ``group``: the part of each group
        batch the process reads, the workers' rows within that part, and the workers' global ids
        (which name their random streams): the batch split evenly among the group's workers
        (SINGA's partition_dim 0). (None, None, None) for the default in-process engine (BPWorker
        picks its replicas)."""
        topo = self.topology
        W = topo.nworkers_per_group
        if self.comm is None and W == 1 and not self.ps:
            return None, None, None
        if batch < W:
            raise ConfigError("the batch (%d) is smaller than the number of workers it is split among (%d).\nhelp: "
                              "a batch of at least %d, or fewer workers" % (batch, W, W))
        bounds = [(batch * i // W, batch * (i + 1) // W) for i in ids]
        lo, hi = bounds[0][0], bounds[-1][1]
        gids = [group * W + i for i in ids]
        if self.comm is None and not self.ps:
            return None, bounds, gids
        return (lo, hi), [(a - lo, b - lo) for a, b in bounds], gids

    def _checkpoint(self, ws, step, net, worker, streams):
        # The state file first, then the checkpoint: each is published by rename, so a run killed
        # at any moment leaves either no step<N> checkpoint or one whose state is complete.
        path = ckpt.checkpoint_file(ws, step, 0)
        state = {}
        # with parameter servers the updater state lives on the servers: not in the checkpoint
        for pname, st in ({} if self.ps else worker.state).items():
            for k, v in st.items():
                state["updater/%s/%s" % (pname, k)] = net.backend.to_host(v)
        positions = {"%d/%s" % (n.phase, l.name): int(l.pos) for n in self._nets for l in n.data_layers
                     if hasattr(l, "pos")}
        params = [(p.name, p.host_values(), p.version) for p in net.owner_params]
        meta = {"step": step, "seed": self.seed, "rng": streams.state(), "data_positions": positions}
        try:
            ckpt.write_checkpoint_and_state(path, params, state, meta)
        except OSError as e:
            if isinstance(e, DataError):
                raise
            raise DataError("cannot write checkpoint %s: %s.\nhelp: free disk space or raise the file-size limit "
                            "(ulimit -f); the previous checkpoint in %s is kept intact and `-resume` continues "
                            "from it" % (path, e.strerror or e, os.path.dirname(path))) from None
        return path

    def _resume(self, ws, net, worker, streams, path=None):
        if path is None:
            step = ckpt.latest_checkpoint_step(ws)
            if step is None:
                raise DataError("cannot resume: no checkpoint in %s.\nhelp: train without resume first"
                                % os.path.join(ws, "checkpoint"))
            path = ckpt.checkpoint_file(ws, step, 0)
        else:
            step = ckpt.step_of(path)
            if step is None or not os.path.isfile(path):
                raise DataError("cannot resume from %r: expected a step<N>-worker<K> checkpoint file.\nhelp: pass "
                                "the path a training run wrote" % (path,))
        loaded = ckpt.load_params([path], net)
        arrays, meta = ckpt.read_state(path)
        if arrays is None:
            self.log("Warning: %s has no state file beside it (written by SINGA, or by an older run): the "
                     "updater history, random streams and data positions start afresh, so this resume is not "
                     "exact" % path)
        else:
            for pname, st in (worker.state if worker is not None and not self.ps else {}).items():
                for k in st:
                    key = "updater/%s/%s" % (pname, k)
                    if key in arrays:
                        st[k][...] = net.backend.asarray(arrays[key], dtype=st[k].dtype)
            if meta and meta.get("rng"):
                streams.set_state(meta["rng"])
            # data layers continue where the checkpointed run stopped reading
            positions = (meta or {}).get("data_positions", {})
            for n in self._nets:
                for l in n.data_layers:
                    key = "%d/%s" % (n.phase, l.name)
                    if key in positions and hasattr(l, "pos"):
                        l.pos = positions[key]
        self.log("Resuming from %s (step %d)" % (path, step))
        return step, loaded

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
        if CDWorker._pairs(net):        # an RBM: positive pass and one reconstruction
            m = CDWorker.test(net, nsteps, job_pb2.kTest)
        else:
            m = BPWorker.test(net, nsteps, job_pb2.kTest)
        step = ckpt.step_of(job.checkpoint_path[-1]) or 0
        self.log("Test @ step %d: %s" % (step, fmt(m)))
        return Results("test", test={step: m})


def _phase_data_layers(job, phase):
    """Names of the data layers that ``job`` includes explicitly in ``phase`` (a layer without
    ``include`` serves every phase and says nothing about the user's intent)."""
    return [lp.name for lp in job.neuralnet.layer
            if not lp.srclayers and (100 <= lp.type < 200 or lp.user_type == "kData") and phase in lp.include]


def _evaluation_plan(job, which, net):
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


def fmt(metrics):
    names = {"acc": "accuracy", "se": "Squared Error"}
    return ", ".join("%s = %.6f" % (names.get(k, k), v) for k, v in sorted(metrics.items(), key=lambda kv: kv[0] != "loss"))
