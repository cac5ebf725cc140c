"""The two builders.  Both take the overlay SRPM and leave RPMs and logs in one result directory,
laid out the way mock lays it out (``build.log``; mock adds ``root.log`` and ``state.log``), so the
failure reader and the publisher do not care which one ran.

* ``mock`` (build hosts): ``mock -r CONFIG --rebuild SRPM --resultdir DIR``, with the overlay's own
  repository added by ``--addrepo`` so overlay packages build against each other (Open MPI against
  the site's UCX and rdma-core).  Cross-architecture and clean-chroot builds need it.
* ``rpmbuild`` (where mock is absent, and in tests): ``rpmbuild --rebuild`` in a private _topdir, on
  the host itself, so only for the host's architecture.
"""

from __future__ import annotations

import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from hpcos.core.errors import UserError
from hpcos.core.store_layout import StoreLayout
from hpcos.rebuild import rpmtool
from hpcos.site.specs import Package, SpecSet

BUILD_TIMEOUT = 4 * 3600


@dataclass
class BuildResult:
    ok: bool
    result_dir: Path
    rpms: list[Path] = field(default_factory=list)

    def log(self, name: str) -> str:
        path = self.result_dir / name
        return path.read_text(errors="replace") if path.is_file() else ""


class Builder(Protocol):
    name: str

    def command(self, srpm: Path, result_dir: Path) -> list[str]: ...

    def build(self, srpm: Path, result_dir: Path) -> BuildResult: ...


@dataclass
class MockBuilder:
    config: str
    # Repositories the chroot may install BuildRequires from, beyond the config's own.
    addrepos: list[str] = field(default_factory=list)
    timeout: float = BUILD_TIMEOUT
    name: str = "mock"

    def command(self, srpm: Path, result_dir: Path) -> list[str]:
        cmd = ["mock", "-r", self.config, "--rebuild", str(srpm), "--resultdir", str(result_dir)]
        for repo in self.addrepos:
            cmd += ["--addrepo", repo]
        return cmd

    def build(self, srpm: Path, result_dir: Path) -> BuildResult:
        result_dir.mkdir(parents=True, exist_ok=True)
        cmd = self.command(srpm, result_dir)
        # mock writes its own logs into the result directory; its console output is kept beside them.
        proc = rpmtool.run(cmd, result_dir / "mock-output.log", timeout=self.timeout)
        # mock also leaves the SRPM it rebuilt there; the caller publishes its own patched SRPM.
        rpms = sorted(p for p in result_dir.glob("*.rpm") if not p.name.endswith(".src.rpm"))
        return BuildResult(proc.exit_code == 0 and bool(rpms), result_dir, rpms)


@dataclass
class RpmbuildBuilder:
    timeout: float = BUILD_TIMEOUT
    name: str = "rpmbuild"

    def command(self, srpm: Path, result_dir: Path) -> list[str]:
        return ["rpmbuild", "--define", f"_topdir {result_dir / 'rpmbuild'}", "--rebuild", str(srpm)]

    def build(self, srpm: Path, result_dir: Path) -> BuildResult:
        result_dir.mkdir(parents=True, exist_ok=True)
        cmd = self.command(srpm, result_dir)
        proc = rpmtool.run(cmd, result_dir / "build.log", timeout=self.timeout)
        topdir = result_dir / "rpmbuild"
        rpms = []
        if proc.exit_code == 0:
            for built in sorted((topdir / "RPMS").glob("*/*.rpm")):
                rpms.append(Path(shutil.copy2(built, result_dir / built.name)))
        # The RPMs are copied out and the log kept; the build tree is a second copy of the sources.
        shutil.rmtree(topdir, ignore_errors=True)
        return BuildResult(proc.exit_code == 0 and bool(rpms), result_dir, rpms)


def make_builder(kind: str, spec_set: SpecSet, package: Package, target: str, layout: StoreLayout) -> Builder:
    if kind == "rpmbuild":
        arch, host = spec_set.site.targets[target].arch, platform.machine()
        if arch != host:
            # Checked before anything is fetched: the build could only fail later.
            raise UserError(f"the rpmbuild builder builds only for this host's architecture ({host}), not "
                            f"{arch} ({target}); build it with mock on a build host")
        return RpmbuildBuilder()
    overlay_repo = layout.overlay_repo(package.overlay, target)
    # An empty overlay has no metadata yet; mock's dnf would refuse a repository without repomd.xml.
    addrepos = [overlay_repo.resolve().as_uri()] if (overlay_repo / "repodata" / "repomd.xml").is_file() else []
    return MockBuilder(config=spec_set.mock_config(package, target), addrepos=addrepos)


def default_builder_kind(package: Package) -> str:
    """The package's builder, falling back to rpmbuild where mock is not installed (and saying so)."""
    if package.builder == "mock" and shutil.which("mock") is None:
        return "rpmbuild"
    return package.builder
