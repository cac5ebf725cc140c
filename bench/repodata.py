"""Reading the NEVRAs of a repository: parsing primary.xml.gz (hpcos.repo.repodata) against `dnf repoquery`.

    .venv/bin/python bench/repodata.py [--packages 20000]

The repository is fabricated: a primary.xml.gz listing N packages and a repomd.xml with real
checksums, which is all either reader looks at.  `hpcos repo diff` reads two repositories per
changed entry, so this is the figure that decides how it reads them.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from hpcos.repo import repodata


def fabricate(repo: Path, packages: int) -> None:
    (repo / "repodata").mkdir(parents=True)
    body = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<metadata xmlns="http://linux.duke.edu/metadata/common" '
        f'xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="{packages}">',
    ]
    for i in range(packages):
        body.append(
            f'<package type="rpm"><name>pkg{i:05d}</name><arch>x86_64</arch>'
            f'<version epoch="0" ver="1.{i % 7}" rel="1.el9"/><checksum type="sha256" pkgid="YES">{i:064x}</checksum>'
            f"<summary>s</summary><description>d</description><packager/><url/>"
            f'<time file="1" build="1"/><size package="1" installed="1" archive="1"/>'
            f'<location href="Packages/pkg{i:05d}-1.{i % 7}-1.el9.x86_64.rpm"/>'
            f'<format><rpm:license>MIT</rpm:license><rpm:header-range start="1" end="2"/></format></package>'
        )
    body.append("</metadata>")
    raw = "\n".join(body).encode()
    packed = gzip.compress(raw)
    name = f"{hashlib.sha256(packed).hexdigest()}-primary.xml.gz"
    (repo / "repodata" / name).write_bytes(packed)
    (repo / "repodata" / "repomd.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<repomd xmlns="http://linux.duke.edu/metadata/repo">'
        '<revision>1</revision><data type="primary">'
        f'<checksum type="sha256">{hashlib.sha256(packed).hexdigest()}</checksum>'
        f'<open-checksum type="sha256">{hashlib.sha256(raw).hexdigest()}</open-checksum>'
        f'<location href="repodata/{name}"/><timestamp>1</timestamp><size>{len(packed)}</size>'
        f"<open-size>{len(raw)}</open-size></data></repomd>"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packages", type=int, default=20000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hpcos-bench-repodata-"))
    try:
        repo = root / "repo"
        fabricate(repo, args.packages)
        began = time.perf_counter()
        parsed = {p.nevra for p in repodata.read_packages(repo)}
        parse_seconds = time.perf_counter() - began
        began = time.perf_counter()
        proc = subprocess.run(
            [
                "dnf",
                "--setopt=reposdir=/dev/null",
                f"--setopt=cachedir={root / 'cache'}",
                "--releasever=9",
                "-q",
                f"--repofrompath=b,file://{repo}",
                "--repo",
                "b",
                "repoquery",
                "--qf",
                "%{name}-%{epoch}:%{version}-%{release}.%{arch}",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        dnf_seconds = time.perf_counter() - began
        queried = set(proc.stdout.split())
        print(f"{args.packages} packages:")
        print(
            f"  parse primary.xml.gz (iterparse)  {parse_seconds * 1000:8.0f} ms  {len(parsed)} NEVRAs"
        )
        print(
            f"  dnf repoquery --repofrompath      {dnf_seconds * 1000:8.0f} ms  {len(queried)} NEVRAs"
        )
        print(f"  same answer: {parsed == queried}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
