"""The production gate trusts only runs the harness itself recorded, on the whole test cluster and the
whole required suite -- each refusal in one line naming the run, the first missing proof and the command
that supplies it.

Every run here is the real harness (``hpcos test`` on a local-launcher profile of four nodes, n[1-4],
with HPCOS_TESTING_SNAPSHOT set, as the nightly job runs it), which writes the results file and records
itself, signed, into the store.  A failing run is a real failure: ``mktemp`` in test_tmp_writable with
TMPDIR pointing nowhere.  Snapshots are real repositories (rpmbuild, createrepo_c), so "which packages
changed" is read from their metadata; promotions go through ``hpcos repo promote`` with the site's
profile resolved from site.yaml ``harness.profile``.  Deployment records are written directly here
(finished before the runs): the deployment that produces them is tests/test_deploy.py's.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from support.gate_fixtures import harness_night
from support.rpm_repo_fixtures import Rpm, RpmFactory, make_repo, make_site

from hpcos.cli import main
from hpcos.core.store_layout import StoreLayout
from hpcos.repo import deployments
from hpcos.repo.deployments import DeploymentRecord, NodeDeployment
from hpcos.repo.environments import Environments
from hpcos.repo.snapshots import SnapshotStore
from hpcos.results.model import RunResults

HPC, KERNEL, BASE = "hpc-overlay-el9-x86_64", "kernel-overlay-el9-x86_64", "base-el9-x86_64"
NODES = ["n1", "n2", "n3", "n4"]
# The site's required suite; openmpi (changed) adds test_kernel_release, the kernel (unchanged) adds nothing.
REQUIRED = ["test_hostname", "test_uptime"]
# What the runs here select: the node tests, and the InfiniBand ones that skip on a profile without it.
SELECT = ("-k", "test_nodes or test_ibstat")


class GateSite:
    def __init__(self, root: Path, factory: RpmFactory):
        self.root = root
        self.site = make_site(factory, root)
        self.layout = StoreLayout(self.site.store)
        site_yaml = self.site.specs / "site.yaml"
        site_yaml.write_text(
            site_yaml.read_text().replace(
                "harness: {profile: profile.yaml}",
                f"harness: {{profile: profile.yaml, required_tests: {REQUIRED}}}",
            )
        )
        (self.site.specs / "openmpi.yaml").write_text(
            (self.site.specs / "openmpi.yaml")
            .read_text()
            .replace('tests: ["mpi"]', "tests: [test_kernel_release]")
        )
        (self.site.specs / "kernel.yaml").write_text(
            (self.site.specs / "kernel.yaml")
            .read_text()
            .replace('tests: ["mpi"]', "tests: [test_running_kernel]")
        )
        self.profile = (
            self.site.specs.parent / "profile.yaml"
        )  # site.yaml: harness.profile: profile.yaml
        local = yaml.safe_load((REPO / "integration_tests" / "clusters" / "local.yaml").read_text())
        local["inventory"]["classes"]["workstation"]["nodes"] = "n[1-4]"
        self.profile.write_text(
            yaml.safe_dump({**local, "name": "test-cluster", "nodes": "n[1-4]"})
        )
        store = SnapshotStore(self.layout.snapshots)
        production = self._snapshot(
            store,
            factory,
            "production",
            {
                HPC: [Rpm("openmpi", "4.1.1", "1.hpc1", "x86_64")],
                KERNEL: [Rpm("kernel", "5.14.0", "1.hpc1", "x86_64")],
                BASE: [Rpm("alpha", "1.0")],
            },
        )
        testing = self._snapshot(
            store,
            factory,
            "testing",
            {HPC: [Rpm("openmpi", "4.1.2", "1.hpc1", "x86_64")]},
            carried=production,
        )
        envs = Environments(self.layout)
        envs.environment("production").switch(production.id, "promote", reason="first")
        envs.environment("testing").switch(testing.id, "promote")
        self.testing = testing.id
        self.runs = 0

    @staticmethod
    def _snapshot(store, factory, kind, new, carried=None):
        staging = store.stage(kind)
        for entry, rpms in new.items():
            make_repo(factory, staging.new_entry(entry), rpms)
        for entry in carried.entries if carried else {}:
            if entry not in new:
                staging.link_entry(entry, carried)
        return staging.commit()

    def hpcos(self, *args: str) -> int:
        return main(["--specs", str(self.site.specs), "--store", str(self.site.store), *args])

    def deployed(
        self, snapshot: str | None = None, verified: dict[str, bool] | None = None
    ) -> None:
        """What `hpcos deploy` records, finished before any run here started."""
        verified = verified or dict.fromkeys(NODES, True)
        record = DeploymentRecord(
            deploy_id=f"d-{len(deployments.records(self.layout))}",
            environment="testing",
            snapshot=snapshot or self.testing,
            cluster="test-cluster",
            profile_sha256=sha256(self.profile),
            started="2026-01-01T00:00:00+00:00",
            finished="2026-01-01T00:10:00+00:00",
            batch_size=2,
            nodes={
                n: NodeDeployment(
                    n, verified=ok, reason="" if ok else "dnf distro-sync failed: exit 1"
                )
                for n, ok in verified.items()
            },
        )
        deployments.write(self.layout, record)

    def night(
        self,
        *args: str,
        select=SELECT,
        env: dict[str, str] | None = None,
        profile: Path | None = None,
    ) -> RunResults:
        """The nightly tests on this site, really run; returns the results file the harness wrote."""
        self.runs += 1
        path = self.root / f"night-{self.runs}.json"
        harness_night(
            self.site.specs,
            self.site.store,
            profile or self.profile,
            self.testing,
            path,
            *select,
            *args,
            env=env,
        )
        return RunResults.read(path)

    def failing_night(self, *args: str) -> RunResults:
        run = self.night(*args, env={"TMPDIR": str(self.root / "no-such-directory")})
        assert run.failures() and all("test_tmp_writable" in r.test_id for r in run.failures()), (
            run.failures()
        )
        return run

    def refusal(self, capsys) -> str:
        capsys.readouterr()
        code = self.hpcos("repo", "promote", "testing", "production")
        err = capsys.readouterr().err
        if code == 0:
            return ""
        assert code == 2, err
        [line] = [line for line in err.splitlines() if "refusing" in line]
        return line

    def production(self) -> str | None:
        return Environments(self.layout).environment("production").current()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    return RpmFactory(tmp_path_factory.mktemp("rpms"))


@pytest.fixture
def gate_site(tmp_path, factory) -> GateSite:
    return GateSite(tmp_path / "site", factory)


def test_the_full_verified_run_opens_the_gate_once_every_node_is_deployed_and_verified(
    gate_site, capsys
):
    run = gate_site.night()
    assert not run.failures()
    line = gate_site.refusal(capsys)
    assert (
        f"the nightly run {run.run_id} on snapshot {gate_site.testing}: n[1-4] never had snapshot"
        in line
    )
    assert (
        "`hpcos deploy testing --cluster profile.yaml --nodes 'n[1-4]'`, then the nightly tests again"
        in line
    )
    gate_site.deployed(snapshot="20260101T000000Z-testing-000000")
    assert "n[1-4] had another snapshot deployed last" in gate_site.refusal(capsys)
    gate_site.deployed(verified={"n1": True, "n2": True, "n3": True, "n4": False})
    line = gate_site.refusal(capsys)
    assert f"the deployment of {gate_site.testing} was not verified on n4" in line
    assert "`hpcos repo out-of-service n4 --reason TEXT` before them" in line
    gate_site.deployed()
    assert gate_site.refusal(capsys) == ""
    assert gate_site.production() == gate_site.testing
    [record] = Environments(gate_site.layout).environment("production").records()[-1:]
    assert (
        f"[gate: run {run.run_id} (finished {run.finished}) passed on n[1-4], the whole required suite]"
        in record.reason
    )


def test_a_run_on_three_of_four_nodes_is_refused(gate_site, capsys):
    gate_site.deployed()
    run = gate_site.night("--nodes", "n[1-3]")
    line = gate_site.refusal(capsys)
    assert (
        f"the nightly run {run.run_id} on snapshot {gate_site.testing}: n4 was not tested (the run selected "
        f"n[1-3])" in line
    ), line
    assert (
        f"`HPCOS_TESTING_SNAPSHOT={gate_site.testing} hpcos test --cluster profile.yaml --results results.json`"
        in line
    )
    assert (
        "record it out of service before that run: `hpcos repo out-of-service n4 --reason TEXT`"
        in line
    )
    # Out of service after the run does not cover for it: the reason must be there before the run.
    assert (
        gate_site.hpcos("repo", "out-of-service", "n4", "--reason", "found broken this morning")
        == 0
    )
    assert "n4 was not tested" in gate_site.refusal(capsys)
    assert gate_site.production() != gate_site.testing
    # Forced anyway: who and why in the record, `repo status` and the run's report.
    assert (
        gate_site.hpcos(
            "repo", "promote", "testing", "production", "--force", "--reason", "CVE-2026-1234"
        )
        == 0
    )
    capsys.readouterr()
    assert gate_site.hpcos("repo", "status", "production") == 0
    assert "promote (forced)" in capsys.readouterr().out
    results = gate_site.root / f"night-{gate_site.runs}.json"
    assert gate_site.hpcos("report", str(results), "-o", str(gate_site.root / "report")) == 0
    page = (gate_site.root / "report" / "index.html").read_text()
    assert f"run {run.run_id}: recorded by the harness (signed)" in page
    assert (
        "risk: production took" in page
        and "with the gate overridden by" in page
        and "CVE-2026-1234" in page
    )


def test_a_node_out_of_service_with_a_reason_before_the_run_is_accepted_and_named(
    gate_site, capsys
):
    gate_site.deployed(verified={"n1": True, "n2": True, "n3": True})  # n4 has a hardware fault
    assert gate_site.hpcos("repo", "out-of-service", "n4") == 2  # a reason is required
    assert gate_site.hpcos("repo", "out-of-service", "n9", "--reason", "not ours") == 2
    assert (
        gate_site.hpcos("repo", "out-of-service", "n4", "--reason", "PSU fault, ticket 4711") == 0
    )
    run = gate_site.night("--nodes", "n[1-3]")
    assert gate_site.refusal(capsys) == ""
    assert gate_site.production() == gate_site.testing
    [record] = Environments(gate_site.layout).environment("production").records()[-1:]
    assert f"run {run.run_id} (finished {run.finished}) passed on n[1-3]" in record.reason
    assert "out of service, not tested: n4 (PSU fault, ticket 4711, by " in record.reason
    capsys.readouterr()
    assert gate_site.hpcos("repo", "out-of-service") == 0
    assert "n4 (PSU fault, ticket 4711" in capsys.readouterr().out
    assert gate_site.hpcos("repo", "out-of-service", "n4", "--back") == 0
    assert gate_site.hpcos("repo", "out-of-service") == 0
    assert "out of service on test-cluster: none" in capsys.readouterr().out


def test_an_edited_results_file_is_imported_and_cannot_open_the_gate(gate_site, tmp_path, capsys):
    gate_site.deployed()
    failing = gate_site.failing_night()
    results = gate_site.root / f"night-{gate_site.runs}.json"
    capsys.readouterr()
    assert (
        gate_site.hpcos("repo", "record-run", str(results)) == 0
    )  # the nightly job's own record-run
    assert "recorded by the harness, signature verified" in capsys.readouterr().err

    def edited(run_id: str, later: bool) -> Path:
        data = json.loads(results.read_text())
        for result in data["results"]:
            result["outcome"] = "passed" if result["outcome"] == "failed" else result["outcome"]
            result["failure_class"], result["message"] = None, ""
        data["run_id"] = run_id
        if later:
            data["started"], data["finished"] = (
                "2099-01-01T00:00:00+00:00",
                "2099-01-01T01:00:00+00:00",
            )
        path = tmp_path / f"{run_id}-edited.json"
        path.write_text(json.dumps(data, indent=2, sort_keys=True))
        return path

    # The cheat as tried: failed -> passed, a new run id, later times.
    assert gate_site.hpcos("repo", "record-run", str(edited("night-99", later=True))) == 0
    said = capsys.readouterr().err
    assert "run night-99" in said and "passed" in said, said
    assert "imported (the harness recorded no run with this id)" in said
    assert "cannot open the production gate" in said
    line = gate_site.refusal(capsys)
    assert (
        f"the nightly run {failing.run_id} on snapshot {gate_site.testing}: it failed (4 of" in line
    ), line
    assert "night-99" not in line

    # The same run id: the harness's record stays, the file is imported beside it.
    assert gate_site.hpcos("repo", "record-run", str(edited(failing.run_id, later=False))) == 0
    said = capsys.readouterr().err
    assert "is not the" in said and "the harness recorded (edited after the run?)" in said, said
    assert "it failed (4 of" in gate_site.refusal(capsys)

    # A recomputed digest: the store's record edited to match the edited file -- no valid signature.
    forged = edited(failing.run_id, later=False)
    record_path = gate_site.layout.nightly_records / f"{failing.run_id}.json"
    record = json.loads(record_path.read_text())
    record.update(
        passed=True,
        failures=0,
        results_sha256=sha256(forged),
        results=[[t, n, "passed" if o == "failed" else o, m] for t, n, o, m in record["results"]],
    )
    record_path.write_text(json.dumps(record))
    line = gate_site.refusal(capsys)
    assert f"run {failing.run_id} on snapshot {gate_site.testing}: its record in" in line
    assert "does not verify against the run-signing key (edited?)" in line
    assert gate_site.hpcos("repo", "record-run", str(forged)) == 0
    assert "does not verify against the run-signing key" in capsys.readouterr().err
    assert gate_site.production() != gate_site.testing


def test_a_hand_written_file_alone_is_imported(gate_site, tmp_path, capsys):
    gate_site.deployed()
    run = RunResults(
        run_id="by-hand",
        cluster="test-cluster",
        started="2099-01-01T00:00:00+00:00",
        testing_snapshot=gate_site.testing,
        profile_sha256=sha256(gate_site.profile),
    )
    run.write(tmp_path / "by-hand.json")
    assert gate_site.hpcos("repo", "record-run", str(tmp_path / "by-hand.json")) == 0
    line = gate_site.refusal(capsys)
    assert (
        f"no run on snapshot {gate_site.testing} was recorded by the harness; run by-hand was imported"
        in line
    )
    assert f"`HPCOS_TESTING_SNAPSHOT={gate_site.testing} hpcos test --cluster profile.yaml" in line


def test_a_failing_run_is_not_superseded_by_a_partial_passing_one_but_by_a_complete_one(
    gate_site, capsys
):
    gate_site.deployed()
    failing = gate_site.failing_night()
    partial = gate_site.night("--nodes", "n[1-3]")
    assert not partial.failures()
    line = gate_site.refusal(capsys)
    assert (
        f"the nightly run {failing.run_id} on snapshot {gate_site.testing} failed (4 of" in line
    ), line
    assert (
        f"the later run {partial.run_id} does not supersede it, as it is not complete and verified: n4 was "
        f"not tested" in line
    )
    complete = gate_site.night()
    assert gate_site.refusal(capsys) == ""
    [record] = Environments(gate_site.layout).environment("production").records()[-1:]
    assert f"run {complete.run_id}" in record.reason


def test_deselected_and_skipped_required_tests_keep_it_closed(gate_site, capsys):
    gate_site.deployed()
    run = gate_site.night(select=("-k", "test_hostname or test_ibstat"))
    line = gate_site.refusal(capsys)
    assert (
        f"the nightly run {run.run_id} on snapshot {gate_site.testing}: 8 required test(s) did not pass "
        f"(first 5 of 8): integration_tests/test_nodes.py::test_uptime on n1 deselected or not run; "
        in line
    ), line
    assert (
        "integration_tests/test_nodes.py::test_kernel_release on n1 deselected or not run (changed package "
        "openmpi requires it)"
    ) in line
    # A skip is not a pass: the site requires the InfiniBand checks, the profile expects no InfiniBand.
    site_yaml = gate_site.site.specs / "site.yaml"
    site_yaml.write_text(
        site_yaml.read_text().replace("required_tests: [", "required_tests: ['test_ibstat', ")
    )
    gate_site.night()
    assert (
        "integration_tests/test_infiniband.py::test_ibstat_ports on n1 skipped"
        in gate_site.refusal(capsys)
    )


def test_a_run_of_part_of_the_suite_or_on_another_profile_is_refused(gate_site, capsys):
    gate_site.deployed()
    gate_site.night(select=(str(REPO / "integration_tests" / "test_nodes.py"),))
    assert "it did not collect the whole suite (only " in gate_site.refusal(capsys)
    gate_site.night("--mpi", "openmpi")  # MPI tests are collected for the selected stacks only
    assert (
        "it did not collect the whole suite (--mpi openmpi leaves out mpich)"
        in gate_site.refusal(capsys)
    )
    other = gate_site.root / "other.yaml"
    other.write_text(gate_site.profile.read_text().replace("name: test-cluster", "name: laptop"))
    gate_site.night(profile=other)
    assert (
        "it ran on profile 'laptop', not on the site's test cluster 'test-cluster'"
        in gate_site.refusal(capsys)
    )


def test_force_with_a_reason_is_recorded_and_shown(gate_site, capsys):
    assert gate_site.hpcos("repo", "promote", "testing", "production", "--force") == 2
    assert (
        gate_site.hpcos(
            "repo",
            "promote",
            "testing",
            "production",
            "--force",
            "--reason",
            "CVE fix, tested by hand",
        )
        == 0
    )
    [record] = Environments(gate_site.layout).environment("production").records()[-1:]
    assert record.forced and "CVE fix, tested by hand [gate overridden:" in record.reason
    assert "no nightly run has been recorded" in record.reason
    capsys.readouterr()
    assert gate_site.hpcos("repo", "status", "production") == 0
    assert "promote (forced)" in capsys.readouterr().out
    assert gate_site.hpcos("repo", "status", "testing") == 0
    assert "gate to production: closed: no nightly run has been recorded" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("expression", "test_id", "selected"),
    [
        ("test_pingpong", "integration_tests/test_mpi.py::test_pingpong", True),
        (
            "mpi",
            "integration_tests/test_mpi.py::test_pingpong",
            True,
        ),  # the module name, as -k matches it
        ("mpi and not pingpong", "integration_tests/test_mpi.py::test_pingpong", False),
        (
            "test_os_update",
            "integration_tests/test_os_update.py::test_running_kernel_is_the_testing_kernel",
            True,
        ),
        (
            "PingPong",
            "integration_tests/test_mpi.py::test_pingpong",
            True,
        ),  # -k is case-insensitive
        ("test_allreduce", "integration_tests/test_mpi.py::test_pingpong", False),
        # Parameters are part of the name -k matches: the full id.
        ("rank_count and mpich", "integration_tests/test_mpi.py::test_rank_count[mpich]", True),
        (
            "rank_count and not mpich",
            "integration_tests/test_mpi.py::test_rank_count[mpich]",
            False,
        ),
        ("test_rank_count[mpich]", "integration_tests/test_mpi.py::test_rank_count[mpich]", True),
        (
            "test_rank_count[openmpi]",
            "integration_tests/test_mpi.py::test_rank_count[mpich]",
            False,
        ),
    ],
)
def test_required_tests_are_matched_as_pytest_k_matches(expression, test_id, selected):
    from hpcos.repo.gate import matches

    assert matches(expression, test_id) is selected


@pytest.mark.parametrize(
    ("test_id", "mpi", "expression", "selected"),
    [
        # The harness records a test's id without its node and stack; the stack is matched as pytest's id has it.
        ("integration_tests/test_mpi.py::test_pingpong", "openmpi", "mpi and openmpi", True),
        ("integration_tests/test_mpi.py::test_pingpong", "mpich", "mpi and openmpi", False),
        ("integration_tests/test_osu.py::test_osu[osu_bw]", "mpich", "osu_bw and mpich", True),
        ("integration_tests/test_nodes.py::test_hostname", None, "hostname", True),
    ],
)
def test_the_stack_is_part_of_the_id_expressions_match(test_id, mpi, expression, selected):
    from hpcos.repo.gate import matches, selectable_id

    assert matches(expression, selectable_id(test_id, mpi)) is selected
