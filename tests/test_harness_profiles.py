"""Cluster profiles: the shipped ones load; mistakes are reported as file:line: field: message."""

import pytest

from hpcos.cli import main
from hpcos.cluster.profiles import load_profile, profile_path
from hpcos.core.errors import UserError
from hpcos.core.sourced_yaml import InvalidInput

GOOD = """\
name: tiny
launcher: ssh
nodes: node[01-04]
mpi:
  openmpi: {mpicc: mpicc.openmpi, mpirun: [mpirun.openmpi, --oversubscribe], srun_mpi: pmix}
references:
  pingpong_latency:
    openmpi: {8: [1.0, -0.5, 0.5, us]}
"""


def _write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_profiles_load(repo_root):
    local = load_profile(repo_root / "integration_tests/clusters/local.yaml")
    assert (local.launcher, str(local.node_set), local.infiniband.expected) == (
        "local",
        "localhost",
        False,
    )
    assert [s.name for s in local.stacks()] == ["openmpi", "mpich"]
    assert local.mpi["mpich"].srun_mpi == "pmi2"

    cluster = load_profile(repo_root / "integration_tests/clusters/example-test-cluster.yaml")
    assert cluster.launcher == "slurm" and cluster.slurm.partition
    assert len(cluster.node_set) == 16
    assert cluster.infiniband.expected and cluster.infiniband.rate == 200
    assert all(s.module and s.osu and s.imb for s in cluster.stacks())
    ref = cluster.reference("pingpong_latency", "openmpi", 8)
    assert ref.unit == "us" and ref.admits(1.1) and not ref.admits(1.5)


def test_reference_lookup_and_bounds(tmp_path):
    profile = load_profile(_write(tmp_path, GOOD))
    ref = profile.reference("pingpong_latency", "openmpi", 8)
    assert ref.bounds() == (0.5, 1.5)
    assert profile.reference("pingpong_latency", "openmpi", 16) is None
    assert profile.reference("pingpong_latency", "mpich", 8) is None
    assert profile.reference("pingpong_latency", "openmpi", None) is None


@pytest.mark.parametrize(
    ("change", "line", "expected"),
    [
        (
            ("launcher: ssh", "launcher: pbs"),
            2,
            "launcher: expected one of 'local', 'ssh', 'slurm'; found 'pbs'",
        ),
        (("nodes: node[01-04]", "nodes: node[04-"), 3, "nodes: expected a ClusterShell node set"),
        (
            ("  openmpi: {mpicc", "  openmpi: {mpcc: x, mpicc"),
            5,
            "mpi.openmpi.mpcc: unknown key 'mpcc'; did you mean 'mpicc'?",
        ),
        (
            ("[1.0, -0.5, 0.5, us]", "[1.0, 0.5, us]"),
            8,
            "references.pingpong_latency.openmpi[8]: expected [value, lower",
        ),
        (
            ("[1.0, -0.5, 0.5, us]", "[1.0, 0.5, -0.5, us]"),
            8,
            "lower bound 0.5 is above upper bound -0.5",
        ),
    ],
)
def test_mistakes_name_file_line_and_field(tmp_path, change, line, expected):
    path = _write(tmp_path, GOOD.replace(*change))
    with pytest.raises(InvalidInput) as err:
        load_profile(path)
    assert f"{path}:{line}: " in str(err.value)
    assert expected in str(err.value)


def test_references_must_name_known_stacks(tmp_path):
    path = _write(tmp_path, GOOD.replace("    openmpi: {8:", "    mpich: {8:"))
    with pytest.raises(InvalidInput, match="names MPI stacks not in mpi: mpich"):
        load_profile(path)


def test_node_and_stack_selection(tmp_path):
    profile = load_profile(_write(tmp_path, GOOD))
    assert str(profile.select_nodes("node[02-03]")) == "node[02-03]"
    assert str(profile.select_nodes(None)) == "node[01-04]"
    with pytest.raises(UserError, match=r"node05 not in profile 'tiny'"):
        profile.select_nodes("node[04-05]")
    with pytest.raises(UserError, match="has no MPI stack mpich"):
        profile.stacks("mpich")


def test_profile_names_are_looked_up_in_the_profile_directories(tmp_path):
    _write(tmp_path, GOOD, "tiny.yaml")
    assert profile_path("tiny", [tmp_path]) == tmp_path / "tiny.yaml"
    with pytest.raises(UserError, match=r"no cluster profile 'nope' .* \(known: tiny\)"):
        profile_path("nope", [tmp_path])


def test_hpcos_test_reports_a_broken_profile_in_one_line(tmp_path, capsys):
    path = _write(tmp_path, GOOD.replace("launcher: ssh", "launcher: pbs"))
    assert main(["test", "--cluster", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: launcher:" in err
    assert "Traceback" not in err
