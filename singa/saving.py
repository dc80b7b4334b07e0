"""A trained Model on disk and on paper: ``save``/``load`` (a directory of job.conf and the trained
params), ``summary`` (the layers' output shapes and params) and ``export_onnx``; after Keras' saving
and summary utilities. The Model methods of the same names call these."""
import glob
import os

import numpy

from singa.arrays import predictor
from singa.backends import Backend
from singa.errors import ConfigError, DataError, Stated, invalid
from singa.inference import reference_input
from singa.io.atomic import write_bytes_atomic, write_text_atomic
from singa.neuralnet import NeuralNet
from singa.onnx_export import export
from singa.proto import enum_name, job_pb2, job_to_text, read_job_conf
from singa.random import RandomStreams
from singa.utils.message import enumPhase


def summary(model, phase="train", print_fn=print):
    """The table of ``model``'s ``phase`` net (see Model.summary), printed with ``print_fn`` and returned."""
    job = model.to_jobproto()
    net = NeuralNet(job.neuralnet, enumPhase(phase), Backend(None), RandomStreams(0))
    rows = [("Layer (type)", "Output shape", "Params", "")]
    total = 0
    for layer in net.layers:
        own = [p for p in getattr(layer, "params", ()) if p.owner is None]
        n = sum(p.size for p in own)
        total += n
        detail = ", ".join("%s %s" % (p.name, p.shape) for p in layer.params) if layer.params else ""
        shares = [p.name for p in getattr(layer, "params", ()) if p.owner is not None]
        if shares:
            detail += " (shared: %s)" % ", ".join(shares)
        type_name = enum_name(job_pb2.LayerType, layer.conf.type)
        rows.append(("%s (%s)" % (layer.name, type_name), str(tuple(layer.out_shape)), "{:,}".format(n), detail))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ['Model: "%s" (%s net, batch %d)' % (job.name, phase, net.batch_size)]
    for r in rows:
        lines.append(("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + ("  " + r[3] if r[3] else "")).rstrip())
        if r is rows[0]:
            lines.append("-" * (sum(widths) + 4))
    lines.append("Total params: {:,} ({:.1f} MiB as float32)".format(total, total * 4 / 2 ** 20))
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text


def save(model, directory, overwrite=False):
    """Write ``job.conf`` and the last checkpoint of ``model`` to ``directory`` (see Model.save)."""
    last = model.last_checkpoint_path
    if not last or not os.path.isfile(last):
        raise ConfigError("save(): the model has no trained params to save (last checkpoint: %r).\nhelp: fit() "
                          "the model first" % (last,))
    directory = os.fspath(directory)
    if os.path.isdir(directory) and os.listdir(directory) and not overwrite:
        raise invalid("directory", "a new or empty directory", Stated("%r, which holds files" % (directory,)),
                      where="save()", hint="save(%r, overwrite=True) replaces the saved model there" % (directory,))
    os.makedirs(directory, exist_ok=True)
    with open(last, "rb") as f:      # under SINGA's checkpoint name, so the step stays known
        write_bytes_atomic(os.path.join(directory, os.path.basename(last)), f.read())
    write_text_atomic(os.path.join(directory, "job.conf"), job_to_text(model.to_jobproto()))
    return directory


def load(cls, directory, argv=None):
    """The ``cls`` (a Model class) that ``save`` wrote to ``directory`` (see Model.load)."""
    conf = os.path.join(directory, "job.conf")
    found = sorted(glob.glob(os.path.join(glob.escape(os.fspath(directory)), "step*-worker0")))
    if not os.path.isfile(conf) or len(found) != 1:
        there = sorted(os.listdir(directory)) if os.path.isdir(directory) else "no such directory"
        raise DataError("Model.load(%r): expected job.conf and one step<N>-worker0 checkpoint there. Found: %s.\n"
                        "help: load a directory written by Model.save" % (directory, there))
    m = cls.from_jobproto(read_job_conf(conf), argv=argv)
    m.last_checkpoint_path = found[0]
    m._trained = True
    return m


def export_onnx(model, path, checkpoint_path=None, preprocess=True, opset=17):
    """Write the trained ``model`` as ONNX to ``path`` (see Model.export_onnx and singa.onnx_export)."""
    if model.layers:
        model.build()
    shape = tuple(reference_input(model.jobconf.neuralnet).store_conf.shape)
    pred = predictor(model, numpy.zeros((1,) + shape, numpy.float32), None, 1, checkpoint_path, "export_onnx")
    return export(model.jobconf, pred, path, preprocess=preprocess, opset=opset)


__all__ = ["summary", "save", "load", "export_onnx"]
