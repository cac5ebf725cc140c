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

import pytest
import yaml
from conftest import require_tool

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
    # False: no automatic libc requirements, so dnf installs the package into an empty install root.
    autoreq: bool = True

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
            build_requires="".join(f"BuildRequires:  {br}\n" for br in self.build_requires)
            + ("" if self.autoreq else "AutoReqProv:    no\n"))

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


# --- A kernel-like package with the RHEL 9 kernel.spec layout (a few files, not a real kernel) -------------------
#
# What matters is %prep, laid out as RHEL 9's kernel.spec lays it out: Patch tags ending with the
# empty linux-kernel-test.patch, the ApplyPatch/ApplyOptionalPatch shell functions, `%setup -q -c`
# into kernel-VERSION-RELEASE, `mv linux-<tarfile_release> linux-%{KVERREL}`, `cd linux-%{KVERREL}`,
# then ApplyOptionalPatch for Red Hat's patch and for linux-kernel-test.patch.  Release comes from
# `%{specrelease}`, which carries `%{?buildid}` before `%{?dist}`; `# define buildid .local` is the
# commented hook.  Patches go through RHEL 9's `git --work-tree=. apply`, whose failure output
# ("error: patch failed: FILE:LINE") names no hunk: hpcos's dry runs in the tree do.

UCMA_C = """\
#include <stdio.h>

/* The listen backlog of rdma_cm's userspace interface. */
{declaration}

int main(void)
{{
    printf("max_backlog=%d\\n", max_backlog);
    return 0;
}}
"""
KERNEL_MAKEFILE = "vmlinuz: drivers/infiniband/core/ucma.c\n\t$(CC) -o vmlinuz drivers/infiniband/core/ucma.c\n"
# Red Hat's own patch (more than nine lines, so ApplyOptionalPatch applies it): adds the localversion file.
REDHAT_PATCH = """\
diff --git a/localversion-rhel b/localversion-rhel
new file mode 100644
--- /dev/null
+++ b/localversion-rhel
@@ -0,0 +1,8 @@
+# Red Hat Enterprise Linux kernel
+#
+# This file is added by patch-5.14-redhat.patch,
+# as Red Hat's own changes are applied before
+# any test patch.
+#
+# (a stand-in for the real patch)
+-427.13.1
"""
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
KERNEL_SPEC = """\
# define buildid .local
%define specrpmversion 5.14.0
%define specversion 5.14.0
%define patchversion 5.14
%define kversion 5
%define tarfile_release 5.14.0-427.13.1.el9_4
%define specrelease 427.13.1%{?buildid}%{?dist}
%define pkg_release %{specrelease}
%global debug_package %{nil}

Name: kernel
Summary: The Linux kernel (a stand-in with the RHEL 9 spec layout)
License: GPLv2
URL: https://www.kernel.org/
Version: %{specrpmversion}
Release: %{pkg_release}
%define KVERREL %{specversion}-%{release}.%{_target_cpu}

Source0: linux-%{tarfile_release}.tar.gz
Source1: Makefile.rhelver

## Patches needed for building this package

Patch1: patch-%{patchversion}-redhat.patch

# empty final patch to facilitate testing of kernel patches
Patch999999: linux-kernel-test.patch

# END OF PATCH DEFINITIONS

%description
The kernel meta package (stand-in).

%prep
# more sanity checking; do it quietly
if [ "%{patches}" != "%%{patches}" ] ; then
  for patch in %{patches} ; do
    if [ ! -f $patch ] ; then
      echo "ERROR: Patch  ${patch##/*/}  listed in specfile but is missing"
      exit 1
    fi
  done
fi 2>/dev/null

patch_command='git --work-tree=. apply'
ApplyPatch()
{
  local patch=$1
  shift
  if [ ! -f $RPM_SOURCE_DIR/$patch ]; then
    exit 1
  fi
  if ! grep -E "^Patch[0-9]+: $patch\\$" %{_specdir}/${RPM_PACKAGE_NAME}.spec ; then
    if [ "${patch:0:8}" != "patch-%{kversion}." ] ; then
      echo "ERROR: Patch  $patch  not listed as a source patch in specfile"
      exit 1
    fi
  fi 2>/dev/null
  $patch_command ${1+"$@"} < "$RPM_SOURCE_DIR/$patch"
}

# don't apply patch if it's empty
ApplyOptionalPatch()
{
  local patch=$1
  shift
  if [ ! -f $RPM_SOURCE_DIR/$patch ]; then
    exit 1
  fi
  local C=$(wc -l $RPM_SOURCE_DIR/$patch | awk '{print $1}')
  if [ "$C" -gt 9 ]; then
    ApplyPatch $patch ${1+"$@"}
  fi
}

%setup -q -n %{name}-%{specrpmversion}-%{specrelease} -c
mv linux-%{tarfile_release} linux-%{KVERREL}

cd linux-%{KVERREL}
cp -a %{SOURCE1} .

ApplyOptionalPatch patch-%{patchversion}-redhat.patch

ApplyOptionalPatch linux-kernel-test.patch

# END OF PATCH APPLICATIONS

%build
cd linux-%{KVERREL}
make %{?_smp_mflags}

%install
cd linux-%{KVERREL}
install -D -m 0755 vmlinuz %{buildroot}/boot/vmlinuz-%{KVERREL}

%files
/boot/vmlinuz-%{KVERREL}

%changelog
* Tue Apr 16 2024 Upstream Kernel Maintainer <kernel@example.com> - 5.14.0-427.13.1.el9_4
- Stand-in for the RHEL 9.4 kernel
"""


@dataclass
class KernelPackage:
    """The kernel-like SRPM; ``declaration`` is the line the site patch changes (its upstream state)."""

    declaration: str = "static int max_backlog = 1024;"
    dist: str = ".el9_4"

    def tarball(self) -> bytes:
        buf = io.BytesIO()
        top = "linux-5.14.0-427.13.1.el9_4"
        files = {"Makefile": KERNEL_MAKEFILE,
                 "drivers/infiniband/core/ucma.c": UCMA_C.format(declaration=self.declaration)}
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(f"{top}/{name}")
                info.size = len(data)
                info.mtime = 1700000000
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    def build_srpm(self, workdir: Path) -> Path:
        top = workdir / "upstream-kernel"
        sources = top / "SOURCES"
        sources.mkdir(parents=True, exist_ok=True)
        (sources / "linux-5.14.0-427.13.1.el9_4.tar.gz").write_bytes(self.tarball())
        (sources / "Makefile.rhelver").write_text("RHEL_MAJOR = 9\nRHEL_MINOR = 4\n")
        (sources / "patch-5.14-redhat.patch").write_text(REDHAT_PATCH)
        (sources / "linux-kernel-test.patch").write_text("")
        spec = top / "kernel.spec"
        spec.write_text(KERNEL_SPEC)
        subprocess.run(["rpmbuild", "--define", f"_topdir {top}", "--define", f"dist {self.dist}", "-bs", str(spec)],
                       check=True, capture_output=True, timeout=120)
        return next((top / "SRPMS").glob("*.src.rpm"))


def el_host(home: Path, release: int = 9) -> dict[str, str]:
    """Environment that makes this Debian host present itself as an EL host of ``release`` to
    ``hpcos build``'s rpmbuild host check: an os-release file named by $SYSTEMD_OS_RELEASE (the
    override os-release(5) documents), and ``%dist .elN`` and EL's bash as build shell in
    ``$HOME/.rpmmacros``, which the real ``rpm --eval %{dist}`` and rpmbuild read.  Used where a
    test needs a published rpmbuild build; a real EL build agent needs neither."""
    home.mkdir(parents=True, exist_ok=True)
    # EL's /bin/sh is bash, and the kernel spec's %prep relies on it (${patch:0:8}); Debian's is dash.
    (home / ".rpmmacros").write_text(f"%dist .el{release}\n%_buildshell /bin/bash\n")
    os_release = home / "os-release"
    os_release.write_text(f'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="{release}.4"\n'
                          f'PRETTY_NAME="Rocky Linux {release}.4 (test stand-in)"\n')
    return {"SYSTEMD_OS_RELEASE": str(os_release), "HOME": str(home)}


EL9_BUILD_TOOLS = {"rpmbuild": "rpm", "rpmspec": "rpm", "createrepo_c": "createrepo-c", "dnf": "dnf", "gcc": "gcc",
                   "make": "make", "patch": "patch", "git": "git"}


@pytest.fixture
def el9_build_host(tmp_path, monkeypatch):
    """This Debian host as an EL9 build host for the test (``el_host``), with the tools a rebuild runs.
    Modules that build take it with ``pytestmark = pytest.mark.usefixtures("el9_build_host")``."""
    for tool, debian in EL9_BUILD_TOOLS.items():
        require_tool(tool, debian)
    for key, value in el_host(tmp_path / "home").items():
        monkeypatch.setenv(key, value)


def gpg_signing_key(home: Path, uid: str) -> Path:
    """A passphrase-less RSA signing key made by the real gpg in ``home``; returns its exported public key.
    The caller stops the agent it leaves (``gpgconf --homedir HOME --kill all``)."""
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run(gpg + ["--quick-gen-key", uid, "rsa2048", "sign", "never"], check=True, capture_output=True,
                   timeout=120)
    public = home / "public.asc"
    public.write_bytes(subprocess.run(gpg + ["--armor", "--export", uid], check=True, capture_output=True,
                                      timeout=60).stdout)
    return public


def rpmsign(paths: list[Path], home: Path, key: str) -> None:
    """The real rpmsign (RECIPES: Debian's %__gpg names a gpg2 that does not exist)."""
    subprocess.run(["rpmsign", "--define", f"_gpg_name {key}", "--define", f"_gpg_path {home}",
                    "--define", "__gpg /usr/bin/gpg", "--addsign", *map(str, paths)], check=True,
                   capture_output=True, timeout=120)
