"""The MPI probes, built and run with the real Open MPI and MPICH, and their JSON-lines parser."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import require_tool

from hpcos.probes.parsers import ParseError, probe
from hpcos.probes.probe_build import build_probe

DATA = Path(__file__).parent / "data" / "probe"
ROOT_OK = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
STACKS = {
    "openmpi": (
        "mpicc.openmpi",
        "libopenmpi-dev",
        ["mpirun.openmpi", "--oversubscribe", "-np"],
        "openmpi-bin",
    ),
    "mpich": ("mpicc.mpich", "libmpich-dev", ["mpiexec.mpich", "-n"], "mpich"),
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("probe-cache")


def launch(
    stack: str, binary: Path, np: int, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess:
    mpicc, dev, launcher, runtime = STACKS[stack]
    require_tool(launcher[0], runtime)
    proc = subprocess.Popen(
        [*launcher, str(np), str(binary), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **ROOT_OK},
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and every rank it started
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def built(stack: str, name: str, cache: Path) -> Path:
    mpicc, dev, _, _ = STACKS[stack]
    return build_probe(name, require_tool(mpicc, dev), cache_dir=cache)


@pytest.mark.parametrize("stack", STACKS)
def test_hello_reports_every_rank(stack, cache):
    done = launch(stack, built(stack, "hello", cache), 3)
    assert done.returncode == 0, done.stderr
    out = probe.parse(done.stdout, "hello")
    assert out.rank_problem(3) is None
    assert [r["rank"] for r in out.records] == [0, 1, 2]
    assert ("Open MPI" if stack == "openmpi" else "MPICH") in out.library


@pytest.mark.parametrize("stack", STACKS)
def test_ring_and_allreduce_are_correct(stack, cache):
    ring = probe.parse(launch(stack, built(stack, "ring", cache), 3, "-l", "5").stdout, "ring")
    assert ring.records == [{**ring.records[0], "laps": 5, "token": 30, "expected": 30, "ok": True}]
    done = launch(stack, built(stack, "allreduce", cache), 2, "-s", "8,4096", "-r", "2", "-i", "20")
    out = probe.parse(done.stdout, "allreduce")
    assert out.sizes() == [8, 4096]
    assert len(out.samples("latency_us", 4096)) == 2  # warm-up dropped
    assert {r["errors"] for r in out.records} == {0}
    assert {r["count"] for r in out.records if r["size"] == 4096} == {512}


def test_other_launcher_gives_single_rank_jobs_and_is_caught(cache):
    """An Open MPI binary under MPICH's mpiexec: two singleton jobs that both exit 0."""
    done = launch("mpich", built("openmpi", "hello", cache), 2)
    assert done.returncode == 0  # the trap: the launcher says all is well
    out = probe.parse(done.stdout, "hello")
    problem = out.rank_problem(2)
    assert problem == (
        "hello: expected one MPI job of 2 ranks, got 2 separate jobs of 1 rank(s) each: "
        "was the binary started by another MPI's launcher?"
    )


def test_pingpong_exits_3_with_one_rank(cache):
    done = launch("openmpi", built("openmpi", "pingpong", cache), 1, "-s", "8")
    assert done.returncode == 3 and "needs at least 2 ranks, got 1" in done.stderr
    assert (
        probe.parse(done.stdout, "pingpong").rank_problem(2)
        == "pingpong: expected 2 ranks, MPI_Comm_size says 1"
    )


def test_deadlocking_ring_hangs_until_killed(cache):
    with pytest.raises(subprocess.TimeoutExpired):
        launch("mpich", built("mpich", "ring", cache), 2, "-d", timeout=3)


def test_parse_recorded_pingpong_output():
    out = probe.parse((DATA / "pingpong_openmpi_2ranks.jsonl").read_text(), "pingpong")
    assert out.ranks == 2 and out.sizes() == [0, 8, 1024, 65536]
    assert out.samples("latency_us", 8) == [0.1324, 0.1281, 0.1300]
    assert out.median("latency_us", 8) == 0.1300
    assert out.other_lines == []


def test_noise_lines_are_kept_apart_and_missing_header_is_an_error():
    text = (
        "[vm:1234] mca_base_component_repository_open: unable to open mca_btl_openib\n"
        '{"probe": "ring", "ranks": 2, "library": "MPICH Version: 4.0.2"}\n'
        '{"laps": 1, "token": 3, "expected": 3, "ok": true, "lap_us": 2.0}\n'
    )
    out = probe.parse(text)
    assert out.probe == "ring" and len(out.other_lines) == 1
    with pytest.raises(ParseError, match="output is from probe 'ring'"):
        probe.parse(text, "hello")
    with pytest.raises(ParseError, match="no probe header line in the output: Segmentation fault"):
        probe.parse("Segmentation fault\n", "hello")
    with pytest.raises(ParseError, match="no timed 'latency_us' samples for size 8"):
        out.median("latency_us", 8)
