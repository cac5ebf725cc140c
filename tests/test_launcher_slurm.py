"""The Slurm launcher against a real slurmctld/slurmd (one node, started by the local_slurm fixture):
srun for node commands and MPI jobs (pmix for Open MPI, pmi2 for MPICH), sbatch --wait for batch,
and a request the node can never satisfy killed at its timeout instead of hanging."""

import json
import subprocess
import sys

import pytest
from ClusterShell.NodeSet import NodeSet
from conftest import REPO

from hpcos.cluster.launchers import launcher_for
from hpcos.cluster.profiles import load_profile
from hpcos.results.model import RunResults


@pytest.fixture
def slurm_env(local_slurm, monkeypatch):
    for name, value in local_slurm.env.items():
        monkeypatch.setenv(name, value)
    return local_slurm


@pytest.fixture
def launcher(slurm_env, tmp_path):
    path = tmp_path / "slurm.yaml"
    path.write_text(slurm_env.profile_yaml())
    return launcher_for(load_profile(path))


def _squeue(slurm) -> str:
    return subprocess.run(
        ["squeue", "-h", "-o", "%j %T"],
        env={**slurm.env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()


def test_node_command_runs_through_srun(launcher, slurm_env):
    result = launcher.run("echo $SLURM_JOB_ID on $(hostname)", NodeSet(slurm_env.node), timeout=30)
    out = result[slurm_env.node]
    assert out.ok, out.describe()
    job, _, host = out.stdout.strip().partition(" on ")
    assert job.isdigit() and host == slurm_env.node


def test_srun_two_tasks(launcher):
    result = launcher.srun(["-n", "2", "hostname"], node=None, shown=None, timeout=30)
    assert result.ok, result.describe()
    assert len(result.stdout.split()) == 2
    assert result.command.startswith("srun --job-name=hpcos-") and "-n 2 hostname" in result.command


def test_pending_request_is_killed_at_its_timeout_and_cancelled(launcher, slurm_env):
    # More tasks than the node has CPUs: srun waits for resources that never come.
    tasks = str(slurm_env.cpus + 1)
    result = launcher.srun(["-n", tasks, "hostname"], node=None, shown=None, timeout=2)
    assert result.timed_out and not result.ok
    assert "timed out after" in result.describe()
    assert "hpcos-" not in _squeue(slurm_env)  # nothing left pending in the queue


def test_sbatch_wait_returns_the_jobs_exit_code_and_output(launcher, slurm_env):
    result = launcher.batch(
        "echo batch on $(hostname); exit 3", nodes=NodeSet(slurm_env.node), timeout=30
    )
    assert result.exit_code == 3
    assert result.stdout.strip() == f"batch on {slurm_env.node}"


@pytest.mark.parametrize("stack", ["openmpi", "mpich"])
def test_mpi_job_through_srun_with_the_stacks_pmi(launcher, pingpong, stack):
    chosen = launcher.profile.mpi[stack]
    result = launcher.mpi(
        str(pingpong[stack]),
        ["-s", "8", "-i", "20", "-r", "1", "-w", "0"],
        np=2,
        stack=chosen,
        nodes=launcher.profile.node_set,
        timeout=60,
    )
    assert result.ok, result.describe()
    header = json.loads(result.stdout.splitlines()[0])
    assert header["ranks"] == 2  # one two-rank job, not two single-rank ones
    assert f"--mpi={chosen.srun_mpi}" in result.command


def test_integration_node_tests_pass_through_slurm(slurm_env, tmp_path):
    """``hpcos test`` with a Slurm profile runs integration_tests/test_nodes.py through srun."""
    profile = tmp_path / "slurm.yaml"
    profile.write_text(slurm_env.profile_yaml())
    results = tmp_path / "results.json"
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
            "-q",
            str(REPO / "integration_tests/test_nodes.py"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run = RunResults.read(results)
    assert run.cluster == "local-slurm"
    assert {r.node for r in run.results} == {slurm_env.node}
    assert all(r.outcome == "passed" for r in run.results) and len(run.results) >= 4
