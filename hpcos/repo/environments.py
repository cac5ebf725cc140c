"""Environment pointers (``daily``, ``testing``, ``production``) and published overlays.

A pointer is a symlink to a snapshot directory.  It is switched by creating a new symlink beside it
and renaming it over the old one (``os.replace``), so a reader -- dnf through a web server or
file:// -- sees the old snapshot or the new one, never neither and never a mixture.

Each pointer has an append-only record (``<pointer>.log``, JSON lines): what it points at, the
previous target, who, when, why.  Every switch is written ahead to a journal (``.switches.json``)
before any pointer moves: one entry per pointer, with the record it will append.  Several pointers
that must move together (the fast path's testing and production) share one journal.  A run killed
anywhere in between leaves the journal; the next run (``clean_leftovers``, under the store lock)
completes it forward -- each pointer switched to its new snapshot and its own record appended, a
rollback recorded as the rollback it was -- and removes it.  ``reconcile`` remains for a pointer
found ahead of its record without a journal (a store written by an older hpcos).
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from hpcos.core import failpoints
from hpcos.core.errors import UserError
from hpcos.core.files import fsync_dir, write_text_atomically
from hpcos.core.store_layout import StoreLayout

log = logging.getLogger("hpcos.repo")

PUBLISHED_DIR = "published"
JOURNAL = ".switches.json"
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
    def __init__(self, directory: Path, name: str, snapshots_root: Path, journal: Path | None = None):
        self.directory = directory
        self.name = name
        self.path = directory / name
        self.log_path = directory / f"{name}{LOG_SUFFIX}"
        self.snapshots_root = snapshots_root
        self.journal = journal or directory / JOURNAL

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
        return switch_together([(self, snapshot_id)], action, reason=reason, forced=forced)[0]

    def _point_at(self, snapshot_id: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f"{TMP_MARK}{self.name}-{secrets.token_hex(4)}"
        os.symlink(os.path.relpath(self.snapshots_root / snapshot_id, self.directory), tmp)
        os.replace(tmp, self.path)
        fsync_dir(self.directory)

    def _recorded(self, record: Record) -> bool:
        records = self.records()
        return bool(records) and records[-1] == record

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


def switch_together(moves: list[tuple[Pointer, str]], action: str, reason: str = "",
                    forced: bool = False) -> list[Record]:
    """Move every pointer of ``moves`` to its snapshot as one transaction (see the module docstring).

    The caller holds the store lock and has committed every snapshot named."""
    if not moves:
        return []
    journal = moves[0][0].journal
    now, user = datetime.now(UTC).isoformat(timespec="seconds"), who()
    planned = [(pointer, Record(action=action, snapshot=snapshot_id, previous=pointer.current(), user=user,
                                time=now, reason=reason, forced=forced, build_url=os.environ.get("BUILD_URL")))
               for pointer, snapshot_id in moves]
    journal.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(journal, json.dumps(
        [{"directory": str(p.directory), "name": p.name, "record": asdict(r)} for p, r in planned], indent=1))
    fsync_dir(journal.parent)
    failpoints.reached("switch:journaled")
    for pointer, record in planned:
        pointer._point_at(record.snapshot)
        failpoints.reached(f"switch:{record.action}:{pointer.name}:pointed")
        pointer._append(record)
    journal.unlink()
    fsync_dir(journal.parent)
    return [record for _, record in planned]


def complete_journal(journal: Path, snapshots_root: Path) -> list[tuple[Pointer, Record]]:
    """Finish the switches a killed run left in ``journal``: forward, each with its own record."""
    try:
        entries = json.loads(journal.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except ValueError:
        journal.unlink()  # cannot happen with the atomic write; a damaged journal must not block the store
        return []
    done = []
    for entry in entries:
        pointer = Pointer(Path(entry["directory"]), entry["name"], snapshots_root, journal)
        record = Record(**entry["record"])
        if not (snapshots_root / record.snapshot).is_dir():
            continue  # its snapshot never committed: nothing of this switch happened
        if pointer.current() != record.snapshot:
            pointer._point_at(record.snapshot)
        if not pointer._recorded(record):
            pointer._append(record)
        done.append((pointer, record))
    journal.unlink()
    fsync_dir(journal.parent)
    return done


class Environments:
    """Every pointer of a store: the site's environments and one per published overlay."""

    def __init__(self, layout: StoreLayout):
        self.layout = layout

    @property
    def journal(self) -> Path:
        return self.layout.environments / JOURNAL

    def environment(self, name: str) -> Pointer:
        return Pointer(self.layout.environments, _pointer_name(name, "environment"), self.layout.snapshots,
                       self.journal)

    def published(self, overlay: str) -> Pointer:
        return Pointer(self.layout.environments / PUBLISHED_DIR, _pointer_name(overlay, "overlay"),
                       self.layout.snapshots, self.journal)

    def all_pointers(self) -> list[Pointer]:
        pointers = []
        for directory, make in ((self.layout.environments, self.environment),
                                (self.layout.environments / PUBLISHED_DIR, self.published)):
            if directory.is_dir():
                pointers += [make(p.name) for p in sorted(directory.iterdir())
                             if p.is_symlink() and not p.name.startswith(TMP_MARK)]
        return pointers

    def clean_leftovers(self) -> list[tuple[Pointer, Record]]:
        """Remove new links a killed switch never renamed into place, complete the switches its journal
        names (returned), and record pointers an older run switched without a journal."""
        for directory in (self.layout.environments, self.layout.environments / PUBLISHED_DIR):
            if directory.is_dir():
                for p in directory.iterdir():
                    if p.name.startswith(TMP_MARK) or p.name.startswith(f".{JOURNAL}.tmp-"):
                        p.unlink(missing_ok=True)
        completed = complete_journal(self.journal, self.layout.snapshots)
        for pointer, record in completed:
            log.info("completed %s of %s to %s, which a killed run had begun", record.action, pointer.name,
                     record.snapshot)
        for pointer in self.all_pointers():
            pointer.reconcile()
        return completed
