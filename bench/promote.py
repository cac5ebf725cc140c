"""Promote a snapshot of N packages: wall time and extra disk, against copying the tree with cp -a / rsync.

    .venv/bin/python bench/promote.py [--packages 1000,5000,20000] [--package-size 4096] [--dir /var/tmp]

Promotion never reads package content, so the packages are fabricated cheaply: N small files with RPM
names in the content store, hard-linked into a sync snapshot, plus a repodata directory with a
primary.xml.gz listing all N.  Real packages average about 1 MB, so the cp -a and rsync figures
here are a lower bound; promotion's figures do not depend on package size or count.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hpcos.core.store_layout import StoreLayout
from hpcos.repo import promotion
from hpcos.repo.environments import Environments
from hpcos.repo.snapshots import SnapshotStore
from hpcos.rpms.content_store import ContentStore
from hpcos.site.specs import load_specs

SITE = """\
name: bench
store: {{root: {store}, keep_snapshots: 14}}
targets: {{el9-x86_64: {{release: 9, arch: x86_64, mock_config: rocky+epel-9-x86_64}}}}
mirrors: {{baseos: {{url: "file:///nonexistent/{{release}}/{{arch}}/"}}}}
overlays: {{kernel-overlay: {{description: kernel, fastpath: true}}}}
environments:
  daily: {{}}
  testing: {{source: daily}}
  production: {{source: testing, gate: nightly}}
jenkins: {{url: "http://127.0.0.1:9/", folder: hpcos, build_label: b, test_label: t}}
harness: {{profile: p.yaml}}
"""


def disk_usage(root: Path) -> int:
    """Bytes allocated under ``root``, each inode counted once (hard links are not copies)."""
    seen, total = set(), 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_blocks * 512
    return total


def fabricate(layout: StoreLayout, packages: int, size: int) -> str:
    content = ContentStore(layout.content)
    staging = SnapshotStore(layout.snapshots).stage("sync")
    entry = staging.new_entry("baseos-el9-x86_64")
    (entry / "Packages").mkdir()
    (entry / "repodata").mkdir()
    blob = os.urandom(size)
    lines = [
        '<?xml version="1.0"?>\n<metadata xmlns="http://linux.duke.edu/metadata/common" '
        f'packages="{packages}">'
    ]
    for i in range(packages):
        name = f"pkg{i:05d}-1.0-1.el9.x86_64.rpm"
        digest = f"{i:064x}"
        stored = content.path(digest)
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_bytes(blob[:-8] + i.to_bytes(8, "big"))
        os.link(stored, entry / "Packages" / name)
        lines.append(
            f'<package type="rpm"><name>pkg{i:05d}</name><arch>x86_64</arch>'
            f'<version epoch="0" ver="1.0" rel="1.el9"/><checksum type="sha256">{digest}</checksum>'
            f'<location href="Packages/{name}"/></package>'
        )
    lines.append("</metadata>")
    (entry / "repodata" / "primary.xml.gz").write_bytes(gzip.compress("\n".join(lines).encode()))
    (entry / "repodata" / "repomd.xml").write_text(
        '<?xml version="1.0"?><repomd xmlns="http://linux.duke.edu/metadata/repo"><data type="primary">'
        '<location href="repodata/primary.xml.gz"/></data></repomd>'
    )
    snapshot = staging.commit()
    Environments(layout).environment("daily").switch(snapshot.id, "sync", reason="bench")
    return snapshot.id


def timed(func) -> tuple[float, object]:
    began = time.perf_counter()
    result = func()
    return time.perf_counter() - began, result


def run(packages: int, size: int, workdir: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="hpcos-bench-", dir=workdir))
    try:
        specs = root / "specs"
        specs.mkdir()
        (specs / "site.yaml").write_text(SITE.format(store=root / "store"))
        spec_set = load_specs(specs)
        layout = StoreLayout(root / "store")
        snapshot_id = fabricate(layout, packages, size)
        subprocess.run(["sync"], check=True)
        before = disk_usage(layout.root)
        seconds, _ = timed(
            lambda: promotion.promote(spec_set, layout, "daily", "testing", reason="bench")
        )
        promote_disk = disk_usage(layout.root) - before
        argv = [
            sys.executable,
            "-m",
            "hpcos.cli",
            "--specs",
            str(specs),
            "--store",
            str(layout.root),
            "repo",
            "promote",
            "daily",
            "testing",
        ]
        cli_seconds, _ = timed(
            lambda: subprocess.run(argv, check=True, capture_output=True, timeout=600)
        )
        rows = [
            ("hpcos repo promote daily testing (in process)", seconds, promote_disk),
            ("hpcos repo promote daily testing (CLI, incl. Python start-up)", cli_seconds, None),
        ]
        source = layout.snapshots / snapshot_id
        for tool, cmd in (("cp -a", ["cp", "-a"]), ("rsync -a", ["rsync", "-a"])):
            if not shutil.which(cmd[0]):
                rows.append((f"{tool} (not installed)", None, None))
                continue
            dest = root / f"copy-{cmd[0]}"
            subprocess.run(["sync"], check=True)
            copy_seconds, _ = timed(
                lambda cmd=cmd, dest=dest: subprocess.run(
                    [*cmd, f"{source}/", str(dest)], check=True, timeout=3600
                )
            )
            rows.append((f"{tool} of the snapshot", copy_seconds, disk_usage(dest)))
        print(
            f"\n{packages} packages of {size} bytes ({packages * size / 2**20:.0f} MiB of package data):"
        )
        for label, secs, disk in rows:
            shown_secs = f"{secs * 1000:9.1f} ms" if secs is not None else "        -   "
            shown_disk = f"{disk / 1024:12.1f} KiB extra disk" if disk is not None else ""
            print(f"  {label:62s} {shown_secs} {shown_disk}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packages", default="1000,5000,20000")
    parser.add_argument("--package-size", type=int, default=4096)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    for n in (int(x) for x in args.packages.split(",")):
        run(n, args.package_size, args.dir)


if __name__ == "__main__":
    main()
