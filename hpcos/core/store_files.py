"""Reading the store's own files as untrusted input, and moving a bad one aside.

Anyone who can write the store (a careless hand, another tool, a restored backup of another version)
can leave a journal, a queue entry or a record that hpcos never wrote.  Every such file is read here:
no symlink, a regular file, within a size budget, JSON of the expected shape with fields of the
expected types.  A file that fails is moved into the store's ``quarantine/`` folder with one warning
line saying so, and the command goes on without it: one foreign file must never block the store or
the ticket queue, and nothing it names is ever acted on.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
import time
import types
import typing
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path

from hpcos.core.errors import UserError

log = logging.getLogger("hpcos.store")

# No store file hpcos writes comes near this; a bigger one is not ours (and reading /dev/zero ends).
FILE_BUDGET = 16 * 1024 * 1024


class BadStoreFile(UserError):
    """A store file that is not what hpcos writes there (the message says why, never its content)."""


def read_bytes_limited(
    path: Path, budget: int = FILE_BUDGET, what: str = "file", follow: bool = False
) -> bytes:
    """``path``'s bytes: a regular file (not a FIFO, a device or /proc's endless files), at most ``budget``
    bytes, and not through a symlink unless ``follow`` (a path a person gave, not one in the store)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW))
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the last component is a symlink
            raise BadStoreFile(f"{path}: a symbolic link, not a {what}") from None
        raise
    try:
        info = os.fstat(fd)
        # /proc files say size 0 and never end for some (/proc/kmsg): a store or results file has a size.
        if not stat.S_ISREG(info.st_mode) or (info.st_size == 0 and str(path).startswith("/proc/")):
            raise BadStoreFile(f"{path}: not a regular file, not a {what}")
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > budget:
                raise BadStoreFile(
                    f"{path}: larger than {budget // (1024 * 1024)} MiB, not a {what}"
                )
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_json(path: Path, budget: int = FILE_BUDGET, what: str = "store file"):
    """``path`` parsed as JSON under the rules above; ``BadStoreFile`` says why not."""
    data = read_bytes_limited(path, budget, what)
    if not data.strip():
        raise BadStoreFile(f"{path}: empty, not a {what}")
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise BadStoreFile(f"{path}: nested too deeply, not a {what}") from None
    except (UnicodeDecodeError, ValueError):
        raise BadStoreFile(f"{path}: not JSON, not a {what}") from None


def _matches(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        (item,) = typing.get_args(hint) or (typing.Any,)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(hint) or (typing.Any, typing.Any)
        return isinstance(value, dict) and all(
            _matches(k, key) and _matches(v, item) for k, v in value.items()
        )
    if hint is list or hint is dict:
        return isinstance(value, hint)
    if is_dataclass(hint):
        try:
            dataclass_from(hint, value)
        except BadStoreFile:
            return False
        return True
    return hint is typing.Any


def dataclass_from(cls, data, where: str = ""):
    """``cls(**data)`` when ``data`` is a JSON object with exactly ``cls``'s fields (the defaulted ones
    may be missing), each of its declared type; else ``BadStoreFile`` naming the field."""
    if not isinstance(data, dict):
        raise BadStoreFile(f"{where}: not a JSON object")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in known:
            raise BadStoreFile(f"{where}: unknown field {str(key)[:40]!r}")
    values = {}
    for name, f in known.items():
        if name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise BadStoreFile(f"{where}: field {name!r} is missing")
            continue
        if not _matches(data[name], hints[name]):
            raise BadStoreFile(f"{where}: field {name!r} has the wrong type")
        value = data[name]
        if is_dataclass(hints[name]):
            value = dataclass_from(hints[name], value, where)
        values[name] = value
    return cls(**values)


def move_aside(path: Path, quarantine: Path, why: str) -> Path | None:
    """Move ``path`` (the link itself when it is one) into ``quarantine`` and say so in one line.

    Returns where it went; None when it was gone already (another run moved it first)."""
    refuse_symlinked(quarantine)
    quarantine.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = quarantine / f"{stamp}-{secrets.token_hex(3)}-{path.name}"
    try:
        os.rename(path, dest)
    except FileNotFoundError:
        return None
    log.warning("%s; moved to %s", why, dest)
    return dest


def refuse_symlinked(folder: Path) -> Path:
    """``folder`` when it is not a symbolic link: a store folder that is one would send hpcos's writes
    (and its deletions) wherever the link points."""
    if folder.is_symlink():
        raise BadStoreFile(
            f"{folder}: a store folder must not be a symbolic link; "
            f"replace it with the directory itself"
        )
    return folder
