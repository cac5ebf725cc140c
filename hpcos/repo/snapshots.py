"""Immutable snapshots: ``snapshots/<id>/<repo>/``, built in a temporary directory and renamed into place.

A snapshot maps repository names (``baseos-el9-x86_64``, ``kernel-overlay-el9-x86_64``) to
repositories.  An entry is either a real directory (RPMs + repodata) or a relative symlink to the
real directory of the same entry in an older snapshot, so a composed snapshot costs one link per
repository whatever the repositories' size, and a client's baseurl still sees a complete repository.

Crash consistency: nothing is visible under ``snapshots/<id>`` until the rename, which is atomic;
links only ever point at snapshots that were already renamed into place.  Leftovers of a killed run
(``.tmp-*`` of a dead process, ``.trash-*``) are removed by ``clean_leftovers`` on the next run.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hpcos.core.errors import UserError
from hpcos.core.files import fsync_dir
from hpcos.core.runner import process_alive
from hpcos.core.store_files import BadStoreFile, dataclass_from, read_json

META = "snapshot.json"
TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
_TMP_NAME = re.compile(r"^\.tmp-(?P<id>.+)-pid(?P<pid>\d+)$")


@dataclass(frozen=True)
class Snapshot:
    id: str
    path: Path
    kind: str  # "sync", "overlay" or the environment it was composed for
    created: float
    # entry name -> id of the snapshot that holds the entry's real directory (itself or an older one)
    entries: dict[str, str]
    details: dict = field(default_factory=dict)

    def entry_dir(self, name: str) -> Path:
        return self.path / name

    @property
    def references(self) -> set[str]:
        """Other snapshots whose directories this one links to."""
        return {source for source in self.entries.values() if source != self.id}


class Staging:
    """A snapshot under construction; invisible to every reader until ``commit``."""

    def __init__(self, store: SnapshotStore, snapshot_id: str, kind: str):
        self.store = store
        self.id = snapshot_id
        self.kind = kind
        self.path = store.root / f"{TMP_PREFIX}{snapshot_id}-pid{os.getpid()}"
        self.path.mkdir(parents=True)
        self.entries: dict[str, str] = {}

    def new_entry(self, name: str) -> Path:
        """A real repository directory to fill (RPMs, then metadata)."""
        path = self.path / name
        path.mkdir()
        self.entries[name] = self.id
        return path

    def link_entry(self, name: str, source: Snapshot) -> None:
        """Reuse ``source``'s entry ``name`` as it is: one symlink, however large the repository."""
        holder = source.entries[name]
        os.symlink(os.path.join("..", holder, name), self.path / name)
        self.entries[name] = holder

    def drop(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def commit(self, **details) -> Snapshot:
        meta = {
            "id": self.id,
            "kind": self.kind,
            "created": time.time(),
            "entries": self.entries,
            "details": details,
        }
        meta_path = self.path / META
        with open(meta_path, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        final = self.store.root / self.id
        os.rename(self.path, final)
        fsync_dir(self.store.root)
        return self.store.get(self.id)


@dataclass(frozen=True)
class _Meta:
    """``snapshot.json`` as ``Staging.commit`` writes it."""

    id: str
    kind: str
    created: float
    entries: dict[str, str]
    details: dict = field(default_factory=dict)


def _component(name: str) -> bool:
    """One path component that is not hidden, ``.`` or ``..``."""
    return bool(name) and "/" not in name and "\0" not in name and not name.startswith(".")


class SnapshotStore:
    def __init__(self, root: Path):
        self.root = root

    def new_id(self, kind: str) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"{stamp}-{kind}-{secrets.token_hex(3)}"

    def stage(self, kind: str) -> Staging:
        self.root.mkdir(parents=True, exist_ok=True)
        return Staging(self, self.new_id(kind), kind)

    def get(self, snapshot_id: str) -> Snapshot:
        path = self.root / snapshot_id
        if snapshot_id.startswith(".") or "/" in snapshot_id or not (path / META).is_file():
            raise UserError(f"no snapshot {snapshot_id!r} in {self.root}")
        # Untrusted like every store file: a hand-edited or damaged snapshot.json ended in a KeyError,
        # and an entry naming ../ would have led a promotion's links out of the store.
        where = str(path / META)
        meta = dataclass_from(_Meta, read_json(path / META, what="snapshot.json"), where)
        if meta.id != snapshot_id:
            raise BadStoreFile(f"{where}: names snapshot {meta.id[:80]!r}, not {snapshot_id!r}")
        if not math.isfinite(meta.created):
            raise BadStoreFile(f"{where}: field 'created' is not a time")
        for name, holder in meta.entries.items():
            if not (_component(name) and _component(holder)):
                raise BadStoreFile(f"{where}: entry {name[:80]!r} is not one folder of a snapshot")
        return Snapshot(
            id=meta.id,
            path=path,
            kind=meta.kind,
            created=meta.created,
            entries=meta.entries,
            details=meta.details,
        )

    def exists(self, snapshot_id: str) -> bool:
        return (self.root / snapshot_id / META).is_file()

    def all(self) -> list[Snapshot]:
        """Every committed snapshot, oldest first."""
        if not self.root.is_dir():
            return []
        found = [
            self.get(p.name)
            for p in self.root.iterdir()
            if not p.name.startswith(".") and (p / META).is_file()
        ]
        return sorted(found, key=lambda s: (s.created, s.id))

    def clean_leftovers(self) -> list[str]:
        """Remove what killed runs left behind: staging dirs of dead processes and half-deleted snapshots."""
        removed = []
        if not self.root.is_dir():
            return removed
        for path in self.root.iterdir():
            match = _TMP_NAME.fullmatch(path.name)
            stale = (match and not process_alive(int(match["pid"]))) or path.name.startswith(
                TRASH_PREFIX
            )
            if stale:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        return removed

    def delete(self, snapshot_id: str) -> None:
        # Renamed away first, so a kill half-way never leaves a partial snapshot under its own id.
        trash = self.root / f"{TRASH_PREFIX}{snapshot_id}"
        os.rename(self.root / snapshot_id, trash)
        # A sync cleaning leftovers may be removing the same tree; whatever stays goes next run.
        shutil.rmtree(trash, ignore_errors=True)
