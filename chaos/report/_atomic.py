"""Writing a report file atomically: a CI step reading it (or a run interrupted while writing
it) sees the old file or the whole new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["FILE_MODE", "write_atomically"]

FILE_MODE = 0o644
"""Permissions of a report file: the owner writes, everyone reads."""


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, renamed over
    ``path`` once complete and flushed. The file is readable by all (:data:`FILE_MODE`), not
    private as a temporary file is: a CI step running as another user uploads it."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
