"""integration_tests/test_osu.py against stand-ins for OSU Micro-Benchmarks and IMB-MPI1.

Neither benchmark is installed here (Debian 12 packages neither; see ``hpcos probes build-osu`` for
building them from source).  The stand-ins are real MPI jobs started by the real launchers:
- tiny scripts that print, on rank 0 only (as the benchmarks do), real recorded output from
  tests/data, and exit as OSU 7.4 does (1 after a validation failure);
- a C program built with mpicc.openmpi that starts like OSU 7.4's osu_latency (``numprocs != 2``:
  "This test requires exactly two processes" on stderr, exit 1), to be started by MPICH's launcher.
That exercises everything but the benchmark itself: the binary lookup in an OMB install tree, the
launch, the parsers, the repeats and their one rerun, and the profile's references.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import REPO, require_tool

from hpcos.results.model import RunResults

DATA = Path(__file__).parent / "data"
STAND_IN = """#!/bin/sh
# rank 0 prints, like the real benchmark, and exits as OSU does
[ "${{OMPI_COMM_WORLD_RANK:-${{PMI_RANK:-0}}}}" = 0 ] || exit 0
cat {sample}
exit {code}
"""
# Prints the next of its recorded outputs at each run: a noisy benchmark, reproducibly.
CYCLING = """#!/bin/sh
[ "${{OMPI_COMM_WORLD_RANK:-${{PMI_RANK:-0}}}}" = 0 ] || exit 0
n=$(cat {counter} 2>/dev/null || echo 0)
echo $((n + 1)) > {counter}
cat {outputs}/run$n.out
"""
# How osu_latency 7.4 starts (c/mpi/pt2pt/standard/osu_latency.c): it needs exactly two ranks.
OSU_START = r"""
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv)
{
    int rank, numprocs;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &numprocs);
    if (numprocs != 2) {
        if (rank == 0) fprintf(stderr, "This test requires exactly two processes\n");
        MPI_Finalize();
        exit(EXIT_FAILURE);
    }
    MPI_Finalize();
    return 0;
}
"""


def stand_in(path: Path, sample: Path, code: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STAND_IN.format(sample=sample, code=code))
    path.chmod(0o755)


def hpcos_test(
    tmp_path: Path, mpi: dict, references: dict, *args: str
) -> tuple[subprocess.CompletedProcess, dict]:
    data = yaml.safe_load((REPO / "integration_tests" / "clusters" / "local.yaml").read_text())
    data["mpi"], data["references"] = mpi, references
    profile = tmp_path / "bench.yaml"
    profile.write_text(yaml.safe_dump(data))
    results = tmp_path / "results.json"
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("hpcos")),
            "test",
            "--cluster",
            str(profile),
            "--results",
            str(results),
            "--store",
            str(tmp_path / "store"),
            "--tickets",
            "off",
            "integration_tests/test_osu.py",
            *args,
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ),
    )
    assert results.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return done, {
        f"{r.test_id.split('::')[-1]}/{r.mpi}": r for r in RunResults.read(results).results
    }


def local_stack(name: str) -> dict:
    data = yaml.safe_load((REPO / "integration_tests" / "clusters" / "local.yaml").read_text())
    return dict(data["mpi"][name])


def test_osu_and_imb_results_checks_and_references(tmp_path):
    require_tool("mpirun.openmpi", "openmpi-bin")
    omb = (
        tmp_path / "osu-micro-benchmarks"
    )  # the layout of an OMB install: mpi/pt2pt, mpi/collective
    # OSU 7.4 with -c stops at the first failing size and exits 1 (tests/data/osu/README.md).
    stand_in(
        omb / "mpi" / "pt2pt" / "osu_latency",
        DATA / "osu" / "osu_latency_7.4_validation_failed.txt",
        code=1,
    )
    stand_in(omb / "mpi" / "pt2pt" / "osu_bw", DATA / "osu" / "osu_bw_7.3_warnings.txt")
    stand_in(
        omb / "mpi" / "collective" / "osu_allreduce", DATA / "osu" / "osu_allreduce_7.1_full.txt"
    )
    # OMB 7 puts non-blocking collectives one level down: mpi/collective/non_blocking/.
    stand_in(
        omb / "mpi" / "collective" / "non_blocking" / "osu_iallreduce",
        DATA / "osu-7.4" / "iallreduce_f.out",
    )
    stand_in(tmp_path / "IMB-MPI1", DATA / "osu-7.4" / "imb_ok.txt")
    stacks = {
        "openmpi": {
            **local_stack("openmpi"),
            "osu": str(omb / "mpi" / "pt2pt"),
            "osu_args": ["-c"],
            "imb": str(tmp_path / "IMB-MPI1"),
        }
    }
    references = {
        "osu_bandwidth": {"openmpi": {4194304: [13000, -0.1, None, "MB/s"]}},
        "osu_allreduce_latency": {"openmpi": {8: [4.0, None, 0.25, "us"]}},
    }
    done, run = hpcos_test(tmp_path, stacks, references)
    assert done.returncode == 1, done.stdout[-3000:]

    latency = run["test_osu[osu_latency]/openmpi"]
    assert latency.outcome == "failed"
    assert "osu_latency: validation failed at sizes [1024] (exit code 1)" in latency.message
    assert " -c" in latency.command or "-c" in latency.message  # osu_args reached the benchmark

    bandwidth = run["test_osu[osu_bw]/openmpi"]
    assert bandwidth.outcome == "passed"
    assert len(bandwidth.measurements) == 23  # the MPI warnings inside the table were skipped
    top = next(m for m in bandwidth.measurements if m.size == 4194304)
    assert (top.metric, top.value, top.unit, top.direction) == (
        "osu_bandwidth",
        13036.41,
        "MB/s",
        "higher",
    )
    assert top.samples == [13036.41] * 3 and top.reference is not None  # three runs, one value each

    allreduce = run[
        "test_osu[osu_allreduce]/openmpi"
    ]  # found in mpi/collective next to the named pt2pt directory
    assert (allreduce.outcome, allreduce.failure_class) == ("failed", "performance regression")
    assert (
        "osu_allreduce_latency at 8 B: measured 5.77 us, expected 4 us (..5); median of 3 runs "
        "[5.77, 5.77, 5.77], which disagree by 0.0%; the runs agree, so not rerun"
    ) in allreduce.message

    iallreduce = run["test_osu[osu_iallreduce]/openmpi"]  # the real osu_iallreduce -f capture
    assert iallreduce.outcome == "passed", iallreduce.message
    at_256 = {
        m.metric: (m.value, m.unit, m.direction) for m in iallreduce.measurements if m.size == 256
    }
    assert at_256 == {
        "osu_iallreduce_latency": (41.07, "us", "lower"),  # Pure Comm.(us)
        "osu_iallreduce_overlap": (0.0, "%", "higher"),
    }  # Overlap(%), a metric of its own
    assert len(iallreduce.measurements) == 2 * 15  # sizes 4..65536, two metrics each

    imb = run["test_imb_pingpong/openmpi"]
    assert imb.outcome == "passed"
    assert {m.metric for m in imb.measurements} == {
        "imb_pingpong_latency",
        "imb_pingpong_bandwidth",
    }
    assert (
        next(
            m.value for m in imb.measurements if m.metric == "imb_pingpong_latency" and m.size == 8
        )
        == 0.19
    )


def latency_output(value_at_8: float) -> str:
    """The real osu_latency 7.4 capture (-c) with another 8-byte figure."""
    lines = (DATA / "osu-7.4" / "lat_c.out").read_text().splitlines()
    return (
        "\n".join(
            f"8{value_at_8:>23.2f}{'Pass':>18}" if line.startswith("8 ") else line for line in lines
        )
        + "\n"
    )


def test_noisy_runs_rerun_once_and_a_wrong_launcher_is_named(tmp_path):
    require_tool("mpicc.openmpi", "libopenmpi-dev")
    require_tool("mpirun.openmpi", "openmpi-bin")
    require_tool("mpiexec.mpich", "mpich")
    # openmpi: three runs far apart (2.9, 0.45, 3.5 us: median outside the 2 us bound), then three fine ones.
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    for n, value in enumerate([2.9, 0.45, 3.5, 0.45, 0.47, 0.5]):
        (outputs / f"run{n}.out").write_text(latency_output(value))
    noisy = tmp_path / "noisy" / "osu_latency"
    noisy.parent.mkdir()
    noisy.write_text(CYCLING.format(counter=tmp_path / "count", outputs=outputs))
    noisy.chmod(0o755)
    # mpich: the profile names an OSU built for Open MPI; MPICH's mpiexec starts it as two singletons.
    built = tmp_path / "ompi-osu" / "osu_latency"
    built.parent.mkdir()
    (tmp_path / "osu_start.c").write_text(OSU_START)
    subprocess.run(
        ["mpicc.openmpi", "-o", str(built), str(tmp_path / "osu_start.c")], check=True, timeout=120
    )
    stacks = {
        "openmpi": {**local_stack("openmpi"), "osu": str(noisy.parent)},
        "mpich": {
            **local_stack("mpich"),
            "osu": str(built.parent),
            "env": local_stack("openmpi")["env"],
        },
    }
    references = {"osu_latency": {"openmpi": {8: [0.5, None, 3.0, "us"]}}}
    done, run = hpcos_test(tmp_path, stacks, references, "-k", "osu_latency")

    cleared = run["test_osu[osu_latency]/openmpi"]
    assert cleared.outcome == "passed", cleared.message
    assert (tmp_path / "count").read_text().strip() == "6"  # 3 runs and exactly one rerun of 3
    m = next(m for m in cleared.measurements if m.size == 8)
    assert (m.value, m.samples) == (2.9, [2.9, 0.45, 3.5])  # the first runs are what is recorded
    assert "rerun measured 0.47 us (inside: not confirmed)" in done.stdout + done.stderr, (
        done.stdout
    )

    wrong = run["test_osu[osu_latency]/mpich"]
    assert wrong.outcome == "failed"
    assert (
        wrong.message.startswith(
            "Failed: osu_latency: 2 ranks started with mpiexec.mpich, but OSU says 'This test requires exactly two "
            "processes': every rank ran alone -- was "
        )
        and "built for another MPI than mpich" in wrong.message
    )
