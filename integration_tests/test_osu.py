"""OSU Micro-Benchmarks and IMB-MPI1, run only when the profile names them for a stack.

``mpi.<stack>.osu`` is the directory holding osu_latency, osu_bw, osu_allreduce and osu_iallreduce
(directly or in OMB's ``pt2pt/`` and ``collective/`` subdirectories); ``mpi.<stack>.imb`` is the
IMB-MPI1 path;
``mpi.<stack>.osu_args`` are options for every OSU run (``[-c]`` validates the data, OMB 7+).
Each benchmark runs ``repeat`` times (profile, default 3) and references are judged on the median of
the runs against their noise (harness/repeats.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.repeats import Reading
from hpcos.cluster import mpi_errors
from hpcos.probes.parsers import ParseError, imb, osu

pytestmark = [pytest.mark.mpi, pytest.mark.job, pytest.mark.perf]

OSU_BENCHMARKS = {
    # binary: (subdirectory in an OMB install, ranks (None: one per node, at least 2), metrics as
    # (metric, column, unit, better)).  A non-blocking collective's overlap is a metric of its own.
    "osu_latency": ("pt2pt", 2, [("osu_latency", "latency_us", "us", "lower")]),
    "osu_bw": ("pt2pt", 2, [("osu_bandwidth", "bandwidth_MBps", "MB/s", "higher")]),
    "osu_allreduce": ("collective", None, [("osu_allreduce_latency", "latency_us", "us", "lower")]),
    "osu_iallreduce": (
        "collective",
        None,
        [
            ("osu_iallreduce_latency", "pure_comm_us", "us", "lower"),
            ("osu_iallreduce_overlap", "overlap_pct", "%", "higher"),
        ],
    ),
}


def osu_binary(directory: str, name: str, subdir: str) -> str:
    base = Path(directory)
    # The profile may name the install root, its mpi/ directory, or one of pt2pt/ and collective/;
    # OMB 7 puts one more level below those (pt2pt/standard/, collective/blocking/).
    patterns = [
        name,
        f"{subdir}/{name}",
        f"{subdir}/*/{name}",
        f"mpi/{subdir}/{name}",
        f"mpi/{subdir}/*/{name}",
        f"libexec/osu-micro-benchmarks/mpi/{subdir}/*/{name}",
    ]
    for root in (base, base.parent):
        for pattern in patterns:
            found = sorted(p for p in root.glob(pattern) if p.is_file())
            if found:
                return str(found[0])
    return str(base / name)  # on a remote-only path, let the launcher report it missing


def launcher_name(profile, stack) -> str:
    return f"srun --mpi={stack.srun_mpi}" if profile.launcher == "slurm" else stack.mpirun[0]


def run_osu(benchmark: str, binary: str, np: int, mpi_stack, mpi_run, profile) -> osu.OsuResult:
    """One run, parsed; a failure says what OSU itself says: the size validation stopped at, or the
    single-rank complaint of a binary started by another MPI's launcher."""
    result = mpi_run(binary, mpi_stack.osu_args, np=np, stack=mpi_stack)
    try:
        parsed, unreadable = osu.parse(result.stdout), None
    except ParseError as exc:
        parsed, unreadable = None, exc
    if parsed is not None and parsed.failed_validation:
        # OSU 7.4 stops at the first failing size and exits 1: the size is the diagnosis.
        pytest.fail(
            f"{benchmark}: validation failed at sizes {parsed.failed_validation} "
            f"(exit code {result.exit_code})\n{result.describe()}",
            pytrace=False,
        )
    complaint = osu.too_few_ranks(result.stderr)
    if complaint and np > 1:
        pytest.fail(
            f"{benchmark}: {np} ranks started with {launcher_name(profile, mpi_stack)}, but OSU says "
            f"{complaint!r}: every rank ran alone -- was {binary} built for another MPI than "
            f"{mpi_stack.name} (started by another MPI's launcher)?\n{result.describe()}",
            pytrace=False,
        )
    if not result.ok:
        pytest.fail(mpi_errors.explain(result), pytrace=False)
    if unreadable is not None:
        pytest.fail(f"{unreadable}\n{result.describe()}", pytrace=False)
    # OSU prints no rank count; N single-rank copies of an old OSU each print their own table.
    if parsed.jobs != 1:
        pytest.fail(
            f"{benchmark}: {parsed.jobs} separate tables, expected one job of {np} ranks: was it "
            f"started by another MPI's launcher ({launcher_name(profile, mpi_stack)})?",
            pytrace=False,
        )
    return parsed


def readings(parsed: osu.OsuResult, metrics: list[tuple[str, str, str, str]]) -> list[Reading]:
    """One Reading per metric, size and datatype; a datatype beyond the first (``-T all``) gets
    metrics of its own (``osu_latency_int``)."""
    out = []
    for i, series in enumerate(parsed.series):
        suffix = "" if i == 0 else f"_{(series.datatype or str(i)).lower().removeprefix('mpi_')}"
        for metric, column, unit, better in metrics:
            out += [
                Reading(metric + suffix, value, unit, better, size=size)
                for size, value in series.column(column).items()
            ]
    return out


@pytest.mark.parametrize("benchmark", list(OSU_BENCHMARKS))
def test_osu(benchmark, mpi_stack, mpi_run, nodes, profile, measure_repeatedly):
    if not mpi_stack.osu:
        pytest.skip(
            f"profile names no OSU Micro-Benchmarks for {mpi_stack.name} (mpi.{mpi_stack.name}.osu)"
        )
    subdir, ranks, metrics = OSU_BENCHMARKS[benchmark]
    np = ranks or max(2, len(nodes))
    binary = osu_binary(mpi_stack.osu, benchmark, subdir)
    measure_repeatedly(
        lambda: readings(run_osu(benchmark, binary, np, mpi_stack, mpi_run, profile), metrics)
    )


def run_imb_pingpong(mpi_stack, mpi_run) -> list[Reading]:
    result = mpi_run(mpi_stack.imb, ["PingPong"], np=2, stack=mpi_stack)
    if not result.ok:
        pytest.fail(mpi_errors.explain(result), pytrace=False)
    try:
        parsed = imb.parse(result.stdout)
        block = parsed.benchmark("PingPong")
    except (ParseError, KeyError) as exc:
        pytest.fail(f"{exc}\n{result.describe()}", pytrace=False)
    runs = [b for b in parsed.blocks if b.benchmark == "PingPong"]
    if len(runs) != 1 or block.processes != 2:
        pytest.fail(
            f"IMB PingPong: {len(runs)} block(s), #processes {[b.processes for b in runs]}, "
            "expected one of 2 processes",
            pytrace=False,
        )
    return [
        Reading("imb_pingpong_latency", v, "us", "lower", size=s)
        for s, v in block.column("t_usec").items()
    ] + [
        Reading("imb_pingpong_bandwidth", v, "MB/s", "higher", size=s)
        for s, v in block.column("MBps").items()
    ]


def test_imb_pingpong(mpi_stack, mpi_run, measure_repeatedly):
    if not mpi_stack.imb:
        pytest.skip(f"profile names no IMB-MPI1 for {mpi_stack.name} (mpi.{mpi_stack.name}.imb)")
    measure_repeatedly(lambda: run_imb_pingpong(mpi_stack, mpi_run))
