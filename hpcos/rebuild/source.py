"""Getting the upstream SRPM: from the mirrored base repository, a URL, or a local path; then its
sha256 and, where a key is configured, its signature are checked before anything unpacks it."""

from __future__ import annotations

import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import rpm

from hpcos.core.errors import UserError
from hpcos.core.files import file_digest
from hpcos.core.store_layout import StoreLayout
from hpcos.rpms import rpmtool
from hpcos.rpms.evr import Evr
from hpcos.site.specs import Package, SpecSet

DOWNLOAD_TIMEOUT = 300


class SourceError(UserError):
    pass


@dataclass(frozen=True)
class Srpm:
    path: Path
    name: str
    evr: Evr
    sha256: str
    origin: str


def base_repos(
    spec_set: SpecSet,
    package: Package,
    target: str,
    layout: StoreLayout,
    source_repo: str | None = None,
) -> list[str]:
    """Repositories that may hold the base build, in the order they are asked.

    ``--source-repo`` alone when given.  Otherwise the mirror's entry in the ``daily`` environment
    (``<mirror>-<target>``, as ``hpcos repo sync`` names it), then the mirror's upstream source
    repository and its upstream URL: the daily mirror leaves out the packages an overlay replaces,
    so their base builds are usually only upstream."""
    if source_repo:
        return [source_repo if "://" in source_repo else Path(source_repo).resolve().as_uri()]
    mirror = package.upstream.mirror
    if not mirror:
        raise SourceError(f"{package.name}: upstream is not a mirror; pass --source-repo URL")
    repos = []
    daily = layout.environments / "daily" / f"{mirror}-{target}"
    if (daily / "repodata" / "repomd.xml").is_file():
        repos.append(daily.resolve().as_uri())
    upstream = spec_set.site.mirrors[mirror]
    if upstream.source_url:
        repos.append(spec_set.expand(upstream.source_url, target))
    repos.append(spec_set.expand(upstream.url, target))
    return repos


def fetch(
    spec_set: SpecSet,
    package: Package,
    target: str,
    layout: StoreLayout,
    dest: Path,
    log: Path,
    source_repo: str | None = None,
) -> Srpm:
    """Put the package's upstream SRPM into ``dest``, verified."""
    upstream = package.upstream
    dest.mkdir(parents=True, exist_ok=True)
    if upstream.srpm_path:
        path = Path(spec_set.expand(upstream.srpm_path, target))
        if not path.is_absolute():
            path = spec_set.root / path
        if not path.is_file():
            raise SourceError(f"{package.name}: upstream.srpm_path not found: {path}")
        origin = str(path)
        srpm = dest / path.name
        shutil.copyfile(path, srpm)
    elif upstream.srpm_url:
        origin = spec_set.expand(upstream.srpm_url, target)
        srpm = dest / origin.rstrip("/").rsplit("/", 1)[-1]
        _download(origin, srpm)
    else:
        srpm, origin = _dnf_download_source(
            base_repos(spec_set, package, target, layout, source_repo),
            upstream.srpm_name or package.name,
            spec_set.site.targets[target].release,
            dest,
            log,
        )

    digest = file_digest(srpm)
    if upstream.sha256 and digest != upstream.sha256:
        raise SourceError(
            f"{package.name}: {srpm.name} sha256 is {digest}, upstream.sha256 expects "
            f"{upstream.sha256}"
        )
    key = upstream.gpgkey or (
        spec_set.site.mirrors[upstream.mirror].gpgkey if upstream.mirror else None
    )
    if key:
        verify_signature(srpm, spec_set.expand(key, target), dest / "keys", log, spec_set.root)
    hdr = rpmtool.header(srpm)
    if not hdr.isSource():
        raise SourceError(f"{package.name}: {srpm.name} is a binary RPM, not a source RPM")
    return Srpm(srpm, rpmtool.header_text(hdr, rpm.RPMTAG_NAME), rpmtool.evr(hdr), digest, origin)


def verify_signature(path: Path, key: str, keyring_dir: Path, log: Path, specs_root: Path) -> None:
    """``rpmkeys --checksig`` against only the configured key (a URL, or a file relative to the specs
    directory), in a private rpm database."""
    keyring_dir.mkdir(parents=True, exist_ok=True)
    key_file = keyring_dir / "signing-key.asc"
    if "://" in key:
        _download(key, key_file)
    else:
        local = specs_root / key
        if not local.is_file():
            raise SourceError(f"signing key not found: {local}")
        shutil.copyfile(local, key_file)
    with tempfile.TemporaryDirectory(dir=keyring_dir) as dbpath:
        rpmtool.check(
            ["rpmkeys", "--dbpath", dbpath, "--import", str(key_file)],
            log,
            what=f"importing signing key {key}",
            timeout=60,
        )
        proc = rpmtool.run(
            ["rpmkeys", "--dbpath", dbpath, "--checksig", "-v", str(path)], log, timeout=60
        )
    # An unsigned package passes a bare digest check, so require a verified signature line.
    verified = [
        line
        for line in proc.stdout.splitlines()
        if "Signature" in line and line.rstrip().endswith("OK")
    ]
    if proc.exit_code != 0 or not verified:
        bad = next(
            (line.strip() for line in proc.stdout.splitlines() if "BAD" in line or "NOKEY" in line),
            "no signature made with the configured key",
        )
        raise SourceError(f"{path.name}: signature check failed against {key}: {bad}")


def _download(url: str, dest: Path) -> None:
    try:
        with (
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response,
            dest.open("wb") as f,
        ):
            shutil.copyfileobj(response, f)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SourceError(f"cannot download {url}: {getattr(exc, 'reason', exc)}") from None


def _dnf_download_source(
    repos: list[str], name: str, releasever: int, dest: Path, log: Path
) -> tuple[Path, str]:
    """The newest ``name`` SRPM from the first repository that has it, and that repository."""
    tried = []
    for i, repo_url in enumerate(repos):
        before = set(dest.glob("*.src.rpm"))
        cmd = [
            "dnf",
            "download",
            "--source",
            *rpmtool.dnf_repo_args(repo_url, "base", releasever, dest / f"dnf-cache-{i}"),
            f"--destdir={dest}",
            name,
        ]
        proc = rpmtool.run(cmd, log, timeout=DOWNLOAD_TIMEOUT)
        fetched = sorted(set(dest.glob("*.src.rpm")) - before)
        if proc.exit_code == 0 and fetched:
            return fetched[-1], repo_url
        last = next((line for line in reversed(proc.stdout.splitlines()) if line.strip()), "")
        tried.append(f"{repo_url} ({last.strip()})")
    raise SourceError(
        f"no source package {name!r} in {'; '.join(tried)}; a binary-only repository has no "
        "SRPMs: pass --source-repo with the upstream source repository"
    )
