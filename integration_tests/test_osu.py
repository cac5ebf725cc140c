"""OSU Micro-Benchmarks and IMB-MPI1, run only when the profile names them for a stack.

``mpi.<stack>.osu`` is the directory holding osu_latency, osu_bw and osu_allreduce (directly or in
OMB's ``pt2pt/`` and ``collective/`` subdirectories); ``mpi.<stack>.imb`` is the IMB-MPI1 path.
No options are passed to OSU: they differ between versions, and the defaults are what sites compare.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.parsers import ParseError, imb, mpi_errors, osu

pytestmark = [pytest.mark.mpi, pytest.mark.job, pytest.mark.perf]

OSU_BENCHMARKS = {
    # binary: (subdirectory in an OMB install, metric, value column, unit, better, ranks)
    "osu_latency": ("pt2pt", "osu_latency", "latency_us", "us", "lower", 2),
    "osu_bw": ("pt2pt", "osu_bandwidth", "bandwidth_MBps", "MB/s", "higher", 2),
    "osu_allreduce": ("collective", "osu_allreduce_latency", "latency_us", "us", "lower", None),
}


def osu_binary(directory: str, name: str, subdir: str) -> str:
    base = Path(directory)
    # The profile may name the install root, its mpi/ directory, or one of pt2pt/ and collective/.
    for candidate in (base / name, base / "mpi" / subdir / name, base / subdir / name, base.parent / subdir / name):
        if candidate.exists():
            return str(candidate)
    return str(Path(directory) / name)  # on a remote-only path, let the launcher report it missing


@pytest.mark.parametrize("benchmark", list(OSU_BENCHMARKS))
def test_osu(benchmark, mpi_stack, mpi_run, nodes, measure):
    if not mpi_stack.osu:
        pytest.skip(f"profile names no OSU Micro-Benchmarks for {mpi_stack.name} (mpi.{mpi_stack.name}.osu)")
    subdir, metric, column, unit, better, ranks = OSU_BENCHMARKS[benchmark]
    np = ranks or max(2, len(nodes))
    result = mpi_run(osu_binary(mpi_stack.osu, benchmark, subdir), np=np, stack=mpi_stack)
    if not result.ok:
        pytest.fail(mpi_errors.explain(result), pytrace=False)
    try:
        parsed = osu.parse(result.stdout)
    except ParseError as exc:
        pytest.fail(f"{exc}\n{result.describe()}", pytrace=False)
    # OSU prints no rank count; N single-rank copies each print their own table.
    assert parsed.jobs == 1, (f"{benchmark}: {parsed.jobs} separate tables, expected one job of {np} ranks: "
                              f"was it started by another MPI's launcher?")
    assert not parsed.failed_validation, f"{benchmark}: validation failed at sizes {parsed.failed_validation}"
    for size, value in parsed.column(column).items():
        measure(metric, value, unit, better, size=size)


def test_imb_pingpong(mpi_stack, mpi_run, measure):
    if not mpi_stack.imb:
        pytest.skip(f"profile names no IMB-MPI1 for {mpi_stack.name} (mpi.{mpi_stack.name}.imb)")
    result = mpi_run(mpi_stack.imb, ["PingPong"], np=2, stack=mpi_stack)
    if not result.ok:
        pytest.fail(mpi_errors.explain(result), pytrace=False)
    try:
        parsed = imb.parse(result.stdout)
        block = parsed.benchmark("PingPong")
    except (ParseError, KeyError) as exc:
        pytest.fail(f"{exc}\n{result.describe()}", pytrace=False)
    runs = [b for b in parsed.blocks if b.benchmark == "PingPong"]
    assert len(runs) == 1 and block.processes == 2, (
        f"IMB PingPong: {len(runs)} block(s), #processes {[b.processes for b in runs]}, expected one of 2 processes")
    for size, value in block.column("t_usec").items():
        measure("imb_pingpong_latency", value, "us", "lower", size=size)
    for size, value in block.column("MBps").items():
        measure("imb_pingpong_bandwidth", value, "MB/s", "higher", size=size)
