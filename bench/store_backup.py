"""Back up and restore a store whose snapshots share their packages: archive size and time.

    .venv/bin/python bench/store_backup.py [--packages 2000] [--package-size 65536] [--snapshots 5]

The store is fabricated as bench/promote.py does (packages in the content store, hard-linked into a
sync snapshot), then promoted so that testing and production are composed snapshots linking it, and
synced again ``--snapshots`` times.  Printed: the files' apparent size (what a copy that does not
know hard links would write), the store's disk usage (each inode once), the archive's size, and the
seconds of `hpcos store backup` and `hpcos store restore` (in process).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from promote import SITE, disk_usage, fabricate

from hpcos.core.store_layout import StoreLayout
from hpcos.repo import backup, promotion
from hpcos.repo.environments import Environments
from hpcos.repo.snapshots import SnapshotStore
from hpcos.site.specs import load_specs


def apparent_size(root: Path) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, files in os.walk(root) for f in files)


def run(packages: int, size: int, snapshots: int, workdir: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="hpcos-bench-backup-", dir=workdir))
    try:
        specs = root / "specs"
        specs.mkdir()
        (specs / "site.yaml").write_text(SITE.format(store=root / "store"))
        spec_set = load_specs(specs)
        layout = StoreLayout(root / "store")
        first = fabricate(layout, packages, size)
        promotion.promote(spec_set, layout, "daily", "testing", reason="bench")
        store = SnapshotStore(layout.snapshots)
        for _ in range(snapshots - 1):  # further syncs: the same packages, one more snapshot each
            staging = store.stage("sync")
            entry = staging.new_entry("baseos-el9-x86_64")
            shutil.copytree(
                layout.snapshots / first / "baseos-el9-x86_64",
                entry,
                dirs_exist_ok=True,
                copy_function=os.link,
            )
            Environments(layout).environment("daily").switch(
                staging.commit().id, "sync", reason="bench"
            )
        began = time.perf_counter()
        manifest = backup.backup(layout, root / "backups")
        backup_seconds = time.perf_counter() - began
        began = time.perf_counter()
        backup.restore(StoreLayout(root / "restored"), root / "backups")
        restore_seconds = time.perf_counter() - began
        print(f"\n{packages} packages of {size} bytes, {snapshots} sync snapshots + testing:")
        print(
            f"  files' apparent size (a copy that ignores hard links) {apparent_size(layout.root) / 2**20:10.1f} MiB"
        )
        print(
            f"  store's disk usage (each inode once)                  {disk_usage(layout.root) / 2**20:10.1f} MiB"
        )
        print(
            f"  backup archive                                        {manifest.size / 2**20:10.1f} MiB"
        )
        print(f"  hpcos store backup                                    {backup_seconds:10.2f} s")
        print(f"  hpcos store restore (sha256 check, extract, rename)   {restore_seconds:10.2f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packages", type=int, default=2000)
    parser.add_argument("--package-size", type=int, default=65536)
    parser.add_argument("--snapshots", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    run(args.packages, args.package_size, args.snapshots, args.dir)


if __name__ == "__main__":
    main()
