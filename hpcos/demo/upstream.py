"""The demo's upstream distribution: small real RPM packages built by the real rpmbuild, signed by
an "upstream" key with the real gpg and rpmsign, in repositories made by the real createrepo_c.

Two kinds of package, shared with the project's tests (tests/support/rpm_fixtures.py uses them from
here): a tiny C program with a Makefile and a %check (``UpstreamPackage``), and a kernel-like SRPM
with the RHEL 9 kernel.spec layout (``KernelPackage``): what the rebuild has to get right is %prep,
laid out as RHEL 9 lays it out.  ``PatchedTree`` turns a site patch into the upstream files it
applies to (its pre-image), so the shipped overlay_specs/ patches apply to the demo's sources.
"""

from __future__ import annotations

import io
import re
import tarfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from hpcos.core.errors import UserError
from hpcos.core.runner import run

GREETING_C = '#include <stdio.h>\nint main(void)\n{\n    printf("hello from upstream\\n");\n    return 0;\n}\n'
MAKEFILE = "all: hello\nhello: hello.c\n\t$(CC) -o hello hello.c\ncheck: hello\n\t./hello | grep -q hello\n"

MAKEFILE = "all: hello\nhello: hello.c\n\t$(CC) -o hello hello.c\ncheck: hello\n\t./hello | grep -q hello\n"


def _run(argv: list[str], timeout: float = 120, env: dict | None = None) -> str:
    """A build tool that must succeed: its own words in the error when it does not."""
    done = run(argv, timeout=timeout, env=env)
    if done.exit_code != 0:
        raise UserError(f"{argv[0]} failed (exit {done.exit_code}): {done.output.strip()[-2000:]}")
    return done.stdout


@dataclass
class UpstreamPackage:
    name: str = "hello"
    version: str = "1.0"
    # Release as upstream writes it; %{?dist} is defined as ``dist`` when the SRPM is built.
    release: str = "1%{?dist}"
    dist: str = ".el9"
    epoch: int | None = None
    prep: str = (
        "setup"  # "setup" (explicit %patch lines), "autosetup", or "autosetup-N" (%autosetup -N)
    )
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
            prep = "%autosetup -N\n" + "".join(
                f"%patch -P {i} -p1\n" for i in range(len(self.upstream_patches))
            )
        else:
            prep = "%setup -q\n" + "".join(
                f"%patch -P {i} -p1\n" for i in range(len(self.upstream_patches))
            )
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
            name=self.name,
            version=self.version,
            release=self.release,
            prep=prep,
            epoch=f"Epoch:          {self.epoch}\n" if self.epoch is not None else "",
            patch_tags=patch_tags,
            build_requires="".join(f"BuildRequires:  {br}\n" for br in self.build_requires)
            + ("" if self.autoreq else "AutoReqProv:    no\n"),
        )

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
        return _source_rpm(top, spec, self.dist)


def _source_rpm(top: Path, spec: Path, dist: str) -> Path:
    """``rpmbuild -bs`` of ``spec`` in the tree ``top``: the SRPM it wrote."""
    _run(["rpmbuild", "--define", f"_topdir {top}", "--define", f"dist {dist}", "-bs", str(spec)])
    return next((top / "SRPMS").glob("*.src.rpm"))


def make_repo(directory: Path, *rpms: Path) -> Path:
    """A local repository of the given RPMs (real createrepo_c), as the daily mirror would serve it."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in rpms:
        (directory / path.name).write_bytes(path.read_bytes())
    _run(["createrepo_c", "--update", "-q", str(directory)])
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
KERNEL_MAKEFILE = (
    "vmlinuz: drivers/infiniband/core/ucma.c\n\t$(CC) -o vmlinuz drivers/infiniband/core/ucma.c\n"
)
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
    """The kernel-like SRPM; ``declaration`` is the line the site patch changes (its upstream state).
    ``files`` replaces the tree (Makefile included) when given: the demo's tree is the pre-image of
    the shipped kernel patches."""

    declaration: str = "static int max_backlog = 1024;"
    dist: str = ".el9_4"
    files: dict[str, str] | None = None
    release: str = "427.13.1"  # upstream's kernel release (a security update raises it)

    def tarball(self) -> bytes:
        buf = io.BytesIO()
        top = f"linux-5.14.0-{self.release}.el9_4"
        files = self.files or {
            "Makefile": KERNEL_MAKEFILE,
            "drivers/infiniband/core/ucma.c": UCMA_C.format(declaration=self.declaration),
        }
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
        (sources / f"linux-5.14.0-{self.release}.el9_4.tar.gz").write_bytes(self.tarball())
        (sources / "Makefile.rhelver").write_text("RHEL_MAJOR = 9\nRHEL_MINOR = 4\n")
        (sources / "patch-5.14-redhat.patch").write_text(REDHAT_PATCH)
        (sources / "linux-kernel-test.patch").write_text("")
        spec = top / "kernel.spec"
        spec.write_text(KERNEL_SPEC.replace("427.13.1", self.release))
        return _source_rpm(top, spec, self.dist)


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
    os_release.write_text(
        f'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="{release}.4"\n'
        f'PRETTY_NAME="Rocky Linux {release}.4 (test stand-in)"\n'
    )
    return {"SYSTEMD_OS_RELEASE": str(os_release), "HOME": str(home)}


def gpg_signing_key(home: Path, uid: str) -> Path:
    """A passphrase-less RSA signing key made by the real gpg in ``home``; returns its exported public key.
    The caller stops the agent it leaves (``gpgconf --homedir HOME --kill all``)."""
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    gpg = [
        "gpg",
        "--homedir",
        str(home),
        "--batch",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
    ]
    _run(gpg + ["--quick-gen-key", uid, "rsa2048", "sign", "never"])
    public = home / "public.asc"
    public.write_text(_run(gpg + ["--armor", "--export", uid]))
    return public


def rpmsign(paths: list[Path], home: Path, key: str) -> None:
    """The real rpmsign (RECIPES: Debian's %__gpg names a gpg2 that does not exist)."""
    _run(
        [
            "rpmsign",
            "--define",
            f"_gpg_name {key}",
            "--define",
            f"_gpg_path {home}",
            "--define",
            "__gpg /usr/bin/gpg",
            "--addsign",
            *map(str, paths),
        ]
    )


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@")


def pre_image(patches: list[str]) -> dict[str, str]:
    """The upstream files ``patches`` apply to, as far as the patches show them: every hunk's context
    and removed lines at the line numbers its header names, filler lines in between.  The demo's
    upstream sources are made this way from the shipped site patches, so those patches apply."""
    files: dict[str, list[str]] = {}
    for text in patches:
        current: list[str] | None = None
        lines = iter(text.splitlines())
        for line in lines:
            if line.startswith("--- "):
                target = next(lines, "")
                name = target[4:].split("\t")[0]
                current = files.setdefault(name[2:] if name.startswith("b/") else name, [])
                continue
            match = _HUNK.match(line)
            if match is None or current is None:
                continue
            start, count = int(match[1]), int(match[2] or 1)
            while len(current) < start - 1:
                current.append(f"/* upstream line {len(current) + 1} */")
            taken = 0
            for body in lines:
                if taken >= count:
                    break
                if body.startswith((" ", "-")) or body == "":
                    current.append(body[1:])
                    taken += 1
                # "+" lines are the site's: not upstream's.
    return {name: "\n".join(content) + "\n" for name, content in files.items()}


TREE_SPEC = """\
%global debug_package %{{nil}}
Name:           {name}
Version:        {version}
Release:        {release}%{{?dist}}
Summary:        {name}, as far as the site's patches touch it (a stand-in for the real sources)
License:        BSD
Source0:        {name}-{version}.tar.gz
AutoReqProv:    no

%description
The files of upstream {name} that the site patches, at the lines the patches name.

%prep
%autosetup -p1

%build

%install
mkdir -p %{{buildroot}}/usr/share/{name}
cp -a . %{{buildroot}}/usr/share/{name}/

%files
/usr/share/{name}

%changelog
* Mon Jan 08 2024 Upstream Packager <packager@example.com> - {version}-{release}
- Stand-in release
"""


@dataclass
class TreePackage:
    """An upstream source package made of ``files`` (``pre_image`` of the site's patches), installed
    under /usr/share/NAME: enough for the patches to apply, the rebuild to run and dnf to install it."""

    name: str
    version: str
    files: dict[str, str]
    dist: str = ".el9"
    release: int = 1

    def build_srpm(self, workdir: Path) -> Path:
        top = workdir / f"upstream-{self.name}"
        (top / "SOURCES").mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, text in sorted(self.files.items()):
                data = text.encode()
                info = tarfile.TarInfo(f"{self.name}-{self.version}/{name}")
                info.size = len(data)
                info.mtime = 1700000000
                tar.addfile(info, io.BytesIO(data))
        (top / "SOURCES" / f"{self.name}-{self.version}.tar.gz").write_bytes(buf.getvalue())
        spec = top / f"{self.name}.spec"
        spec.write_text(
            TREE_SPEC.format(name=self.name, version=self.version, release=self.release)
        )
        return _source_rpm(top, spec, self.dist)


def rebuild_binaries(srpm: Path, workdir: Path, dist: str) -> list[Path]:
    """Upstream's binary packages of ``srpm`` (real ``rpmbuild --rebuild``; EL's bash as build shell)."""
    top = workdir / f"binary-{srpm.name}"
    _run(
        [
            "rpmbuild",
            "--define",
            f"_topdir {top}",
            "--define",
            f"dist {dist}",
            "--define",
            "_buildshell /bin/bash",
            "--nocheck",
            "--rebuild",
            str(srpm),
        ],
        timeout=300,
    )
    return sorted((top / "RPMS").rglob("*.rpm"))
