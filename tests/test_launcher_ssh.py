"""The ssh launcher over a real sshd on loopback: 32 node names fanned out by ClusterShell,
identical outputs grouped, an unreachable node (a closed port) reported once."""

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest
from ClusterShell.NodeSet import NodeSet

from harness.plugin import group_failures
from hpcos.cluster.launchers import launcher_for
from hpcos.cluster.profiles import MpiStack, load_profile
from hpcos.results.model import RunResults, TestResult

NODES = "node[001-032],down01"
DATA = Path(__file__).parent / "data"


@pytest.fixture
def ssh_profile(loopback_sshd, tmp_path):
    path = tmp_path / "ssh.yaml"
    path.write_text(loopback_sshd.profile_yaml(NODES, fanout=32))
    return path


def test_fanout_gathers_identical_output_and_names_the_unreachable_node(ssh_profile):
    launcher = launcher_for(load_profile(ssh_profile))
    results = launcher.run("echo same; echo $((1 + 1)) >&2", NodeSet(NODES), timeout=20)
    assert set(results) == set(NodeSet(NODES))
    bad = {
        node: r.describe()
        for node, r in results.items()
        if node != "down01" and (r.ok, r.stdout, r.stderr) != (True, "same", "2")
    }
    assert not bad
    down = results["down01"]
    assert down.unreachable and not down.ok
    assert "Connection refused" in down.describe()
    assert down.describe().startswith("node unreachable on down01")


def test_remote_command_is_killed_at_its_timeout(ssh_profile):
    launcher = launcher_for(load_profile(ssh_profile))
    results = launcher.run("sleep 30; echo finished", NodeSet("node[001-002]"), timeout=1)
    assert all(r.timed_out and "finished" not in r.stdout for r in results.values())


def test_environment_reaches_the_remote_shell(ssh_profile):
    launcher = launcher_for(load_profile(ssh_profile))
    result = launcher.run(
        "echo $HPCOS_WORD", NodeSet("node007"), timeout=20, env={"HPCOS_WORD": "a b'c"}
    )
    assert result["node007"].stdout == "a b'c"


def test_node_tests_fan_out_over_ssh(pytester, loopback_sshd):
    """Through the plugin: one result per (test, node); the pre-flight finds the unreachable node,
    the first test on it reports it (no command, no timeout), the others skip pointing there."""
    ssh_profile = pytester.path / "ssh.yaml"
    ssh_profile.write_text(loopback_sshd.profile_yaml(NODES, fanout=32))
    pytester.makepyfile(
        test_fleet="""
        import pytest

        pytestmark = pytest.mark.node

        def test_kernel(run, node):
            assert run("uname -s").check().stdout.strip() == "Linux"

        def test_missing_tool(run, node):
            run("hpcos-no-such-tool --version").check()

        def test_after(run, node):
            run("true").check()
    """
    )
    results = pytester.path / "results.json"
    junit = pytester.path / "junit.xml"
    outcome = pytester.runpytest(
        "--cluster",
        str(ssh_profile),
        "--hpcos-results",
        str(results),
        "-p",
        "no:cacheprovider",
        "--junitxml",
        str(junit),
    )
    counts = {
        k: v
        for k, v in outcome.parseoutcomes().items()
        if k in ("passed", "failed", "skipped", "errors")
    }
    assert counts == {"passed": 64, "failed": 32, "errors": 1, "skipped": 2}, outcome.stdout.str()[
        -4000:
    ]
    run = RunResults.read(results)
    unreachable = [r for r in run.results if r.failure_class == "node unreachable"]
    assert [(r.test_id, r.node) for r in unreachable] == [("test_fleet.py::test_kernel", "down01")]
    assert unreachable[0].message.startswith(
        "node unavailable: unreachable: ssh: connect to host 127.0.0.1 port"
    )
    skipped = [r for r in run.results if r.outcome == "skipped"]
    assert {r.node for r in skipped} == {"down01"}
    assert all(
        r.message.startswith(
            "node unavailable: down01 (reported once, by test_fleet.py::test_kernel): "
        )
        for r in skipped
    )
    missing = [r for r in run.results if r.test_id.endswith("test_missing_tool") and r.failed]
    assert len(missing) == 32 and all("not found" in r.message for r in missing)
    assert run.versions.get("kernel")
    text = outcome.stdout.str()
    # 32 identical failures are one group with one node set.
    assert "test_fleet.py::test_missing_tool error on node[001-032] (32 nodes):" in text
    assert "test_fleet.py::test_kernel node unreachable on down01 (1 node):" in text
    # JUnit: each node's testcase carries its own node's time, not the whole fan-out's.
    cases = {c.get("name"): float(c.get("time")) for c in ElementTree.parse(junit).iter("testcase")}
    fanout = max(r.duration for r in run.results if r.test_id.endswith("test_kernel"))
    assert cases["test_kernel[node001]"] <= fanout + 1.0


def test_failures_group_by_test_stack_class_and_text_with_node_names_set_aside():
    def failed(node, message, mpi=None, failure_class="error"):
        return TestResult(
            "t.py::test_x", node, "failed", failure_class=failure_class, message=message, mpi=mpi
        )

    groups = group_failures(
        [
            failed("n1", "exit 1 on n1: boom"),
            failed("n2", "exit 1 on n2: boom"),
            failed("n3", "exit 1 on n3: other"),
            failed("n[1-2]", "boom", mpi="openmpi"),
            failed("n[1-2]", "boom", mpi="mpich"),
            failed("n4", "exit 1 on n4: boom", None, "timeout"),
        ]
    )
    assert sorted((g.mpi or "", g.failure_class, str(g.nodes), g.text) for g in groups) == [
        ("", "error", "n3", "exit 1 on <node>: other"),
        ("", "error", "n[1-2]", "exit 1 on <node>: boom"),
        ("", "timeout", "n4", "exit 1 on <node>: boom"),
        ("mpich", "error", "n[1-2]", "boom"),
        ("openmpi", "error", "n[1-2]", "boom"),
    ]


def test_a_long_mpi_failure_shows_its_first_lines_and_the_line_naming_the_host():
    stderr = (DATA / "mpi_errors" / "openmpi_ssh_refused.stderr").read_text()
    message = "ring: something\n" + "\n".join(f"boilerplate {i}" for i in range(30)) + "\n" + stderr
    (group,) = group_failures(
        [
            TestResult(
                "t.py::test_ring",
                "n[1-2]",
                "failed",
                failure_class="error",
                message=message,
                mpi="openmpi",
            )
        ]
    )
    assert group.hosts == ["n2"]
    shown = group.shown_lines()
    assert shown[0] == "ring: something" and len(shown) < 20
    assert shown[-1] == "ssh: connect to host n2 port 22: Connection refused"


def test_mpi_job_gets_the_host_list_of_the_selection(
    ssh_profile, pingpong, loopback_sshd, tmp_path
):
    # hydra reaches the other "node" through the same ssh config as the launcher (an agent script).
    agent = tmp_path / "ssh-agent"
    agent.write_text(f'#!/bin/sh\nexec ssh -F {loopback_sshd.client_config} "$@"\n')
    agent.chmod(0o755)
    profile = load_profile(ssh_profile)
    stack = MpiStack(
        name="mpich", mpicc="mpicc.mpich", mpirun=["mpiexec.mpich", "-launcher-exec", str(agent)]
    )
    result = launcher_for(profile).mpi(
        str(pingpong["mpich"]),
        ["-s", "8", "-i", "10", "-r", "1", "-w", "0"],
        np=2,
        stack=stack,
        nodes=NodeSet("node[001-002]"),
        timeout=60,
    )
    assert result.ok, result.describe()
    assert json.loads(result.stdout.splitlines()[0])["ranks"] == 2
    assert result.node == "node[001-002]"
    assert result.placement == {"node001": 1, "node002": 1}
    assert "-hosts node001:1,node002:1 -np 2" in result.command


def test_junit_times_are_each_nodes_own(pytester, loopback_sshd):
    """Three nodes queue on one lock and sleep a second each, so they finish 1, 2 and 3 s or more into
    the fan-out: each (test, node) testcase shows its own node's time, none is left at zero (before,
    the item that launched the fan-out got all of it and the others none)."""
    profile = pytester.path / "ssh.yaml"
    profile.write_text(loopback_sshd.profile_yaml("node[001-003]", fanout=3))
    lock = pytester.path / "lock"
    pytester.makepyfile(
        test_queue=f"""
        def test_queue(run, node):
            run("flock {lock} sleep 1").check()
    """
    )
    junit = pytester.path / "junit.xml"
    pytester.runpytest(
        "--cluster", str(profile), "-p", "no:cacheprovider", "--junitxml", str(junit)
    ).assert_outcomes(passed=3)
    times = sorted(float(c.get("time")) for c in ElementTree.parse(junit).iter("testcase"))
    assert times[0] >= 0.9, (
        times
    )  # the nodes that did not launch the fan-out still waited for their own node
    assert times[2] >= 2.9, times  # the last one waited for all three
