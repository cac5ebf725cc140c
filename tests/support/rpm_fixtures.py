"""Small real RPM packages for the rebuild tests: a spec file and tarball written here, turned into an
SRPM by the real rpmbuild, plus a site (site.yaml + package YAML + patches) loaded with load_specs.
The packages themselves are the demo's upstream distribution (hpcos/demo/upstream.py), one copy.

The package is a tiny C program with a Makefile and a %check that runs it, so a rebuild exercises
%prep (patches), %build (compiler), %check (tests) and %install for real in about a second.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import require_tool

from hpcos.demo.upstream import (  # noqa: F401  (the tests import them from here)
    GREETING_C,
    KERNEL_MAKEFILE,
    KERNEL_SPEC,
    REDHAT_PATCH,
    UCMA_C,
    KernelPackage,
    UpstreamPackage,
    el_host,
    gpg_signing_key,
    make_repo,
    rpmsign,
)
from hpcos.site.specs import SpecSet, load_specs

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
    "environments": {
        "daily": {},
        "testing": {"source": "daily"},
        "production": {"source": "testing"},
    },
    "jenkins": {
        "url": "https://jenkins.example.org/",
        "folder": "hpcos",
        "build_label": "rpm",
        "test_label": "test",
    },
    "harness": {"profile": "local.yaml"},
}


def make_site(
    root: Path, package: dict, patches: dict[str, str], site_changes: dict | None = None
) -> SpecSet:
    """Write ``root/site.yaml``, ``root/<name>.yaml`` and its patches; load them with the real loader."""
    root.mkdir(parents=True, exist_ok=True)
    site = {**SITE, **(site_changes or {})}
    (root / "site.yaml").write_text(yaml.safe_dump(site))
    defaults = {
        "overlay": "hpc-overlay",
        "release_tag": ".hpc1",
        "targets": ["el9-x86_64"],
        "builder": "rpmbuild",
        "owner": "HPC Admins <hpc@example.org>",
        "tests": ["mpi"],
    }
    package = {**defaults, **package}
    (root / f"{package['name']}.yaml").write_text(yaml.safe_dump(package))
    patch_dir = root / "patches" / package["name"]
    patch_dir.mkdir(parents=True, exist_ok=True)
    for name, text in patches.items():
        (patch_dir / name).write_text(text)
    return load_specs(root)


def site_patch(
    file: str,
    reason: str = "Site needs this behaviour on compute nodes.",
    upstream: str | None = "https://bugs.example.org/1234",
) -> dict:
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
        [
            "dnf",
            "--setopt=reposdir=/dev/null",
            f"--setopt=cachedir={repo.parent / '.dnf-cache'}",
            "--setopt=metadata_expire=0",
            "--releasever=9",
            f"--repofrompath=r,{repo.resolve().as_uri()}",
            "--repo",
            "r",
            "-q",
            "repoquery",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return sorted(line for line in proc.stdout.splitlines() if line.strip())


def rpm_query(path: Path, fmt: str) -> str:
    return subprocess.run(
        ["rpm", "-qp", "--qf", fmt, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


# The site patch: raise the backlog, in the tree the kernel spec cds into.
KERNEL_SITE_PATCH = """\
From 2222222222222222222222222222222222222222 Mon Sep 17 00:00:00 2001
From: HPC Admins <hpc@example.org>
Subject: [PATCH] RDMA/ucma: raise the default max_backlog to 4096

---
 drivers/infiniband/core/ucma.c | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

diff --git a/drivers/infiniband/core/ucma.c b/drivers/infiniband/core/ucma.c
--- a/drivers/infiniband/core/ucma.c
+++ b/drivers/infiniband/core/ucma.c
@@ -1,7 +1,7 @@
 #include <stdio.h>
~
 /* The listen backlog of rdma_cm's userspace interface. */
-static int max_backlog = 1024;
+static int max_backlog = 4096;
~
 int main(void)
 {
--
2.43.0
""".replace("\n~\n", "\n \n")  # blank context lines are one space in a diff


EL9_BUILD_TOOLS = {
    "rpmbuild": "rpm",
    "rpmspec": "rpm",
    "createrepo_c": "createrepo-c",
    "dnf": "dnf",
    "gcc": "gcc",
    "make": "make",
    "patch": "patch",
    "git": "git",
}


@pytest.fixture
def el9_build_host(tmp_path, monkeypatch):
    """This Debian host as an EL9 build host for the test (``el_host``), with the tools a rebuild runs.
    Modules that build take it with ``pytestmark = pytest.mark.usefixtures("el9_build_host")``."""
    for tool, debian in EL9_BUILD_TOOLS.items():
        require_tool(tool, debian)
    for key, value in el_host(tmp_path / "home").items():
        monkeypatch.setenv(key, value)
