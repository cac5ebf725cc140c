"""Small real RPM packages for the rebuild tests: a spec file and tarball written here, turned into an
SRPM by the real rpmbuild, plus a site (site.yaml + package YAML + patches) loaded with load_specs.

The package is a tiny C program with a Makefile and a %check that runs it, so a rebuild exercises
%prep (patches), %build (compiler), %check (tests) and %install for real in about a second.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hpcos.site.specs import SpecSet, load_specs

GREETING_C = '#include <stdio.h>\nint main(void)\n{\n    printf("hello from upstream\\n");\n    return 0;\n}\n'
MAKEFILE = "all: hello\nhello: hello.c\n\t$(CC) -o hello hello.c\ncheck: hello\n\t./hello | grep -q hello\n"

# A site patch that applies to GREETING_C, and one that does not (its context is not in the file).
GOOD_PATCH = """\
From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001
From: HPC Admins <hpc@example.org>
Subject: [PATCH] greet the site

---
 hello.c | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

diff --git a/hello.c b/hello.c
--- a/hello.c
+++ b/hello.c
@@ -1,6 +1,6 @@
 #include <stdio.h>
 int main(void)
 {
-    printf("hello from upstream\\n");
+    printf("hello from the site overlay\\n");
     return 0;
 }
--
2.43.0
"""
STALE_PATCH = """\
--- a/hello.c
+++ b/hello.c
@@ -1,6 +1,6 @@
 #include <stdio.h>
 int main(int argc, char **argv)
 {
-    printf("hello from an older upstream\\n");
+    printf("hello from the site overlay\\n");
     return 0;
 }
"""
# Applies cleanly to GREETING_C but no longer compiles: a site patch that breaks %build.
BROKEN_PATCH = """\
--- a/hello.c
+++ b/hello.c
@@ -1,6 +1,6 @@
 #include <stdio.h>
 int main(void)
 {
-    printf("hello from upstream\\n");
+    printf("hello from upstream\\n") return undeclared_site_variable;
     return 0;
 }
"""


@dataclass
class UpstreamPackage:
    name: str = "hello"
    version: str = "1.0"
    # Release as upstream writes it; %{?dist} is defined as ``dist`` when the SRPM is built.
    release: str = "1%{?dist}"
    dist: str = ".el9"
    epoch: int | None = None
    prep: str = "setup"  # "setup" (explicit %patch lines), "autosetup", or "autosetup-N" (%autosetup -N)
    build_requires: list[str] = field(default_factory=list)
    # Upstream's own patches, applied in the style above; the site patches go after them.
    upstream_patches: dict[str, str] = field(default_factory=dict)
    c_source: str = GREETING_C

    def spec_text(self) -> str:
        patch_tags = "".join(f"Patch{i}: {name}\n" for i, name in enumerate(self.upstream_patches))
        if self.prep == "autosetup":
            prep = "%autosetup -p1\n"
        elif self.prep == "autosetup-N":
            prep = "%autosetup -N\n" + "".join(f"%patch -P {i} -p1\n" for i in range(len(self.upstream_patches)))
        else:
            prep = "%setup -q\n" + "".join(f"%patch -P {i} -p1\n" for i in range(len(self.upstream_patches)))
        return textwrap.dedent("""\
            Name:           {name}
            {epoch}Version:        {version}
            Release:        {release}
            Summary:        Greets the user
            License:        MIT
            Source0:        {name}-{version}.tar.gz
            {patch_tags}{build_requires}
            %description
            A tiny program for testing overlay rebuilds.

            %prep
            {prep}
            %build
            make %{{?_smp_mflags}}

            %check
            make check

            %install
            install -D -m 0755 hello %{{buildroot}}%{{_bindir}}/{name}

            %files
            %{{_bindir}}/{name}

            %changelog
            * Mon Jan 08 2024 Upstream Packager <packager@example.com> - {version}-1
            - Initial package
            """).format(
            name=self.name, version=self.version, release=self.release, prep=prep,
            epoch=f"Epoch:          {self.epoch}\n" if self.epoch is not None else "",
            patch_tags=patch_tags,
            build_requires="".join(f"BuildRequires:  {br}\n" for br in self.build_requires))

    def tarball(self) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, text in (("hello.c", self.c_source), ("Makefile", MAKEFILE)):
                data = text.encode()
                info = tarfile.TarInfo(f"{self.name}-{self.version}/{name}")
                info.size = len(data)
                info.mtime = 1700000000
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    def build_srpm(self, workdir: Path) -> Path:
        """Real ``rpmbuild -bs``; returns the SRPM path."""
        top = workdir / f"upstream-{self.name}-{self.version}"
        (top / "SOURCES").mkdir(parents=True, exist_ok=True)
        (top / "SOURCES" / f"{self.name}-{self.version}.tar.gz").write_bytes(self.tarball())
        for name, text in self.upstream_patches.items():
            (top / "SOURCES" / name).write_text(text)
        spec = top / f"{self.name}.spec"
        spec.write_text(self.spec_text())
        subprocess.run(["rpmbuild", "--define", f"_topdir {top}", "--define", f"dist {self.dist}", "-bs", str(spec)],
                       check=True, capture_output=True, timeout=120)
        return next((top / "SRPMS").glob("*.src.rpm"))


SITE = {
    "name": "testsite",
    "store": {"root": "/nonexistent", "keep_builds": 2},
    "targets": {
        "el8-x86_64": {"release": 8, "arch": "x86_64", "mock_config": "rocky+epel-8-x86_64"},
        "el8-aarch64": {"release": 8, "arch": "aarch64", "mock_config": "rocky+epel-8-aarch64"},
        "el9-x86_64": {"release": 9, "arch": "x86_64", "mock_config": "rocky+epel-9-x86_64"},
        "el9-aarch64": {"release": 9, "arch": "aarch64", "mock_config": "rocky+epel-9-aarch64"},
    },
    "mirrors": {"appstream": {"url": "file://localhost/nonexistent/{release}/{arch}/"}},
    "overlays": {"hpc-overlay": {"description": "test overlay"}},
    "environments": {"daily": {}, "testing": {"source": "daily"}, "production": {"source": "testing"}},
    "jenkins": {"url": "https://jenkins.example.org/", "folder": "hpcos", "build_label": "rpm",
                "test_label": "test"},
    "harness": {"profile": "local.yaml"},
}


def make_site(root: Path, package: dict, patches: dict[str, str], site_changes: dict | None = None) -> SpecSet:
    """Write ``root/site.yaml``, ``root/<name>.yaml`` and its patches; load them with the real loader."""
    root.mkdir(parents=True, exist_ok=True)
    site = {**SITE, **(site_changes or {})}
    (root / "site.yaml").write_text(yaml.safe_dump(site))
    defaults = {"overlay": "hpc-overlay", "release_tag": ".hpc1", "targets": ["el9-x86_64"], "builder": "rpmbuild",
                "owner": "HPC Admins <hpc@example.org>", "tests": ["mpi"]}
    package = {**defaults, **package}
    (root / f"{package['name']}.yaml").write_text(yaml.safe_dump(package))
    patch_dir = root / "patches" / package["name"]
    patch_dir.mkdir(parents=True, exist_ok=True)
    for name, text in patches.items():
        (patch_dir / name).write_text(text)
    return load_specs(root)


def site_patch(file: str, reason: str = "Site needs this behaviour on compute nodes.",
               upstream: str | None = "https://bugs.example.org/1234") -> dict:
    entry = {"file": file, "reason": reason}
    if upstream:
        entry["upstream"] = upstream
    return entry


# Removes "hello" from the greeting, so the package still compiles but its %check (grep hello) fails.
CHECK_BREAKING_PATCH = """\
--- a/hello.c
+++ b/hello.c
@@ -1,6 +1,6 @@
 #include <stdio.h>
 int main(void)
 {
-    printf("hello from upstream\\n");
+    printf("greetings from upstream\\n");
     return 0;
 }
"""


def file_url(path: Path) -> str:
    """``file://localhost/...``: the spec model wants a host part, and dnf and urllib take this form too."""
    return "file://localhost" + str(path.resolve())


def repoquery(repo: Path, *args: str) -> list[str]:
    """Real ``dnf repoquery`` on a local repository (private cache, no system repos)."""
    proc = subprocess.run(
        ["dnf", "--setopt=reposdir=/dev/null", f"--setopt=cachedir={repo.parent / '.dnf-cache'}",
         "--setopt=metadata_expire=0", "--releasever=9", f"--repofrompath=r,{repo.resolve().as_uri()}", "--repo", "r",
         "-q", "repoquery", *args], capture_output=True, text=True, timeout=120, check=True)
    return sorted(line for line in proc.stdout.splitlines() if line.strip())


def rpm_query(path: Path, fmt: str) -> str:
    return subprocess.run(["rpm", "-qp", "--qf", fmt, str(path)], capture_output=True, text=True, timeout=60,
                          check=True).stdout


def make_repo(directory: Path, *rpms: Path) -> Path:
    """A local repository of the given RPMs (real createrepo_c), as the daily mirror would serve it."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in rpms:
        (directory / path.name).write_bytes(path.read_bytes())
    subprocess.run(["createrepo_c", "--update", "-q", str(directory)], check=True, timeout=120)
    return directory
