"""OS-update checks: the snapshot under test read from the store (real rpmbuild/createrepo_c
repositories, every one of the snapshot), node answers compared.

The end-to-end case runs ``hpcos test`` on integration_tests/test_os_update.py against a testing
snapshot built here; this Debian machine has neither that kernel nor those RPMs installed, so it
is a node that missed the update, and its results must say so, naming it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, require_tool
from support.rpm_repo_fixtures import Rpm, RpmFactory, make_repo, make_site

from hpcos.cluster.profiles import Profile
from hpcos.core.errors import UserError
from hpcos.core.store_layout import StoreLayout
from hpcos.repo import os_update
from hpcos.repo.environments import Environments
from hpcos.repo.snapshots import SnapshotStore
from hpcos.results.model import RunResults
from hpcos.site import Site

HPC, KERNEL, BASE = "hpc-overlay-el9-x86_64", "kernel-overlay-el9-x86_64", "base-el9-x86_64"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A site whose testing snapshot holds the kernel, the MPI stacks and a base package in three
    repositories, two versions of openmpi in the overlay, and an older openmpi in the mirror."""
    factory = RpmFactory(tmp_path_factory.mktemp("rpms"))
    repo_site = make_site(factory, tmp_path_factory.mktemp("site"))
    store = SnapshotStore(StoreLayout(repo_site.store).snapshots)
    staging = store.stage("testing")
    contents = {
        KERNEL: [Rpm("kernel", "5.14.0", "427.13.1.el9_4", "x86_64")],
        HPC: [
            Rpm("openmpi", "4.1.6", "1.el9", "x86_64"),
            Rpm("openmpi", "4.1.5", "3.el9", "x86_64"),
            Rpm("mpich", "4.1.2", "1.el9", "x86_64"),
        ],
        BASE: [Rpm("openmpi", "4.1.9", "1.el9", "x86_64"), Rpm("alpha", "1.0")],
    }
    for entry, rpms in contents.items():
        make_repo(factory, staging.new_entry(entry), rpms)
    snapshot = staging.commit()
    Environments(StoreLayout(repo_site.store)).environment("testing").switch(snapshot.id, "promote")
    repo_site.snapshot = snapshot.id
    return repo_site


def _profile(**os_update):
    data = yaml.safe_load((REPO / "integration_tests" / "clusters" / "local.yaml").read_text())
    data["os_update"] = {
        "environment": "testing",
        "kernel_package": "kernel",
        "packages": ["openmpi", "mpich"],
        **os_update,
    }
    return Profile.model_validate(data)


def test_every_repository_of_the_snapshot_is_read_overlays_first(site, monkeypatch):
    monkeypatch.delenv("HPCOS_TESTING_SNAPSHOT", raising=False)
    snapshot, versions = os_update.snapshot_versions(
        Site.from_options(site.specs, site.store), _profile(), ["kernel", "openmpi", "mpich", "ucx"]
    )
    assert snapshot == site.snapshot
    # openmpi 4.1.9 of the mirror loses to the overlay's newest: the .repo file's priorities.
    assert versions == {
        "kernel": {"5.14.0-427.13.1.el9_4.x86_64"},
        "openmpi": {"4.1.6-1.el9.x86_64"},
        "mpich": {"4.1.2-1.el9.x86_64"},
    }


def test_the_snapshot_the_nightly_job_names_is_the_one_read(site, monkeypatch):
    monkeypatch.setenv("HPCOS_TESTING_SNAPSHOT", "20990101T000000Z-testing-000000")
    with pytest.raises(UserError, match="no snapshot '20990101T000000Z-testing-000000'"):
        os_update.snapshot_versions(
            Site.from_options(site.specs, site.store), _profile(), ["kernel"]
        )


RPM_Q_OUTPUT = """openmpi 4.1.5-3.el9.x86_64
package mpich is not installed
ucx 1.15.0-2.el9.x86_64
"""
EXPECTED = {
    "openmpi": {"4.1.6-1.el9.x86_64"},
    "mpich": {"4.1.2-1.el9.x86_64"},
    "ucx": {"1.15.0-2.el9.x86_64"},
}


def test_package_problems_name_the_node_and_both_versions():
    problems = os_update.package_problems(
        "node007", RPM_Q_OUTPUT, EXPECTED, ["openmpi", "mpich", "ucx", "rdma-core"]
    )
    assert problems == [
        "node007: openmpi 4.1.5-3.el9.x86_64 installed, testing has 4.1.6-1.el9.x86_64",
        "node007: mpich is not installed (testing has 4.1.2-1.el9.x86_64)",
        "rdma-core: not in the testing repositories",
    ]


def test_an_updated_node_has_no_problems():
    text = "openmpi 4.1.6-1.el9.x86_64\nopenmpi 4.1.6-1.el9.i686\nmpich 4.1.2-1.el9.x86_64\nucx 1.15.0-2.el9.x86_64\n"
    assert os_update.package_problems("node001", text, EXPECTED, ["openmpi", "mpich", "ucx"]) == []


def test_kernel_verdict():
    verdict = os_update.KernelVerdict(
        "5.14.0-362.8.1.el9_3.x86_64", {"5.14.0-427.13.1.el9_4.x86_64"}
    )
    assert not verdict.ok
    assert verdict.message("node003") == (
        "node003 runs kernel 5.14.0-362.8.1.el9_3.x86_64; the testing "
        "repositories have 5.14.0-427.13.1.el9_4.x86_64"
    )
    assert os_update.KernelVerdict(
        "5.14.0-427.13.1.el9_4.x86_64", {"5.14.0-427.13.1.el9_4.x86_64"}
    ).ok


def test_a_node_that_missed_the_update_is_named(tmp_path, site):
    require_tool("rpm", "rpm")
    data = yaml.safe_load((REPO / "integration_tests" / "clusters" / "local.yaml").read_text())
    data["os_update"] = {
        "environment": "testing",
        "kernel_package": "kernel",
        "packages": ["openmpi", "mpich"],
    }
    profile = tmp_path / "updated.yaml"
    profile.write_text(yaml.safe_dump(data))
    results = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if k != "HPCOS_TESTING_SNAPSHOT"}
    done = subprocess.run(
        [
            str(os.path.join(os.path.dirname(sys.executable), "hpcos")),
            "--specs",
            str(site.specs),
            "--store",
            str(site.store),
            "test",
            "--cluster",
            str(profile),
            "--results",
            str(results),
            "integration_tests/test_os_update.py",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 1, done.stdout[-2000:]
    run = RunResults.read(results)
    kernel = next(r for r in run.results if "test_running_kernel" in r.test_id)
    packages = next(r for r in run.results if "test_overlay_packages" in r.test_id)
    running = os.uname().release
    assert (kernel.outcome, kernel.node) == ("failed", "localhost")
    assert (
        f"localhost runs kernel {running}; the testing repositories have 5.14.0-427.13.1.el9_4.x86_64"
        in kernel.message
    )
    assert (packages.outcome, packages.node) == ("failed", "localhost")
    assert (
        "localhost: openmpi is not installed (testing has 4.1.6-1.el9.x86_64)" in packages.message
    )
    assert "localhost: mpich is not installed (testing has 4.1.2-1.el9.x86_64)" in packages.message
