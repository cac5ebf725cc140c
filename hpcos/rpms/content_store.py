"""Every RPM stored once, named by its sha256; snapshots hold hard links to these files.

Files come in as copies, never as hard links to the caller's file: dnf reposync rewrites a cached
download in place when upstream replaces a package under the same name, and ``hpcos build``
republishes its working repository, so sharing their inodes would let them change a snapshot.  On
XFS and btrfs the copy is a reflink (copy_file_range shares the extents) and costs no space.

A file's link count says whether any snapshot still uses it, so garbage collection needs no index:
a content file with one link is referenced by nothing else.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from hpcos.core.errors import UserError
from hpcos.core.files import file_digest
from hpcos.core.runner import process_alive
from hpcos.core.store_layout import StoreLayout

TMP_PREFIX = ".tmp-"


_SHARD = re.compile(r"[0-9a-f]{2}")


class ContentStore:
    def __init__(self, root: Path):
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.rpm"

    def add(self, source: Path, sha256: str) -> Path:
        """Store a copy of ``source`` (whose sha256 the caller verified) unless it is there; returns it.

        The copy is linked under its final name only when complete, so a killed run never leaves
        half a file under a content name.
        """
        stored = self.path(sha256)
        if stored.exists():
            return stored
        stored.parent.mkdir(parents=True, exist_ok=True)
        tmp = stored.parent / f"{TMP_PREFIX}{sha256}-pid{os.getpid()}"
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o444)  # shared by every snapshot that links to it
        try:
            if file_digest(tmp) != sha256:
                raise UserError(f"{source} changed while it was being stored; run again")
            os.link(tmp, stored)
        except FileExistsError:
            pass  # another run stored the same package a moment ago
        finally:
            tmp.unlink()
        return stored

    def link_into(self, source: Path, sha256: str, dest: Path) -> None:
        """Make ``dest`` a hard link to the stored content of ``source``: no second copy of any RPM."""
        try:
            os.link(self.add(source, sha256), dest)
        except FileNotFoundError:
            # Garbage collection removed an unreferenced copy between add() and link(); store it again.
            os.link(self.add(source, sha256), dest)

    def collect_garbage(self) -> int:
        """Remove content no snapshot links to any more, and copies a killed run left; returns the count."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for shard in self.root.iterdir():
            # Only what this store wrote: two-hex-digit shard directories (never through a symlink: the
            # sweep would delete files wherever it points) holding regular files.
            if shard.is_symlink() or not shard.is_dir() or not _SHARD.fullmatch(shard.name):
                continue
            for stored in shard.iterdir():
                if stored.is_symlink() or not stored.is_file():
                    continue
                if stored.name.startswith(TMP_PREFIX):
                    pid = stored.name.rsplit("-pid", 1)[-1]
                    stale = not pid.isdigit() or not process_alive(int(pid))
                else:
                    stale = stored.stat().st_nlink == 1
                if stale:
                    stored.unlink(missing_ok=True)
                    removed += 1
        return removed


def held_with_other_content(layout: StoreLayout, digests: dict[str, str]) -> list[str]:
    """``name (snapshot/entry)`` for each RPM file name that a snapshot holds with other bytes.

    A file name is N-V-R.A; snapshots never change, so a node may have installed what they hold."""
    clashes: list[str] = []
    if not layout.snapshots.is_dir():
        return clashes
    content = ContentStore(layout.content)
    for snapshot in sorted(
        p for p in layout.snapshots.iterdir() if p.is_dir() and not p.name.startswith(".")
    ):
        for entry in sorted(p for p in snapshot.iterdir() if p.is_dir() and not p.is_symlink()):
            for name, digest in digests.items():
                held = entry / "Packages" / name
                if not held.is_file():
                    continue
                stored = content.path(digest)
                # Snapshots hard-link the content store: the same inode is the same bytes, unread.
                if stored.is_file() and held.samefile(stored):
                    continue
                if file_digest(held) != digest:
                    clashes.append(f"{name} ({snapshot.name}/{entry.name})")
    return clashes
