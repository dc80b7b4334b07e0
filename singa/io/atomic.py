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
