"""Mirror one upstream repository for one target into a snapshot entry.

``dnf reposync`` downloads into a per-(mirror, target) download cache under the store (so an
unchanged package is not fetched again tomorrow), leaving out the excludes; every downloaded RPM is
then checked against the checksum in the upstream metadata and, where the mirror names a
``gpgkey``, its signature (``rpmkeys --checksig`` against that key alone), stored once in the content store and
hard-linked into the new snapshot, which gets its own createrepo_c metadata plus upstream's groups,
module streams and errata.
"""

from __future__ import annotations

import fnmatch
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from hpcos.core import runner
from hpcos.core.errors import UserError
from hpcos.core.files import file_digest
from hpcos.core.store_layout import StoreLayout
from hpcos.repo import repodata
from hpcos.rpms import signing
from hpcos.rpms.content_store import ContentStore
from hpcos.site.specs import SpecSet

# Multilib: EL x86_64 repositories carry i686 libraries that x86_64 hosts install.
log = logging.getLogger("hpcos.repo")
# A full mirror of a large upstream repository over a slow link; a hung dnf dies at this bound.
REPOSYNC_TIMEOUT = 3600.0
ARCHES = {
    "x86_64": ["x86_64", "i686", "noarch"],
    "aarch64": ["aarch64", "noarch"],
    "ppc64le": ["ppc64le", "noarch"],
}


@dataclass(frozen=True)
class MirrorJob:
    mirror: str
    target: str
    url: str
    release: int
    arches: list[str]
    excludes: list[str]
    # The key upstream signs its packages with (URL or absolute path); None: not checked.
    gpgkey: str | None = None

    @property
    def entry(self) -> str:
        return f"{self.mirror}-{self.target}"


def plan(
    spec_set: SpecSet, mirrors: list[str] | None = None, targets: list[str] | None = None
) -> list[MirrorJob]:
    site = spec_set.site
    for what, asked, known in (
        ("mirror", mirrors, site.mirrors),
        ("target", targets, site.targets),
    ):
        for name in asked or []:
            if name not in known:
                raise UserError(
                    f"unknown {what} {name!r}; expected one of: {', '.join(sorted(known))}"
                )
    return [
        MirrorJob(
            mirror=m,
            target=t,
            url=spec_set.expand(site.mirrors[m].url, t),
            release=site.targets[t].release,
            arches=ARCHES[site.targets[t].arch],
            excludes=spec_set.mirror_excludes(m),
            gpgkey=_key_location(spec_set, m, t),
        )
        for m in (mirrors or site.mirrors)
        for t in (targets or site.targets)
    ]


def _key_location(spec_set: SpecSet, mirror: str, target: str) -> str | None:
    key = spec_set.site.mirrors[mirror].gpgkey
    if not key:
        return None
    key = spec_set.expand(key, target)
    return key if "://" in key else str((spec_set.root / key).resolve())


def download_dir(layout: StoreLayout, job: MirrorJob) -> Path:
    return layout.root / "downloads" / job.entry


def reposync(job: MirrorJob, dest: Path, cache: Path) -> None:
    dnf = shutil.which("dnf")
    if not dnf:
        raise UserError(
            "dnf not found: apt-get install dnf dnf-plugins-core (or dnf install dnf-plugins-core)"
        )
    # metadata_expire=0: dnf would otherwise trust cached upstream metadata for 48 hours.
    cmd = [
        dnf,
        "--setopt=reposdir=/dev/null",
        f"--setopt=cachedir={cache}",
        f"--releasever={job.release}",
        "--setopt=metadata_expire=0",
        "--setopt=skip_if_unavailable=False",
        f"--repofrompath=hpcos-sync,{job.url}",
        "--repo",
        "hpcos-sync",
        "reposync",
        "--download-path",
        str(dest),
        "--norepopath",
        "--download-metadata",
        "--delete",
    ]
    cmd += [f"--arch={arch}" for arch in job.arches]
    cmd += [f"--exclude={glob}" for glob in job.excludes]
    # dnf prints one line per downloaded package when not on a terminal: pass them on as progress.
    # The timeout counts from the start: a dnf that hangs holding its output open is killed on time.
    proc = runner.run(
        cmd,
        timeout=REPOSYNC_TIMEOUT,
        merge_stderr=True,
        on_line=lambda line: log.info("  %s %s", job.entry, line),
    )
    if proc.timed_out:
        raise UserError(
            f"dnf reposync of {job.url} timed out after {REPOSYNC_TIMEOUT:.0f} s; process tree killed"
        )
    if proc.exit_code:
        tail = [line for line in proc.stdout.splitlines() if line.strip()][-5:]
        raise UserError(f"dnf reposync of {job.url} failed: {' / '.join(tail)}")


def sync_entry(
    job: MirrorJob,
    layout: StoreLayout,
    content: ContentStore,
    entry_dir: Path,
    previous_entry: Path | None,
) -> int:
    """Fill ``entry_dir`` with the mirrored repository; returns the number of packages."""
    downloads = download_dir(layout, job)
    downloads.mkdir(parents=True, exist_ok=True)
    layout.locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(layout.locks / f"download-{job.entry}.lock")):
        log.info("%s: dnf reposync %s", job.entry, job.url)
        reposync(job, downloads, layout.root / "downloads" / ".dnf-cache" / job.entry)
        records = repodata.read_packages(downloads)
        packages_dir = entry_dir / "Packages"
        packages_dir.mkdir()
        kept = 0
        if job.gpgkey:
            check_signatures(job, downloads, records, layout)
        log.info("%s: verifying and linking %d packages", job.entry, len(records))
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
            if i and i % 1000 == 0:
                log.info("%s: verified and linked %d/%d packages", job.entry, i, len(records))
        log.info("%s: %d packages; writing metadata with createrepo_c", job.entry, kept)
        repodata.create(entry_dir, reuse_from=previous_entry)
        carried = repodata.carry_over(downloads, entry_dir)
        if carried:
            log.info("%s: kept upstream %s metadata", job.entry, ", ".join(carried))
    return kept


def _wanted(job: MirrorJob, record: repodata.PackageRecord) -> bool:
    return record.arch in job.arches and not any(
        fnmatch.fnmatchcase(record.name, glob) for glob in job.excludes
    )


def check_signatures(
    job: MirrorJob, downloads: Path, records: list[repodata.PackageRecord], layout: StoreLayout
) -> None:
    """Every package the snapshot will hold must be signed by the mirror's ``gpgkey``: an unsigned or
    badly signed package (a compromised mirror, a repository signed by someone else) stops the sync."""
    paths = [
        downloads / r.location
        for r in records
        if _wanted(job, r) and (downloads / r.location).is_file()
    ]
    work = layout.root / "downloads" / ".keys" / job.entry
    key = signing.fetch_key(job.gpgkey, work / "RPM-GPG-KEY", Path("/"))
    log.info("%s: checking %d package signatures against %s", job.entry, len(paths), job.gpgkey)
    problems = signing.verify(paths, key, work, work / "checksig.log")
    signing.refuse_unsigned(
        problems, f"{job.entry}: sync aborted, packages not signed by {job.gpgkey}"
    )


def verified_sha256(path: Path, record: repodata.PackageRecord) -> str:
    sha256 = file_digest(path, "sha256")
    # "sha" is what old createrepo wrote for sha1.
    expected_type = {"sha": "sha1"}.get(record.checksum_type, record.checksum_type)
    if not expected_type or not record.checksum:
        raise UserError(
            f"{path.name}: upstream metadata gives no checksum; refusing an unverified package"
        )
    actual = sha256 if expected_type == "sha256" else file_digest(path, expected_type)
    if actual != record.checksum:
        raise UserError(
            f"{path.name}: checksum mismatch against upstream metadata "
            f"({expected_type} {record.checksum}, downloaded file has {actual}); sync aborted"
        )
    return sha256
