"""Small real RPMs and local upstream repositories for the repository tests.

Packages are built with the real rpmbuild (one spec per package, a few files each) and cached for the
test session, because rpmbuild takes a few tenths of a second per package.  Repositories are made
with the real createrepo_c.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from conftest import require_tool

SPEC = """\
%global debug_package %{{nil}}
%define _build_id_links none
Name: {name}
Version: {version}
Release: {release}
Summary: hpcos repository test package {name}
License: MIT
{buildarch}
%description
A package built by the hpcos tests.
%install
mkdir -p %{{buildroot}}/usr/share/hpcos-test
echo {name}-{version}-{release} > %{{buildroot}}/usr/share/hpcos-test/{name}
%files
/usr/share/hpcos-test/{name}
"""


@dataclass(frozen=True)
class Rpm:
    name: str
    version: str
    release: str = "1"
    arch: str = "noarch"

    @property
    def nevra(self) -> str:
        return f"{self.name}-0:{self.version}-{self.release}.{self.arch}"

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.release}.{self.arch}.rpm"


class RpmFactory:
    """Builds each requested package once per session and hands out its path."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.built: dict[Rpm, Path] = {}

    def path(self, rpm: Rpm) -> Path:
        if rpm not in self.built:
            self.built[rpm] = self._build(rpm)
        return self.built[rpm]

    def _build(self, rpm: Rpm) -> Path:
        rpmbuild = require_tool("rpmbuild", "rpm")
        top = self.workdir / rpm.filename.removesuffix(".rpm")
        (top / "SPECS").mkdir(parents=True, exist_ok=True)
        spec = top / "SPECS" / f"{rpm.name}.spec"
        buildarch = "BuildArch: noarch" if rpm.arch == "noarch" else ""
        spec.write_text(SPEC.format(name=rpm.name, version=rpm.version, release=rpm.release, buildarch=buildarch))
        cmd = [rpmbuild, "--define", f"_topdir {top}", "--nodeps", "-bb", str(spec)]
        if rpm.arch != "noarch":
            cmd[1:1] = ["--target", rpm.arch]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        return top / "RPMS" / rpm.arch / rpm.filename


def make_repo(factory: RpmFactory, directory: Path, rpms: list[Rpm]) -> Path:
    """A fresh repository at ``directory`` holding exactly ``rpms``, with createrepo_c metadata."""
    createrepo = require_tool("createrepo_c", "createrepo-c")
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "Packages").mkdir(parents=True)
    for rpm in rpms:
        shutil.copy2(factory.path(rpm), directory / "Packages" / rpm.filename)
    subprocess.run([createrepo, "--quiet", str(directory)], check=True, capture_output=True, timeout=120)
    return directory


def repoquery(baseurl: str, cachedir: Path) -> set[str]:
    """NEVRAs that real dnf sees at ``baseurl`` (a file:// or http:// URL)."""
    dnf = require_tool("dnf", "dnf")
    proc = subprocess.run(
        [dnf, "--setopt=reposdir=/dev/null", f"--setopt=cachedir={cachedir}", "--releasever=9", "-q",
         f"--repofrompath=q,{baseurl}", "--repo", "q", "repoquery",
         "--qf", "%{name}-%{epoch}:%{version}-%{release}.%{arch}"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return {line for line in proc.stdout.splitlines() if line.strip()}
