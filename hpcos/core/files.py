"""File operations that several parts of hpcos need done the same careful way."""

from __future__ import annotations

import hashlib
import os
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
