"""`hpcos outage plan` for a 20,000-package snapshot diff: how long the plan takes to write.

Two snapshots (production and testing) of one 20,000-package repository are made through hpcos's own
snapshot store and environment pointers, with the metadata a real mirror has: primary, other (three
changelog entries per package) and updateinfo (one advisory per 20 changed packages). Writing 20,000
real RPMs would take most of an hour and measure rpmbuild, not the plan; the plan reads metadata only,
so the metadata is written here directly in createrepo_c's format. A fraction of the packages changes
between the two; the plan is then written by the real command, end to end, and timed.

    .venv/bin/python bench/outage_plan.py [--packages 20000] [--changed 0.25] [--runs 3]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hpcos.core.store_layout import StoreLayout  # noqa: E402
from hpcos.repo.environments import Environments  # noqa: E402
from hpcos.repo.snapshots import SnapshotStore  # noqa: E402

HPCOS = str(Path(sys.executable).parent / "hpcos")
ENTRY = "base-el9-x86_64"


def packages(count: int, changed: float, new: bool) -> list[tuple[str, str, str]]:
    step = max(1, round(1 / changed)) if changed else 0
    out = []
    for i in range(count):
        release = "2.el9" if new and step and i % step == 0 else "1.el9"
        out.append((f"pkg{i:05d}", "1.0", release))
    return out


def write_repo(repo: Path, pkgs: list[tuple[str, str, str]], advisories: bool) -> None:
    data = repo / "repodata"
    data.mkdir(parents=True)
    primary = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<metadata xmlns="http://linux.duke.edu/metadata/common" '
        f'xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="{len(pkgs)}">'
    ]
    other = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<otherdata xmlns="http://linux.duke.edu/metadata/other" '
        f'packages="{len(pkgs)}">'
    ]
    for name, ver, rel in pkgs:
        pkgid = hashlib.sha256(f"{name}-{ver}-{rel}".encode()).hexdigest()
        primary.append(
            f'<package type="rpm"><name>{name}</name><arch>x86_64</arch>'
            f'<version epoch="0" ver="{ver}" rel="{rel}"/><checksum type="sha256" pkgid="YES">{pkgid}'
            f'</checksum><location href="Packages/{name}-{ver}-{rel}.x86_64.rpm"/></package>'
        )
        logs = "".join(
            f'<changelog author="Packager &lt;p@example.org&gt; - {ver}-{rel}" date="{1700000000 + k}">'
            f"- change {k} of {escape(name)}</changelog>"
            for k in range(3)
        )
        other.append(
            f'<package pkgid="{pkgid}" name="{name}" arch="x86_64"><version epoch="0" ver="{ver}" '
            f'rel="{rel}"/>{logs}</package>'
        )
    primary.append("</metadata>")
    other.append("</otherdata>")
    files = {
        "primary": ("primary.xml.gz", "\n".join(primary)),
        "other": ("other.xml.gz", "\n".join(other)),
    }
    if advisories:
        updates = ['<?xml version="1.0" encoding="UTF-8"?>\n<updates>']
        for i, (name, ver, rel) in enumerate(p for p in pkgs if p[2] == "2.el9"):
            if i % 20 == 0:
                updates.append(
                    f'<update type="security"><id>RLSA-2026:{i:05d}</id><title>{name} update</title>'
                    f'<severity>Important</severity><issued date="2026-11-29 00:00:00"/><pkglist>'
                    f'<collection><package name="{name}" version="{ver}" release="{rel}" epoch="0" '
                    f'arch="x86_64"/></collection></pkglist></update>'
                )
        updates.append("</updates>")
        files["updateinfo"] = ("updateinfo.xml.gz", "\n".join(updates))
    repomd = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<repomd xmlns="http://linux.duke.edu/metadata/repo">'
    ]
    for kind, (filename, text) in files.items():
        (data / filename).write_bytes(gzip.compress(text.encode(), compresslevel=1))
        repomd.append(f'<data type="{kind}"><location href="repodata/{filename}"/></data>')
    repomd.append("</repomd>")
    (data / "repomd.xml").write_text("\n".join(repomd))


def snapshot(layout: StoreLayout, pkgs, advisories: bool, env: str) -> str:
    staging = SnapshotStore(layout.snapshots).stage(env)
    write_repo(staging.new_entry(ENTRY), pkgs, advisories)
    snap = staging.commit()
    Environments(layout).environment(env).switch(snap.id, "promote", reason="bench")
    return snap.id


SITE = """name: bench
store: {{root: {store}}}
targets: {{el9-x86_64: {{release: 9, arch: x86_64, mock_config: rocky+epel-9-x86_64}}}}
mirrors: {{base: {{url: "file:///nowhere/{{release}}/{{arch}}/"}}}}
overlays: {{hpc-overlay: {{description: MPI}}}}
environments:
  daily: {{}}
  testing: {{source: daily}}
  production: {{source: testing, gate: nightly}}
jenkins: {{url: "http://127.0.0.1:9/", folder: hpcos, build_label: rpm, test_label: cluster}}
harness: {{profile: {test}, production_profile: {prod}}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=20000)
    parser.add_argument(
        "--changed", type=float, default=0.25, help="fraction of packages that change"
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hpcos-bench-") as tmp:
        store, specs = Path(tmp, "store"), Path(tmp, "specs")
        specs.mkdir()
        clusters = ROOT / "integration_tests" / "clusters"
        (specs / "site.yaml").write_text(
            SITE.format(
                store=store,
                test=clusters / "example-test-cluster.yaml",
                prod=clusters / "example-production.yaml",
            )
        )
        layout = StoreLayout(store)
        started = time.perf_counter()
        snapshot(layout, packages(args.packages, args.changed, new=False), False, "production")
        snapshot(layout, packages(args.packages, args.changed, new=True), True, "testing")
        print(
            f"made two {args.packages}-package snapshots in {time.perf_counter() - started:.1f} s"
        )
        walls = []
        for _ in range(args.runs):
            start = time.perf_counter()
            done = subprocess.run(
                [
                    HPCOS,
                    "--specs",
                    str(specs),
                    "--store",
                    str(store),
                    "outage",
                    "plan",
                    "--no-wiki",
                    "-o",
                    str(Path(tmp, "out")),
                ],
                capture_output=True,
                text=True,
                timeout=1800,
            )
            walls.append(time.perf_counter() - start)
            if done.returncode:
                print(done.stderr, file=sys.stderr)
                return 1
        changes = done.stdout.count("\n| base-el9-x86\\_64 |")
        size = Path(tmp, "out", "plan.html").stat().st_size
        print(f"load average before the runs: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"package changes in the plan: {changes}; plan.html {size / 1e6:.1f} MB")
        print(
            f"`hpcos outage plan` wall time: median {statistics.median(walls):.2f} s over {args.runs} runs "
            f"(min {min(walls):.2f} s, max {max(walls):.2f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
