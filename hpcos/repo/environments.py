"""Environment pointers (``daily``, ``testing``, ``production``) and published overlays.

A pointer is a symlink to a snapshot directory.  It is switched by creating a new symlink beside it
and renaming it over the old one (``os.replace``), so a reader -- dnf through a web server or
file:// -- sees the old snapshot or the new one, never neither and never a mixture.

Each pointer has an append-only record (``<pointer>.log``, JSON lines): what it points at, the
previous target, who, when, why.  The record is appended after the switch; if a run is killed in
between, ``reconcile`` notices the pointer is ahead of its record and records that on the next run.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from hpcos.core.errors import UserError
from hpcos.core.store_layout import StoreLayout

PUBLISHED_DIR = "published"
LOG_SUFFIX = ".log"
TMP_MARK = ".tmp-"


@dataclass(frozen=True)
class Record:
    action: str  # sync, publish, promote, fastpath, rollback, recovered
    snapshot: str
    previous: str | None
    user: str
    time: str
    reason: str = ""
    forced: bool = False
    build_url: str | None = None


def who() -> str:
    """The person behind a change: Jenkins' build user when a job runs it, else the login name."""
    return os.environ.get("BUILD_USER_ID") or os.environ.get("SUDO_USER") or getpass.getuser()


_POINTER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


def _pointer_name(name: str, what: str) -> str:
    """A name given on the command line, checked before it becomes a path beside the pointers and their
    records (``daily.log`` is a record, ``../x`` is outside the store)."""
    if not _POINTER_NAME.match(name) or name.endswith(LOG_SUFFIX):
        raise UserError(f"{name!r} is not an {what} name (letters, digits and _ . -, not ending in {LOG_SUFFIX})")
    return name


class Pointer:
    def __init__(self, directory: Path, name: str, snapshots_root: Path):
        self.directory = directory
        self.name = name
        self.path = directory / name
        self.log_path = directory / f"{name}{LOG_SUFFIX}"
        self.snapshots_root = snapshots_root

    def current(self) -> str | None:
        try:
            return os.path.basename(os.readlink(self.path))
        except (FileNotFoundError, OSError):  # OSError: something else than a link has that name
            return None

    def records(self) -> list[Record]:
        try:
            lines = self.log_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(Record(**json.loads(line)))
            except (ValueError, TypeError):
                continue  # a line cut short by a kill mid-append
        return out

    def history(self) -> list[str]:
        """The stack of targets a rollback walks back through (rollback pops, everything else pushes)."""
        stack: list[str] = []
        for record in self.records():
            if record.action == "rollback":
                if stack:
                    stack.pop()
            else:
                stack.append(record.snapshot)
        return stack

    def previous(self) -> str | None:
        stack = self.history()
        return stack[-2] if len(stack) >= 2 else None

    def switch(self, snapshot_id: str, action: str, reason: str = "", forced: bool = False) -> Record:
        previous = self.current()
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f"{TMP_MARK}{self.name}-{secrets.token_hex(4)}"
        os.symlink(os.path.relpath(self.snapshots_root / snapshot_id, self.directory), tmp)
        os.replace(tmp, self.path)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        record = Record(action=action, snapshot=snapshot_id, previous=previous, user=who(),
                        time=datetime.now(UTC).isoformat(timespec="seconds"), reason=reason, forced=forced,
                        build_url=os.environ.get("BUILD_URL"))
        self._append(record)
        return record

    def _append(self, record: Record) -> None:
        line = json.dumps(asdict(record), sort_keys=True) + "\n"
        # One write on an O_APPEND descriptor: records never interleave, and a kill cuts at most this line.
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if os.fstat(fd).st_size and not self._ends_with_newline():
                line = "\n" + line
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def _ends_with_newline(self) -> bool:
        with open(self.log_path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def reconcile(self) -> Record | None:
        """Record a switch whose record a killed run never wrote."""
        current = self.current()
        stack = self.history()
        if current is None or (stack and stack[-1] == current):
            return None
        record = Record(action="recovered", snapshot=current, previous=stack[-1] if stack else None,
                        user=who(), time=datetime.now(UTC).isoformat(timespec="seconds"),
                        reason="pointer was switched by a run that was killed before it wrote this record")
        self._append(record)
        return record


class Environments:
    """Every pointer of a store: the site's environments and one per published overlay."""

    def __init__(self, layout: StoreLayout):
        self.layout = layout

    def environment(self, name: str) -> Pointer:
        return Pointer(self.layout.environments, _pointer_name(name, "environment"), self.layout.snapshots)

    def published(self, overlay: str) -> Pointer:
        return Pointer(self.layout.environments / PUBLISHED_DIR, _pointer_name(overlay, "overlay"),
                       self.layout.snapshots)

    def all_pointers(self) -> list[Pointer]:
        pointers = []
        for directory, make in ((self.layout.environments, self.environment),
                                (self.layout.environments / PUBLISHED_DIR, self.published)):
            if directory.is_dir():
                pointers += [make(p.name) for p in sorted(directory.iterdir())
                             if p.is_symlink() and not p.name.startswith(TMP_MARK)]
        return pointers

    def clean_leftovers(self) -> None:
        """Remove new links a killed switch never renamed into place, and record pointers it did switch."""
        for directory in (self.layout.environments, self.layout.environments / PUBLISHED_DIR):
            if directory.is_dir():
                for p in directory.iterdir():
                    if p.name.startswith(TMP_MARK):
                        p.unlink(missing_ok=True)
        for pointer in self.all_pointers():
            pointer.reconcile()
