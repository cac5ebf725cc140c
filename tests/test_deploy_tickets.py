"""A deployment's failures as tickets (hpcos.deploy.failures): one per cause with its node set, the
verified nodes as passes of the same test, so the ticket lifecycle closes them after clean deploys.

The records are what ``hpcos deploy`` writes (tests/test_deploy.py and tests/test_deploy_slurm.py run
the real procedure); here their reasons are the procedure's own words for two causes on five nodes.
"""

from __future__ import annotations

from ClusterShell.NodeSet import NodeSet

from hpcos.deploy import failures
from hpcos.repo.deployments import DeploymentRecord, NodeDeployment
from hpcos.tickets.grouping import group_failures, passing_tests

SYNC = (
    "dnf distro-sync failed: exit 1: Error: Problem: problem with installed package "
    "openmpi-4.1.1-1.hpc1.x86_64 - package site-blocker-1.0-1.noarch conflicts with openmpi >= 4.1.2"
)


def record(snapshot: str, reasons: dict[str, str]) -> DeploymentRecord:
    nodes = {
        f"node{i}": NodeDeployment(
            f"node{i}", verified=f"node{i}" not in reasons, reason=reasons.get(f"node{i}", "")
        )
        for i in range(1, 7)
    }
    return DeploymentRecord(
        deploy_id=f"20261207T010000Z-testing-{snapshot[-6:]}",
        environment="testing",
        snapshot=snapshot,
        cluster="example-test-cluster",
        profile_sha256="0" * 64,
        started="2026-12-07T01:00:00+00:00",
        batch_size=4,
        nodes=nodes,
    )


def test_one_ticket_per_cause_with_its_node_set_whatever_the_snapshot():
    run = failures.as_run(
        record(
            "20261207T000000Z-testing-aaaaaa",
            {
                "node2": SYNC,
                "node3": SYNC,
                "node5": SYNC,
                "node6": "did not come back within 900 s of the reboot (reading its boot id: srun never started there "
                "within 118 s (Required node not available (down, drained or reserved)); node6 is drained: "
                "NHC: ib0 down)",
            },
        )
    )
    groups = group_failures(run)
    assert sorted((str(g.nodes), g.results[0].test_id) for g in groups) == [
        ("node6", "deploy/testing"),
        ("node[2-3,5]", "deploy/testing"),
    ]
    assert passing_tests(run) == set(), (
        "a deployment with a failed node does not count towards closing"
    )
    [sync] = [g for g in groups if g.nodes == NodeSet("node[2-3,5]")]
    assert (
        sync.results[0].rerun == "hpcos deploy testing --cluster example-test-cluster --nodes node2"
    )
    # The next deployment (another snapshot) with the same cause is the same ticket, not a new one.
    again = group_failures(
        failures.as_run(record("20261208T000000Z-testing-bbbbbb", {"node3": SYNC}))
    )
    assert [g.key for g in again] == [sync.key]
    # A clean deployment is a passing run of the test: the lifecycle closes the tickets after
    # tracker.close_after_passing_runs of them, as for a nightly test.
    assert passing_tests(failures.as_run(record("20261209T000000Z-testing-cccccc", {}))) == {
        "deploy/testing"
    }
