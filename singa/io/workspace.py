"""The exclusive lock of a training workspace: one live training run writes there at a time.

``<workspace>/.singa-lock`` is flock'ed (non-blocking) for the whole run and holds a JSON note of
its holder. The kernel drops a flock when its process dies, so a file left by a killed run is
simply re-taken; only a live holder makes a second run refuse.
"""
import fcntl
import json
import os
import socket
import sys
import time

from singa.errors import ConfigError

LOCK_NAME = ".singa-lock"


def _holder(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 65536).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        return {}


class WorkspaceLock:
    def __init__(self, workspace):
        self.workspace = os.fspath(workspace)
        self.path = os.path.join(self.workspace, LOCK_NAME)
        self._fd = None

    def acquire(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _holder(fd)
            os.close(fd)
            raise ConfigError(
                "workspace %s is in use by another training run (pid %s on host %s, started %s, command: %s).\n"
                "help: wait for that run to end, or give this run another workspace (`cluster { workspace: ... }` "
                "/ Model(workspace=...)); if that process is gone on another host of a shared file system, "
                "delete %s" % (self.workspace, info.get("pid", "?"), info.get("host", "?"),
                               info.get("started", "?"), " ".join(info.get("argv") or []) or "?",
                               self.path)) from None
        except OSError:
            os.close(fd)
            raise
        # written after the lock is ours, so a reader sees the live holder's note
        note = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "argv": list(sys.argv)})
        os.ftruncate(fd, 0)
        os.pwrite(fd, note.encode("utf-8"), 0)
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
