"""``hpcos build PKG --target T --check-upstream``: is the overlay behind the base mirror?

The newest build of the package in the base repository (``dnf repoquery``) is compared with the base
build the newest overlay build was made from (its Release minus the site tag, see release.py).
A rebuild is due when upstream has moved on, when the overlay has no build yet, or when the site
tag changed.  The generated rebuild jobs poll this and rebuild on exit code 3.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hpcos.core.errors import UserError
from hpcos.rebuild import rpmtool
from hpcos.rebuild.release import Evr, base_of
from hpcos.site.specs import Package

REBUILD_DUE = 3
QUERY_TIMEOUT = 300


@dataclass(frozen=True)
class UpstreamStatus:
    upstream: Evr
    overlay: Evr | None
    overlay_base: Evr | None

    @property
    def rebuild_due(self) -> bool:
        return self.overlay_base is None or self.upstream > self.overlay_base

    def describe(self, name: str) -> str:
        if self.overlay is None:
            return f"{name}: no overlay build yet; upstream has {self.upstream}: rebuild due"
        if self.overlay_base is None:
            return f"{name}: overlay {self.overlay} was built with another site tag: rebuild due"
        if self.rebuild_due:
            return f"{name}: upstream {self.upstream} is newer than the base of overlay {self.overlay}: rebuild due"
        return f"{name}: overlay {self.overlay} is current (upstream {self.upstream})"


def newest(repo_url: str, name: str, releasever: int, arch: str | None, log: Path) -> Evr | None:
    """Newest EVR of ``name`` in a repository (binary or source packages), by rpm's order."""
    with tempfile.TemporaryDirectory(prefix="hpcos-repoquery-") as cache:
        cmd = ["dnf", "repoquery", "--quiet", *rpmtool.dnf_repo_args(repo_url, "q", releasever, Path(cache)),
               "--qf", "%{name}|%{epoch}|%{version}|%{release}|%{arch}"]
        if arch:
            cmd += ["--arch", arch]
        out = rpmtool.check(cmd + [name], log, what=f"dnf repoquery {name} in {repo_url}", timeout=QUERY_TIMEOUT)
    found = []
    for line in out.splitlines():
        fields = line.strip().split("|")
        if len(fields) == 5 and fields[0] == name:
            found.append(Evr(int(fields[1] or 0), fields[2], fields[3]))
    return max(found, key=functools.cmp_to_key(lambda a, b: a.compare(b))) if found else None


def check(package: Package, base_repos: list[str], overlay_repo: Path, releasever: int, log: Path) -> UpstreamStatus:
    """``base_repos`` in order (source.base_repos): the first that has the package answers."""
    name = package.upstream.srpm_name or package.name
    upstream = next((evr for evr in (newest(url, name, releasever, None, log) for url in base_repos) if evr), None)
    if upstream is None:
        raise UserError(f"{package.name}: no package named {name!r} in {', '.join(base_repos)}")
    overlay = None
    if (overlay_repo / "repodata" / "repomd.xml").is_file():
        # The overlay publishes the patched SRPM beside the binaries: its EVR is the build's.
        overlay = newest(overlay_repo.resolve().as_uri(), name, releasever, "src", log)
    overlay_base = base_of(overlay, package.release_tag) if overlay else None
    return UpstreamStatus(upstream, overlay, overlay_base)
