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
    env = {**os.environ, **slurm_cluster.env, "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "HPCOS_STORE": str(tmp_path / "store")}
    done = subprocess.run([sys.executable, "-m", "hpcos.cli", "test", "--cluster", str(profile), "--results",
                           str(results), "--junitxml", str(junit), "-p", "no:cacheprovider",
                           "-k", "rank_count or ring or test_nodes",
                           str(REPO / "integration_tests/test_mpi.py"), str(REPO / "integration_tests/test_nodes.py")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    output = done.stdout + done.stderr
    run = RunResults.read(results)
    on_n3 = [r for r in run.results if r.node == "n3"]
    (report,) = [r for r in on_n3 if r.failed]
    assert report.message == f"node unavailable: drained: {REASON}", output[-4000:]
    assert report.failure_class == "node unreachable"
    assert all(r.outcome == "skipped" and r.message == f"node unavailable: n3 (reported once, by {report.test_id})"
               for r in on_n3 if r is not report)
    assert not [r for r in run.results if r.failure_class == "timeout"]
    others = [r for r in run.results if r.node != "n3"]
    assert others and all(r.outcome == "passed" for r in others), output[-4000:]
    assert {r.node for r in others if r.mpi is None} == {"n1", "n2", "n4"}
    # test_rank_count passed: the ranks reported SLURMD_NODENAME n1, n2, n4, one each.
    jobs = [r for r in run.results if r.mpi]
    assert sorted((r.test_id.split("::")[-1], r.mpi) for r in jobs) == [
        ("test_rank_count", "mpich"), ("test_rank_count", "openmpi"), ("test_ring", "mpich"), ("test_ring", "openmpi")]
    assert {r.node for r in jobs} == {"n[1-2,4]"}
    assert output.count("hpcos pre-flight: 1 of 4 node(s) unavailable (n3); MPI jobs run on n[1-2,4]") == 1


def test_sinfo_states_that_keep_a_node_out():
    sinfo = ("n1|idle|none\nn2|mixed|none\nn3|drained|fan replaced\nn4|down*|Not responding\n"
             "n5|idle*|none\nn6|draining|kernel update\nn6|draining|kernel update\nn7|allocated|none\n")
    assert node_problems(sinfo, NodeSet("n[1-8]")) == {
        "n3": "drained: fan replaced",
        "n4": "down (not responding): Not responding",
        "n5": "idle (not responding): no reason given",
        "n6": "draining: kernel update",
        "n8": "unknown to Slurm: sinfo lists no such node",
    }
