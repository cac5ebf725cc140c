"""integration_tests/test_osu.py against stand-ins for OSU Micro-Benchmarks and IMB-MPI1.

Neither benchmark can run here: Debian 12 packages neither, PyPI has neither, and the source cannot
be fetched.  The stand-ins are real MPI jobs started by the real mpirun: tiny scripts that print, on
rank 0 only (as the benchmarks do), the recorded output of the real tools from tests/data.  That
exercises everything but the benchmark itself: the binary lookup in an OMB install tree, the launch,
the parsers, the Validation column, the measurements and the profile's references.
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
# rank 0 prints, like the real benchmark
[ "${{OMPI_COMM_WORLD_RANK:-${{PMI_RANK:-0}}}}" = 0 ] && cat {sample}
exit 0
"""


def stand_in(path: Path, sample: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STAND_IN.format(sample=sample))
    path.chmod(0o755)


def test_osu_and_imb_results_checks_and_references(tmp_path):
    require_tool("mpirun.openmpi", "openmpi-bin")
    omb = tmp_path / "osu-micro-benchmarks"  # the layout of an OMB install: mpi/pt2pt, mpi/collective
    stand_in(omb / "mpi" / "pt2pt" / "osu_latency", DATA / "osu" / "osu_latency_7.5_validation_tail.txt")
    stand_in(omb / "mpi" / "pt2pt" / "osu_bw", DATA / "osu" / "osu_bw_7.3_warnings.txt")
    stand_in(omb / "mpi" / "collective" / "osu_allreduce", DATA / "osu" / "osu_allreduce_7.1_full.txt")
    stand_in(tmp_path / "IMB-MPI1", DATA / "imb" / "imb_2021.3_pingpong.txt")
    data = yaml.safe_load((REPO / "integration_tests" / "clusters" / "local.yaml").read_text())
    data["mpi"] = {"openmpi": {**data["mpi"]["openmpi"], "osu": str(omb / "mpi" / "pt2pt"),
                               "imb": str(tmp_path / "IMB-MPI1")}}
    data["references"] = {"osu_bandwidth": {"openmpi": {4194304: [13000, -0.1, None, "MB/s"]}},
                          "osu_allreduce_latency": {"openmpi": {8: [4.0, None, 0.25, "us"]}}}
    profile = tmp_path / "bench.yaml"
    profile.write_text(yaml.safe_dump(data))
    results = tmp_path / "results.json"
    done = subprocess.run([str(Path(sys.executable).with_name("hpcos")), "test", "--cluster", str(profile),
                           "--results", str(results), "integration_tests/test_osu.py", "-p", "no:cacheprovider"],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert done.returncode == 1, done.stdout[-3000:]
    run = {r.test_id.split("::")[-1]: r for r in RunResults.read(results).results}

    latency = run["test_osu[osu_latency]"]
    assert latency.outcome == "failed" and "osu_latency: validation failed at sizes [1024]" in latency.message

    bandwidth = run["test_osu[osu_bw]"]
    assert bandwidth.outcome == "passed"
    assert len(bandwidth.measurements) == 23  # the MPI warnings inside the table were skipped
    top = next(m for m in bandwidth.measurements if m.size == 4194304)
    assert (top.metric, top.value, top.unit, top.direction) == ("osu_bandwidth", 13036.41, "MB/s", "higher")
    assert top.reference is not None

    allreduce = run["test_osu[osu_allreduce]"]  # found in mpi/collective next to the named pt2pt directory
    assert (allreduce.outcome, allreduce.failure_class) == ("failed", "performance regression")
    assert "osu_allreduce_latency at 8 B: measured 5.77 us, expected 4 us (..5)" in allreduce.message

    imb = run["test_imb_pingpong"]
    assert imb.outcome == "passed"
    assert {m.metric for m in imb.measurements} == {"imb_pingpong_latency", "imb_pingpong_bandwidth"}
    assert next(m.value for m in imb.measurements if m.metric == "imb_pingpong_latency" and m.size == 8) == 1.06
