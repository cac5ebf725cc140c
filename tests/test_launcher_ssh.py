"""The ssh launcher over a real sshd on loopback: 32 node names fanned out by ClusterShell,
identical outputs grouped, an unreachable node (a closed port) reported once."""

import json

import pytest
from ClusterShell.NodeSet import NodeSet

from harness.launchers import launcher_for
from harness.plugin import group_failures
from harness.profiles import MpiStack, load_profile
from hpcos.results.model import RunResults, TestResult

NODES = "node[001-032],down01"


@pytest.fixture
def ssh_profile(loopback_sshd, tmp_path):
    path = tmp_path / "ssh.yaml"
    path.write_text(loopback_sshd.profile_yaml(NODES, fanout=32))
    return path


def test_fanout_gathers_identical_output_and_names_the_unreachable_node(ssh_profile):
    launcher = launcher_for(load_profile(ssh_profile))
    results = launcher.run("echo same; echo $((1 + 1)) >&2", NodeSet(NODES), timeout=20)
    assert set(results) == set(NodeSet(NODES))
    bad = {node: r.describe() for node, r in results.items()
           if node != "down01" and (r.ok, r.stdout, r.stderr) != (True, "same", "2")}
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
    result = launcher.run("echo $HPCOS_WORD", NodeSet("node007"), timeout=20, env={"HPCOS_WORD": "a b'c"})
    assert result["node007"].stdout == "a b'c"


def test_node_tests_fan_out_over_ssh(pytester, loopback_sshd):
    """Through the plugin: one result per (test, node); the unreachable node is one failure, once."""
    ssh_profile = pytester.path / "ssh.yaml"
    ssh_profile.write_text(loopback_sshd.profile_yaml(NODES, fanout=32))
    pytester.makepyfile(test_fleet="""
        import pytest

        pytestmark = pytest.mark.node

        def test_kernel(run, node):
            assert run("uname -s").check().stdout.strip() == "Linux"

        def test_missing_tool(run, node):
            run("hpcos-no-such-tool --version").check()

        def test_after(run, node):
            run("true").check()
    """)
    results = pytester.path / "results.json"
    outcome = pytester.runpytest("--cluster", str(ssh_profile), "--hpcos-results", str(results), "-p",
                                 "no:cacheprovider")
    counts = {k: v for k, v in outcome.parseoutcomes().items() if k in ("passed", "failed", "skipped")}
    assert counts == {"passed": 64, "failed": 33, "skipped": 2}, outcome.stdout.str()[-4000:]
    run = RunResults.read(results)
    unreachable = [r for r in run.results if r.failure_class == "node unreachable"]
    assert [(r.test_id, r.node) for r in unreachable] == [("test_fleet.py::test_kernel", "down01")]
    skipped = [r for r in run.results if r.outcome == "skipped"]
    assert {r.node for r in skipped} == {"down01"}
    assert all(r.message == "node unreachable: down01 (reported once, by test_fleet.py::test_kernel)" for r in skipped)
    missing = [r for r in run.results if r.test_id.endswith("test_missing_tool") and r.failed]
    assert len(missing) == 32 and all("not found" in r.message for r in missing)
    text = outcome.stdout.str()
    # 32 identical failures are one group with one node set.
    assert "test_fleet.py::test_missing_tool on node[001-032] (32 nodes):" in text
    assert "test_fleet.py::test_kernel on down01 (1 node):" in text


def test_failures_group_by_text_with_node_names_set_aside():
    def failed(node, message):
        return TestResult("t.py::test_x", node, "failed", failure_class="error", message=message)

    groups = group_failures([failed("n1", "exit 1 on n1: boom"), failed("n2", "exit 1 on n2: boom"),
                             failed("n3", "exit 1 on n3: other")])
    assert sorted((str(nodes), text) for _, nodes, text in groups) == [
        ("n3", "[error] exit 1 on <node>: other"), ("n[1-2]", "[error] exit 1 on <node>: boom")]



def test_mpi_job_starts_on_the_first_node_over_ssh(ssh_profile, pingpong):
    profile = load_profile(ssh_profile)
    stack = MpiStack(name="mpich", mpicc="mpicc.mpich", mpirun=["mpiexec.mpich"])
    result = launcher_for(profile).mpi(str(pingpong["mpich"]), ["-s", "8", "-i", "10", "-r", "1", "-w", "0"],
                                       np=2, stack=stack, nodes=NodeSet("node[001-002]"), timeout=60)
    assert result.ok, result.describe()
    assert json.loads(result.stdout.splitlines()[0])["ranks"] == 2
    assert result.node == "node[001-002]"
