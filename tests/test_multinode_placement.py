"""Placement and attribution without a cluster: where the launchers put ranks, the host lists they
give each MPI, the probes' placement check, and the host a real failed launch names
(tests/data/mpi_errors/*_ssh_refused*: captured across the two network namespaces with n2's sshd down)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ClusterShell.NodeSet import NodeSet

from hpcos.cluster import mpi_errors
from hpcos.cluster.launchers.base import host_arguments, is_hydra, spread
from hpcos.cluster.profiles import MpiStack, load_profile
from hpcos.core.sourced_yaml import InvalidInput
from hpcos.probes.parsers import probe

DATA = Path(__file__).parent / "data" / "mpi_errors"


def stack(name: str, *mpirun: str, module: str | None = None) -> MpiStack:
    return MpiStack(name=name, mpicc="mpicc", mpirun=list(mpirun), module=module)


@pytest.mark.parametrize(
    ("np", "nodes", "per_node", "expected"),
    [
        (2, "n[1-2]", 1, {"n1": 1, "n2": 1}),
        (4, "n[1-4]", 2, {"n1": 2, "n2": 2}),  # fewer ranks than slots: the first nodes, full
        (3, "n[1-2,4]", 1, {"n1": 1, "n2": 1, "n4": 1}),
        (2, "n2", 1, {"n2": 2}),  # more ranks than slots: the nodes share them evenly
        (5, "n[1-2]", 2, {"n1": 3, "n2": 2}),
    ],
)
def test_spread_places_blocks_on_the_first_nodes(np, nodes, per_node, expected):
    assert spread(np, NodeSet(nodes), per_node) == expected


def test_host_lists_in_each_launchers_syntax():
    placement = {"n1": 2, "n2": 2}
    assert host_arguments(stack("openmpi", "mpirun.openmpi", "--bind-to", "none"), placement) == [
        "--host",
        "n1:2,n2:2",
    ]
    assert host_arguments(stack("mpich", "mpiexec.mpich"), placement) == ["-hosts", "n1:2,n2:2"]
    # RHEL's module names say which MPI a bare mpirun/mpiexec is.
    assert is_hydra(stack("site", "mpirun", module="mpi/mpich-x86_64"))
    assert not is_hydra(stack("site", "mpiexec", module="mpi/openmpi-x86_64"))
    assert is_hydra(stack("site", "mpiexec")) and not is_hydra(stack("site", "mpirun"))
    # A profile that names its own hosts keeps them: the probes then check where the ranks went.
    assert (
        host_arguments(stack("openmpi", "mpirun", "--hostfile", "/etc/hosts.mpi"), placement) == []
    )


def header(hosts: list[str]) -> str:
    return (
        json.dumps({"probe": "hello", "ranks": len(hosts), "library": "x", "hosts": hosts}) + "\n"
    )


def test_placement_problem_says_when_every_rank_ran_on_one_node():
    out = probe.parse(header(["n1", "n1"]), "hello")
    assert out.placement_problem({"n1": 1, "n2": 1}) == (
        "hello: ranks ran on n1 (2 ranks), expected n1 (1 rank), n2 (1 rank): every rank ran on one node, n1 "
        "(does the profile's mpirun line name its own hosts, or ignore the host list?)"
    )


def test_placement_compares_short_names_and_counts_per_node():
    assert (
        probe.parse(header(["n1.cluster", "n2.cluster"]), "hello").placement_problem(
            {"n1": 1, "n2": 1}
        )
        is None
    )
    wrong = probe.parse(header(["n1", "n1", "n1", "n2"]), "hello").placement_problem(
        {"n1": 2, "n2": 2}
    )
    assert wrong.endswith("wrong number of ranks per node (ranks_per_node)")
    elsewhere = probe.parse(header(["n1", "n3"]), "hello").placement_problem({"n1": 1, "n2": 1})
    assert elsewhere.endswith("the ranks span 2 node(s), the job was given 2")


@pytest.mark.parametrize("capture", ["openmpi_ssh_refused.stderr", "mpich_ssh_refused_hang.stderr"])
def test_a_failed_launch_names_the_host_it_could_not_reach(capture):
    stderr = (DATA / capture).read_text()
    assert mpi_errors.unreachable_hosts(stderr) == ["n2"]
    assert (
        mpi_errors.summary(stderr).splitlines()[0]
        == "ssh: connect to host n2 port 22: Connection refused"
    )


def test_other_ssh_complaints_name_their_host():
    stderr = (
        "ssh: Could not resolve hostname node017: Name or service not known\n"
        "Connection closed by 10.1.0.18 port 22\n"
        "[mpiexec@n1] HYDU_sock_connect: unable to connect from n1 to node019 (Connection refused)\n"
    )
    assert mpi_errors.unreachable_hosts(stderr) == ["node017", "10.1.0.18", "node019"]
    assert mpi_errors.unreachable_hosts((DATA / "openmpi_btl_self.stderr").read_text()) == []


def test_ranks_per_node_is_a_positive_count_named_by_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: tiny\nlauncher: ssh\nnodes: n[1-4]\nranks_per_node: 0\n")
    with pytest.raises(InvalidInput) as err:
        load_profile(path)
    assert f"{path}:4: ranks_per_node: " in str(err.value)
    path.write_text("name: tiny\nlauncher: ssh\nnodes: n[1-4]\nranks_per_node: 4\n")
    assert load_profile(path).ranks_per_node == 4


def test_terminal_shows_each_group_once_with_the_failing_host_highlighted(pytester):
    """Through the plugin (local launcher, two node names): the same job failure on two MPI stacks is
    two groups; the host the launch could not reach is in bold red; node output cannot drive the terminal."""
    profile = pytester.path / "two.yaml"
    profile.write_text(
        "name: two\nlauncher: local\nnodes: 'n[1-2]'\nmpi:\n"
        "  openmpi: {mpicc: mpicc.openmpi, mpirun: [mpirun.openmpi]}\n"
        "  mpich: {mpicc: mpicc.mpich, mpirun: [mpiexec.mpich]}\n"
    )
    pytester.makepyfile(
        test_job="""
        import pytest

        pytestmark = pytest.mark.job

        def test_ring(mpi_stack):
            pytest.fail("job failed\\n\\x1b[2Jssh: connect to host n2 port 22: Connection refused", pytrace=False)
    """
    )
    outcome = pytester.runpytest("--cluster", str(profile), "-p", "no:cacheprovider", "--color=yes")
    text = (
        outcome.stdout.str()
        .split("hpcos: failures grouped by")[1]
        .split("hpcos: rerun a failed")[0]
    )
    assert (
        "test_job.py::test_ring [openmpi] error on" in text
        and "test_job.py::test_ring [mpich] error on" in text
    )
    red_bold = "\x1b[31m\x1b[1m"
    assert f"ssh: connect to host {red_bold}n2\x1b[0m port 22" in text
    assert "\\x1b[2J" in text and "\x1b[2J" not in text
