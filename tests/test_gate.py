"""The production gate refuses every run that does not prove the testing snapshot, with the reason in one line.

Snapshots are real repositories (rpmbuild, createrepo_c) so "which packages changed" is read from their
metadata as in production; runs go through ``hpcos repo record-run`` and promotions through
``hpcos repo promote`` (the site's profile resolved from site.yaml ``harness.profile``).  Deployment
records are written directly here: the deployment that produces them is tests/test_deploy.py's.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from support.rpm_repo_fixtures import Rpm, RpmFactory, make_repo, make_site

from hpcos.cli import main
from hpcos.core.store_layout import StoreLayout
from hpcos.repo import deployments
from hpcos.repo.deployments import DeploymentRecord, NodeDeployment
from hpcos.repo.environments import Environments
from hpcos.repo.snapshots import SnapshotStore
from hpcos.results.model import RunResults, TestResult

HPC, KERNEL, BASE = "hpc-overlay-el9-x86_64", "kernel-overlay-el9-x86_64", "base-el9-x86_64"
NODES = ["node1", "node2"]
PINGPONG = "integration_tests/test_mpi.py::test_pingpong"
KERNEL_TEST = "integration_tests/test_os_update.py::test_running_kernel_is_the_testing_kernel"
HOSTNAME = "integration_tests/test_nodes.py::test_hostname"


class GateSite:
    def __init__(self, root: Path, factory: RpmFactory):
        self.site = make_site(factory, root)
        self.layout = StoreLayout(self.site.store)
        # openmpi changes between production and testing, the kernel does not.
        (self.site.specs / "openmpi.yaml").write_text(
            (self.site.specs / "openmpi.yaml").read_text().replace('tests: ["mpi"]', "tests: [test_pingpong]"))
        (self.site.specs / "kernel.yaml").write_text(
            (self.site.specs / "kernel.yaml").read_text().replace('tests: ["mpi"]', "tests: [test_running_kernel]"))
        self.profile = self.site.specs.parent / "profile.yaml"  # site.yaml: harness.profile: profile.yaml
        local = yaml.safe_load((REPO / "integration_tests" / "clusters" / "local.yaml").read_text())
        self.profile.write_text(yaml.safe_dump({**local, "name": "test-cluster", "nodes": "node[1-2]"}))
        store = SnapshotStore(self.layout.snapshots)
        production = self._snapshot(store, factory, "production", {
            HPC: [Rpm("openmpi", "4.1.1", "1.hpc1", "x86_64")], KERNEL: [Rpm("kernel", "5.14.0", "1.hpc1", "x86_64")],
            BASE: [Rpm("alpha", "1.0")]})
        testing = self._snapshot(store, factory, "testing", {HPC: [Rpm("openmpi", "4.1.2", "1.hpc1", "x86_64")]},
                                 carried=production)
        envs = Environments(self.layout)
        envs.environment("production").switch(production.id, "promote", reason="first")
        envs.environment("testing").switch(testing.id, "promote")
        self.testing = testing.id

    @staticmethod
    def _snapshot(store, factory, kind, new, carried=None):
        staging = store.stage(kind)
        for entry, rpms in new.items():
            make_repo(factory, staging.new_entry(entry), rpms)
        for entry in (carried.entries if carried else {}):
            if entry not in new:
                staging.link_entry(entry, carried)
        return staging.commit()

    def hpcos(self, *args: str) -> int:
        return main(["--specs", str(self.site.specs), "--store", str(self.site.store), *args])

    def deployed(self, snapshot: str | None = None, verified: dict[str, bool] | None = None,
                 profile_sha256: str | None = None) -> None:
        verified = verified or dict.fromkeys(NODES, True)
        record = DeploymentRecord(
            deploy_id=f"d-{len(deployments.records(self.layout))}", environment="testing",
            snapshot=snapshot or self.testing, cluster="test-cluster",
            profile_sha256=profile_sha256 or sha256(self.profile), started="2026-01-01T00:00:00+00:00",
            finished="2026-01-01T00:10:00+00:00", batch_size=2,
            nodes={n: NodeDeployment(n, verified=ok, reason="" if ok else "dnf distro-sync failed: exit 1")
                   for n, ok in verified.items()})
        deployments.write(self.layout, record)

    def night(self, tmp_path: Path, outcomes: dict[tuple[str, str], str] | None = None, cluster="test-cluster",
              profile_sha256: str | None = None, edit=None) -> None:
        outcomes = outcomes or {(t, n): "passed" for t in (PINGPONG, HOSTNAME) for n in NODES}
        run = RunResults(run_id=f"run-{len(list(tmp_path.glob('*.json')))}", cluster=cluster,
                         started="2026-01-01T01:00:00+00:00", finished="2026-01-01T02:00:00+00:00",
                         testing_snapshot=self.testing, profile_sha256=profile_sha256 or sha256(self.profile),
                         results=[TestResult(t, n, o) for (t, n), o in outcomes.items()])
        path = tmp_path / f"{run.run_id}.json"
        data = json.loads(run.to_json())
        if edit:
            edit(data)
        path.write_text(json.dumps(data))
        assert self.hpcos("repo", "record-run", str(path)) == 0

    def refusal(self, capsys) -> str:
        capsys.readouterr()
        code = self.hpcos("repo", "promote", "testing", "production")
        err = capsys.readouterr().err
        if code == 0:
            return ""
        assert code == 2, err
        [line] = [line for line in err.splitlines() if "refusing" in line]
        return line


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    return RpmFactory(tmp_path_factory.mktemp("rpms"))


@pytest.fixture
def gate_site(tmp_path, factory) -> GateSite:
    return GateSite(tmp_path / "site", factory)


def test_the_full_verified_run_opens_the_gate(gate_site, tmp_path, capsys):
    gate_site.deployed()
    gate_site.night(tmp_path)
    assert gate_site.refusal(capsys) == ""
    assert Environments(gate_site.layout).environment("production").current() == gate_site.testing


def test_a_run_on_another_profile_is_refused(gate_site, tmp_path, capsys):
    gate_site.deployed()
    gate_site.night(tmp_path, cluster="local")
    assert "ran on profile 'local', not on the site's test cluster 'test-cluster'" in gate_site.refusal(capsys)


def test_a_run_on_an_edited_profile_is_refused(gate_site, tmp_path, capsys):
    gate_site.deployed()
    gate_site.night(tmp_path, profile_sha256="0" * 64)
    assert "ran on a different version of profile 'test-cluster'" in gate_site.refusal(capsys)


def test_a_skipped_required_test_is_refused(gate_site, tmp_path, capsys):
    gate_site.deployed()
    outcomes = {(HOSTNAME, n): "passed" for n in NODES}
    outcomes |= {(PINGPONG, "node1"): "passed", (PINGPONG, "node2"): "skipped"}
    gate_site.night(tmp_path, outcomes)
    line = gate_site.refusal(capsys)
    assert f"{PINGPONG} on node2 skipped, and changed package openmpi requires it (tests: 'test_pingpong')" in line


def test_a_required_test_that_did_not_run_is_refused(gate_site, tmp_path, capsys):
    gate_site.deployed()
    gate_site.night(tmp_path, {(HOSTNAME, n): "passed" for n in NODES})
    assert "no test matching 'test_pingpong' ran, and changed package openmpi requires it" in gate_site.refusal(capsys)


def test_an_unchanged_packages_tests_are_not_required(gate_site, tmp_path, capsys):
    # The kernel is the same in production and testing: its test_running_kernel need not run.
    gate_site.deployed()
    gate_site.night(tmp_path)
    assert gate_site.refusal(capsys) == ""


def test_a_snapshot_that_was_not_deployed_is_refused(gate_site, tmp_path, capsys):
    gate_site.night(tmp_path)
    assert f"node[1-2] never had snapshot {gate_site.testing} deployed" in gate_site.refusal(capsys)


def test_a_deployment_of_another_snapshot_or_profile_does_not_count(gate_site, tmp_path, capsys):
    gate_site.deployed(snapshot="20260101T000000Z-testing-000000")
    gate_site.deployed(verified={"node2": True}, profile_sha256="f" * 64)
    gate_site.night(tmp_path)
    assert "node[1-2] had another snapshot deployed last" in gate_site.refusal(capsys)


def test_an_unverified_node_is_refused(gate_site, tmp_path, capsys):
    gate_site.deployed(verified={"node1": True, "node2": False})
    gate_site.night(tmp_path)
    line = gate_site.refusal(capsys)
    assert f"the deployment of {gate_site.testing} was not verified on node2" in line


def test_unknown_outcomes_are_refused(gate_site, tmp_path, capsys):
    gate_site.deployed()

    def shout(data):
        data["results"][1]["outcome"] = "FAILED"

    gate_site.night(tmp_path, edit=shout)
    line = gate_site.refusal(capsys)
    assert "its results file did not validate" in line and "outcome 'FAILED'" in line, line


def test_a_failed_test_is_refused(gate_site, tmp_path, capsys):
    gate_site.deployed()
    outcomes = {(t, n): "passed" for t in (PINGPONG, HOSTNAME) for n in NODES} | {(HOSTNAME, "node2"): "failed"}
    gate_site.night(tmp_path, outcomes)
    assert "failed (1 of 4 results failed)" in gate_site.refusal(capsys)


def test_force_with_a_reason_is_recorded_and_shown(gate_site, tmp_path, capsys):
    gate_site.night(tmp_path, cluster="local")
    assert gate_site.hpcos("repo", "promote", "testing", "production", "--force") == 2
    assert gate_site.hpcos("repo", "promote", "testing", "production", "--force",
                           "--reason", "CVE fix, tested by hand") == 0
    [record] = Environments(gate_site.layout).environment("production").records()[-1:]
    assert record.forced and "CVE fix, tested by hand [gate overridden:" in record.reason
    assert "ran on profile 'local'" in record.reason
    capsys.readouterr()
    assert gate_site.hpcos("repo", "status", "production") == 0
    assert "promote (forced)" in capsys.readouterr().out


@pytest.mark.parametrize(("expression", "test_id", "selected"), [
    ("test_pingpong", "integration_tests/test_mpi.py::test_pingpong", True),
    ("mpi", "integration_tests/test_mpi.py::test_pingpong", True),  # the module name, as -k matches it
    ("mpi and not pingpong", "integration_tests/test_mpi.py::test_pingpong", False),
    ("test_os_update", KERNEL_TEST, True),
    ("PingPong", "integration_tests/test_mpi.py::test_pingpong", True),  # -k is case-insensitive
    ("test_allreduce", "integration_tests/test_mpi.py::test_pingpong", False),
])
def test_required_tests_are_matched_as_pytest_k_matches(expression, test_id, selected):
    from hpcos.repo.gate import matches

    assert matches(expression, test_id) is selected
