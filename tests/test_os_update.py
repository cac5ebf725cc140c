"""OS-update checks: the testing repo read with real rpmbuild/createrepo_c/dnf, node answers compared.

The end-to-end case runs ``hpcos test`` on integration_tests/test_os_update.py against a testing
repository built here; this Debian machine has neither that kernel nor those RPMs installed, so it
is a node that missed the update, and its results must say so, naming it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, require_tool

from harness import os_update
from hpcos.results.model import RunResults

PACKAGES = {"kernel": ("5.14.0", "427.13.1.el9_4"), "openmpi": ("4.1.6", "1.el9"), "mpich": ("4.1.2", "1.el9")}


@pytest.fixture(scope="module")
def testing_repo(tmp_path_factory):
    """A real RPM repository: one empty x86_64 package per name, two versions of openmpi."""
    require_tool("rpmbuild", "rpm")
    require_tool("createrepo_c", "createrepo-c")
    require_tool("dnf", "dnf")
    top = tmp_path_factory.mktemp("rpmtop")
    builds = [*PACKAGES.items(), ("openmpi", ("4.1.5", "3.el9"))]
    for name, (version, release) in builds:
        spec = top / f"{name}-{version}.spec"
        spec.write_text(f"Name: {name}\nVersion: {version}\nRelease: {release}\nSummary: t\nLicense: MIT\n"
                        f"%description\nt\n%files\n")
        subprocess.run(["rpmbuild", "--define", f"_topdir {top}", "--define", "_build_id_links none",
                        "--target", "x86_64", "-bb", str(spec)], check=True, capture_output=True, timeout=120)
    subprocess.run(["createrepo_c", "-q", str(top / "RPMS")], check=True, timeout=120)
    return f"file://{top / 'RPMS'}"


def test_newest_in_repo_reads_the_testing_repository(testing_repo):
    newest = os_update.newest_in_repo(testing_repo, ["kernel", "openmpi", "mpich", "ucx"])
    assert newest == {"kernel": {"5.14.0-427.13.1.el9_4.x86_64"}, "openmpi": {"4.1.6-1.el9.x86_64"},
                      "mpich": {"4.1.2-1.el9.x86_64"}}


def test_an_unreadable_repository_is_an_error_with_dnf_text(tmp_path):
    require_tool("dnf", "dnf")
    with pytest.raises(os_update.RepoQueryFailed,
                       match=r"dnf repoquery on file:///nonexistent exit 1: .*Failed to download metadata"):
        os_update.newest_in_repo("file:///nonexistent", ["kernel"], timeout=60)


RPM_Q_OUTPUT = """openmpi 4.1.5-3.el9.x86_64
package mpich is not installed
ucx 1.15.0-2.el9.x86_64
"""
EXPECTED = {"openmpi": {"4.1.6-1.el9.x86_64"}, "mpich": {"4.1.2-1.el9.x86_64"}, "ucx": {"1.15.0-2.el9.x86_64"}}


def test_package_problems_name_the_node_and_both_versions():
    problems = os_update.package_problems("node007", RPM_Q_OUTPUT, EXPECTED, ["openmpi", "mpich", "ucx", "rdma-core"])
    assert problems == [
        "node007: openmpi 4.1.5-3.el9.x86_64 installed, testing has 4.1.6-1.el9.x86_64",
        "node007: mpich is not installed (testing has 4.1.2-1.el9.x86_64)",
        "rdma-core: not in the testing repositories",
    ]


def test_an_updated_node_has_no_problems():
    text = "openmpi 4.1.6-1.el9.x86_64\nopenmpi 4.1.6-1.el9.i686\nmpich 4.1.2-1.el9.x86_64\nucx 1.15.0-2.el9.x86_64\n"
    assert os_update.package_problems("node001", text, EXPECTED, ["openmpi", "mpich", "ucx"]) == []


def test_kernel_verdict():
    verdict = os_update.KernelVerdict("5.14.0-362.8.1.el9_3.x86_64", {"5.14.0-427.13.1.el9_4.x86_64"})
    assert not verdict.ok
    assert verdict.message("node003") == ("node003 runs kernel 5.14.0-362.8.1.el9_3.x86_64; the testing "
                                          "repositories have 5.14.0-427.13.1.el9_4.x86_64")
    assert os_update.KernelVerdict("5.14.0-427.13.1.el9_4.x86_64", {"5.14.0-427.13.1.el9_4.x86_64"}).ok


def test_a_node_that_missed_the_update_is_named(tmp_path, testing_repo):
    require_tool("rpm", "rpm")
    data = yaml.safe_load((REPO / "integration_tests" / "clusters" / "local.yaml").read_text())
    data["os_update"] = {"testing_repo": testing_repo, "kernel_package": "kernel", "packages": ["openmpi", "mpich"]}
    profile = tmp_path / "updated.yaml"
    profile.write_text(yaml.safe_dump(data))
    results = tmp_path / "results.json"
    done = subprocess.run([str(os.path.join(os.path.dirname(sys.executable), "hpcos")), "test", "--cluster",
                           str(profile), "--results", str(results), "integration_tests/test_os_update.py",
                           "-p", "no:cacheprovider"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout[-2000:]
    run = RunResults.read(results)
    kernel = next(r for r in run.results if "test_running_kernel" in r.test_id)
    packages = next(r for r in run.results if "test_overlay_packages" in r.test_id)
    running = os.uname().release
    assert (kernel.outcome, kernel.node) == ("failed", "localhost")
    assert (f"localhost runs kernel {running}; the testing repositories have 5.14.0-427.13.1.el9_4.x86_64"
            in kernel.message)
    assert (packages.outcome, packages.node) == ("failed", "localhost")
    assert "localhost: openmpi is not installed (testing has 4.1.6-1.el9.x86_64)" in packages.message
    assert "localhost: mpich is not installed (testing has 4.1.2-1.el9.x86_64)" in packages.message
