"""What a training run keeps in its checkpoints, and how it continues from one.

A checkpoint ``step<N>-worker0`` holds the params (SINGA's format); the state file beside it
(singa.io.checkpoint) holds the rest of the run: the updater's history, the random streams and
where each data layer had read to. Both are published by rename, the state first.
"""
import os

from singa.errors import DataError
from singa.io import checkpoint as ckpt
from singa.neuralnet import strip_unroll


def init_params(net, streams, loaded):
    """Fresh values for ``net``'s params that own their values and were not ``loaded``.

    Unlike SINGA (SINGA-107), a param loaded from a checkpoint is never re-initialised, even if
    the file recorded version 0 for it."""
    for p in net.owner_params:
        if p.owner is None and p.name not in loaded:
            p.init_values(streams.stream("init/" + strip_unroll(p.name)))


def _positions_key(net, layer):
    return "%d/%s" % (net.phase, layer.name)


def save(ws, step, net, updater_state, nets, seed, streams):
    """Write the checkpoint of ``step`` in workspace ``ws``: ``net``'s params, ``updater_state``
    ({param: {name: array}}; {} when parameter servers hold it), the random streams and the data
    positions of ``nets``. Returns its path."""
    # The state file first, then the checkpoint: each is published by rename, so a run killed
    # at any moment leaves either no step<N> checkpoint or one whose state is complete.
    path = ckpt.checkpoint_file(ws, step, 0)
    state = {}
    for pname, st in updater_state.items():
        for k, v in st.items():
            state["updater/%s/%s" % (pname, k)] = net.backend.to_host(v)
    positions = {_positions_key(n, l): int(l.pos) for n in nets for l in n.data_layers if hasattr(l, "pos")}
    params = [(p.name, p.host_values(), p.version) for p in net.owner_params]
    meta = {"step": step, "seed": seed, "rng": streams.state(), "data_positions": positions}
    try:
        ckpt.write_checkpoint_and_state(path, params, state, meta)
    except OSError as e:
        if isinstance(e, DataError):
            raise
        raise DataError("cannot write checkpoint %s: %s.\nhelp: free disk space or raise the file-size limit "
                        "(ulimit -f); the previous checkpoint in %s is kept intact and `-resume` continues "
                        "from it" % (path, e.strerror or e, os.path.dirname(path))) from None
    return path


def _checkpoint_to_resume(ws, path):
    """(step, path) of the checkpoint a resume continues: ``path``, or the newest in ``ws``."""
    if path is None:
        step = ckpt.latest_checkpoint_step(ws)
        if step is None:
            raise DataError("cannot resume: no checkpoint in %s.\nhelp: train without resume first"
                            % os.path.join(ws, "checkpoint"))
        return step, ckpt.checkpoint_file(ws, step, 0)
    step = ckpt.step_of(path)
    if step is None or not os.path.isfile(path):
        raise DataError("cannot resume from %r: expected a step<N>-worker<K> checkpoint file.\nhelp: pass "
                        "the path a training run wrote" % (path,))
    return step, path


def resume(ws, net, updater_state, nets, streams, path=None, log=print):
    """Load the checkpoint ``path`` (None: the newest in ``ws``) into ``net``, and its state file
    into ``updater_state``, the random streams and the data layers of ``nets``. Returns (the step
    it continues at, {param name: path} of the params loaded)."""
    step, path = _checkpoint_to_resume(ws, path)
    loaded = ckpt.load_params([path], net)
    arrays, meta = ckpt.read_state(path)
    if arrays is None:
        log("Warning: %s has no state file beside it (written by SINGA, or by an older run): the "
            "updater history, random streams and data positions start afresh, so this resume is not "
            "exact" % path)
    else:
        for pname, st in updater_state.items():
            for k in st:
                key = "updater/%s/%s" % (pname, k)
                if key in arrays:
                    st[k][...] = net.backend.asarray(arrays[key], dtype=st[k].dtype)
        if meta and meta.get("rng"):
            streams.set_state(meta["rng"])
        # data layers continue where the checkpointed run stopped reading
        positions = (meta or {}).get("data_positions", {})
        for n in nets:
            for l in n.data_layers:
                key = _positions_key(n, l)
                if key in positions and hasattr(l, "pos"):
                    l.pos = positions[key]
    log("Resuming from %s (step %d)" % (path, step))
    return step, loaded


__all__ = ["init_params", "save", "resume"]
