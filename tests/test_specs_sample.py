"""The shipped sample site must always load: it is what the README's first command renders."""

import subprocess

from conftest import require_tool

from hpcos.site.specs import load_specs


def test_sample_site_loads(repo_root):
    spec_set = load_specs(repo_root / "overlay_specs")
    assert spec_set.site.overlays["kernel-overlay"].fastpath
    assert "openmpi" in spec_set.packages
    # Overlaid packages leave the base mirror automatically.
    assert spec_set.is_excluded("appstream", "openmpi-devel")
    assert not spec_set.is_excluded("appstream", "bash")


def test_sample_site_has_every_overlay_package(repo_root):
    spec_set = load_specs(repo_root / "overlay_specs")
    assert sorted(spec_set.packages) == ["kernel", "mpich", "openmpi", "rdma-core", "ucx"]
    # The kernel sits alone in the fast-path overlay; everything else is in hpc-overlay.
    assert [p.name for p in spec_set.overlay_packages("kernel-overlay")] == ["kernel"]
    assert sorted(p.name for p in spec_set.overlay_packages("hpc-overlay")) == [
        "mpich",
        "openmpi",
        "rdma-core",
        "ucx",
    ]
    for package in spec_set.packages.values():
        assert (
            package.patches and package.tests and package.owner and package.release_tag == ".hpc1"
        )
        for patch in package.patches:
            assert spec_set.patch_path(package, patch).is_file()


def test_sample_overlays_leave_the_base_mirror(repo_root):
    spec_set = load_specs(repo_root / "overlay_specs")
    for binary in [
        "kernel",
        "kernel-core",
        "kernel-modules-extra",
        "perf",
        "bpftool",
        "rdma-core-devel",
        "libibverbs",
        "libibverbs-utils",
        "librdmacm-utils",
        "ibacm",
        "infiniband-diags",
        "ucx-ib",
        "mpich-devel",
    ]:
        assert spec_set.is_excluded("baseos", binary), binary
    for binary in ["bash", "glibc", "kernel-firmware-tools-x", "perftest", "opensm"]:
        assert spec_set.is_excluded("baseos", binary) == binary.startswith("kernel-"), binary
    assert spec_set.mock_config(spec_set.packages["kernel"], "el9-x86_64") == "site-kernel-9-x86_64"
    assert spec_set.mock_config(spec_set.packages["kernel"], "el8-x86_64") == "rocky+epel-8-x86_64"


def test_sample_patches_are_well_formed_unified_diffs(repo_root):
    """git parses each patch exactly as `git am`/`patch -p1` would see it (no tree needed for --numstat)."""
    git = require_tool("git", "git")
    patches = sorted((repo_root / "overlay_specs" / "patches").glob("*/*.patch"))
    assert len(patches) == 6
    for patch in patches:
        proc = subprocess.run(
            [git, "apply", "--numstat", str(patch)], capture_output=True, text=True, timeout=30
        )
        assert proc.returncode == 0, f"{patch.name}: {proc.stderr}"
        added, removed, path = proc.stdout.split("\t")
        assert int(added) + int(removed) > 0 and path.strip()
        head = patch.read_text().splitlines()
        assert (
            head[0].startswith("From ")
            and head[1].startswith("From: ")
            and head[3].startswith("Subject: ")
        )


def test_urls_expand_per_target(repo_root):
    spec_set = load_specs(repo_root / "overlay_specs")
    assert spec_set.expand(spec_set.site.mirrors["baseos"].url, "el9-aarch64") == (
        "https://dl.rockylinux.org/pub/rocky/9/BaseOS/aarch64/os/"
    )
    assert spec_set.expand("/srv/{target}/{release}", "el8-x86_64") == "/srv/el8-x86_64/8"
