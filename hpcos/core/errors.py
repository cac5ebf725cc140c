"""The one error tree: every error hpcos raises on purpose is an ``HpcosError`` of one family.

A family says whose problem it is, which exit code ``hpcos`` ends with when such an error reaches the
command line, and whether it is fatal by default: a fatal error stops what is under way (a mistake
in the specs, a full store), a soft one spoils one item and the run goes on (one tracker action is
queued, one build or one test fails).  A class may differ from its family on that last point
(``TrackerMisconfigured`` is fatal: queueing would only repeat the mistake).  The CLI prints every
``HpcosError`` as one line, never a traceback.

Family roots live with their concept (``TrackerError`` in ``hpcos.tickets.backends``, ``ParseError``
with the parsers, ...); only the two every layer uses are here.  Errors a pytest test should count
as failed rather than errored keep ``AssertionError`` as their second base, and errors callers
already catch by a builtin class (``ValueError``, ``LookupError``, ``RuntimeError``) keep it.
"""

from __future__ import annotations

import errno
import sqlite3
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Family:
    exit_code: int
    fatal: bool
    meaning: str


# The one table: each family, the exit code of `hpcos` when an error of it ends a command, and
# whether it stops the work under way.  Exit 2 is the user's to fix, as argparse's own mistakes are;
# 1 is "something failed" (also a build or a deploy that failed on its own terms).
FAMILIES: dict[str, Family] = {
    "user": Family(
        2, True, "a mistake in input, configuration or environment that a person can fix"
    ),
    "store": Family(1, True, "the store (or another place hpcos writes) cannot take the write"),
    "tracker": Family(
        1, False, "the ticket tracker or another web service refused a request or is out of reach"
    ),
    "build": Family(1, False, "a package or probe build failed"),
    "parse": Family(1, False, "a tool's output or a file did not have the expected shape"),
    "node": Family(1, False, "a node cannot be used, or a command on it failed"),
}


class HpcosError(Exception):
    """Base of every error of hpcos; subclasses name their ``family`` (a key of ``FAMILIES``)."""

    family: ClassVar[str] = "user"
    exit_code: ClassVar[int] = FAMILIES["user"].exit_code
    fatal: ClassVar[bool] = FAMILIES["user"].fatal

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        family = FAMILIES[cls.family]  # a KeyError here is a typo in a class body, found at import
        cls.exit_code = family.exit_code
        # A class that names its family starts from the family's default; its subclasses inherit.
        if "family" in cls.__dict__ and "fatal" not in cls.__dict__:
            cls.fatal = family.fatal


class UserError(HpcosError):
    """A mistake in input, configuration or environment, with a message that says what to change."""

    family = "user"


class StoreError(UserError):
    """The store (or another place hpcos writes) cannot take the write: full, read-only, over quota."""

    family = "store"


# What a full or read-only file system says, as an OSError and through SQLite.
STORE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG})
_SQLITE_STORE_MESSAGES = (
    "database or disk is full",
    "readonly database",
    "disk i/o error",
    "unable to open database file",
)


def store_problem(exc: BaseException) -> StoreError | None:
    """``exc`` as a one-line StoreError when it is a full or read-only file system, else None."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, OSError) and exc.errno in STORE_ERRNOS:
        where = f"{exc.filename}: " if exc.filename else ""
        return StoreError(f"{where}{exc.strerror or errno.errorcode.get(exc.errno, exc.errno)}")
    if isinstance(exc, sqlite3.OperationalError) and any(
        m in str(exc).lower() for m in _SQLITE_STORE_MESSAGES
    ):
        return StoreError(f"results database: {exc}")
    return None
