"""The two builders.  Both take the overlay SRPM and leave RPMs and logs in one result directory,
laid out the way mock lays it out (``build.log``; mock adds ``root.log`` and ``state.log``), so the
failure reader and the publisher do not care which one ran.

* ``mock`` (build hosts): ``mock -r CONFIG --rebuild SRPM --resultdir DIR``, with the overlay's own
  repository added by ``--addrepo`` so overlay packages build against each other (Open MPI against
  the site's UCX and rdma-core).  Cross-architecture and clean-chroot builds need it.
* ``rpmbuild`` (where mock is absent, and in tests): ``rpmbuild --rebuild`` in a private _topdir, on
  the host itself, so only for the host's distribution and architecture (``/etc/os-release`` and
  ``rpm --eval %{dist}``): a Debian host's build of an el9 target links against Debian's glibc.
  ``--allow-foreign-host`` builds anyway, as a test build that is never published.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from hpcos.core.errors import UserError
from hpcos.core.store_layout import StoreLayout
from hpcos.rpms import rpmtool
from hpcos.site.specs import Package, SpecSet, Target

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

    test_build: bool

    def command(self, srpm: Path, result_dir: Path) -> list[str]: ...

    def build(self, srpm: Path, result_dir: Path) -> BuildResult: ...


@dataclass
class MockBuilder:
    config: str
    # Repositories the chroot may install BuildRequires from, beyond the config's own.
    addrepos: list[str] = field(default_factory=list)
    timeout: float = BUILD_TIMEOUT
    name: str = "mock"
    test_build: bool = False

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
    # Built on a host of another distribution (--allow-foreign-host): for trying patches, never published.
    test_build: bool = False

    def command(self, srpm: Path, result_dir: Path) -> list[str]:
        return [
            "rpmbuild",
            "--define",
            f"_topdir {result_dir / 'rpmbuild'}",
            "--rebuild",
            str(srpm),
        ]

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


# Read as systemd does: $SYSTEMD_OS_RELEASE names another file (os-release(5)).
OS_RELEASE = Path("/etc/os-release")
# os-release IDs of the distributions whose %{dist} is .elN (ID or ID_LIKE).
EL_IDS = ("rhel", "centos", "fedora", "rocky", "almalinux", "ol")


@dataclass(frozen=True)
class Host:
    """What this machine builds for with plain rpmbuild: its distribution and architecture."""

    name: str  # PRETTY_NAME, for messages
    el_release: int | None  # 9 on an EL9 host; None on anything else (Debian)
    dist: str  # rpm --eval %{dist}; "" when undefined
    arch: str

    @classmethod
    def detect(cls) -> Host:
        path = Path(os.environ.get("SYSTEMD_OS_RELEASE") or OS_RELEASE)
        fields = {}
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    fields[key.strip()] = value.strip().strip("\"'")
        dist = rpmtool.check(["rpm", "--eval", "%{dist}"], timeout=60).strip()
        dist = "" if dist == "%{dist}" else dist
        ids = {fields.get("ID", "")} | set(fields.get("ID_LIKE", "").split())
        match = re.match(r"^\.el(\d+)", dist)
        el = int(match.group(1)) if match and ids & set(EL_IDS) else None
        return cls(
            fields.get("PRETTY_NAME") or fields.get("ID") or "an unknown system",
            el,
            dist,
            platform.machine(),
        )

    def foreign_to(self, target: Target) -> str | None:
        """Why rpmbuild here cannot build ``target``, or None."""
        if target.arch != self.arch:
            return f"its architecture is {target.arch}, this host's is {self.arch}"
        if self.el_release != target.release:
            return (
                f"it is EL{target.release}, this host is {self.name} (rpm's %{{dist}} is "
                f"{self.dist or 'undefined'}): the RPMs would link against this host's libraries"
            )
        return None


def make_builder(
    kind: str,
    spec_set: SpecSet,
    package: Package,
    target: str,
    layout: StoreLayout,
    allow_foreign_host: bool = False,
    build_dir: Path | None = None,
) -> Builder:
    if kind == "rpmbuild":
        why = Host.detect().foreign_to(spec_set.site.targets[target])
        if why and not allow_foreign_host:
            # Checked before anything is fetched: the build could only fail later, or worse, succeed.
            raise UserError(
                f"the rpmbuild builder builds only for this host; not {target}: {why}. Build it with "
                "mock on a build host, or pass --allow-foreign-host for a test build that is "
                "never published"
            )
        return RpmbuildBuilder(test_build=bool(why))
    overlay_repo = layout.overlay_repo(package.overlay, target)
    # An empty overlay has no metadata yet; mock's dnf would refuse a repository without repomd.xml.
    addrepos = (
        [overlay_repo.resolve().as_uri()]
        if (overlay_repo / "repodata" / "repomd.xml").is_file()
        else []
    )
    config = spec_set.mock_config(package, target)
    if spec_set.site.targets[target].mock_repositories == "daily":
        from hpcos.rebuild.mock_config import write_daily_config

        directory = build_dir or layout.build_dir(package.name, target).parent / f"mock-{target}"
        config = str(write_daily_config(spec_set, package, target, layout, directory))
    return MockBuilder(config=config, addrepos=addrepos)


def default_builder_kind(package: Package) -> str:
    """The package's builder, falling back to rpmbuild where mock is not installed (and saying so)."""
    if package.builder == "mock" and shutil.which("mock") is None:
        return "rpmbuild"
    return package.builder
