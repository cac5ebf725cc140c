"""Publishing a successful build into the overlay's working repository
(``StoreLayout.overlay_repo(overlay, target)``): sign where a key is configured, copy the RPMs in,
drop builds beyond the last N of the package (``site.store.keep_builds``), ``createrepo_c --update``.

Only the caller's success path calls this, so a failed build publishes nothing.  One lock per
repository: two rebuild jobs finishing together must not interleave their createrepo_c runs.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import rpm
from filelock import FileLock

from hpcos.core import failpoints
from hpcos.core.store_layout import StoreLayout
from hpcos.rebuild import rpmtool
from hpcos.rebuild.release import Evr

PUBLISH_TIMEOUT = 900
LOCK_TIMEOUT = 1800
PARTIAL_PREFIX = ".partial-"


@dataclass(frozen=True)
class Published:
    repo: Path
    added: list[Path]
    removed: list[Path]


@dataclass(frozen=True)
class Signer:
    """An OpenPGP key for ``rpmsign --addsign``: its user id or fingerprint, and the GnuPG home holding it."""

    key: str
    gnupg_home: str | None = None

    def sign(self, rpms: list[Path], log: Path) -> None:
        # rpm's default %__gpg names gpg2 on some distributions (Debian) and gpg on others: use the one here.
        gpg = shutil.which("gpg") or shutil.which("gpg2") or "gpg"
        cmd = ["rpmsign", "--define", f"_gpg_name {self.key}", "--define", f"__gpg {gpg}"]
        if self.gnupg_home:
            cmd += ["--define", f"_gpg_path {self.gnupg_home}"]
        rpmtool.check(cmd + ["--addsign", *map(str, rpms)], log, what="rpmsign --addsign", timeout=PUBLISH_TIMEOUT)


def publish(rpms: list[Path], layout: StoreLayout, overlay: str, target: str, keep: int, log: Path,
            signer: Signer | None = None) -> Published:
    repo = layout.overlay_repo(overlay, target)
    repo.mkdir(parents=True, exist_ok=True)
    layout.locks.mkdir(parents=True, exist_ok=True)
    if signer:
        signer.sign(rpms, log)
    with FileLock(str(layout.overlay_repo_lock(overlay, target)), timeout=LOCK_TIMEOUT):
        clean_partial(repo)
        added = [_copy_in(path, repo) for path in rpms]
        removed = prune(repo, keep, {_source_name(p) for p in added})
        rpmtool.check(["createrepo_c", "--update", str(repo)], log, what="createrepo_c --update",
                      timeout=PUBLISH_TIMEOUT)
    return Published(repo, added, removed)


def _copy_in(path: Path, repo: Path) -> Path:
    """Copy under a hidden temporary name, then rename: a kill mid-copy leaves no truncated ``*.rpm``
    for createrepo_c or ``repo publish`` to take, only a ``.part`` file the next publish removes."""
    final = repo / path.name
    partial = repo / f"{PARTIAL_PREFIX}{path.name}.{os.getpid()}"
    try:
        shutil.copy2(path, partial)
        failpoints.reached("publish:copied")
        with open(partial, "rb") as copied:
            os.fsync(copied.fileno())
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return final


def clean_partial(repo: Path) -> None:
    """Remove copies a killed publish left (only under the repository lock: no copy is in progress)."""
    for leftover in repo.glob(f"{PARTIAL_PREFIX}*"):
        leftover.unlink(missing_ok=True)


def prune(repo: Path, keep: int, source_names: set[str]) -> list[Path]:
    """Remove all but the newest ``keep`` builds (by rpm's EVR order) of each named source package.

    A build is every RPM made from one SRPM, the SRPM included, so a package's binaries, debuginfo and
    sources leave together."""
    builds: dict[str, dict[Evr, list[Path]]] = {}
    for path in repo.glob("*.rpm"):
        name = _source_name(path)
        if name in source_names:
            builds.setdefault(name, {}).setdefault(rpmtool.evr(rpmtool.header(path)), []).append(path)
    removed = []
    for by_evr in builds.values():
        newest_first = sorted(by_evr, key=functools.cmp_to_key(lambda a, b: a.compare(b)), reverse=True)
        for evr in newest_first[keep:]:
            for path in by_evr[evr]:
                path.unlink()
                removed.append(path)
    return sorted(removed)


def _source_name(path: Path) -> str:
    hdr = rpmtool.header(path)
    if hdr.isSource():
        return rpmtool.header_text(hdr, rpm.RPMTAG_NAME)
    # SOURCERPM is NAME-VERSION-RELEASE.src.rpm; the name is what is left after the last two dashes.
    return rpmtool.header_text(hdr, rpm.RPMTAG_SOURCERPM).rsplit("-", 2)[0]
