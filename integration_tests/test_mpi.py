"""MPI correctness and performance with the hpcos probes, once per MPI stack of the profile.

Every test checks the rank count the job really had (a binary started by another MPI's launcher
runs as N single-rank jobs that all exit 0, and only the probes' "ranks" field tells) and where its
ranks ran: the probes report each rank's host, and a job must land on the nodes the launcher was
given, ``ranks_per_node`` on each (an mpirun that ignores the host list puts them all on one node).  Probes are
compiled with the stack's own mpicc (cached by content and compiler, hpcos.probes.probe_build).
Performance figures are the median of the timed repetitions (warm-up dropped, every sample kept);
the benchmark runs ``repeat`` times and the profile's ReFrame-style references are judged on the
median of those runs against their noise (harness/repeats.py).
"""

from __future__ import annotations

import pytest

from harness.repeats import Reading
from hpcos.cluster import mpi_errors
from hpcos.probes.parsers import ParseError, probe
from hpcos.probes.probe_build import ProbeBuildError, build_probe

pytestmark = [pytest.mark.mpi, pytest.mark.job]

PINGPONG_SIZES = [8, 1024, 65536, 1048576]
ALLREDUCE_SIZES = [8, 1024, 65536]


def sizes_to_measure(defaults: list[int], profile, stack: str, *metrics: str) -> list[int]:
    """The default sizes plus every size the profile has a reference for, so no reference goes unchecked."""
    referenced = {
        size for metric in metrics for size in profile.references.get(metric, {}).get(stack, {})
    }
    return sorted(set(defaults) | referenced)


def ranks_for(profile, mpi_nodes) -> int:
    """One job across every available node, ``ranks_per_node`` each (at least two ranks)."""
    return max(2, profile.ranks_per_node * len(mpi_nodes))


@pytest.fixture
def run_probe(mpi_stack, mpi_run, mpi_nodes, profile):
    """``run_probe(name, args, np=None) -> ProbeOutput``: build, launch, parse, check the rank count
    and that the ranks ran where the launcher placed them."""

    def run_probe(name: str, args=(), *, np: int | None = None) -> probe.ProbeOutput:
        np = np or ranks_for(profile, mpi_nodes)
        try:
            binary = build_probe(name, mpi_stack.mpicc, module=mpi_stack.module, env=mpi_stack.env)
        except ProbeBuildError as exc:
            pytest.fail(str(exc), pytrace=False)
        result = mpi_run(binary, args, np=np, stack=mpi_stack)
        try:
            out, unreadable = probe.parse(result.stdout, name), None
        except ParseError as exc:
            out, unreadable = None, str(exc)
        # Lead with the diagnosis: the rank count (even when the job failed, the other launcher's
        # singletons say so), then the MPI library's own words, then the command and its output.
        # (A job that succeeded may still print MPI warnings: those are not a failure.)
        problem = out.rank_problem(np) if out else None
        if not result.ok:
            pytest.fail(
                "\n".join(filter(None, [problem, mpi_errors.explain(result)])), pytrace=False
            )
        problem = problem or (out.placement_problem(result.placement) if out else None)
        if problem or unreadable:
            pytest.fail(f"{problem or unreadable}\n{result.describe()}", pytrace=False)
        return out

    return run_probe


def test_rank_count(run_probe, mpi_nodes, profile, launcher):
    # Every available node, ranks_per_node ranks each: run_probe fails a job whose ranks did not land
    # there; this also checks that the placement it compared with spans all of the nodes.
    np = ranks_for(profile, mpi_nodes)
    out = run_probe("hello", np=np)
    assert [r["rank"] for r in out.records] == list(range(out.ranks))
    expected = launcher.placement(np, mpi_nodes)
    assert out.placement_problem(expected) is None
    assert [r["host"] for r in out.records] == out.hosts


def test_ring(run_probe):
    out = run_probe("ring", ["-l", "10"])
    (lap,) = out.records
    assert lap["ok"], (
        f"ring token {lap['token']} after {lap['laps']} laps, expected {lap['expected']}"
    )


def test_pingpong(run_probe, measure_repeatedly, profile, mpi_stack):
    sizes = sizes_to_measure(
        PINGPONG_SIZES, profile, mpi_stack.name, "pingpong_latency", "pingpong_bandwidth"
    )

    def once() -> list[Reading]:
        out = run_probe(
            "pingpong", ["-s", ",".join(map(str, sizes)), "-i", "500", "-r", "5", "-w", "1"], np=2
        )
        assert out.sizes() == sizes
        return [
            Reading(
                metric, out.median(key, size), unit, better, size, tuple(out.samples(key, size))
            )
            for size in sizes
            for metric, key, unit, better in (
                ("pingpong_latency", "latency_us", "us", "lower"),
                ("pingpong_bandwidth", "bandwidth_MBps", "MB/s", "higher"),
            )
        ]

    measure_repeatedly(once)


def test_allreduce(run_probe, measure_repeatedly, profile, mpi_stack):
    sizes = sizes_to_measure(ALLREDUCE_SIZES, profile, mpi_stack.name, "allreduce_latency")

    def once() -> list[Reading]:
        out = run_probe(
            "allreduce", ["-s", ",".join(map(str, sizes)), "-i", "100", "-r", "5", "-w", "1"]
        )
        wrong = [r for r in out.records if r["errors"]]
        assert not wrong, "MPI_Allreduce gave wrong sums: " + "; ".join(
            f"{r['errors']} of {r['count']} elements at {r['size']} B (rep {r['rep']})"
            for r in wrong
        )
        return [
            Reading(
                "allreduce_latency",
                out.median("latency_us", size),
                "us",
                "lower",
                size,
                tuple(out.samples("latency_us", size)),
            )
            for size in sizes
        ]

    measure_repeatedly(once)
