"""The local launcher: every node name stands for this machine; commands and MPI jobs run as subprocesses."""

import pytest
from ClusterShell.NodeSet import NodeSet

from hpcos.cluster.launchers import launcher_for
from hpcos.cluster.profiles import load_profile

PROFILE = """\
name: here
launcher: local
nodes: n[1-2]
mpi:
  mpich: {mpicc: mpicc.mpich, mpirun: [mpiexec.mpich], srun_mpi: pmi2, env: {HPCOS_STACK: mpich}}
"""


@pytest.fixture
def launcher(tmp_path):
    path = tmp_path / "here.yaml"
    path.write_text(PROFILE)
    return launcher_for(load_profile(path))


def test_one_result_per_node_name(launcher):
    results = launcher.run(
        ["sh", "-c", "echo $HPCOS_X"], NodeSet("n[1-2]"), timeout=10, env={"HPCOS_X": "y"}
    )
    assert {node: (r.ok, r.stdout, r.command) for node, r in results.items()} == {
        "n1": (True, "y\n", "sh -c 'echo $HPCOS_X'"),
        "n2": (True, "y\n", "sh -c 'echo $HPCOS_X'"),
    }


def test_mpi_job_gets_the_stack_environment_and_rank_count(launcher):
    stack = launcher.profile.mpi["mpich"]
    result = launcher.mpi(
        "sh",
        ["-c", "echo $HPCOS_STACK:$PMI_SIZE"],
        np=2,
        stack=stack,
        nodes=NodeSet("n[1-2]"),
        timeout=60,
    )
    assert result.ok, result.describe()
    assert result.stdout.split() == ["mpich:2", "mpich:2"]
    assert result.command == "mpiexec.mpich -np 2 sh -c 'echo $HPCOS_STACK:$PMI_SIZE'"


def test_batch_without_a_scheduler_runs_the_script_on_the_first_node(launcher):
    result = launcher.batch("echo one; echo two; exit 4", nodes=NodeSet("n[1-2]"), timeout=10)
    assert (result.node, result.exit_code, result.stdout) == ("n1", 4, "one\ntwo\n")


def test_failure_description_keeps_the_tail_of_long_output(launcher):
    result = launcher.run("seq 1 100 >&2; exit 1", NodeSet("n1"), timeout=10)["n1"]
    text = result.describe()
    assert text.startswith("exit code 1 on n1: seq 1 100 >&2; exit 1")
    assert "--- stderr (last 30 of 100 lines)" in text
    assert "\n100" in text and "\n70\n" not in text and "\n71\n" in text
