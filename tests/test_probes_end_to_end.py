"""``hpcos test`` on integration_tests/ with real Open MPI, MPICH and InfiniBand tools, faults injected.

Each test runs the real CLI in a subprocess and reads the results JSON it wrote: what the nightly
job, tickets and baselines will see.  The faults are real ones: Open MPI told to use no transport
between processes (btl=self) or TCP instead of shared memory, a probe that deadlocks, a binary
started by the other MPI's launcher, and this machine's missing HCA.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, require_tool

from hpcos.results.model import RunResults

HPCOS = str(Path(sys.executable).with_name("hpcos"))
LOCAL = REPO / "integration_tests" / "clusters" / "local.yaml"


@pytest.fixture(autouse=True)
def mpi_tools():
    require_tool("mpicc.openmpi", "libopenmpi-dev")
    require_tool("mpirun.openmpi", "openmpi-bin")
    require_tool("mpiexec.mpich", "mpich")


@pytest.fixture
def probe_cache(tmp_path_factory):
    # One cache for the whole module keeps compiles to one per (probe, stack).
    return os.environ.get("HPCOS_PROBE_CACHE") or str(
        tmp_path_factory.getbasetemp() / "probe-cache"
    )


def hpcos_test(
    tmp_path: Path, cache: str, *args: str, env: dict | None = None, timeout: float = 300
) -> tuple[subprocess.CompletedProcess, RunResults]:
    results = tmp_path / "results.json"
    done = subprocess.run(
        [HPCOS, "test", "--results", str(results), *args, "-p", "no:cacheprovider"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HPCOS_PROBE_CACHE": cache, **(env or {})},
    )
    assert results.exists(), f"no results written:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done, RunResults.read(results)


def by_test(run: RunResults, name: str, mpi: str | None = None):
    found = [
        r
        for r in run.results
        if r.test_id.split("::")[-1].startswith(name) and (mpi is None or r.mpi == mpi)
    ]
    assert found, f"no result for {name} ({mpi}) in {[r.test_id for r in run.results]}"
    return found


def profile_variant(tmp_path: Path, **changes) -> str:
    data = yaml.safe_load(LOCAL.read_text())
    data.update(changes)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


# Open MPI's own explanations of a job whose processes cannot reach each other.
OPEN_MPI_UNREACHABLE = (
    "At least one pair of MPI processes are unable to reach each other",
    "MPI_INIT has failed because at least one MPI process is unreachable",
)
# Open MPI 4.1.4 relays those help texts through mpirun, and under load loses some or all of them
# there, printing ORTE error-log lines from show_help.c instead, worded "Data unpack would read past end of
# buffer" or "Out of resource" depending on where the race hits (2 of 10 runs at load 30, 1 of 25 at load 2).
OPEN_MPI_LOST_HELP = re.compile(r"ORTE_ERROR_LOG: .* in file \S*orte/util/show_help\.c")


def test_btl_self_fails_every_open_mpi_test_with_mpi_own_words(tmp_path, probe_cache):
    done, run = hpcos_test(
        tmp_path,
        probe_cache,
        "--cluster",
        "local",
        "--mpi",
        "openmpi",
        "integration_tests/test_mpi.py",
        env={"OMPI_MCA_btl": "self"},
    )
    assert done.returncode == 1
    results = [r for r in run.results if r.mpi == "openmpi"]
    assert len(results) == 4
    for result in results:
        assert (result.outcome, result.failure_class) == ("failed", "error"), result.test_id
        assert result.rerun.startswith("hpcos test --cluster local -k")
        # Whatever Open MPI printed comes first in the message, ahead of the command description.
        head = result.message.split("exit code 1 on localhost")[0]
        assert any(
            text in head for text in (*OPEN_MPI_UNREACHABLE, "*** An error occurred in MPI_Init")
        ) or (OPEN_MPI_LOST_HELP.search(head)), result.message[:2000]
    # Four failed jobs: Open MPI's explanation reached mpirun in at least one (about 8 in 10 each).
    assert any(text in r.message for r in results for text in OPEN_MPI_UNREACHABLE)


def test_mpi_tests_pass_through_a_real_slurm(tmp_path, probe_cache, local_slurm):
    """The same integration tests, launched by srun --mpi=pmix (Open MPI) and --mpi=pmi2 (MPICH)."""
    profile = tmp_path / "slurm.yaml"
    profile.write_text(local_slurm.profile_yaml(mpi_timeout=90))
    done, run = hpcos_test(
        tmp_path,
        probe_cache,
        "--cluster",
        str(profile),
        "integration_tests/test_mpi.py",
        env=local_slurm.env,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert len(run.results) == 8 and {r.outcome for r in run.results} == {"passed"}
    assert {r.node for r in run.results} == {local_slurm.node}
    assert {r.mpi for r in run.results} == {"openmpi", "mpich"}
    # The recorded id keeps every parameter: what the specs' `tests:` expressions (and the gate) select.
    assert {r.nodeid for r in run.results} == {
        f"integration_tests/test_mpi.py::{name}[{stack}]"
        for stack in ("openmpi", "mpich")
        for name in ("test_rank_count", "test_ring", "test_pingpong", "test_allreduce")
    }
    pingpong = by_test(run, "test_pingpong", "mpich")[0]
    assert {m.size for m in pingpong.measurements if m.metric == "pingpong_latency"} == {
        8,
        1024,
        65536,
        1048576,
    }


def test_btl_tcp_fails_the_latency_reference_with_measured_vs_expected(tmp_path, probe_cache):
    done, run = hpcos_test(
        tmp_path,
        probe_cache,
        "--cluster",
        "local",
        "--mpi",
        "openmpi",
        "integration_tests/test_mpi.py",
        "-k",
        "pingpong",
        env={"OMPI_MCA_btl": "self,tcp"},
    )
    assert done.returncode == 1
    (result,) = by_test(run, "test_pingpong", "openmpi")
    assert (result.outcome, result.failure_class) == ("failed", "performance regression")
    latency = next(m for m in result.measurements if m.metric == "pingpong_latency" and m.size == 8)
    assert (
        latency.value > 2.0 and len(latency.samples) == 15
    )  # 3 runs (the profile's repeat) of 5 repetitions
    assert (
        f"pingpong_latency at 8 B: measured {latency.value:g} us, expected 0.5 us (..2)"
        in result.message
    )
    # every size is recorded, not only the one that failed
    assert {m.size for m in result.measurements if m.metric == "pingpong_bandwidth"} == {
        8,
        1024,
        65536,
        1048576,
    }


DEADLOCK_TEST = """
import pytest
from hpcos.probes.parsers import probe
from hpcos.probes.probe_build import build_probe

pytestmark = pytest.mark.mpi


def test_deadlocked_ring(mpi_stack, mpi_run):
    binary = build_probe("ring", mpi_stack.mpicc, env=mpi_stack.env)
    mpi_run(binary, ["-d"], np=2, stack=mpi_stack, timeout=4).check()
"""


def test_a_deadlocked_probe_is_killed_at_its_timeout_and_the_run_goes_on(tmp_path, probe_cache):
    test_file = tmp_path / "test_deadlock.py"
    test_file.write_text(DEADLOCK_TEST)
    done, run = hpcos_test(
        tmp_path,
        probe_cache,
        "--cluster",
        "local",
        str(test_file),
        "integration_tests/test_mpi.py::test_rank_count",
    )
    assert done.returncode == 1
    for stack in ("openmpi", "mpich"):
        (hung,) = by_test(run, "test_deadlocked_ring", stack)
        assert (hung.outcome, hung.failure_class) == ("failed", "timeout")
        assert "timed out after" in hung.message and "process tree killed" in hung.message
        assert hung.duration < 30
        (after,) = by_test(run, "test_rank_count", stack)
        assert after.outcome == "passed"
    leftover = subprocess.run(
        ["pgrep", "-f", "ring-.* -d"], capture_output=True, text=True, timeout=10
    )
    assert leftover.stdout == "", f"deadlocked ranks still running: {leftover.stdout}"


def test_a_binary_under_the_other_mpi_launcher_fails_its_rank_check(tmp_path, probe_cache):
    """The 'openmpi' stack compiled with mpicc.openmpi but launched by MPICH's mpiexec: both copies exit 0."""
    data = yaml.safe_load(LOCAL.read_text())
    stacks = {"openmpi": {**data["mpi"]["openmpi"], "mpirun": ["mpiexec.mpich"]}}
    profile = profile_variant(tmp_path, mpi=stacks, references={})
    done, run = hpcos_test(
        tmp_path,
        probe_cache,
        "--cluster",
        profile,
        "integration_tests/test_mpi.py",
        "-k",
        "rank_count or ring",
    )
    assert done.returncode == 1
    for name, probe in (("test_rank_count", "hello"), ("test_ring", "ring")):
        (result,) = by_test(run, name, "openmpi")
        assert result.outcome == "failed"
        assert result.message.startswith(
            f"Failed: {probe}: expected one MPI job of 2 ranks, got 2 separate jobs "
            f"of 1 rank(s) each: was the binary started by another MPI's launcher?"
        )
    # hello's singletons all exit 0 -- only the rank check catches them; ring's say so and exit 3
    assert (
        "exit code 0 on localhost: mpiexec.mpich -np 2"
        in by_test(run, "test_rank_count")[0].message
    )
    assert "ring: needs at least 2 ranks, got 1" in by_test(run, "test_ring")[0].message


def test_infiniband_expected_on_a_machine_without_hca_fails_with_the_tools_text(
    tmp_path, probe_cache
):
    require_tool("ibstat", "infiniband-diags")
    require_tool("ibv_devinfo", "ibverbs-utils")
    require_tool("ib_write_bw", "perftest")
    profile = profile_variant(
        tmp_path,
        infiniband={
            "expected": True,
            "devices": ["mlx5_0"],
            "rate": 200,
            "perftest": {"peer": "ibpeer"},
        },
    )
    done, run = hpcos_test(
        tmp_path, probe_cache, "--cluster", profile, "integration_tests/test_infiniband.py"
    )
    assert done.returncode == 1
    (ibstat,) = by_test(run, "test_ibstat_ports")
    assert ibstat.outcome == "failed" and ibstat.node == "localhost"
    assert "ibstat found no HCA on localhost: it printed nothing and exited 0" in ibstat.message
    (devinfo,) = by_test(run, "test_ibv_devinfo_ports")
    assert "Failed to get IB devices list: Function not implemented" in devinfo.message
    assert "exit code 255" in devinfo.message
    bw, lat = by_test(run, "test_perftest")
    for result in (bw, lat):
        assert result.outcome == "failed"
        assert (
            "Unable to find the Infiniband/RoCE device" in result.message
            or "No IB devices found" in result.message
        )


def test_infiniband_not_expected_skips_with_the_reason(tmp_path, probe_cache):
    done, run = hpcos_test(
        tmp_path,
        probe_cache,
        "--cluster",
        "local",
        "integration_tests/test_infiniband.py",
        "integration_tests/test_osu.py",
    )
    assert done.returncode == 0
    assert {r.outcome for r in run.results} == {"skipped"}
    assert (
        "expects no InfiniBand (infiniband.expected: false)"
        in by_test(run, "test_ibstat_ports")[0].message
    )
    assert (
        "profile names no OSU Micro-Benchmarks for mpich"
        in by_test(run, "test_osu", "mpich")[0].message
    )
