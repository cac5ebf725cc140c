"""The durable queue: actions that could not reach the tracker wait here, one JSON file each.

Files are written atomically (write, then rename) under a file lock, so a crash never leaves half an
action and two ``hpcos`` processes never send the same one twice.  An action's name comes from its
run, fingerprint and kind: queueing it again is a no-op, and the fingerprint makes sending it again
harmless (``lifecycle.apply`` looks the ticket up first).
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
from hpcos.tickets.lifecycle import Action


class TicketQueue:
    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(directory / ".lock"), timeout=60)

    @staticmethod
    def _identity(action: Action) -> str:
        return hashlib.sha256(f"{action.run_id}\x1f{action.key}\x1f{action.kind}".encode()).hexdigest()[:16]

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

    def peek(self) -> list[Action]:
        return [Action(**json.loads(path.read_text(encoding="utf-8"))) for path in self._files()]

    @contextmanager
    def draining(self) -> Iterator[Iterator[tuple[Action, callable]]]:
        """Hold the lock and yield (action, done) pairs, oldest first; ``done()`` removes the action."""
        with self._lock:
            def items():
                for path in self._files():
                    yield Action(**json.loads(path.read_text(encoding="utf-8"))), path.unlink
            yield items()
