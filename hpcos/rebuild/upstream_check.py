"""``hpcos build PKG --target T --check-upstream``: is the overlay behind the base mirror?

The newest build of the package in the base repository (``dnf repoquery``) is compared with the base
build the newest overlay build was made from (its Release minus the site tag, see release.py).
A rebuild is due when upstream has moved on, when the overlay has no build yet, when the site
tag changed, or when the site patches or spec edits changed (their digest, written into the overlay
SRPM's changelog by patching.py, differs from today's); the new build then gets a new release
(release.next_counter).  The generated rebuild jobs poll this and rebuild on exit code 3.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hpcos.core.errors import UserError
from hpcos.rebuild.release import base_of
from hpcos.rpms import rpmtool
from hpcos.rpms.evr import Evr
from hpcos.site.specs import Package

REBUILD_DUE = 3
QUERY_TIMEOUT = 300


@dataclass(frozen=True)
class UpstreamStatus:
    upstream: Evr
    overlay: Evr | None
    overlay_base: Evr | None
    # Digest of the site patches and spec edits the overlay build was made with, and today's.
    overlay_inputs: str | None = None
    site_inputs: str | None = None

    @property
    def inputs_changed(self) -> bool:
        return self.site_inputs is not None and self.overlay_inputs != self.site_inputs

    @property
    def rebuild_due(self) -> bool:
        return self.overlay_base is None or self.upstream > self.overlay_base or self.inputs_changed

    def describe(self, name: str) -> str:
        if self.overlay is None:
            return f"{name}: no overlay build yet; upstream has {self.upstream}: rebuild due"
        if self.overlay_base is None:
            return f"{name}: overlay {self.overlay} was built with another site tag: rebuild due"
        if self.upstream > self.overlay_base:
            return f"{name}: upstream {self.upstream} is newer than the base of overlay {self.overlay}: rebuild due"
        if self.inputs_changed:
            return (
                f"{name}: the site patches or spec edits changed since overlay {self.overlay} "
                f"(site inputs {self.overlay_inputs or 'unknown'} -> {self.site_inputs}): rebuild due"
            )
        return f"{name}: overlay {self.overlay} is current (upstream {self.upstream})"


def current_inputs(spec_set, package: Package) -> str:
    from hpcos.rebuild.patching import site_inputs_digest

    return site_inputs_digest(spec_set, package)


def recorded_inputs(overlay_repo: Path, name: str, evr: Evr) -> str | None:
    """The site-inputs digest in the changelog of the overlay's SRPM of ``name``-``evr``."""
    import rpm

    from hpcos.rebuild.patching import INPUTS_LINE

    for path in overlay_repo.glob(f"{name}-*.src.rpm"):
        hdr = rpmtool.header(path)
        if rpmtool.header_text(hdr, rpm.RPMTAG_NAME) != name or rpmtool.evr(hdr) != evr:
            continue
        texts = hdr[rpm.RPMTAG_CHANGELOGTEXT] or []
        newest = texts[0] if texts else ""
        newest = newest.decode(errors="replace") if isinstance(newest, bytes) else newest
        for line in newest.splitlines():
            if INPUTS_LINE in line:
                return line.split(INPUTS_LINE, 1)[1].strip()
    return None


def newest(repo_url: str, name: str, releasever: int, arch: str | None, log: Path) -> Evr | None:
    """Newest EVR of ``name`` in a repository (binary or source packages), by rpm's order."""
    with tempfile.TemporaryDirectory(prefix="hpcos-repoquery-") as cache:
        cmd = [
            "dnf",
            "repoquery",
            "--quiet",
            *rpmtool.dnf_repo_args(repo_url, "q", releasever, Path(cache)),
            "--qf",
            "%{name}|%{epoch}|%{version}|%{release}|%{arch}",
        ]
        if arch:
            cmd += ["--arch", arch]
        out = rpmtool.check(
            cmd + [name], log, what=f"dnf repoquery {name} in {repo_url}", timeout=QUERY_TIMEOUT
        )
    found = []
    for line in out.splitlines():
        fields = line.strip().split("|")
        if len(fields) == 5 and fields[0] == name:
            found.append(Evr(int(fields[1] or 0), fields[2], fields[3]))
    return max(found, key=functools.cmp_to_key(lambda a, b: a.compare(b))) if found else None


def check(
    package: Package,
    base_repos: list[str],
    overlay_repo: Path,
    releasever: int,
    log: Path,
    site_inputs: str | None = None,
) -> UpstreamStatus:
    """``base_repos`` in order (source.base_repos): the first that has the package answers."""
    name = package.upstream.srpm_name or package.name
    upstream = next(
        (evr for evr in (newest(url, name, releasever, None, log) for url in base_repos) if evr),
        None,
    )
    if upstream is None:
        raise UserError(f"{package.name}: no package named {name!r} in {', '.join(base_repos)}")
    overlay = None
    if (overlay_repo / "repodata" / "repomd.xml").is_file():
        # The overlay publishes the patched SRPM beside the binaries: its EVR is the build's.
        overlay = newest(overlay_repo.resolve().as_uri(), name, releasever, "src", log)
    overlay_base = base_of(overlay, package.release_tag) if overlay else None
    overlay_inputs = recorded_inputs(overlay_repo, name, overlay) if overlay else None
    return UpstreamStatus(upstream, overlay, overlay_base, overlay_inputs, site_inputs)
