"""Keras' array API on a Model: ``fit(x, y)``, ``evaluate(x, y)`` and ``predict(x)`` on NumPy arrays.

After Keras' array data adapter: the arrays become in-memory stores (``singa.layers.input.array_store``,
a ``mem:`` path in store_conf) read by ordinary Data layers, so training runs the same JobProto and
Driver as SINGA's API; one epoch is ``ceil(N / batch_size)`` steps. Testing and prediction run the
model's test net over every sample (``singa.inference.Predictor``) with the trained checkpoint.
"""
import numbers
import os

import numpy

from singa.backends import Backend
from singa.errors import ConfigError, Stated, invalid
from singa.inference import Predictor
from singa.io import checkpoint as ckpt
from singa.jobconf import Store
from singa.layer import Data
from singa.layers.input import array_store
from singa.results import Results
from singa.utils.arguments import paths, positive_int
from singa.utils.message import enumPhase


def checkpoint_step(path):
    """The step of a ``step<N>-worker<K>`` checkpoint path, 0 for any other."""
    return ckpt.step_of(path) or 0


def fit_arrays(model, x, y, batch_size, epochs, validation_data, validation_split, shuffle, seed, resume,
               **fields):
    """fit(x, y, ...) on NumPy arrays (see Model.fit): ``epochs * ceil(N / batch_size)`` steps."""
    if y is None:
        raise invalid("y", "the labels of x (class indices, shape (N,))", None, where="fit()",
                      hint="m.fit(x_train, y_train, batch_size=64, epochs=5)")
    model._check_compiled("fit")
    x, y = numpy.asarray(x), numpy.asarray(y)
    batch_size = positive_int(batch_size, "batch_size", "fit()")
    epochs = positive_int(epochs, "epochs", "fit()")
    x, y, validation_data = _hold_out(x, y, validation_split, validation_data)
    n = x.shape[0] if x.ndim else 0
    if n and batch_size > n:
        batch_size = n
    order = numpy.random.default_rng(seed).permutation(n) if shuffle and n else slice(None)
    path, store = array_store(x[order], y[order] if y.shape[:1] == (n,) else y)
    model._array_stores = [store]
    per_epoch = -(-n // batch_size)
    train_phases = (enumPhase("train"), enumPhase("val"))
    model.layers = [l for l in model.layers if not (l.is_datalayer and any(p in l.layer.include
                                                                           for p in train_phases))]
    train = Data(load="recordinput", phase="train", conf=Store(path=path, backend="kvfile", batchsize=batch_size,
                                                               shape=tuple(x.shape[1:])))
    fields.setdefault("disp_freq", per_epoch)
    if validation_data is not None:
        _add_validation(model, validation_data, batch_size, per_epoch, fields)
    start = _start_step(model, resume, per_epoch, epochs, batch_size)
    try:
        # resume: `epochs` in all (the interrupted run's target); a later fit: `epochs` more
        total = per_epoch * epochs if resume else start + per_epoch * epochs
        result = model.fit(train, nb_epoch=total, seed=seed, **fields)
    finally:
        model._resume_from = None
    model._array_fitted = True
    return result


def _hold_out(x, y, validation_split, validation_data):
    """(x, y, validation_data) with the last ``validation_split`` of x and y held out (as Keras)."""
    if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real) or \
            not 0 <= validation_split < 1:
        raise invalid("validation_split", "a fraction in [0, 1)", validation_split, where="fit()",
                      hint="validation_split=0.1 holds out the last 10% of x")
    if not validation_split:
        return x, y, validation_data
    if validation_data is not None:
        raise invalid("validation_split", "it or validation_data, not both",
                      Stated("validation_split=%r and validation_data" % (validation_split,)), where="fit()")
    n_all = x.shape[0] if x.ndim else 0
    cut = n_all - int(n_all * validation_split)
    if not 0 < cut < n_all:
        raise invalid("validation_split", "a fraction that leaves samples on both sides of %d" % n_all,
                      validation_split, where="fit()")
    return x[:cut], y[:cut], (x[cut:], y[cut:])


def _add_validation(model, validation_data, batch_size, per_epoch, fields):
    """A phase 'val' Data layer of the pair ``validation_data`` in ``fields``, validated every epoch."""
    try:
        xv, yv = validation_data
    except (TypeError, ValueError):
        raise invalid("validation_data", "a pair (x_val, y_val)", type(validation_data).__name__,
                      where="fit()") from None
    xv = numpy.asarray(xv)
    vpath, vstore = array_store(xv, yv)
    model._array_stores.append(vstore)
    vb = min(batch_size, xv.shape[0])
    fields["validate_data"] = Data(load="recordinput", phase="val", conf=Store(
        path=vpath, backend="kvfile", batchsize=vb, shape=tuple(xv.shape[1:])))
    fields.setdefault("validate_steps", -(-xv.shape[0] // vb))
    fields.setdefault("validate_freq", per_epoch)


def _start_step(model, resume, per_epoch, epochs, batch_size):
    """The step the training starts from: the workspace's newest checkpoint (``resume``), the previous
    fit(x, y)'s last one (Keras continues), else 0; sets ``model._resume_from`` to its checkpoint."""
    model._resume_from = None
    if resume:
        ws = model.jobconf.cluster.workspace
        start = ckpt.latest_checkpoint_step(ws)
        if start is None:
            raise invalid("resume", "a checkpoint to resume in %s" % os.path.join(ws, "checkpoint"),
                          Stated("resume=True, but there is none"), where="fit()", hint="fit without resume=True first")
        if start >= per_epoch * epochs:
            raise invalid(
                "epochs", "the number of epochs in all, more than the checkpoint has done", Stated(
                    "epochs=%d (%d steps of batch %d), but the newest checkpoint, %s, is at step %d (%.3g epochs): "
                    "nothing left to train" % (epochs, per_epoch * epochs, batch_size,
                                               ckpt.checkpoint_file(ws, start, 0), start, start / per_epoch)),
                where="fit(resume=True)", hint="epochs=%d trains one more epoch; without resume=True, fit() trains "
                "`epochs` more epochs from the current weights" % (-(-start // per_epoch) + 1))
        model._resume_from = ckpt.checkpoint_file(ws, start, 0)
        return start
    last = model.last_checkpoint_path
    if model._trained and last and os.path.isfile(last) and model._array_fitted:
        model._resume_from = last      # a later fit(x, y): continue from where the previous one ended
        return checkpoint_step(last)
    return 0


def predictor(model, x, y, batch_size, checkpoint_path, method):
    """A Predictor of the model's test net over ``x`` (labels ``y``) with its trained checkpoint
    (``checkpoint_path``, else the last one fit() wrote, else the job's checkpoint_path)."""
    found = paths(checkpoint_path, "checkpoint_path") or (
        [model.last_checkpoint_path] if model.last_checkpoint_path else list(model.jobconf.checkpoint_path))
    if not found:
        raise invalid("checkpoint_path", "the checkpoint of the trained params", None, where=method + "()",
                      hint="fit() the model first, or pass checkpoint_path=workspace + '/checkpoint/step1000-worker0'")
    if model.layers:
        model.build()
    gpus = list(model.jobconf.gpu)
    return Predictor(model.jobconf, found, x, y, batch_size=batch_size,
                     backend=Backend(gpus[0]) if gpus else None, seed=model._seed)


def predict(model, x, batch_size=100, checkpoint_path=None):
    """The model's outputs for the samples of ``x`` (see Model.predict)."""
    return predictor(model, x, None, batch_size, checkpoint_path, "predict").predict()


def evaluate_arrays(model, x, y, checkpoint_path, fields):
    """evaluate(x, y): exact test metrics over every sample of the arrays, as Results keyed by the
    checkpoint's step."""
    if y is None:
        raise invalid("y", "the labels of x", None, where="evaluate()", hint="m.evaluate(x_test, y_test)")
    unknown = set(fields) - {"batch_size"}
    if unknown:
        raise ConfigError("Invalid keyword(s) %s for evaluate(x, y). Expected batch_size (and checkpoint_path)."
                          % sorted(unknown))
    pred = predictor(model, x, y, fields.get("batch_size", 100), checkpoint_path, "evaluate")
    metrics = pred.metrics()
    path = (paths(checkpoint_path, "checkpoint_path") or [model.last_checkpoint_path or ""])[-1]
    return Results("test", test={checkpoint_step(path): metrics})
