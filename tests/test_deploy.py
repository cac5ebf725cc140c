"""``hpcos deploy``: four simulated nodes go from snapshot A to snapshot B in batches of two.

Real parts: packages built with rpmbuild, mirrored and composed into snapshots by hpcos itself
(dnf reposync, createrepo_c), nodes that are dnf install roots with their own rpm databases, real
``dnf distro-sync`` through the local launcher, a real Slurm with four node names for drain and
resume.  The "reboot" is the profile's command (support/deploy_fixtures.REBOOT_SH).
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from conftest import require_tool
from support.deploy_fixtures import installed, profile_yaml, provision
from support.gate_fixtures import harness_night, require_suite
from support.rpm_repo_fixtures import Rpm, RpmFactory, make_site
from support.slurm_nodes_fixture import slurm_nodes  # noqa: F401  (fixture)
from support.sshd_fixture import loopback_sshd  # noqa: F401  (fixture)

from hpcos.cli import main
from hpcos.core.environment import launch_environment
from hpcos.core.store_layout import StoreLayout
from hpcos.repo import deployments
from hpcos.repo.environments import Environments

BASE_A = [Rpm("alpha", "1.0"), Rpm("beta", "1.0")]
BASE_B = [Rpm("alpha", "1.1"), Rpm("beta", "1.0")]
HPC_A = [Rpm("openmpi", "4.1.1", "1.hpc1", "x86_64")]
HPC_B = [Rpm("openmpi", "4.1.2", "1.hpc1", "x86_64")]
KERNEL_A = [Rpm("kernel", "5.14.0", "1.hpc1", "x86_64")]
KERNEL_B = [Rpm("kernel", "5.14.0", "2.hpc1", "x86_64")]
# Installed on one node by hand, from no repository: dnf cannot move openmpi to 4.1.2 there.
BLOCKER = Rpm("site-blocker", "1.0", conflicts="openmpi >= 4.1.2")
NODES = ["node1", "node2", "node3", "node4"]
PACKAGES = ["alpha", "beta", "openmpi", "kernel"]


def hpcos(site, *args: str) -> int:
    return main(["--specs", str(site.specs), "--store", str(site.store), *args])


@pytest.fixture
def cluster(tmp_path, slurm_nodes, monkeypatch):  # noqa: F811
    for tool, package in (("rpmbuild", "rpm"), ("createrepo_c", "createrepo-c"), ("dnf", "dnf")):
        require_tool(tool, package)
    monkeypatch.setenv("SLURM_CONF", str(slurm_nodes.conf))
    slurm_nodes.resume_all()
    site = make_site(RpmFactory(tmp_path / "rpmbuild"), tmp_path)
    site.set_upstream("base", BASE_A)
    site.set_overlay("hpc-overlay", HPC_A)
    site.set_overlay("kernel-overlay", KERNEL_A)
    for step in (
        ["sync"],
        ["publish", "hpc-overlay"],
        ["publish", "kernel-overlay"],
        ["promote", "daily", "testing"],
    ):
        assert hpcos(site, "repo", *step) == 0
    nodes_dir = tmp_path / "nodes"
    nodes_dir.mkdir()
    site.profile = site.specs.parent / "profile.yaml"  # site.yaml's harness.profile
    site.profile.write_text(profile_yaml(nodes_dir, "node[1-4]"))
    repo = tmp_path / "a.repo"
    assert hpcos(site, "repo", "client-config", "testing", "--no-gpgcheck", "-o", str(repo)) == 0
    for node in NODES:
        provision(nodes_dir / node, repo.read_text(), PACKAGES)
    site.nodes_dir = nodes_dir
    site.snapshot_a = StoreLayout(site.store).environments.joinpath("testing").resolve().name
    # Snapshot B: a mirror update, an overlay rebuild and a new kernel.
    site.set_upstream("base", BASE_B)
    site.set_overlay("hpc-overlay", HPC_B)
    site.set_overlay("kernel-overlay", KERNEL_B)
    for step in (
        ["sync"],
        ["publish", "hpc-overlay"],
        ["publish", "kernel-overlay"],
        ["promote", "daily", "testing"],
    ):
        assert hpcos(site, "repo", *step) == 0
    site.snapshot_b = StoreLayout(site.store).environments.joinpath("testing").resolve().name
    site.slurm = slurm_nodes
    yield site
    slurm_nodes.resume_all()


SNAPSHOT_B = {
    "alpha-0:1.1-1.noarch",
    "beta-0:1.0-1.noarch",
    "openmpi-0:4.1.2-1.hpc1.x86_64",
    "kernel-0:5.14.0-1.hpc1.x86_64",
    "kernel-0:5.14.0-2.hpc1.x86_64",
}


def test_client_config_lists_every_repository_with_overlays_first(cluster, capsys):
    assert (
        hpcos(
            cluster,
            "repo",
            "client-config",
            "testing",
            "--url",
            "https://repo.example.org/hpcos",
            "--gpgkey",
            "https://repo.example.org/RPM-GPG-KEY-site",
        )
        == 0
    )
    text = capsys.readouterr().out
    sections = [line for line in text.splitlines() if line.startswith("[")]
    assert sections == [
        "[hpcos-hpc-overlay-el9-x86_64]",
        "[hpcos-kernel-overlay-el9-x86_64]",
        "[hpcos-base-el9-x86_64]",
        "[hpcos-tools-el9-x86_64]",
    ]
    assert "baseurl=https://repo.example.org/hpcos/testing/hpc-overlay-el9-x86_64/" in text
    assert (
        text.count("gpgcheck=1") == 4
        and text.count("gpgkey=https://repo.example.org/RPM-GPG-KEY-site") == 2
    )
    priorities = [
        int(line.split("=")[1]) for line in text.splitlines() if line.startswith("priority=")
    ]
    assert priorities[:2] == [10, 10] and priorities[2:] == [50, 50], (
        "overlays must win over the mirror"
    )
    assert (
        hpcos(
            cluster,
            "repo",
            "client-config",
            "testing",
            "--kickstart",
            "--pin",
            "--snapshots-url",
            "https://repo.example.org/hpcos-snapshots",
        )
        == 0
    )
    kickstart = capsys.readouterr().out.splitlines()
    assert kickstart[0] == (
        f"repo --name=hpcos-hpc-overlay-el9-x86_64 --baseurl=https://repo.example.org/"
        f"hpcos-snapshots/{cluster.snapshot_b}/hpc-overlay-el9-x86_64/ --cost=10 --install"
    )
    assert len(kickstart) == 4


def test_four_nodes_go_from_a_to_b_in_batches_of_two(cluster, capsys):
    for node in NODES:
        assert "openmpi-0:4.1.1-1.hpc1.x86_64" in installed(cluster.nodes_dir / node)
    assert hpcos(cluster, "deploy", "testing", "--cluster", str(cluster.profile)) == 0
    shown = capsys.readouterr().err  # the library's log lines, as the CLI shows them
    for node in NODES:
        root = cluster.nodes_dir / node
        assert installed(root) == SNAPSHOT_B, node
        assert (root / "run" / "running-kernel").read_text().strip() == "5.14.0-2.hpc1.x86_64"
        assert (
            f"/snapshots/{cluster.snapshot_b}/"
            in (root / "etc" / "yum.repos.d" / "hpcos.repo").read_text()
        )
    # Each node rebooted once, while exactly its batch was drained: never more than two nodes out.
    seen = {
        node: (cluster.nodes_dir / node / "var" / "log" / "reboots").read_text().splitlines()
        for node in NODES
    }
    assert all(len(lines) == 1 for lines in seen.values()), seen
    assert (
        "drained: node1 node2 ;" in seen["node1"][0]
        and "drained: node3 node4 ;" in seen["node3"][0]
    )
    assert {state for state, _ in cluster.slurm.sinfo().values()} <= {"idle", "idle*"}

    [record] = deployments.records(StoreLayout(cluster.store))
    assert (record.snapshot, record.environment, record.batch_size) == (
        cluster.snapshot_b,
        "testing",
        2,
    )
    assert record.verified_nodes == NODES and record.finished
    for node in record.nodes.values():
        assert node.rebooted and node.kernel == "5.14.0-2.hpc1.x86_64"
        assert set(node.durations) == set(deployments.TASKS), node.durations
        assert node.durations["distro_sync"] > 0 and node.durations["reboot"] > 0
    assert "node[1-4]: verified on " + cluster.snapshot_b in shown
    assert "batch 2/2: node[3-4]" in shown


def test_a_node_that_cannot_install_stays_drained_and_blocks_production(cluster, capsys, tmp_path):
    blocker = cluster.factory.path(BLOCKER)
    root = cluster.nodes_dir / "node3"
    # With the launcher's HOME: Debian's rpm keeps the node's database under ROOT$HOME/.rpmdb.
    done = subprocess.run(
        ["rpm", "--root", str(root), "-i", "--nodeps", str(blocker)],
        capture_output=True,
        timeout=60,
        env=launch_environment(),
    )
    assert done.returncode == 0, done.stderr
    assert hpcos(cluster, "deploy", "testing", "--cluster", str(cluster.profile)) == 1
    shown = capsys.readouterr().err
    [record] = deployments.records(StoreLayout(cluster.store))
    assert record.verified_nodes == ["node1", "node2", "node4"]
    reason = record.nodes["node3"].reason
    # The transaction cannot be resolved: the download, before the drain, finds it out, and node3
    # never leaves service (it keeps running jobs on its earlier snapshot).
    assert reason.startswith("dnf --downloadonly failed: exit 1") and "conflicts" in reason, reason
    assert "drain" not in record.nodes["node3"].durations
    states = cluster.slurm.sinfo()
    assert {states[n][0] for n in NODES} <= {"idle", "idle*"}, states
    assert "openmpi-0:4.1.1-1.hpc1.x86_64" in installed(root), (
        "the failed transaction changed nothing"
    )
    assert installed(cluster.nodes_dir / "node4") == SNAPSHOT_B
    assert "node[1-2,4]: verified on" in shown
    assert "node3: failed before its drain, still in service: dnf --downloadonly failed" in shown
    # The failure is a ticket on the site's tracker (here the local one), as a failed test is.
    assert hpcos(cluster, "tickets", "list", "--json") == 0
    [ticket] = json.loads(capsys.readouterr().out)["tickets"]
    assert "node3" in ticket["summary"] and "deploy/testing" in ticket["summary"], ticket

    # A night where every test passed on every node (the harness, really run): production is still
    # refused, naming node3 and what would supply the proof.
    require_suite(
        cluster.specs
    )  # site.yaml's required_tests and the packages' tests: test_hostname
    harness_night(
        cluster.specs,
        cluster.store,
        cluster.profile,
        cluster.snapshot_b,
        tmp_path / "night-1.json",
        "-k",
        "test_hostname",
    )
    capsys.readouterr()
    assert hpcos(cluster, "repo", "promote", "testing", "production") == 2
    [refusal] = [line for line in capsys.readouterr().err.splitlines() if "refusing" in line]
    assert "was not verified on node3" in refusal, refusal
    assert "`hpcos repo out-of-service node3 --reason TEXT` before them" in refusal, refusal
    # node3 waits for a repair: recorded out of service, the next night tests the others, the gate opens
    # and says what it did not test.
    assert (
        hpcos(cluster, "repo", "out-of-service", "node3", "--reason", "package conflict, ticket 77")
        == 0
    )
    harness_night(
        cluster.specs,
        cluster.store,
        cluster.profile,
        cluster.snapshot_b,
        tmp_path / "night-2.json",
        "--nodes",
        "node[1-2,4]",
        "-k",
        "test_hostname",
    )
    assert hpcos(cluster, "repo", "promote", "testing", "production") == 0
    [record] = Environments(StoreLayout(cluster.store)).environment("production").records()[-1:]
    assert (
        "passed on node[1-2,4]" in record.reason
        and "node3 (package conflict, ticket 77, by " in record.reason
    )


def test_deploy_record_is_json_with_every_task(cluster, capsys):
    assert (
        hpcos(
            cluster,
            "deploy",
            "testing",
            "--cluster",
            str(cluster.profile),
            "--nodes",
            "node[2-3]",
            "--batch-size",
            "1",
            "--json",
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert sorted(data["nodes"]) == ["node2", "node3"] and data["batch_size"] == 1
    assert all(n["verified"] for n in data["nodes"].values())


def test_nodes_reached_over_ssh(cluster, loopback_sshd, tmp_path):  # noqa: F811
    """The same procedure through the ssh launcher on the loopback sshd: each node's commands run in a
    real ssh session (the nodes' HOME is the sshd's, so their rpm databases are provisioned with it)."""
    home = {"HOME": str(loopback_sshd.directory / "home")}
    nodes_dir = tmp_path / "ssh-nodes"
    nodes_dir.mkdir()
    repo = tmp_path / "b.repo"
    assert (
        hpcos(
            cluster, "repo", "client-config", "testing", "--no-gpgcheck", "--pin", "-o", str(repo)
        )
        == 0
    )
    # Provisioned from B (only B's kernel), so the deployment has nothing to change: a re-run must be harmless.
    for node in ("node1", "node2"):
        provision(nodes_dir / node, repo.read_text(), PACKAGES, env=home)
    profile = tmp_path / "ssh.yaml"
    ssh = yaml.safe_load(loopback_sshd.profile_yaml("node[1-2]"))
    profile.write_text(
        profile_yaml(
            nodes_dir, "node[1-2]", launcher="ssh", drain="none", extra={"ssh": ssh["ssh"]}
        )
    )
    assert hpcos(cluster, "deploy", "testing", "--cluster", str(profile)) == 0
    [record] = [
        r
        for r in deployments.records(StoreLayout(cluster.store))
        if r.cluster == "sim-cluster" and set(r.nodes) == {"node1", "node2"}
    ]
    assert record.verified_nodes == ["node1", "node2"]
    assert not any(n.rebooted for n in record.nodes.values()), "nothing changed: no reboot"
    for node in ("node1", "node2"):
        assert installed(nodes_dir / node, env=home) == SNAPSHOT_B - {
            "kernel-0:5.14.0-1.hpc1.x86_64"
        }


def test_a_second_deployment_on_the_same_cluster_is_refused(cluster, capsys):
    from filelock import FileLock

    with FileLock(str(StoreLayout(cluster.store).locks / "deploy-sim-cluster.lock")):
        assert hpcos(cluster, "deploy", "testing", "--cluster", str(cluster.profile)) == 2
    assert "another `hpcos deploy` on cluster 'sim-cluster' is running" in capsys.readouterr().err
    assert deployments.records(StoreLayout(cluster.store)) == [], "nothing was touched"


def test_bad_input_gets_one_line(cluster, capsys):
    assert (
        hpcos(cluster, "deploy", "testing", "--cluster", str(cluster.profile), "--nodes", "node9")
        == 2
    )
    assert "--nodes node9: node9 not in profile 'sim-cluster'" in capsys.readouterr().err
    assert hpcos(cluster, "deploy", "staging", "--cluster", str(cluster.profile)) == 2
    assert "unknown environment 'staging'" in capsys.readouterr().err
    # A rolling update through srun alone cannot verify a node Slurm keeps down: the refusal names the
    # key that fixes it (the shipped production profile has launcher: slurm).
    through_srun = cluster.profile.with_name("through-srun.yaml")
    through_srun.write_text(
        cluster.profile.read_text().replace("launcher: local", "launcher: slurm")
    )
    assert hpcos(cluster, "deploy", "testing", "--cluster", str(through_srun), "--rolling") == 2
    err = capsys.readouterr().err
    assert "set deploy.launcher (ssh) in the profile" in err and "Traceback" not in err, err
    broken = cluster.profile.with_name("broken.yaml")
    broken.write_text(cluster.profile.read_text().replace("batch_size: 2", "batch_size: -1"))
    assert hpcos(cluster, "deploy", "testing", "--cluster", str(broken)) == 2
    err = capsys.readouterr().err
    assert "broken.yaml:" in err and "deploy.batch_size" in err and "Traceback" not in err, err


def test_a_node_that_does_not_come_back_is_left_drained_in_bounded_time(cluster):
    # A reboot command that does nothing: the boot id never changes, as with a node stuck in firmware.
    data = yaml.safe_load(cluster.profile.read_text())
    data["deploy"].update({"reboot": "true", "reboot_timeout": 2})
    stuck = cluster.profile.with_name("stuck.yaml")
    stuck.write_text(yaml.safe_dump(data))
    assert hpcos(cluster, "deploy", "testing", "--cluster", str(stuck), "--nodes", "node2") == 1
    [record] = deployments.records(StoreLayout(cluster.store))
    node = record.nodes["node2"]
    assert not node.verified and node.reason == "did not come back within 2 s of the reboot"
    assert 2 <= node.durations["reboot"] < 30
    assert cluster.slurm.sinfo()["node2"] == (
        "drained",
        "hpcos deploy: did not come back within 2 s of the reboot",
    )


def test_a_rollout_whose_canary_batch_fails_stops_there(cluster, capsys):
    """node1 cannot install (the blocker): the canary batch node[1-2] fails, so node3 and node4 are not
    touched at all (no .repo, no download, no drain, no reboot); the summary names the rollback and the
    failure is a ticket.  A failure budget of 1 node lets the same rollout go on."""
    root = cluster.nodes_dir / "node1"
    subprocess.run(
        ["rpm", "--root", str(root), "-i", "--nodeps", str(cluster.factory.path(BLOCKER))],
        check=True,
        capture_output=True,
        timeout=60,
        env=launch_environment(),
    )  # the launcher's HOME: ~/.rpmdb
    before = {n: installed(cluster.nodes_dir / n) for n in ("node3", "node4")}
    assert hpcos(cluster, "deploy", "testing", "--cluster", str(cluster.profile)) == 1
    shown = capsys.readouterr().err
    [record] = deployments.records(StoreLayout(cluster.store))
    assert record.verified_nodes == ["node2"] and record.skipped_nodes == ["node3", "node4"]
    assert (
        record.stopped == "stopped after batch 1/2: the canary batch node[1-2] failed on node1"
    ), record.stopped
    for node in ("node3", "node4"):
        untouched = cluster.nodes_dir / node
        assert installed(untouched) == before[node], "a node after the canary was changed"
        assert not (untouched / "var" / "log" / "reboots").exists()
        assert (
            f"/snapshots/{cluster.snapshot_b}/"
            not in (untouched / "etc" / "yum.repos.d" / "hpcos.repo").read_text()
        )
        assert record.nodes[node].durations == {}
    # node1's transaction failed at the download, before its drain: every node is in service.
    assert {state for state, _ in cluster.slurm.sinfo().values()} <= {"idle", "idle*"}
    # No earlier deployment of these nodes is recorded: the environment's previous snapshot is what they ran.
    assert (
        record.rollback
        == f"hpcos deploy testing --cluster {cluster.profile} --snapshot {cluster.snapshot_a} "
        "--nodes 'node[1-2]'"
    )
    assert "node[3-4]: not touched, still in service on their earlier snapshot (2 nodes)" in shown
    assert "rollout stopped after batch 1/2: the canary batch node[1-2] failed on node1" in shown
    assert "rollback of node[1-2]: " + record.rollback in shown, shown
    assert hpcos(cluster, "tickets", "list", "--json") == 0
    [ticket] = json.loads(capsys.readouterr().out)["tickets"]
    assert "node1" in ticket["summary"] and "node3" not in ticket["summary"], ticket
    # The rollback command itself works: node2 goes back to snapshot A (the blocker stays on node1).
    assert (
        hpcos(
            cluster,
            "deploy",
            "testing",
            "--cluster",
            str(cluster.profile),
            "--snapshot",
            cluster.snapshot_a,
            "--nodes",
            "node2",
        )
        == 0
    )
    assert "openmpi-0:4.1.1-1.hpc1.x86_64" in installed(cluster.nodes_dir / "node2")


def test_a_failure_budget_lets_the_rollout_go_on_then_stops_it(cluster, capsys):
    """Canary of one node, then batches of one: with max_failures 1 the first failure after the canary
    is tolerated, the second stops the rollout before the last node."""
    for node in ("node2", "node3"):
        subprocess.run(
            [
                "rpm",
                "--root",
                str(cluster.nodes_dir / node),
                "-i",
                "--nodeps",
                str(cluster.factory.path(BLOCKER)),
            ],
            check=True,
            capture_output=True,
            timeout=60,
            env=launch_environment(),
        )  # the launcher's HOME: Debian's rpm keeps ~/.rpmdb
    data = yaml.safe_load(cluster.profile.read_text())
    data["deploy"].update(
        {"canary": 1, "batch_size": 1, "max_failures": "25%"}
    )  # 25% of 4 nodes: 1
    budget = cluster.profile.with_name("budget.yaml")
    budget.write_text(yaml.safe_dump(data))
    assert hpcos(cluster, "deploy", "testing", "--cluster", str(budget)) == 1
    [record] = deployments.records(StoreLayout(cluster.store))
    assert record.verified_nodes == ["node1"] and record.skipped_nodes == ["node4"]
    assert (
        record.stopped
        == "stopped after batch 3/4: 2 failed nodes, more than deploy.max_failures allows (1)"
    )
    assert "openmpi-0:4.1.1-1.hpc1.x86_64" in installed(cluster.nodes_dir / "node4")
    data["deploy"]["max_failures"] = "half"
    budget.write_text(yaml.safe_dump(data))
    assert hpcos(cluster, "deploy", "testing", "--cluster", str(budget)) == 2
    err = capsys.readouterr().err
    assert "budget.yaml:" in err and "deploy.max_failures" in err and "Traceback" not in err, err
