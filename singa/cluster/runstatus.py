"""What a running job tells the ``singa-run`` that started it: which pid and host each rank is,
and the last checkpoint written. ``singa-run`` names a killed rank by its rank (MPICH's mpiexec
names it by pid) and restarts a failed job from that checkpoint (``--max-restarts``).

The job writes ``$SINGA_RUN_STATUS`` (a JSON file; rank 0 only), replacing it atomically; nothing
is written when the variable is unset (a job not started by ``singa-run``).
"""
import json
import os
import threading

ENV = "SINGA_RUN_STATUS"

_lock = threading.Lock()
_status = {}


def update(**fields):
    """Merge ``fields`` into the status file (no-op without $SINGA_RUN_STATUS). Never raises: the
    job must not fail because its launcher's note could not be written."""
    path = os.environ.get(ENV)
    if not path:
        return
    with _lock:
        if not _status:             # what an earlier try of the job wrote (its last checkpoint) stays
            _status.update(read(path))
        _status.update(fields)
        tmp = "%s.%d.tmp" % (path, os.getpid())
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(_status, f)
            os.replace(tmp, path)
        except OSError:
            try:
                os.remove(tmp)
            except OSError:
                pass


def read(path):
    """The status a job wrote at ``path`` ({} when it wrote none or the file is unreadable)."""
    try:
        with open(path, encoding="utf-8") as f:
            status = json.load(f)
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


__all__ = ["update", "read", "ENV"]
