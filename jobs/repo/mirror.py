"""Mirror one upstream repository for one target into a snapshot entry.

``dnf reposync`` downloads into a per-(mirror, target) download cache under the store (so an
unchanged package is not fetched again tomorrow), leaving out the excludes; every downloaded RPM is
then checked against the checksum in the upstream metadata, stored once in the content store and
hard-linked into the new snapshot, which gets its own createrepo_c metadata plus upstream's groups,
module streams and errata.
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from rich.markup import escape

from hpcos.console import console
from hpcos.errors import UserError
from hpcos.files import file_digest
from hpcos.store_layout import StoreLayout
from jobs.repo import repodata
from jobs.repo.content_store import ContentStore
from jobs.specs import SpecSet

# Multilib: EL x86_64 repositories carry i686 libraries that x86_64 hosts install.
ARCHES = {"x86_64": ["x86_64", "i686", "noarch"], "aarch64": ["aarch64", "noarch"], "ppc64le": ["ppc64le", "noarch"]}


@dataclass(frozen=True)
class MirrorJob:
    mirror: str
    target: str
    url: str
    release: int
    arches: list[str]
    excludes: list[str]

    @property
    def entry(self) -> str:
        return f"{self.mirror}-{self.target}"


def plan(spec_set: SpecSet, mirrors: list[str] | None = None, targets: list[str] | None = None) -> list[MirrorJob]:
    site = spec_set.site
    for what, asked, known in (("mirror", mirrors, site.mirrors), ("target", targets, site.targets)):
        for name in asked or []:
            if name not in known:
                raise UserError(f"unknown {what} {name!r}; expected one of: {', '.join(sorted(known))}")
    return [
        MirrorJob(mirror=m, target=t, url=spec_set.expand(site.mirrors[m].url, t),
                  release=site.targets[t].release, arches=ARCHES[site.targets[t].arch],
                  excludes=spec_set.mirror_excludes(m))
        for m in (mirrors or site.mirrors) for t in (targets or site.targets)
    ]


def download_dir(layout: StoreLayout, job: MirrorJob) -> Path:
    return layout.root / "downloads" / job.entry


def reposync(job: MirrorJob, dest: Path, cache: Path) -> None:
    dnf = shutil.which("dnf")
    if not dnf:
        raise UserError("dnf not found: apt-get install dnf dnf-plugins-core (or dnf install dnf-plugins-core)")
    # metadata_expire=0: dnf would otherwise trust cached upstream metadata for 48 hours.
    cmd = [dnf, "--setopt=reposdir=/dev/null", f"--setopt=cachedir={cache}", f"--releasever={job.release}",
           "--setopt=metadata_expire=0", "--setopt=skip_if_unavailable=False",
           f"--repofrompath=hpcos-sync,{job.url}", "--repo", "hpcos-sync",
           "reposync", "--download-path", str(dest), "--norepopath", "--download-metadata", "--delete"]
    cmd += [f"--arch={arch}" for arch in job.arches]
    cmd += [f"--exclude={glob}" for glob in job.excludes]
    # dnf prints one line per downloaded package when not on a terminal: pass them on as progress.
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        tail: list[str] = []
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                console.print(f"  [dim]{job.entry}[/dim] {escape(line)}", soft_wrap=True)
                tail = (tail + [line])[-5:]
        if proc.wait(timeout=3600):
            raise UserError(f"dnf reposync of {job.url} failed: {' / '.join(tail)}")


def sync_entry(job: MirrorJob, layout: StoreLayout, content: ContentStore, entry_dir: Path,
               previous_entry: Path | None) -> int:
    """Fill ``entry_dir`` with the mirrored repository; returns the number of packages."""
    downloads = download_dir(layout, job)
    downloads.mkdir(parents=True, exist_ok=True)
    layout.locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(layout.locks / f"download-{job.entry}.lock")):
        console.print(f"[bold]{job.entry}[/bold]: dnf reposync {job.url}")
        reposync(job, downloads, layout.root / "downloads" / ".dnf-cache" / job.entry)
        records = repodata.read_packages(downloads)
        packages_dir = entry_dir / "Packages"
        packages_dir.mkdir()
        kept = 0
        with console.status(f"{job.entry}: verifying and linking {len(records)} packages") as status:
            for i, record in enumerate(records):
                # --delete keeps the cache to what upstream lists, not to what we want: an exclude
                # added since the last sync leaves the old download behind, so check names here too.
                if any(fnmatch.fnmatchcase(record.name, glob) for glob in job.excludes):
                    continue
                if record.arch not in job.arches:
                    continue
                local = downloads / record.location
                if not local.is_file():
                    continue  # upstream lists it but reposync's arch/exclude filter left it out
                sha256 = verified_sha256(local, record)
                content.link_into(local, sha256, packages_dir / Path(record.location).name)
                kept += 1
                if i % 200 == 0:
                    status.update(f"{job.entry}: verified and linked {i}/{len(records)} packages")
        console.print(f"{job.entry}: {kept} packages; writing metadata with createrepo_c")
        repodata.create(entry_dir, reuse_from=previous_entry)
        carried = repodata.carry_over(downloads, entry_dir)
        if carried:
            console.print(f"{job.entry}: kept upstream {', '.join(carried)} metadata")
    return kept


def verified_sha256(path: Path, record: repodata.PackageRecord) -> str:
    sha256 = file_digest(path, "sha256")
    # "sha" is what old createrepo wrote for sha1.
    expected_type = {"sha": "sha1"}.get(record.checksum_type, record.checksum_type)
    if not expected_type or not record.checksum:
        raise UserError(f"{path.name}: upstream metadata gives no checksum; refusing an unverified package")
    actual = sha256 if expected_type == "sha256" else file_digest(path, expected_type)
    if actual != record.checksum:
        raise UserError(f"{path.name}: checksum mismatch against upstream metadata "
                        f"({expected_type} {record.checksum}, downloaded file has {actual}); sync aborted")
    return sha256
