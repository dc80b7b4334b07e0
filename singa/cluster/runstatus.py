"""What a running job tells the ``singa-run`` that started it: which pid and host each rank is,
and the last checkpoint written. ``singa-run`` names a killed rank by its rank (MPICH's mpiexec
names it by pid) and restarts a failed job from that checkpoint (``--max-restarts``).

The job writes ``$SINGA_RUN_STATUS`` (a JSON file; rank 0 only), replacing it atomically; nothing
is written when the variable is unset (a job not started by ``singa-run``).
"""
import json
import os
import threading

from singa import switches
from singa.io.atomic import write_text_atomic

ENV = "SINGA_RUN_STATUS"

_lock = threading.Lock()
_status = {}


def update(**fields):
    """Merge ``fields`` into the status file (no-op without $SINGA_RUN_STATUS). Never raises: the
    job must not fail because its launcher's note could not be written."""
    path = switches.raw(ENV)
    if not path:
        return
    with _lock:
        if not _status:             # what an earlier try of the job wrote (its last checkpoint) stays
            _status.update(_load(path))
        _status.update(fields)
        try:
            write_text_atomic(path, json.dumps(_status))
        except OSError:
            pass


def note_rank(rank, size, pid, host):
    """Every rank, as it joins: its pid and host, in a file of its own beside the status file
    (``<status>.rank<R>``; seen by singa-run for the ranks on its machine even if the job dies
    before rank 0 heard from them all)."""
    path = switches.raw(ENV)
    if not path:
        return
    try:
        with open("%s.rank%d" % (path, rank), "w", encoding="utf-8") as f:
            json.dump({"rank": rank, "size": size, "pid": pid, "host": host}, f)
    except OSError:
        pass


def _load(path):
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def read(path):
    """The status a job wrote at ``path`` ({} when it wrote none or the file is unreadable), with
    ``ranks`` ({rank: [pid, host]}) completed from the ranks' own notes."""
    status = _load(path)
    folder, base = os.path.split(path)
    try:
        names = [n for n in os.listdir(folder or ".") if n.startswith(base + ".rank")]
    except OSError:
        names = []
    for name in names:
        note = _load(os.path.join(folder, name))
        if isinstance(note.get("rank"), int) and isinstance(note.get("pid"), int):
            ranks = status.setdefault("ranks", {})
            if isinstance(ranks, dict):
                ranks[str(note["rank"])] = [note["pid"], str(note.get("host", "?"))]   # this try's, written at join
            status.setdefault("size", note.get("size"))
    return status


__all__ = ["update", "read", "note_rank", "ENV"]
