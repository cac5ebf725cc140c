"""One lock for every change to pointers and snapshots: promotions, syncs' commits, publishes, retention.

The lock is an flock (filelock), so the kernel releases it when its holder dies, even by SIGKILL.
A side file names the holder, so a waiting run can say whom it waits for.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from filelock import FileLock, Timeout

from hpcos.core.errors import UserError
from hpcos.core.store_layout import StoreLayout

LOCK_NAME = "repo.lock"

log = logging.getLogger("hpcos.repo")


def _holder(layout: StoreLayout) -> str:
    try:
        info = json.loads((layout.locks / f"{LOCK_NAME}.holder").read_text(encoding="utf-8"))
        return f"{info['what']} (pid {info['pid']}, since {time.strftime('%H:%M:%S', time.localtime(info['since']))})"
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        # a holder file of another shape (a list, a string for "since"): untrusted like every store file
        return "another hpcos repo command"


@contextmanager
def store_lock(layout: StoreLayout, what: str, wait: bool = True) -> Iterator[None]:
    layout.locks.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(layout.locks / LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = _holder(layout)
        if not wait:
            raise UserError(
                f"{what}: the repository store is locked by {holder}; not waiting (--no-wait)"
            ) from None
        log.info("%s: waiting for %s to finish ...", what, holder)
        lock.acquire()
    try:
        info = {"what": what, "pid": os.getpid(), "since": time.time()}
        (layout.locks / f"{LOCK_NAME}.holder").write_text(json.dumps(info), encoding="utf-8")
        yield
    finally:
        lock.release()
