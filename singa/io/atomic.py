"""Writers whose 'create' mode writes a temporary file that is published by rename on close.

An interrupted or failed write never leaves a half file under the real name: ``abort()`` (or an
exception inside ``with``) removes the temporary file and keeps whatever was there before.
"""
import os
import tempfile


class PublishOnClose:
    path = None
    _f = None
    _tmp = None
    closed = False

    def _open_temporary(self, mode, **kwargs):
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=os.path.basename(self.path) + ".", suffix=".tmp", dir=folder)
        return os.fdopen(fd, mode, **kwargs)

    def _finish(self):
        """Flush, fsync and close; a temporary file replaces the real one."""
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        self.closed = True
        if self._tmp is not None:
            os.chmod(self._tmp, 0o644)
            os.replace(self._tmp, self.path)

    def _discard(self):
        """Close without publishing; a temporary file is removed."""
        self._f.close()
        self.closed = True
        if self._tmp is not None and os.path.exists(self._tmp):
            os.remove(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_bytes_atomic(path, data, mode=0o644):
    """Write ``data`` to ``path`` through a temporary file of this process (a unique name beside it),
    flushed and fsynced, then published by rename: readers, and processes writing the same file at
    once, never see or leave a partial one; on any error the old file is kept and the temporary
    file removed."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text_atomic(path, text, encoding="utf-8"):
    """``write_bytes_atomic`` for text."""
    write_bytes_atomic(path, text.encode(encoding))


class DirLock:
    """An exclusive advisory lock on ``<folder>/.lock`` (flock): one process at a time converts
    or downloads into a cache folder; the others wait, then find the result (e.g. the ranks of an
    MPI job that all load the same data set at start-up)."""

    def __init__(self, folder):
        self.path = os.path.join(folder, ".lock")
        self._fd = None

    def __enter__(self):
        import fcntl
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        import fcntl
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
