"""File operations that several parts of hpcos need done the same careful way."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``path`` through a temporary file beside it and a rename: a reader, or a run killed
    half-way, sees the old file or the whole new one.  The temporary name (``.NAME.tmp-PID``) never
    matches the ``*.json`` globs readers use, and two writers never share one."""
    write_bytes_atomically(path, text.encode("utf-8"))


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """``write_text_atomically`` for bytes; the temporary file is removed if the write fails."""
    try:
        kind: int | None = os.stat(path).st_mode  # through a symlink: -o /dev/stdout is one
    except (FileNotFoundError, NotADirectoryError):
        kind = None
    if not path.name or (kind is not None and stat.S_ISDIR(kind)):
        # "/", ".", "..": with_name raised ValueError, the rename ENOTEMPTY
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if kind is not None and not stat.S_ISREG(kind):
        # The rename would replace a device or a FIFO with a regular file: as root, `-o /dev/null`
        # left the system without /dev/null.
        raise FileExistsError(errno.EEXIST, "exists and is not a regular file", str(path))
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full or read-only disk leaves no stray temporary file
        raise


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` durable: a crash after this cannot undo it."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
