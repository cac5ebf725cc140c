"""The harness on a real four-node Slurm (tests/support/slurm_cluster_fixture.py) with n3 drained:
the pre-flight reads the node states with sinfo, n3 is reported once with Slurm's reason and costs
no timeout, node tests run on the other three and MPI jobs (srun, pmix for Open MPI, pmi2 for MPICH)
run on n1, n2, n4, as the ranks themselves report."""

from __future__ import annotations

import os
import subprocess
import sys

from ClusterShell.NodeSet import NodeSet
from conftest import REPO

from hpcos.cluster.profiles import load_profile
from hpcos.cluster.schedulers.slurm import node_problems
from hpcos.results.model import RunResults

RUN_TIMEOUT = 600
REASON = "hpcos test: fan replaced"


def test_a_drained_node_is_reported_once_and_mpi_jobs_use_the_others(slurm_cluster, tmp_path):
    slurm_cluster.drain("n3", REASON)
    slurm_cluster.wait_until({"drain"}, ["n3"])
    profile = tmp_path / "slurm4.yaml"
    profile.write_text(slurm_cluster.profile_yaml())
    results = tmp_path / "results.json"
    junit = tmp_path / "junit.xml"
    env = {
        **os.environ,
        **slurm_cluster.env,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "HPCOS_STORE": str(tmp_path / "store"),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpcos.cli",
            "test",
            "--cluster",
            str(profile),
            "--results",
            str(results),
            "--junitxml",
            str(junit),
            "-p",
            "no:cacheprovider",
            "-k",
            "rank_count or ring or test_nodes",
            str(REPO / "integration_tests/test_mpi.py"),
            str(REPO / "integration_tests/test_nodes.py"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    output = done.stdout + done.stderr
    run = RunResults.read(results)
    on_n3 = [r for r in run.results if r.node == "n3"]
    (report,) = [r for r in on_n3 if r.failed]
    assert report.message == f"node unavailable: drained: {REASON}", output[-4000:]
    assert report.failure_class == "node unreachable"
    skip = f"node unavailable: n3 (reported once, by {report.test_id}): drained: {REASON}"
    assert all(r.outcome == "skipped" and r.message == skip for r in on_n3 if r is not report)
    assert not [r for r in run.results if r.failure_class == "timeout"]
    others = [r for r in run.results if r.node != "n3"]
    assert others and all(r.outcome == "passed" for r in others), output[-4000:]
    assert {r.node for r in others if r.mpi is None} == {"n1", "n2", "n4"}
    # test_rank_count passed: the ranks reported SLURMD_NODENAME n1, n2, n4, one each.
    jobs = [r for r in run.results if r.mpi]
    assert sorted((r.test_id.split("::")[-1], r.mpi) for r in jobs) == [
        ("test_rank_count", "mpich"),
        ("test_rank_count", "openmpi"),
        ("test_ring", "mpich"),
        ("test_ring", "openmpi"),
    ]
    assert {r.node for r in jobs} == {"n[1-2,4]"}
    assert (
        output.count("hpcos pre-flight: 1 of 4 node(s) unavailable (n3); MPI jobs run on n[1-2,4]")
        == 1
    )


def test_sinfo_states_that_keep_a_node_out():
    sinfo = (
        "n1|idle|none\nn2|mixed|none\nn3|drained|fan replaced\nn4|down*|Not responding\n"
        "n5|idle*|none\nn6|draining|kernel update\nn6|draining|kernel update\nn7|allocated|none\n"
    )
    assert node_problems(sinfo, NodeSet("n[1-8]")) == {
        "n3": "drained: fan replaced",
        "n4": "down (not responding): Not responding",
        "n5": "idle (not responding): no reason given",
        "n6": "draining: kernel update",
        "n8": "unknown to Slurm: sinfo lists no such node",
    }


def _hpcos_test(slurm_cluster, tmp_path, *args: str, cwd=REPO) -> tuple[RunResults, str]:
    profile = tmp_path / "slurm4.yaml"
    profile.write_text(slurm_cluster.profile_yaml(command_timeout=30, mpi_timeout=60))
    results = tmp_path / "results.json"
    env = {
        **os.environ,
        **slurm_cluster.env,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "HPCOS_STORE": str(tmp_path / "store"),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpcos.cli",
            "test",
            "--cluster",
            str(profile),
            "--results",
            str(results),
            "-p",
            "no:cacheprovider",
            *args,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    output = done.stdout + done.stderr
    assert results.exists(), output[-4000:]
    return RunResults.read(results), output


def test_a_slurmd_killed_during_the_run_is_marked_once_and_no_test_waits_for_it(
    slurm_cluster, tmp_path
):
    """n3 passes the pre-flight, then its slurmd dies (as a crashed node's does).  The first job on it
    fails saying so (srun: "Task launch ... failed on node n3"), sinfo agrees, n3 is marked then: its
    node tests skip pointing at that job, every later job and fan-out runs on n1, n2, n4, and no result
    is a timeout."""
    suite = tmp_path / "suite" / "integration_tests"
    suite.mkdir(parents=True)
    for name in ("test_mpi.py", "test_nodes.py", "conftest.py"):
        (suite / name).write_text((REPO / "integration_tests" / name).read_text())
    pid_file = slurm_cluster.directory / "slurmd-n3.pid"
    (suite / "test_0_kill_n3.py").write_text(
        "import os, signal\n\n"
        "def test_kill_n3(mpi_nodes):\n"
        f"    os.kill(int(open({str(pid_file)!r}).read()), signal.SIGKILL)\n"
    )
    run, output = _hpcos_test(
        slurm_cluster, tmp_path, "-k", "kill or rank_count or test_nodes", cwd=suite.parent
    )
    lost = [r for r in run.results if r.failure_class == "node unreachable"]
    assert len(lost) == 1, output[-4000:]
    (job,) = lost
    assert job.test_id.endswith("test_rank_count") and "failed on node n3" in job.message, job
    on_n3 = [r for r in run.results if r.node == "n3"]
    assert len(on_n3) == 4 and all(r.outcome == "skipped" for r in on_n3), output[-4000:]
    assert all(
        r.message.startswith(
            f"node unavailable: n3 (reported once, by {job.test_id}): lost during the run"
        )
        for r in on_n3
    )
    assert not [r for r in run.results if r.failure_class == "timeout"], output[-4000:]
    others = [r for r in run.results if r.node in ("n1", "n2", "n4")]
    assert len(others) == 12 and all(r.outcome == "passed" for r in others), output[-4000:]
    later = [r for r in by_test(run, "test_rank_count") if r is not job]
    assert [(r.outcome, r.node) for r in later] == [("passed", "n[1-2,4]")]


def by_test(run: RunResults, name: str) -> list:
    return [r for r in run.results if r.test_id.split("::")[-1].split("[")[0] == name]


def test_node_commands_go_through_one_job_step_per_test(slurm_cluster, tmp_path):
    """Four node tests on four nodes: four jobs through slurmctld (one step each, srun --label), not
    sixteen, and the versions probe; each (test, node) keeps its own result and its own node's output."""
    log = slurm_cluster.directory / "log" / "slurmctld.log"
    before = log.read_text().count("_slurm_rpc_allocate_resources")
    run, output = _hpcos_test(
        slurm_cluster, tmp_path, "-m", "node", str(REPO / "integration_tests/test_nodes.py")
    )
    allocations = [
        line for line in log.read_text().splitlines() if "_slurm_rpc_allocate_resources" in line
    ]
    # One job across n[1-4] per node test, and the run's version probe on the first node.
    assert [line.split("NodeList=")[1].split()[0] for line in allocations[before:]] == [
        "n[1-4]"
    ] * 4 + ["n1"], output[-4000:]
    assert len(run.results) == 16 and all(r.outcome == "passed" for r in run.results), output[
        -4000:
    ]
    assert sorted(r.node for r in by_test(run, "test_hostname")) == ["n1", "n2", "n3", "n4"]


def test_node_commands_over_more_nodes_than_one_step_holds(slurm_cluster, monkeypatch):
    """A node set larger than a step holds goes as several steps at once; each node keeps its own result."""
    from hpcos.cluster.launchers import slurm as slurm_launcher

    monkeypatch.setattr(slurm_launcher, "STEP_NODES", 3)
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    profile_file = slurm_cluster.directory / "slurm4.yaml"
    profile_file.write_text(slurm_cluster.profile_yaml())
    log = slurm_cluster.directory / "log" / "slurmctld.log"
    before = log.read_text().count("_slurm_rpc_allocate_resources")
    launcher = slurm_launcher.SlurmLauncher(load_profile(profile_file))
    results = launcher.run('echo "on $SLURMD_NODENAME"', NodeSet("n[1-4]"), timeout=30)
    assert {node: (r.exit_code, r.stdout.strip()) for node, r in results.items()} == {
        n: (0, f"on {n}") for n in ("n1", "n2", "n3", "n4")
    }
    steps = [
        line.split("NodeList=")[1].split()[0]
        for line in log.read_text().splitlines()
        if "_slurm_rpc_allocate_resources" in line
    ][before:]
    assert sorted(steps) == ["n4", "n[1-3]"]
    # A step srun itself could not start (here: a node Slurm does not know) lost every task: the launcher
    # splits such a step and runs its halves again instead of failing every node of it.
    lost = launcher.srun(
        ["-N", "1", "-w", "nosuchnode", "true"], node="nosuchnode", shown="true", timeout=30
    )
    assert slurm_launcher.lost_every_task(lost), lost
    assert not slurm_launcher.lost_every_task(results["n1"])
