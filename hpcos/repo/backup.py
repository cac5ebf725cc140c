"""Backups of the whole store, and restoring one into an empty store.

``hpcos store backup DIR`` writes ``DIR/hpcos-store-<time>.tar`` and, last, its manifest
``DIR/hpcos-store-<time>.json`` (sha256, members, sizes): an archive without a manifest is one whose
backup did not finish.  The copy is consistent because it is taken under the locks every writer
takes: the store lock (pointers, snapshots, journals, records of promotions), the ticket queue's lock
and every overlay repository's build lock, taken in the order ``repo publish`` takes them; a promotion
or a nightly step that starts meanwhile waits, one that runs is waited for.  SQLite databases (results,
ticket state, the local tracker) are copied through SQLite's own backup API, so a run writing
measurements meanwhile never leaves a torn page in the copy.  What is recomputed or transient is left
out: ``locks/``, ``tmp/``, ``downloads/`` (upstream's packages, downloaded again by the next sync) and
the temporary files of runs in progress (``.tmp-*``, ``.partial-*``).

Snapshots are hard links into ``content/`` and symlinks to older snapshots: tar keeps both as links,
so a backup costs each RPM once however many snapshots hold it.  ``hpcos store restore DIR`` checks
the newest complete backup against its manifest, extracts it with tar's ``data`` filter (no absolute
path, no link out of the store, no device) beside the store and renames it into place: the store is
the whole backup or is not there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

from filelock import FileLock

from hpcos import __version__
from hpcos.core.errors import UserError
from hpcos.core.files import file_digest, fsync_dir, write_text_atomically
from hpcos.core.store_files import BadStoreFile, dataclass_from, read_json
from hpcos.core.store_layout import StoreLayout
from hpcos.repo.locking import store_lock

log = logging.getLogger("hpcos.repo")

PREFIX = "hpcos-store-"
# Top-level folders a backup leaves out: locks, scratch space, and the upstream download cache.
LEFT_OUT = frozenset({"locks", "tmp", "downloads"})
# Names of files being written by a run in progress (snapshot staging, content copies, atomic writes).
_IN_PROGRESS = (".tmp-", ".partial-", ".trash-")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
LOCK_TIMEOUT = 3600  # a backup waits this long for a build that holds an overlay repository


class BackupError(UserError):
    pass


@dataclass(frozen=True)
class Manifest:
    archive: str
    sha256: str
    size: int
    members: int
    store: str
    created: str
    hpcos: str


def _in_progress(name: str) -> bool:
    return name.startswith(_IN_PROGRESS) or ".tmp-" in name


def _is_sqlite(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC


@contextlib.contextmanager
def _writers_stopped(layout: StoreLayout) -> Iterator[None]:
    """Hold every lock a writer of the store takes: the store lock first, then the ones ``repo
    publish`` takes inside it (overlay repositories), then the ticket queue's."""
    with contextlib.ExitStack() as held:
        held.enter_context(store_lock(layout, "store backup"))
        overlays = layout.root / "overlays"
        if overlays.is_dir():
            for overlay in sorted(
                p for p in overlays.iterdir() if p.is_dir() and not p.is_symlink()
            ):
                for target in sorted(
                    p for p in overlay.iterdir() if p.is_dir() and not p.is_symlink()
                ):
                    held.enter_context(
                        FileLock(
                            str(layout.overlay_repo_lock(overlay.name, target.name)),
                            timeout=LOCK_TIMEOUT,
                        )
                    )
        if layout.ticket_queue.is_dir():
            held.enter_context(FileLock(str(layout.ticket_queue_lock), timeout=LOCK_TIMEOUT))
        yield


def _walk(root: Path) -> Iterator[Path]:
    """Every path to archive under ``root``, parents before children, in a stable order; never into a
    symlinked folder (the link itself is archived)."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        keep = []
        for name in sorted(dirnames):
            if (here == root and name in LEFT_OUT) or _in_progress(name):
                continue
            if (here / name).is_symlink():
                filenames.append(name)  # archived as the link it is
            else:
                keep.append(name)
        dirnames[:] = keep
        for name in keep:
            yield here / name
        for name in sorted(filenames):
            if not _in_progress(name) and not name.endswith(_SQLITE_SIDE_FILES):
                yield here / name


def backup(layout: StoreLayout, directory: Path) -> Manifest:
    """Write a consistent backup of the store into ``directory`` (created if needed); see the module."""
    root = layout.root
    if not root.is_dir():
        raise BackupError(f"store {root}: no such directory, nothing to back up")
    directory = directory.absolute()
    if directory == root or root in directory.parents:
        raise BackupError(
            f"backup directory {directory} is inside the store {root}; choose a place outside it"
        )
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    archive = directory / f"{PREFIX}{stamp}.tar"
    partial = directory / f".{archive.name}.partial-{os.getpid()}"
    members = 0
    try:
        with (
            _writers_stopped(layout),
            tempfile.TemporaryDirectory(prefix=".hpcos-backup-", dir=directory) as work,
            tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar,
        ):
            tar.add(root, arcname="store", recursive=False)
            for path in _walk(root):
                name = "store/" + path.relative_to(root).as_posix()
                if _is_sqlite(path):
                    copy = Path(work) / f"db-{members}"
                    _copy_sqlite(path, copy)
                    info = tar.gettarinfo(copy, arcname=name)
                    info.mode, info.mtime = path.stat().st_mode & 0o7777, path.stat().st_mtime
                    with open(copy, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.add(path, arcname=name, recursive=False)  # hard links stay links (by inode)
                members += 1
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.rename(partial, archive)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    manifest = Manifest(
        archive=archive.name,
        sha256=file_digest(archive),
        size=archive.stat().st_size,
        members=members,
        store=str(root),
        created=stamp,
        hpcos=__version__,
    )
    # Written last: a backup is complete when its manifest is there.
    write_text_atomically(
        directory / f"{PREFIX}{stamp}.json", json.dumps(asdict(manifest), indent=2)
    )
    fsync_dir(directory)
    log.info(
        "backed up %s: %d entries, %.1f MiB in %s", root, members, manifest.size / 2**20, archive
    )
    return manifest


def _copy_sqlite(source: Path, dest: Path) -> None:
    """A consistent copy of a live SQLite database (its WAL included), through SQLite's backup API."""
    with (
        contextlib.closing(
            sqlite3.connect(f"file:{quote(str(source))}?mode=ro", uri=True, timeout=60)
        ) as src,
        contextlib.closing(sqlite3.connect(dest)) as out,
    ):
        src.backup(out)


def latest(directory: Path) -> Manifest:
    """The newest complete backup in ``directory`` (the one whose manifest is there and valid)."""
    if not directory.is_dir():
        raise BackupError(f"{directory}: no such backup directory")
    for path in sorted(directory.glob(f"{PREFIX}*.json"), reverse=True):
        try:
            manifest = dataclass_from(Manifest, read_json(path, what="backup manifest"), str(path))
        except BadStoreFile as exc:
            log.warning("skipped %s", exc)
            continue
        if Path(manifest.archive).name != manifest.archive or not manifest.archive.startswith(
            PREFIX
        ):
            log.warning("skipped %s: names an archive outside its directory", path)
            continue
        return manifest
    raise BackupError(
        f"{directory}: no complete backup (an archive {PREFIX}*.tar with its .json manifest)"
    )


def restore(layout: StoreLayout, directory: Path) -> Manifest:
    """Restore the newest complete backup of ``directory`` into the store, which must be empty or absent."""
    root = layout.root
    if root.is_symlink() or (root.exists() and (not root.is_dir() or any(root.iterdir()))):
        raise BackupError(
            f"store {root} is not empty: restore into a new, empty store (--store DIR)"
        )
    manifest = latest(directory.absolute())
    archive = directory.absolute() / manifest.archive
    if not archive.is_file() or file_digest(archive) != manifest.sha256:
        raise BackupError(f"{archive}: does not match its manifest (sha256); the backup is damaged")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.restore-", dir=root.parent))
    try:
        with tarfile.open(archive, "r") as tar:
            for member in tar:
                if member.name != "store" and not member.name.startswith("store/"):
                    raise BackupError(
                        f"{archive}: member {member.name[:100]!r} is not under store/"
                    )
            # The data filter refuses absolute names, links that leave the tree, devices and setuid bits.
            tar.extractall(staging, filter="data")
        if root.exists():
            root.rmdir()  # empty, checked above
        os.rename(staging / "store", root)
        fsync_dir(root.parent)
    except tarfile.TarError as exc:
        raise BackupError(f"{archive}: cannot be restored: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info(
        "restored %s from %s (%d entries, taken %s)",
        root,
        archive,
        manifest.members,
        manifest.created,
    )
    return manifest
