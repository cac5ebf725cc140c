"""Errors a user can act on.  The CLI prints them as one line each and exits 2, never a traceback."""

from __future__ import annotations

import errno
import sqlite3


class UserError(Exception):
    """A mistake in input, configuration or environment, with a message that says what to change."""

    exit_code = 2


class StoreError(UserError):
    """The store (or another place hpcos writes) cannot take the write: full, read-only, over quota."""

    exit_code = 1


# What a full or read-only file system says, as an OSError and through SQLite.
STORE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG})
_SQLITE_STORE_MESSAGES = ("database or disk is full", "readonly database", "disk i/o error",
                          "unable to open database file")


def store_problem(exc: BaseException) -> StoreError | None:
    """``exc`` as a one-line StoreError when it is a full or read-only file system, else None."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, OSError) and exc.errno in STORE_ERRNOS:
        where = f"{exc.filename}: " if exc.filename else ""
        return StoreError(f"{where}{exc.strerror or errno.errorcode.get(exc.errno, exc.errno)}")
    if isinstance(exc, sqlite3.OperationalError) and any(m in str(exc).lower() for m in _SQLITE_STORE_MESSAGES):
        return StoreError(f"results database: {exc}")
    return None
