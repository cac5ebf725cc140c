"""The durable queue: actions that could not reach the tracker wait here, one JSON file each.

Files are written atomically (write, then rename) under a file lock, so a crash never leaves half an
action and two ``hpcos`` processes never send the same one twice.  An action's name comes from its
run, fingerprint and kind: queueing it again is a no-op, and the fingerprint makes sending it again
harmless (``lifecycle.apply`` looks the ticket up first).

Every entry is read as untrusted (``hpcos.core.store_files``): a file hpcos did not write -- not
JSON, empty, unknown or missing fields, a directory, a symbolic link -- is moved to the store's
quarantine folder with one warning line, and the queue goes on with the rest.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from filelock import FileLock

from hpcos.core.files import write_text_atomically
from hpcos.core.store_files import (
    BadStoreFile,
    dataclass_from,
    move_aside,
    read_json,
    refuse_symlinked,
)
from hpcos.tickets.lifecycle import Action

# An action is a summary, a description and a comment: far below this.
ENTRY_BUDGET = 1024 * 1024
KINDS = frozenset({"report", "resolve"})


class TicketQueue:
    def __init__(self, directory: Path, quarantine: Path | None = None):
        self.directory = refuse_symlinked(directory)
        self.quarantine = quarantine or directory / "quarantine"
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(directory / ".lock"), timeout=60)  # StoreLayout.ticket_queue_lock

    @staticmethod
    def _identity(action: Action) -> str:
        return hashlib.sha256(
            f"{action.run_id}\x1f{action.key}\x1f{action.kind}".encode()
        ).hexdigest()[:16]

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("*.json"))

    def __len__(self) -> int:
        return len(self._files())

    def put(self, action: Action) -> bool:
        """Queue ``action`` unless it is already queued; True when it was added."""
        identity = self._identity(action)
        with self._lock:
            if any(path.stem.endswith(identity) for path in self._files()):
                return False
            path = self.directory / f"{time.time_ns():020d}-{identity}.json"
            write_text_atomically(path, json.dumps(asdict(action), indent=1, sort_keys=True))
            return True

    def _read(self, path: Path) -> Action | None:
        """The action in ``path``; None (and the file moved aside) when it is not one hpcos wrote."""
        try:
            action = dataclass_from(
                Action, read_json(path, ENTRY_BUDGET, "queued ticket action"), str(path)
            )
            if action.kind not in KINDS or not action.key or not action.run_id:
                raise BadStoreFile(f"{path}: not a queued ticket action (kind, key or run id)")
        except BadStoreFile as exc:
            move_aside(path, self.quarantine, f"ticket queue: {exc}")
            return None
        except FileNotFoundError:
            return None  # sent and removed by another run meanwhile
        return action

    def _entries(self) -> list[tuple[Path, Action]]:
        return [
            (path, action) for path in self._files() if (action := self._read(path)) is not None
        ]

    def peek(self) -> list[Action]:
        return [action for _, action in self._entries()]

    @contextmanager
    def draining(self) -> Iterator[Iterator[tuple[Action, callable]]]:
        """Hold the lock and yield (action, done) pairs, oldest first; ``done()`` removes the action."""
        with self._lock:

            def items():
                for path in self._files():
                    action = self._read(path)
                    if action is not None:
                        yield action, path.unlink

            yield items()
