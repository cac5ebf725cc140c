"""Publishing a successful build into the overlay's working repository
(``StoreLayout.overlay_repo(overlay, target)``): sign where a key is configured, refuse an RPM whose
name a repository or snapshot already holds with other bytes (builds are immutable), copy the RPMs
in, drop builds beyond the last N of the package (``site.store.keep_builds``), ``createrepo_c
--update``, and sign the metadata (``repomd.xml.asc``).

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
from hpcos.core.errors import UserError
from hpcos.core.files import file_digest
from hpcos.core.store_layout import StoreLayout
from hpcos.rpms import rpmtool
from hpcos.rpms.content_store import held_with_other_content
from hpcos.rpms.evr import Evr
from hpcos.rpms.signing import Signer

__all__ = [
    "ImmutableBuild",
    "Published",
    "Signer",
    "existing_builds",
    "publish",
    "prune",
    "refuse_replacing",
]

PUBLISH_TIMEOUT = 900
LOCK_TIMEOUT = 1800
PARTIAL_PREFIX = ".partial-"


@dataclass(frozen=True)
class Published:
    repo: Path
    added: list[Path]
    removed: list[Path]


def publish(
    rpms: list[Path],
    layout: StoreLayout,
    overlay: str,
    target: str,
    keep: int,
    log: Path,
    signer: Signer | None = None,
) -> Published:
    repo = layout.overlay_repo(overlay, target)
    layout.locks.mkdir(parents=True, exist_ok=True)
    if signer:
        signer.sign(rpms, log)
    with FileLock(str(layout.overlay_repo_lock(overlay, target)), timeout=LOCK_TIMEOUT):
        # Builds are immutable: a node that installed NEVRA X must never be offered other bytes as X.
        refuse_replacing(rpms, [repo], layout)
        repo.mkdir(parents=True, exist_ok=True)
        clean_partial(repo)
        added = [_copy_in(path, repo) for path in rpms]
        removed = prune(repo, keep, {_source_name(p) for p in added})
        rpmtool.check(
            ["createrepo_c", "--update", str(repo)],
            log,
            what="createrepo_c --update",
            timeout=PUBLISH_TIMEOUT,
        )
        if signer:
            signer.sign_metadata(repo, log)
    return Published(repo, added, removed)


def _copy_in(path: Path, repo: Path) -> Path:
    """Copy under a hidden temporary name, then rename: a kill mid-copy leaves no truncated ``*.rpm``
    for createrepo_c or ``repo publish`` to take, only a ``.partial-`` file the next publish removes."""
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


def refuse_replacing(rpms: list[Path], repos: list[Path], layout: StoreLayout) -> None:
    """Refuse an RPM whose file name (N-V-R.A) a repository or any snapshot holds with other bytes."""
    digests = {path.name: file_digest(path) for path in rpms}
    clashes = []
    for repo in repos:
        for name, digest in digests.items():
            if (repo / name).is_file() and file_digest(repo / name) != digest:
                clashes.append(f"{name} (in {repo})")
    clashes += held_with_other_content(layout, digests)
    if clashes:
        raise ImmutableBuild(
            f"refusing to publish a different build under an existing name: {', '.join(clashes)}; "
            "a new build of the same base needs a new release (hpcos build counts up: .hpc1.2)"
        )


class ImmutableBuild(UserError):
    pass


def existing_builds(layout: StoreLayout, overlay: str, target: str, source_name: str) -> set[Evr]:
    """Every build of ``source_name`` in the overlay's working repository and in any snapshot's
    entry for it: the release rule counts past all of them (release.next_counter)."""
    paths = list(layout.overlay_repo(overlay, target).glob("*.rpm"))
    paths += layout.snapshots.glob(f"*/{layout.overlay_entry(overlay, target)}/Packages/*.rpm")
    found: set[Evr] = set()
    seen: set[tuple[int, int]] = set()
    for path in paths:
        stat = path.stat()
        if (stat.st_dev, stat.st_ino) in seen:
            continue  # snapshots hard-link one content-store file many times
        seen.add((stat.st_dev, stat.st_ino))
        if _source_name(path) == source_name:
            found.add(rpmtool.evr(rpmtool.header(path)))
    return found


def prune(repo: Path, keep: int, source_names: set[str]) -> list[Path]:
    """Remove all but the newest ``keep`` builds (by rpm's EVR order) of each named source package.

    A build is every RPM made from one SRPM, the SRPM included, so a package's binaries, debuginfo and
    sources leave together."""
    builds: dict[str, dict[Evr, list[Path]]] = {}
    for path in repo.glob("*.rpm"):
        name = _source_name(path)
        if name in source_names:
            builds.setdefault(name, {}).setdefault(rpmtool.evr(rpmtool.header(path)), []).append(
                path
            )
    removed = []
    for by_evr in builds.values():
        newest_first = sorted(
            by_evr, key=functools.cmp_to_key(lambda a, b: a.compare(b)), reverse=True
        )
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
