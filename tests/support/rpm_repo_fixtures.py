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
{conflicts}
%description
A package built by the hpcos tests.
%install
mkdir -p %{{buildroot}}/usr/share/hpcos-test
echo {name}-{version}-{release} > %{{buildroot}}/usr/share/hpcos-test/{name}-{version}-{release}
%files
/usr/share/hpcos-test/{name}-{version}-{release}
{changelog}"""


@dataclass(frozen=True)
class Rpm:
    name: str
    version: str
    release: str = "1"
    arch: str = "noarch"
    conflicts: str = ""  # an RPM Conflicts: value, to make a transaction fail on purpose
    changelog: str = ""  # one %changelog entry's text (dated 2026-11-30), for what a plan shows

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
        spec.write_text(
            SPEC.format(
                name=rpm.name,
                version=rpm.version,
                release=rpm.release,
                buildarch=buildarch,
                conflicts=f"Conflicts: {rpm.conflicts}" if rpm.conflicts else "",
                changelog=(
                    f"%changelog\n* Mon Nov 30 2026 HPC Team <hpc@example.org> - "
                    f"{rpm.version}-{rpm.release}\n- {rpm.changelog}\n"
                )
                if rpm.changelog
                else "",
            )
        )
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
    subprocess.run(
        [createrepo, "--quiet", str(directory)], check=True, capture_output=True, timeout=120
    )
    return directory


def repoquery(baseurl: str, cachedir: Path) -> set[str]:
    """NEVRAs that real dnf sees at ``baseurl`` (a file:// or http:// URL)."""
    return repoquery_many({"q": baseurl}, cachedir)["q"]


def repoquery_many(baseurls: dict[str, str], cachedir: Path) -> dict[str, set[str]]:
    """NEVRAs per repository id that one real dnf run sees, each repository at its own baseurl."""
    dnf = require_tool("dnf", "dnf")
    cmd = [
        dnf,
        "--setopt=reposdir=/dev/null",
        f"--setopt=cachedir={cachedir}",
        "--releasever=9",
        "-q",
    ]
    for repoid, url in baseurls.items():
        cmd += [f"--repofrompath={repoid},{url}", "--repo", repoid]
    cmd += ["repoquery", "--qf", "%{repoid} %{name}-%{epoch}:%{version}-%{release}.%{arch}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen: dict[str, set[str]] = {repoid: set() for repoid in baseurls}
    for line in proc.stdout.splitlines():
        if line.strip():
            repoid, nevra = line.split()
            seen[repoid].add(nevra)
    return seen


SITE_YAML = """\
name: repo-test-site
store: {{root: {store}, keep_snapshots: {keep}}}
targets:
  el9-x86_64: {{release: 9, arch: x86_64, mock_config: rocky+epel-9-x86_64}}
mirrors:
  base:
    url: {upstream}/base/{{release}}/{{arch}}/
  tools:
    url: {upstream}/tools/{{release}}/{{arch}}/
    exclude: ["legacy*"]
exclude: ["*-debuginfo"]
overlays:
  kernel-overlay: {{description: site kernel, fastpath: true}}
  hpc-overlay: {{description: MPI stacks}}
environments:
  daily: {{schedule: "H 1 * * *"}}
  testing: {{source: daily}}
  production: {{source: testing, gate: nightly}}
jenkins: {{url: "http://127.0.0.1:9/", folder: hpcos, build_label: rpm, test_label: cluster}}
harness: {{profile: profile.yaml}}
"""

PACKAGE_YAML = """\
name: {name}
overlay: {overlay}
upstream: {{mirror: base}}
release_tag: .hpc1
targets: [el9-x86_64]
builder: rpmbuild
owner: hpc@example.org
tests: ["mpi"]
"""

TARGET = "el9-x86_64"

# Upstream on two days.  openmpi* and kernel* are overlaid (left out of the mirror), *-debuginfo is a
# site exclude, legacy* a mirror exclude, zeta is another architecture.
BASE_DAY1 = [
    Rpm("alpha", "1.0"),
    Rpm("beta", "1.0"),
    Rpm("gamma", "1.0", arch="x86_64"),
    Rpm("openmpi", "4.1.1", arch="x86_64"),
    Rpm("openmpi-devel", "4.1.1", arch="x86_64"),
    Rpm("kernel", "5.14.0", arch="x86_64"),
    Rpm("alpha-debuginfo", "1.0"),
    Rpm("zeta", "1.0", arch="aarch64"),
]
BASE_DAY2 = [
    Rpm("alpha", "1.1"),
    Rpm("gamma", "1.0", arch="x86_64"),
    Rpm("delta", "2.0"),
    Rpm("openmpi", "4.1.2", arch="x86_64"),
    Rpm("kernel", "5.14.1", arch="x86_64"),
    Rpm("alpha-debuginfo", "1.1"),
]
TOOLS = [Rpm("tool", "3.0"), Rpm("legacy-tool", "0.1")]
HPC_OVERLAY = [
    Rpm("openmpi", "4.1.1", "1.hpc1", "x86_64"),
    Rpm("openmpi-devel", "4.1.1", "1.hpc1", "x86_64"),
]
KERNEL_V1 = [Rpm("kernel", "5.14.0", "1.hpc1", "x86_64")]
KERNEL_V2 = [Rpm("kernel", "5.14.0", "2.hpc1", "x86_64")]


def nevras(rpms: list[Rpm]) -> set[str]:
    return {r.nevra for r in rpms}


@dataclass
class RepoSite:
    """A site whose mirrors are local upstream repositories made by the test."""

    factory: RpmFactory
    specs: Path
    store: Path
    upstream: Path

    def set_upstream(self, mirror: str, rpms: list[Rpm]) -> None:
        make_repo(self.factory, self.upstream / mirror / "9" / "x86_64", rpms)

    def set_overlay(self, overlay: str, rpms: list[Rpm]) -> None:
        make_repo(self.factory, self.store / "overlays" / overlay / TARGET, rpms)

    def argv(self, *args: str) -> list[str]:
        return ["--specs", str(self.specs), "--store", str(self.store), "repo", *args]

    def env_url(self, env: str, repo: str) -> str:
        return f"file://{self.store}/environments/{env}/{repo}"


def make_site(
    factory: RpmFactory, root: Path, keep: int = 3, upstream_url: str | None = None
) -> RepoSite:
    """A site with two mirrors; ``upstream_url`` serves ``root/upstream`` (default: file://)."""
    specs = root / "specs"
    specs.mkdir(parents=True)
    site = RepoSite(factory, specs, root / "store", root / "upstream")
    url = upstream_url or f"file://{site.upstream}"
    (specs / "site.yaml").write_text(SITE_YAML.format(store=site.store, keep=keep, upstream=url))
    (specs / "openmpi.yaml").write_text(PACKAGE_YAML.format(name="openmpi", overlay="hpc-overlay"))
    (specs / "kernel.yaml").write_text(PACKAGE_YAML.format(name="kernel", overlay="kernel-overlay"))
    site.set_upstream("base", BASE_DAY1)
    site.set_upstream("tools", TOOLS)
    return site
