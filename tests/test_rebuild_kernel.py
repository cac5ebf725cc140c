"""The site-patched kernel, rebuilt the way the RHEL/Fedora kernel spec wants it: a kernel-like SRPM
with RHEL 9's %prep layout (tests/support/rpm_fixtures.KernelPackage: `%setup -c`, `mv`, `cd
linux-%{KVERREL}`, ApplyOptionalPatch, no %patch lines), rebuilt by `hpcos build` with the real
rpmbuild.  The site patch must land inside the tree, before linux-kernel-test.patch, the release must
carry the site tag through `%define buildid`, and a reversed or stale site patch must be reported as
such (patch --dry-run and -R --dry-run in the unpacked tree).

The host check is satisfied with rpm_fixtures.el_host (an EL9 os-release and `%dist .el9`), as on
a real EL9 build agent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support.rpm_fixtures import (
    KERNEL_SITE_PATCH,
    KernelPackage,
    el9_build_host,  # noqa: F401 (a fixture)
    make_site,
    rpm_query,
    site_patch,
)

from hpcos.cli import main
from hpcos.core.store_layout import StoreLayout

pytestmark = pytest.mark.usefixtures("el9_build_host")

TARGET = "el9-x86_64"
PATCH = "0001-RDMA-ucma-raise-the-default-max_backlog-to-4096.patch"
REASON = "rdma_cm listen backlog of 1024 drops connections when 4000 MPI ranks start at once."
OVERLAY_RELEASE = "427.13.1.hpc1.el9_4"


def build_kernel(tmp_path: Path, upstream: KernelPackage) -> tuple[int, Path]:
    srpm = upstream.build_srpm(tmp_path / "upstream")
    make_site(
        tmp_path / "specs",
        {
            "name": "kernel",
            "overlay": "hpc-overlay",
            "upstream": {"srpm_path": str(srpm)},
            "patches": [site_patch(PATCH, REASON)],
        },
        {PATCH: KERNEL_SITE_PATCH},
    )
    store = tmp_path / "store"
    rc = main(
        [
            "--specs",
            str(tmp_path / "specs"),
            "--store",
            str(store),
            "build",
            "kernel",
            "--target",
            TARGET,
        ]
    )
    return rc, store


def last_build(store: Path) -> Path:
    return sorted(StoreLayout(store).build_dir("kernel", TARGET).iterdir())[-1]


def test_site_patch_goes_where_the_kernel_spec_applies_its_own(tmp_path):
    rc, store = build_kernel(tmp_path, KernelPackage())
    assert rc == 0

    build = last_build(store)
    record = json.loads((build / "build.json").read_text())
    assert record["patch_style"] == "kernel"
    assert record["overlay_evr"] == f"5.14.0-{OVERLAY_RELEASE}"
    spec = (build / "rpmbuild" / "SPECS" / "kernel.spec").read_text()
    local = f"hpcos-hpc1-{PATCH}"
    # Declared beside the kernel's own patches (ApplyPatch greps for exactly "PatchN: NAME"), applied
    # after Red Hat's patch and before the test-patch hook, in the tree the spec cds into.
    assert (
        f"Patch9000: {local}\n# empty final patch to facilitate testing of kernel patches\n" in spec
    )
    assert (
        f"ApplyOptionalPatch patch-%{{patchversion}}-redhat.patch\n\nApplyPatch {local}\n"
        "ApplyOptionalPatch linux-kernel-test.patch\n"
    ) in spec
    assert "%patch" not in spec
    # The release through buildid, as the spec's own hook has it; Release itself untouched.
    assert "%define buildid .hpc1\n" in spec and "# define buildid" not in spec
    assert "Release: %{pkg_release}\n" in spec

    repo = StoreLayout(store).overlay_repo("hpc-overlay", TARGET)
    binary = repo / f"kernel-5.14.0-{OVERLAY_RELEASE}.x86_64.rpm"
    assert binary.is_file() and (repo / f"kernel-5.14.0-{OVERLAY_RELEASE}.src.rpm").is_file()
    build_log = (build / "result" / "build.log").read_text()
    assert f"+ ApplyPatch {local}" in build_log

    # The patch really went into the tree: the built "kernel" reports the raised backlog.
    root = tmp_path / "root"
    subprocess.run(
        [
            "rpm",
            "--root",
            str(root),
            "--dbpath",
            str(root / "rpmdb"),
            "-i",
            "--nodeps",
            "--noscripts",
            str(binary),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    vmlinuz = root / "boot" / f"vmlinuz-5.14.0-{OVERLAY_RELEASE}.x86_64"
    assert (
        subprocess.run([str(vmlinuz)], capture_output=True, text=True, timeout=10).stdout
        == "max_backlog=4096\n"
    )
    # Red Hat's own patch still went in first.
    assert rpm_query(binary, "%{release}") == OVERLAY_RELEASE
    changelog = rpm_query(binary, "[%{changelogtext}\n]")
    assert f"{PATCH}: {REASON}" in changelog
    assert "Rebuild of kernel-5.14.0-427.13.1.el9_4 for site testsite (hpc-overlay)" in changelog


def test_a_patch_upstream_already_carries_is_reported_as_reversed(tmp_path, capsys):
    rc, store = build_kernel(tmp_path, KernelPackage(declaration="static int max_backlog = 4096;"))
    assert rc == 1
    failure = json.loads((last_build(store) / "build.json").read_text())["failure"]
    assert failure["kind"] == "patch-does-not-apply"
    assert failure["reversed"] is True
    assert failure["summary"] == (
        f"site patch {PATCH} is already upstream: it applies reversed to drivers/infiniband/core/ucma.c "
        "(patch -R --dry-run in the unpacked tree); drop it from kernel.yaml"
    )
    assert failure["summary"] in capsys.readouterr().err
    assert not StoreLayout(store).overlay_repo("hpc-overlay", TARGET).exists()


def test_a_patch_that_no_longer_applies_names_the_file_and_hunk(tmp_path):
    rc, store = build_kernel(
        tmp_path, KernelPackage(declaration="static unsigned int max_backlog = 1024;")
    )
    assert rc == 1
    failure = json.loads((last_build(store) / "build.json").read_text())["failure"]
    assert failure["kind"] == "patch-does-not-apply"
    assert failure["reversed"] is False
    assert failure["file"] == "drivers/infiniband/core/ucma.c"
    assert failure["hunks"] == ["Hunk #1 FAILED at 1"]
    assert failure["summary"] == (
        f"site patch {PATCH} no longer applies to drivers/infiniband/core/ucma.c: Hunk #1 FAILED at 1 "
        "(patch --dry-run in the unpacked tree); rebase it on the new upstream"
    )


def test_a_spec_whose_patch_style_is_unknown_is_refused_with_the_reason(tmp_path, capsys):
    upstream = KernelPackage()
    srpm = upstream.build_srpm(tmp_path / "upstream")
    # Rewrite %prep as a spec that unpacks by hand and applies patches in a loop of its own.
    top = tmp_path / "upstream" / "upstream-kernel"
    spec = (top / "kernel.spec").read_text()
    prep_start, build_start = spec.index("%prep\n"), spec.index("%build\n")
    spec = (
        spec[:prep_start]
        + (
            "%prep\ntar xzf %{SOURCE0}\ncd linux-%{tarfile_release}\n"
            "for p in %{patches}; do patch -p1 < $p; done\n\n"
        )
        + spec[build_start:]
    )
    (top / "kernel.spec").write_text(spec)
    srpm.unlink()
    subprocess.run(
        ["rpmbuild", "--define", f"_topdir {top}", "-bs", str(top / "kernel.spec")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    srpm = next((top / "SRPMS").glob("*.src.rpm"))
    make_site(
        tmp_path / "specs",
        {
            "name": "kernel",
            "upstream": {"srpm_path": str(srpm)},
            "patches": [site_patch(PATCH, REASON)],
        },
        {PATCH: KERNEL_SITE_PATCH},
    )
    rc = main(
        [
            "--specs",
            str(tmp_path / "specs"),
            "--store",
            str(tmp_path / "store"),
            "build",
            "kernel",
            "--target",
            TARGET,
        ]
    )
    assert rc == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "hpcos: kernel.spec: %prep applies patches its own way ('for p in %{patches}; do patch -p1 < $p; done'); "
        "hpcos cannot tell where a site patch belongs: apply it from the spec's own hook or convert the spec "
        "to %autosetup or %patch lines"
    )
