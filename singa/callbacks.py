"""Callbacks in the Keras style, called by the Driver during training.

    m.fit(X_train, nb_epoch=5000, callbacks=[EarlyStopping(monitor='val_loss', patience=3),
                                             ModelCheckpoint(), CSVLogger('train.csv')])

A callback sees the training through a ``Run`` (the job, the train net, the updater, the step,
the results so far) and may stop it (``run.stop_training = True``). Hooks, all optional:

* ``on_train_begin(run)``, ``on_train_end(run, results)``
* ``on_step_end(run, step, metrics)``: after every training step, with that step's metrics
* ``on_display(run, step, metrics)``: the averaged training metrics of a display step (disp_freq)
* ``on_test_end(run, step, phase, metrics)``: phase 'test' or 'validation' (rank 0 runs these)
* ``on_checkpoint(run, step, path)``: a checkpoint was written

Metrics are named as the engine's loss layers name them ('loss', 'acc', 'se', the rnnlm's 'ppl';
any other name a layer reports passes through as it is); a ``monitor`` names a phase and a metric:
'val_loss' / 'val_acc' / 'val_ppl' (validation), 'test_loss', or 'loss' / 'acc' (training, at
display steps). ``mode='auto'`` maximises accuracy, precision and recall and minimises the rest.
``TerminateOnNaN`` is on unless turned off (``fit(..., terminate_on_nan=False)``).

Every rank runs the callbacks; those that write files do it on rank 0 only. In a synchronous
multi-process job a stop on any rank stops all ranks at the same step; with parameter servers
(Downpour, Hogwild) a stop ends the group of the rank that asked for it, and the others finish
their steps.
"""
import csv
import json
import math
import os

import numpy

from singa.errors import ConfigError


class Run:
    """What callbacks see of a training run."""

    def __init__(self, job, net, worker, updater, results, rank=0, test_net=None, val_net=None):
        self.job, self.net, self.worker, self.updater = job, net, worker, updater
        self.test_net, self.val_net = test_net, val_net
        self.results = results
        self.rank = rank
        self.step = int(job.step)
        self.stop_training = False
        self.stop_reason = None
        self.diverged = False           # set by TerminateOnNaN: the final checkpoint is not written
        self.interrupted = None         # 'SIGINT' (Ctrl-C) or 'SIGTERM': the loop stops after the step
        self.last_checkpoint = None     # path of the newest checkpoint written by this run
        self.workspace = job.cluster.workspace

    def param_values(self):
        """{param name: a NumPy copy of its values} of the train net's owner params."""
        return {p.name: p.host_values().copy() for p in self.net.owner_params}

    def write_checkpoint(self, path):
        """Write the current params as a SINGA checkpoint (BlobProtos) at ``path`` (rank 0)."""
        from singa.io import checkpoint as ckpt
        ckpt.write_checkpoint(path, [(p.name, p.host_values(), p.version) for p in self.net.owner_params])
        return path

    def learning_rate(self, step=None):
        return self.updater.learning_rate(self.step if step is None else step) if self.updater else None


class Callback:
    def on_train_begin(self, run):
        pass

    def on_step_end(self, run, step, metrics):
        pass

    def on_display(self, run, step, metrics):
        pass

    def on_test_end(self, run, step, phase, metrics):
        pass

    def on_checkpoint(self, run, step, path):
        pass

    def on_train_end(self, run, results):
        pass


class CallbackList(Callback):
    """Calls each callback's hook in order."""

    def __init__(self, callbacks):
        self.callbacks = list(callbacks or [])
        for c in self.callbacks:
            if not isinstance(c, Callback):
                raise ConfigError("Invalid value for `callbacks`. Expected singa.callbacks.Callback objects (e.g. "
                                  "EarlyStopping(), CSVLogger('log.csv')). Received: %r" % (c,))

    def __iter__(self):
        return iter(self.callbacks)

    def _each(name):        # noqa: N805  (builds the hook methods below)
        def hook(self, *args):
            for c in self.callbacks:
                getattr(c, name)(*args)
        hook.__name__ = name
        return hook

    on_train_begin = _each("on_train_begin")
    on_step_end = _each("on_step_end")
    on_display = _each("on_display")
    on_test_end = _each("on_test_end")
    on_checkpoint = _each("on_checkpoint")
    on_train_end = _each("on_train_end")
    del _each


# -- monitors --------------------------------------------------------------------------------
_PHASES = {"val": "validation", "test": "test"}


def parse_monitor(monitor):
    """'val_loss' -> ('validation', 'loss'); 'acc' -> ('train', 'acc')."""
    if not isinstance(monitor, str) or not monitor:
        raise ConfigError("Invalid value for `monitor`. Expected a metric name such as 'val_loss', 'val_acc', "
                          "'test_loss' or 'loss'. Received: %r" % (monitor,))
    head, sep, tail = monitor.partition("_")
    if sep and head in _PHASES:
        return _PHASES[head], tail
    return "train", monitor


def _better(mode, monitor):
    if mode not in ("auto", "min", "max"):
        raise ConfigError("Invalid value for `mode`. Expected 'auto', 'min' or 'max'. Received: %r\nhelp: 'min' for "
                          "a loss, 'max' for an accuracy; 'auto' guesses from the name" % (mode,))
    if mode == "auto":
        mode = "max" if any(k in monitor for k in ("acc", "precision", "recall")) else "min"
    return mode


class _Monitoring(Callback):
    def __init__(self, monitor, mode, min_delta=0.0):
        self.monitor = monitor
        self.phase, self.metric = parse_monitor(monitor)
        self.mode = _better(mode, monitor)
        self.min_delta = abs(float(min_delta))
        self.best, self.best_step = None, None

    def _improved(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def _observe(self, run, step, metrics):
        if self.metric not in metrics:
            raise ConfigError("%s(monitor=%r): the %s metrics have no %r (they have %s).\nhelp: monitor one of "
                              "them, e.g. %r" % (type(self).__name__, self.monitor, self.phase, self.metric,
                                                 sorted(metrics), _name(self.phase, sorted(metrics)[0])))
        self.seen(run, step, float(metrics[self.metric]))

    def on_display(self, run, step, metrics):
        if self.phase == "train":
            self._observe(run, step, metrics)

    def on_test_end(self, run, step, phase, metrics):
        if phase == self.phase:
            self._observe(run, step, metrics)

    def seen(self, run, step, value):
        raise NotImplementedError


def _name(phase, metric):
    prefix = {"validation": "val_", "test": "test_"}.get(phase, "")
    return prefix + metric


class EarlyStopping(_Monitoring):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` evaluations
    (validation or test rounds, or display steps for training metrics)."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto", verbose=1):
        super().__init__(monitor, mode, min_delta)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ConfigError("Invalid value for `patience` of EarlyStopping. Expected a number of evaluations >= 0. "
                              "Received: %r" % (patience,))
        self.patience, self.verbose = patience, verbose
        self.wait = 0
        self.stopped_step = None

    def on_train_begin(self, run):
        self.best, self.best_step, self.wait, self.stopped_step = None, None, 0, None

    def seen(self, run, step, value):
        if self.stopped_step is not None:       # (the final test after the stop)
            return
        if self._improved(value):
            self.best, self.best_step, self.wait = value, step, 0
            return
        self.wait += 1
        if self.wait > self.patience:
            run.stop_training = True
            self.stopped_step = step
            run.stop_reason = ("EarlyStopping: %s did not improve on %.6f (step %d) for %d evaluation(s)"
                               % (self.monitor, self.best, self.best_step, self.wait))


class ModelCheckpoint(_Monitoring):
    """Keep the best params by ``monitor`` (``best-worker0``) and the last ones (``last-worker0``)
    in ``directory`` (default ``<workspace>/checkpoint``), in SINGA's checkpoint format
    (BlobProtos: ``evaluate(checkpoint_path=...)`` and SINGA itself read them). A JSON file beside
    the best one says its step and value."""

    def __init__(self, directory=None, monitor="val_loss", mode="auto", save_best=True, save_last=True):
        super().__init__(monitor, mode)
        self.directory, self.save_best, self.save_last = directory, bool(save_best), bool(save_last)
        self.best_path = self.last_path = None

    def _dir(self, run):
        d = self.directory or os.path.join(run.workspace, "checkpoint")
        os.makedirs(d, exist_ok=True)
        return d

    def on_train_begin(self, run):
        self.best, self.best_step = None, None

    def seen(self, run, step, value):
        if not self._improved(value) or math.isnan(value):
            return
        self.best, self.best_step = value, step
        if self.save_best and run.rank == 0:
            self.best_path = run.write_checkpoint(os.path.join(self._dir(run), "best-worker0"))
            from singa.io.atomic import write_text_atomic
            write_text_atomic(self.best_path + ".json", json.dumps({"step": step, "monitor": self.monitor,
                                                                    "value": value}) + "\n")

    def on_train_end(self, run, results):
        if self.save_last and run.rank == 0 and not run.diverged:
            self.last_path = run.write_checkpoint(os.path.join(self._dir(run), "last-worker0"))


class CSVLogger(Callback):
    """One row per recorded metric set: step, phase ('train', 'validation', 'test') and the
    metrics, written as they come (rank 0)."""

    def __init__(self, filename, append=False, every_step=False):
        if not filename:
            raise ConfigError("Invalid value for `filename` of CSVLogger. Expected a path. Received: %r" % (filename,))
        self.filename, self.append, self.every_step = str(filename), bool(append), bool(every_step)
        self._file = self._writer = None
        self.keys = None

    def on_train_begin(self, run):
        if run.rank != 0:
            return
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer = csv.writer(self._file)
        self.keys = None
        if exists:
            with open(self.filename, newline="") as f:
                head = next(csv.reader(f), None)
            self.keys = head[2:] if head else None

    def _row(self, step, phase, metrics):
        if self._writer is None:
            return
        if self.keys is None:
            self.keys = sorted(metrics)
            self._writer.writerow(["step", "phase"] + self.keys)
        self._writer.writerow([step, phase] + ["%.9g" % metrics[k] if k in metrics else "" for k in self.keys])
        self._file.flush()

    def on_step_end(self, run, step, metrics):
        if self.every_step:
            self._row(step, "train", metrics)

    def on_display(self, run, step, metrics):
        if not self.every_step:
            self._row(step, "train", metrics)

    def on_test_end(self, run, step, phase, metrics):
        self._row(step, phase, metrics)

    def on_train_end(self, run, results):
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None


class LearningRateScheduler(Callback):
    """``schedule(step, lr) -> new lr``: the rate of every step, given the one the job's own
    schedule (``updater.learning_rate``) gives; params' lr_scale still applies."""

    def __init__(self, schedule, verbose=0):
        if not callable(schedule):
            raise ConfigError("Invalid value for `schedule` of LearningRateScheduler. Expected a function "
                              "(step, lr) -> lr. Received: %r" % (schedule,))
        self.schedule, self.verbose = schedule, verbose

    def on_train_begin(self, run):
        if run.updater is None:
            return
        gen = run.updater.lr_gen
        run.updater.lr_gen = _Scheduled(gen, self.schedule)

    def on_train_end(self, run, results):
        if run.updater is not None and isinstance(run.updater.lr_gen, _Scheduled):
            run.updater.lr_gen = run.updater.lr_gen.base


class _Scheduled:
    def __init__(self, base, schedule):
        self.base, self.schedule = base, schedule

    def __call__(self, step):
        lr = self.schedule(step, float(self.base(step)))
        try:
            lr = float(lr)
        except (TypeError, ValueError):
            lr = float("nan")
        if not math.isfinite(lr) or lr < 0:
            raise ConfigError("LearningRateScheduler: the schedule gave %r for step %d. Expected a finite rate >= 0"
                              % (lr, step))
        return lr

    def __repr__(self):
        return "scheduled(%r)" % (self.base,)


class TerminateOnNaN(Callback):
    """Stop as soon as a training metric is NaN or infinite, naming the step and where the
    non-finite values first appear (the first layer whose output has them, or a param), and
    keep the last good checkpoint (the final one is not written)."""

    def on_step_end(self, run, step, metrics):
        bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        if not bad:
            return
        where = first_non_finite(run)
        last = run.last_checkpoint
        run.stop_training = run.diverged = True
        run.stop_reason = (
            "TerminateOnNaN: %s at step %d; first non-finite values: %s. The last good checkpoint is %s.\nhelp: lower "
            "the learning rate (or clip the gradients: clip_low/clip_high), check the data for NaN/Inf, and resume "
            "or restart from that checkpoint" % (", ".join("%s = %r" % kv for kv in sorted(bad.items())), step,
                                                 where, last or "none (no checkpoint was written before)"))


def first_non_finite(run):
    """Where a step's non-finite values first show: the first layer (in net order) whose output
    has any, else the first param; looked for in the net the worker ran (a replica's, if any)."""
    worker = run.worker
    nets = [r for r, _ in getattr(worker, "replicas", [])] or [run.net]
    for net in nets:
        for layer in net.layers:
            data = getattr(layer, "data", None)
            if data is None or getattr(layer, "is_data", False):
                continue
            host = layer.backend.to_host(data) if hasattr(layer, "backend") else data
            if not numpy.isfinite(host).all():
                return "the output of layer '%s'" % layer.name
    for p in run.net.owner_params:
        if not numpy.isfinite(p.backend.to_host(p.data)).all():
            return "param '%s' (after the update)" % p.name
    return "none in the layers' outputs or the params (only in the metric)"


__all__ = ["Callback", "CallbackList", "Run", "EarlyStopping", "ModelCheckpoint", "CSVLogger",
           "LearningRateScheduler", "TerminateOnNaN", "parse_monitor", "first_non_finite"]
