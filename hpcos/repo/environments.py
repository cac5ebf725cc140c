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

import errno
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
from hpcos.core.store_files import (
    BadStoreFile,
    dataclass_from,
    move_aside,
    read_bytes_limited,
    read_json,
)
from hpcos.core.store_layout import StoreLayout
from hpcos.core.text import first_unprintable, is_printable_line, one_line

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


_POINTER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,99}")
# What ``SnapshotStore.new_id`` makes (``20260101T000000Z-sync-a1b2c3``) and older stores' ids: one
# path component, never ``.``/``..`` nor a hidden name.
SNAPSHOT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}")
ACTIONS = frozenset({"sync", "publish", "promote", "fastpath", "rollback", "recovered"})
JOURNAL_BUDGET = 1024 * 1024
REASON_LIMIT = 1000


def _pointer_name(name: str, what: str) -> str:
    """A name given on the command line, checked before it becomes a path beside the pointers and their
    records (``daily.log`` is a record, ``../x`` is outside the store)."""
    if not _POINTER_NAME.fullmatch(name) or name.endswith(LOG_SUFFIX):
        raise UserError(
            f"{name[:100]!r} is not an {what} name (letters, digits and _ . -, not ending in "
            f"{LOG_SUFFIX})"
        )
    return name


def checked_reason(text: str) -> str:
    """A reason given on the command line: one line of printable text (``str.isprintable()``), bounded."""
    if not is_printable_line(text) or len(text) > REASON_LIMIT:
        raise UserError(
            f"--reason: one line of printable text of at most {REASON_LIMIT} characters, please"
            + (f" (found {first_unprintable(text)})" if first_unprintable(text) else "")
        )
    return text


def is_snapshot_id(text: object) -> bool:
    return isinstance(text, str) and bool(SNAPSHOT_ID.fullmatch(text)) and ".." not in text


def _valid_record(data: object, where: str) -> Record:
    """A record read back from a journal or a pointer's log, validated: every field of its type, a known
    action, snapshot ids that are one path component under ``snapshots/``."""
    record = dataclass_from(Record, data, where)
    if record.action not in ACTIONS:
        raise BadStoreFile(f"{where}: unknown action")
    if not is_snapshot_id(record.snapshot) or not (
        record.previous is None or is_snapshot_id(record.previous)
    ):
        raise BadStoreFile(f"{where}: a snapshot id that is not one")
    return record


class Pointer:
    def __init__(
        self, directory: Path, name: str, snapshots_root: Path, journal: Path | None = None
    ):
        self.directory = directory
        self.name = name
        self.path = directory / name
        self.log_path = directory / f"{name}{LOG_SUFFIX}"
        self.snapshots_root = snapshots_root
        self.journal = journal or directory / JOURNAL

    def current(self) -> str | None:
        """The snapshot the pointer names; None when it names none, or something else than a snapshot
        of this store (a link hpcos did not make: ``clean_leftovers`` moves it aside)."""
        try:
            target = os.readlink(self.path)
        except (FileNotFoundError, OSError):  # OSError: something else than a link has that name
            return None
        snapshot = os.path.basename(target)
        if not is_snapshot_id(snapshot) or os.path.normpath(
            os.path.join(self.directory, target)
        ) != os.path.normpath(self.snapshots_root / snapshot):
            return None
        return snapshot

    def records(self) -> list[Record]:
        """The pointer's records; a line that is not a valid record is left out (a kill mid-append cuts
        the last line; a hand-edited line never becomes a snapshot to roll back to)."""
        try:
            lines = (
                read_bytes_limited(self.log_path, what="pointer record")
                .decode("utf-8", "replace")
                .splitlines()
            )
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(_valid_record(json.loads(line), str(self.log_path)))
            except (ValueError, RecursionError, BadStoreFile):
                continue
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

    def switch(
        self, snapshot_id: str, action: str, reason: str = "", forced: bool = False
    ) -> Record:
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
        # O_NOFOLLOW: a record that is a symlink never appends a line to a file outside the store.
        try:
            fd = os.open(
                self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644
            )
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise BadStoreFile(
                    f"{self.log_path}: a symbolic link, not a pointer record; move it away "
                    f"and run again"
                ) from None
            raise
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
        record = Record(
            action="recovered",
            snapshot=current,
            previous=stack[-1] if stack else None,
            user=who(),
            time=datetime.now(UTC).isoformat(timespec="seconds"),
            reason="pointer was switched by a run that was killed before it wrote this record",
        )
        self._append(record)
        return record


def switch_together(
    moves: list[tuple[Pointer, str]], action: str, reason: str = "", forced: bool = False
) -> list[Record]:
    """Move every pointer of ``moves`` to its snapshot as one transaction (see the module docstring).

    The caller holds the store lock and has committed every snapshot named."""
    if not moves:
        return []
    reason = one_line(
        reason, REASON_LIMIT
    )  # the CLI refused a bad --reason; a gate's text is made fit here
    journal = moves[0][0].journal
    now, user = datetime.now(UTC).isoformat(timespec="seconds"), who()
    planned = [
        (
            pointer,
            Record(
                action=action,
                snapshot=snapshot_id,
                previous=pointer.current(),
                user=user,
                time=now,
                reason=reason,
                forced=forced,
                build_url=os.environ.get("BUILD_URL"),
            ),
        )
        for pointer, snapshot_id in moves
    ]
    journal.parent.mkdir(parents=True, exist_ok=True)
    # The directory is written relative to the journal's own (``""`` or ``published``): a restored or
    # moved store completes its journal in place, and the reader accepts nothing else.
    write_text_atomically(
        journal,
        json.dumps(
            [
                {
                    "directory": ""
                    if p.directory == journal.parent
                    else os.path.relpath(p.directory, journal.parent),
                    "name": p.name,
                    "record": asdict(r),
                }
                for p, r in planned
            ],
            indent=1,
        ),
    )
    fsync_dir(journal.parent)
    failpoints.reached("switch:journaled")
    for pointer, record in planned:
        pointer._point_at(record.snapshot)
        failpoints.reached(f"switch:{record.action}:{pointer.name}:pointed")
        pointer._append(record)
    journal.unlink()
    fsync_dir(journal.parent)
    return [record for _, record in planned]


class Environments:
    """Every pointer of a store: the site's environments and one per published overlay."""

    def __init__(self, layout: StoreLayout):
        self.layout = layout

    @property
    def journal(self) -> Path:
        return self.layout.environments / JOURNAL

    def environment(self, name: str) -> Pointer:
        return Pointer(
            self.layout.environments,
            _pointer_name(name, "environment"),
            self.layout.snapshots,
            self.journal,
        )

    def published(self, overlay: str) -> Pointer:
        return Pointer(
            self.layout.environments / PUBLISHED_DIR,
            _pointer_name(overlay, "overlay"),
            self.layout.snapshots,
            self.journal,
        )

    def all_pointers(self) -> list[Pointer]:
        pointers = []
        for directory, make in (
            (self.layout.environments, self.environment),
            (self.layout.environments / PUBLISHED_DIR, self.published),
        ):
            if directory.is_dir():
                pointers += [
                    make(p.name)
                    for p in sorted(directory.iterdir())
                    if p.is_symlink() and not p.name.startswith(TMP_MARK)
                ]
        return pointers

    def clean_leftovers(self) -> list[tuple[Pointer, Record]]:
        """Remove new links a killed switch never renamed into place, complete the switches its journal
        names (returned), and record pointers an older run switched without a journal."""
        for directory in (self.layout.environments, self.layout.environments / PUBLISHED_DIR):
            if directory.is_dir():
                for p in directory.iterdir():
                    if p.name.startswith(TMP_MARK) or p.name.startswith(f".{JOURNAL}.tmp-"):
                        p.unlink(missing_ok=True)
        completed = self.complete_journal()
        for pointer, record in completed:
            log.info(
                "completed %s of %s to %s, which a killed run had begun",
                record.action,
                pointer.name,
                record.snapshot,
            )
        for pointer in self.all_pointers():
            if pointer.current() is None:
                move_aside(
                    pointer.path,
                    self.layout.quarantine,
                    f"{pointer.path}: a pointer that names no snapshot of this store",
                )
                continue
            pointer.reconcile()
        return completed

    def _journal_moves(self) -> list[tuple[Pointer, Record]]:
        """The journal's entries, validated as untrusted input: each names one of this store's pointer
        folders (never a path), a pointer name, and a record of snapshots under ``snapshots/``."""
        entries = read_json(self.journal, JOURNAL_BUDGET, "switch journal")
        if not isinstance(entries, list):
            raise BadStoreFile(f"{self.journal}: not a list of switches")
        folders = {
            "": self.layout.environments,
            PUBLISHED_DIR: self.layout.environments / PUBLISHED_DIR,
        }
        # A journal of an older hpcos names the folder by its absolute path in this store.
        folders |= {str(path): path for path in list(folders.values())}
        moves = []
        for index, entry in enumerate(entries):
            where = f"{self.journal}: switch {index + 1}"
            if not isinstance(entry, dict) or set(entry) != {"directory", "name", "record"}:
                raise BadStoreFile(f"{where}: not a switch (directory, name, record)")
            directory = (
                folders.get(entry["directory"]) if isinstance(entry["directory"], str) else None
            )
            if directory is None:
                raise BadStoreFile(f"{where}: names a folder that holds no pointers of this store")
            name = entry["name"]
            if (
                not isinstance(name, str)
                or not _POINTER_NAME.fullmatch(name)
                or name.endswith(LOG_SUFFIX)
            ):
                raise BadStoreFile(f"{where}: not a pointer name")
            moves.append(
                (
                    Pointer(directory, name, self.layout.snapshots, self.journal),
                    _valid_record(entry["record"], where),
                )
            )
        return moves

    def complete_journal(self) -> list[tuple[Pointer, Record]]:
        """Finish the switches a killed run left in the journal: forward, each with its own record.  A
        journal hpcos did not write is moved aside, and nothing it names is touched."""
        try:
            moves = self._journal_moves()
        except FileNotFoundError:
            return []
        except BadStoreFile as exc:
            move_aside(self.journal, self.layout.quarantine, f"switch journal: {exc}")
            return []
        done = []
        for pointer, record in moves:
            snapshot = self.layout.snapshots / record.snapshot
            if snapshot.is_symlink() or not (snapshot / "snapshot.json").is_file():
                continue  # its snapshot never committed: nothing of this switch happened
            if pointer.current() != record.snapshot:
                pointer._point_at(record.snapshot)
            if not pointer._recorded(record):
                pointer._append(record)
            done.append((pointer, record))
        self.journal.unlink()
        fsync_dir(self.journal.parent)
        return done
