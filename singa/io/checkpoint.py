"""SINGA v0.3 checkpoint files (SINGA-V0.md 5.4) and our extra training-state file.

A checkpoint ``<workspace>/checkpoint/step<N>-worker<K>`` is one serialized BlobProtos message,
no header: ``version = 3`` (repeated int32), ``name = 4`` (repeated string), ``blob = 5``
(BlobProto{``shape = 1`` repeated int32, ``data = 2`` packed float}), three parallel lists in
param order. The bytes are produced and parsed here directly (the same bytes protobuf
writes: fields in number order), so multi-million-float blobs cost one ``tobytes``/
``frombuffer`` instead of a Python float per value.

v0.2/v0.3 wrote param names with the unroll prefix ``0#`` (``0#w1``); v0.1 without. Both are
read, names come back without it, and names are written with it unless ``prefix=False``.

Our richer state (updater history, step, random-stream states) goes to ``<ckpt>.state.npz``
beside the checkpoint, which SINGA never looks at.
"""
import io
import json
import os
import re
import tempfile
import warnings
import zlib

import numpy

from singa.errors import DataError
from singa.io.record import as_int32, iter_fields, read_varint, varint

PREFIX = "0#"
_PREFIX_RE = re.compile(r"^\d+#")
_STEP_RE = re.compile(r"^step(\d+)-worker(\d+)$")
STATE_SUFFIX = ".state.npz"

_HINT = ("a checkpoint is written at the end of training and every `checkpoint_freq` steps; train again "
         "to re-create it, or list another file in `checkpoint_path`")


def strip_prefix(name):
    """'0#w1' -> 'w1' (the unroll index SINGA v0.2/v0.3 put before every name); other names as they are."""
    m = _PREFIX_RE.match(name)
    return name[m.end():] if m else name


def with_prefix(name):
    """'w1' -> '0#w1'; a name that already has an unroll prefix is kept."""
    return name if _PREFIX_RE.match(name) else PREFIX + name


_STEP_OF_RE = re.compile(r"step(\d+)-worker")


def step_of(path):
    """The step N of a ``step<N>-worker<K>`` checkpoint path (its file name), or None."""
    found = _STEP_OF_RE.search(os.path.basename(os.fspath(path))) if path else None
    return int(found.group(1)) if found else None


def checkpoint_file(workspace, step, worker=0):
    return os.path.join(os.fspath(workspace), "checkpoint", "step%d-worker%d" % (int(step), int(worker)))


def checkpoint_steps(workspace):
    """Sorted steps that have a checkpoint file in ``<workspace>/checkpoint``."""
    folder = os.path.join(os.fspath(workspace), "checkpoint")
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    steps = set()
    for n in names:
        m = _STEP_RE.match(n)
        if m and os.path.isfile(os.path.join(folder, n)):
            steps.add(int(m.group(1)))
    return sorted(steps)


def latest_checkpoint_step(workspace):
    """The largest N with a ``step<N>-worker<K>`` file (what SINGA's -resume picks), or None."""
    steps = checkpoint_steps(workspace)
    return steps[-1] if steps else None


# -- writing ----------------------------------------------------------------------------------

def _atomic_write(path, chunks):
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def encode_checkpoint(params, prefix=True):
    """The serialized BlobProtos for ``params``: a list of bytes chunks (join them for one string)."""
    versions, names, blobs = [], [], []
    for item in params:
        try:
            name, values, version = item
        except (TypeError, ValueError):
            raise DataError("Invalid value for a checkpoint entry. Expected (name, array, version). Received: %r"
                            % (item,)) from None
        arr = numpy.asarray(values)
        if arr.dtype.kind not in "fiub":
            raise DataError("Invalid value for the values of param '%s'. Expected a numeric array. Received: dtype %s"
                            % (name, arr.dtype))
        name = with_prefix(str(name)) if prefix else str(name)
        versions.append(b"\x18" + varint(int(version)))
        nb = name.encode("utf-8")
        names.append(b"\x22" + varint(len(nb)) + nb)
        raw = numpy.ascontiguousarray(arr, dtype="<f4").tobytes()
        body = b"".join(b"\x08" + varint(int(s)) for s in arr.shape)
        if raw:
            body += b"\x12" + varint(len(raw))
        blobs.append(b"\x2a" + varint(len(body) + len(raw)) + body)
        blobs.append(raw)
    return versions + names + blobs


def write_checkpoint(path, params, prefix=True):
    """Write ``params`` — (name, array, version) triples — as SINGA's BlobProtos checkpoint, atomically
    (temporary file, fsync, rename). Names get the ``0#`` prefix unless ``prefix=False``."""
    return _atomic_write(path, encode_checkpoint(params, prefix))


def write_checkpoint_and_state(path, params, arrays=None, meta=None, prefix=True):
    """Checkpoint plus state file, in the order that survives a kill at any moment: encode the
    checkpoint, publish the state with the CRC and length of those very bytes, then publish the
    checkpoint (no step<N> checkpoint without its complete state)."""
    data = b"".join(encode_checkpoint(params, prefix))
    write_state(path, arrays, meta, checkpoint_bytes=data)
    return _atomic_write(path, [data])


_TMP_RE = re.compile(r"^(step\d+-worker\d+(\.state\.npz)?)\.[A-Za-z0-9_]+\.tmp$")


def remove_stale_temporaries(workspace):
    """Remove the ``<name>.XXXXXXXX.tmp`` files that _atomic_write leaves when a run is killed
    mid-write. Only safe while holding the workspace lock (no other live writer). Returns them."""
    folder = os.path.join(os.fspath(workspace), "checkpoint")
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for n in names:
        if _TMP_RE.match(n):
            try:
                os.remove(os.path.join(folder, n))
                removed.append(n)
            except OSError:
                pass
    return removed


# -- reading ----------------------------------------------------------------------------------

def _corrupt(path, what):
    return DataError("checkpoint %s is truncated or corrupt: %s.\nhelp: %s" % (path, what, _HINT))


MAX_DIMS = 64


def _parse_blob(buf, start, end):
    shape, data = [], []
    for fnum, wt, _, v in iter_fields(buf, start, end):
        if len(shape) > MAX_DIMS:
            raise ValueError("blob shape with over %d dims" % MAX_DIMS)
        if fnum == 1:
            if wt == 0:
                shape.append(as_int32(v))
            elif wt == 2:   # packed shape (not what SINGA wrote, but valid protobuf)
                p, e = v
                while p < e:
                    s, p = read_varint(buf, p, e)
                    shape.append(as_int32(s))
                    if len(shape) > MAX_DIMS:
                        raise ValueError("blob shape with over %d dims" % MAX_DIMS)
            else:
                raise ValueError("blob shape with wire type %d" % wt)
        elif fnum == 2:
            if wt not in (2, 5):
                raise ValueError("blob data with wire type %d" % wt)
            a, b = v
            if (b - a) % 4:
                raise ValueError("blob data of %d bytes is not a whole number of floats" % (b - a))
            data.append(numpy.frombuffer(buf, dtype="<f4", count=(b - a) // 4, offset=a))
    values = data[0] if len(data) == 1 else (numpy.concatenate(data) if data else numpy.zeros(0, "<f4"))
    return shape, values


def decode_checkpoint(buf, path="<checkpoint>", strip=True):
    """[(name, float32 array of the stored shape, version)] from serialized BlobProtos bytes."""
    versions, names, blobs = [], [], []
    try:
        for fnum, wt, _, v in iter_fields(buf, 0, len(buf)):
            if fnum == 3:
                if wt == 0:
                    versions.append(as_int32(v))
                elif wt == 2:
                    p, e = v
                    while p < e:
                        x, p = read_varint(buf, p, e)
                        versions.append(as_int32(x))
            elif fnum == 4 and wt == 2:
                names.append(bytes(buf[v[0]:v[1]]).decode("utf-8"))
            elif fnum == 5 and wt == 2:
                blobs.append(_parse_blob(buf, *v))
            elif fnum in (3, 4, 5):
                raise ValueError("field %d with wire type %d" % (fnum, wt))
    except (ValueError, UnicodeDecodeError) as e:
        raise _corrupt(path, "not a valid BlobProtos message (%s)" % e) from None
    if not blobs:
        raise _corrupt(path, "it holds no parameter blob (%d bytes)" % len(buf))
    if len(names) != len(blobs) or (versions and len(versions) != len(blobs)):
        raise _corrupt(path, "%d names, %d versions and %d blobs should be parallel lists"
                       % (len(names), len(versions), len(blobs)))
    out = []
    for i, (name, (shape, values)) in enumerate(zip(names, blobs)):
        n = values.size
        if shape:   # exact Python ints: a product wrapping int64 must not pass for the real count
            n = 1
            for s in shape:
                n *= s
        extent = 4      # numpy refuses a shape whose bytes (non-zero dims x 4) pass int64, even when empty
        for s in shape:
            extent *= max(s, 1)
        if any(s < 0 for s in shape) or n != values.size or extent >= 2 ** 62:
            raise DataError("checkpoint %s: blob #%d ('%s') has shape %s (%d values) but holds %d values.\n"
                            "help: %s" % (path, i, name, tuple(shape), n, values.size, _HINT))
        arr = values.astype(numpy.float32).reshape(shape if shape else (values.size,))
        out.append((strip_prefix(name) if strip else name, arr, versions[i] if versions else 0))
    return out


def shapes_conflict(stored, wanted):
    """True for a real shape mismatch of equal-size arrays, e.g. (784, 100) stored for (100, 784).
    SINGA v0.3 legitimately stores some params flattened or reshaped (a bias (n, 1) for (n,), a conv
    kernel (nf, c*k*k) for (nf, c, k, k)), so only shapes of the same rank once 1-dims are dropped
    that still differ count."""
    a = [int(s) for s in stored if s != 1]
    b = [int(s) for s in wanted if s != 1]
    return len(a) == len(b) and a != b


def read_checkpoint(path, strip=True):
    """[(name, float32 array with the stored shape, version)] of a SINGA checkpoint file, names
    without their ``0#`` prefix (``strip=False`` keeps them). DataError for a missing, empty,
    truncated or corrupt file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        found = checkpoint_steps(os.path.dirname(os.path.dirname(os.path.abspath(path))))
        raise DataError("checkpoint %s does not exist%s.\nhelp: %s" % (
            path, "" if not found else " (steps with a checkpoint there: %s)" % found, _HINT))
    size = os.path.getsize(path)
    if size == 0:
        raise DataError("checkpoint %s is empty (0 bytes): the run that wrote it was interrupted.\nhelp: %s"
                        % (path, _HINT))
    with open(path, "rb") as f:
        buf = f.read()
    return decode_checkpoint(buf, path, strip)


class CheckpointOrderWarning(UserWarning):
    """checkpoint_path lists a stale copy of a param after the file that trained it (SINGA-107)."""


def load_params(paths, net):
    """Copy values from checkpoint files into ``net``'s owner params by name (training, test-only
    runs and predictions on arrays all load this way); later files win. Returns {param name:
    the path it came from}.

    SINGA-107: a stage's checkpoint holds the params it loaded but did not train with version
    0; listed after the file that trained them, SINGA re-initialised them. This engine keeps
    the later file's values (never re-initialises a loaded param) and warns."""
    loaded, trained_in, pieces = {}, {}, {}
    for path in paths:
        if not os.path.isfile(path):
            raise DataError("Invalid value for `checkpoint_path`: %s does not exist.\nhelp: run the stage that "
                            "writes it first (e.g. the lower RBMs), or fix the path (relative to the working "
                            "directory %s)" % (path, os.getcwd()))
        verify_checkpoint(path)    # a flipped bit must not load silently (its state file has the CRC)
        for name, values, version in read_checkpoint(path):
            p = net.owners.get(strip_prefix(name))      # as NeuralNet.owners names them (strip_unroll)
            if p is None or p.aliased is not None:
                continue
            worker = _worker_of(path)
            if values.size < p.size and worker is not None:    # a worker's slice (SINGA's partition_dim 1)
                pieces.setdefault(p.name, []).append((worker, path, values, version))
                continue
            if values.size != p.size or shapes_conflict(values.shape, p.shape):
                raise DataError("checkpoint %s holds param '%s' with %d values (shape %s) but the net's "
                                "param has shape %s.\nhelp: the checkpoint was written by a different net; "
                                "check the layer sizes" % (path, name, values.size, values.shape, p.shape))
            if version == 0 and p.name in trained_in:
                warnings.warn(
                    "checkpoint %s holds param '%s' with version 0 (loaded but not trained by the job that "
                    "wrote it) and is listed after %s, which trained it (version %d): SINGA v0.3 would "
                    "re-initialise '%s' (SINGA-107); this engine loads the later file's values.\nhelp: list the "
                    "newest stage's checkpoint first, as SINGA's rbm and autoencoder confs do"
                    % (path, p.name, trained_in[p.name][0], trained_in[p.name][1], p.name), CheckpointOrderWarning,
                    stacklevel=3)
            p.set_values(values)
            p.version = version
            loaded[p.name] = path
            if version > 0:
                trained_in[p.name] = (path, version)
    for name, parts in pieces.items():
        p = net.owners[name]
        values, version = _reassemble(name, p, sorted(parts, key=lambda t: t[0]))
        p.set_values(values)
        p.version = version
        loaded[name] = parts[-1][1]
    return loaded


def _worker_of(path):
    """k of a ``step<N>-worker<k>`` file name, else None."""
    m = re.match(r"step\d+-worker(\d+)$", os.path.basename(path))
    return int(m.group(1)) if m else None


def _reassemble(name, p, parts):
    """The whole value of param ``p`` from the slices SINGA's workers wrote of it (each worker of a
    group splitting a layer by features saved its own rows under the same name, SINGA-V0-REST.md
    5.6), joined in worker order along the axis they split: the param's own when it is split here
    too, else the one axis along which they add up to its shape."""
    shapes = [v.shape for _, _, v, _ in parts]
    workers = [w for w, _, _, _ in parts]
    axes = [a for a in range(len(p.shape)) if all(len(s) == len(p.shape) for s in shapes)
            and sum(s[a] for s in shapes) == p.shape[a]
            and all(s[:a] + s[a + 1:] == p.shape[:a] + p.shape[a + 1:] for s in shapes)]
    slices = getattr(p, "slices", None)
    if slices:
        own = next((i for i, ix in enumerate(slices[0].slice_index) if ix != slice(None)), None)
        axes = [a for a in axes if a == own]
    if not axes or workers != list(range(len(workers))):
        raise DataError("the checkpoints %s hold param '%s' in pieces of shapes %s (workers %s), which do not "
                        "make up its shape %s.\nhelp: list every worker's file of one step (step<N>-worker0, "
                        "-worker1, ...) for a net split among that many workers" % (
                            [path for _, path, _, _ in parts], name, shapes, workers, p.shape))
    return numpy.concatenate([v for _, _, v, _ in parts], axis=axes[0]), min(v for _, _, _, v in parts)


def missing_params(net, loaded):
    """The names of ``net``'s params that own their values and that ``loaded`` (from
    ``load_params``) did not fill: a test or prediction run needs every one."""
    return [p.name for p in net.owner_params if p.owner is None and p.name not in loaded]


# -- extra state ------------------------------------------------------------------------------

def state_file(checkpoint_path):
    return os.fspath(checkpoint_path) + STATE_SUFFIX


def _crc(path):
    try:
        with open(path, "rb") as f:
            return zlib.crc32(f.read())
    except OSError:
        return None


def write_state(checkpoint_path, arrays=None, meta=None, checkpoint_bytes=None):
    """Write ``<checkpoint>.state.npz``: numpy ``arrays`` (name -> array; '/' allowed in names) and
    JSON-able ``meta`` (step, seeds, random-stream states...), atomically. It records the CRC and
    length of the checkpoint (``checkpoint_bytes``, about to be published; else the file already
    there) so read_state can tell a stale state file or a corrupt checkpoint."""
    meta = dict(meta or {})
    if checkpoint_bytes is not None:
        meta["_checkpoint_crc32"] = zlib.crc32(checkpoint_bytes)
        meta["_checkpoint_size"] = len(checkpoint_bytes)
    else:
        meta["_checkpoint_crc32"] = _crc(checkpoint_path)
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as e:
        raise DataError("Invalid value for `meta`. Expected JSON-serialisable values. Received: %s" % e) from None
    payload = {"__meta__": numpy.frombuffer(text.encode("utf-8"), dtype=numpy.uint8)}
    for k, v in (arrays or {}).items():
        if k == "__meta__":
            raise DataError("Invalid value for `arrays`. Expected names other than '__meta__'. Received: %r" % k)
        payload[k] = numpy.asarray(v)
    bio = io.BytesIO()
    numpy.savez(bio, **payload)
    return _atomic_write(state_file(checkpoint_path), [bio.getvalue()])


def read_state(checkpoint_path):
    """(arrays dict, meta dict) from ``<checkpoint>.state.npz``, or (None, None) when there is none
    (a checkpoint written by SINGA). DataError when it is corrupt or belongs to an older checkpoint."""
    path = state_file(checkpoint_path)
    if not os.path.isfile(path):
        return None, None
    try:
        with numpy.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:
        raise DataError("state file %s is corrupt (%s).\nhelp: delete it to resume with fresh updater state, "
                        "or resume from another checkpoint" % (path, e)) from None
    raw = arrays.pop("__meta__", None)
    if raw is not None and (raw.dtype != numpy.uint8 or raw.ndim != 1):
        raise DataError("state file %s: field `__meta__` should be a 1-D uint8 array of JSON text; it is %s %s.\n"
                        "help: delete it to resume with fresh updater state" % (path, raw.dtype, raw.shape))
    try:
        meta = json.loads(bytes(raw).decode("utf-8")) if raw is not None else {}
    except (ValueError, RecursionError) as e:
        raise DataError("state file %s has corrupt metadata (%s).\nhelp: delete it" % (path, e)) from None
    if not isinstance(meta, dict):
        raise DataError("state file %s: field `__meta__` should be a JSON object; it is a %s.\nhelp: delete it to "
                        "resume with fresh updater state" % (path, type(meta).__name__))
    _check_meta(path, meta)
    want = meta.pop("_checkpoint_crc32", None)
    meta.pop("_checkpoint_size", None)
    if want is not None and os.path.isfile(checkpoint_path) and _crc(checkpoint_path) != want:
        raise DataError("state file %s was written for another version of checkpoint %s (the checkpoint "
                        "changed since).\nhelp: delete the state file to resume with fresh updater state"
                        % (path, checkpoint_path))
    return arrays, meta


# the types read_state's callers rely on (the driver's resume)
_META_TYPES = {"_checkpoint_crc32": (int, type(None)), "_checkpoint_size": int, "step": int, "seed": int,
               "rng": (dict, list, type(None)), "data_positions": dict}


def _check_meta(path, meta):
    for key, types in _META_TYPES.items():
        if key in meta and (not isinstance(meta[key], types) or isinstance(meta[key], bool)):
            raise DataError("state file %s: field `%s` has the wrong type (%s).\nhelp: delete the state file to "
                            "resume with fresh updater state" % (path, key, type(meta[key]).__name__))
    for k, v in meta.get("data_positions", {}).items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise DataError("state file %s: field `data_positions[%r]` should be a non-negative int; it is %r.\n"
                            "help: delete the state file" % (path, k, v))


def verify_checkpoint(path):
    """DataError when checkpoint ``path``'s bytes do not match the CRC its state file recorded
    (a flipped bit, a torn copy), naming the newest older checkpoint that still matches."""
    path = os.fspath(path)
    ok, why = _matches_state(path)
    if ok:
        return
    ws = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    m = _STEP_RE.match(os.path.basename(path))
    good = None
    for step in reversed(checkpoint_steps(ws)):
        if m and step >= int(m.group(1)):
            continue
        older = checkpoint_file(ws, step, 0)
        if os.path.isfile(older) and _matches_state(older)[0]:
            good = older
            break
    hint = ("resume from the previous good checkpoint: `-resume %s` on the command line (SINGA_RESUME_FROM=%s) or "
            "fit(..., resume=%r)" % (good, good, good)) if good else \
        "no older checkpoint in %s matches its state file: train afresh" % os.path.join(ws, "checkpoint")
    raise DataError("checkpoint %s is corrupt: %s.\nhelp: %s" % (path, why, hint))


def _matches_state(path):
    """(True, None) when the checkpoint has no recorded CRC or matches it, else (False, why)."""
    spath = state_file(path)
    if not os.path.isfile(spath):
        return True, None
    try:
        with numpy.load(spath, allow_pickle=False) as z:
            meta = json.loads(bytes(z["__meta__"]).decode("utf-8"))
        want, size = meta.get("_checkpoint_crc32"), meta.get("_checkpoint_size")
    except Exception as e:   # noqa: BLE001 -- any unreadable state is "not verified good"
        return False, "its state file %s is unreadable (%s)" % (spath, e)
    if size is None:     # older state files: the CRC may be of another version; read_state judges
        return True, None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return False, "it cannot be read (%s)" % e.strerror
    if len(data) != size or zlib.crc32(data) != want:
        return False, ("its %d bytes do not match the CRC32 %s of the %d bytes its state file recorded when it "
                       "was written" % (len(data), want, size))
    return True, None
