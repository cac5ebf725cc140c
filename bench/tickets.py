"""Figure: 1,000 failing (test, node) results of 3 root causes over 4 tests and 2 MPI stacks, filed
against a real Trac.

The causes: Open MPI ranks unable to reach each other (the captured ``OMPI_MCA_btl=self`` output,
with Open MPI's show_help.c relay noise before, after or instead of the explanation), no InfiniBand
device, and a Slurm time limit -- the last two on both stacks.  Goal: 3 tickets on the first night,
then 3 comments on each of two more nights (6), nothing else.  Prints the counts and wall times
(tracd on loopback, started and stopped here exactly as the tests do) and the grouping time alone.

    .venv/bin/python bench/tickets.py [--results 1000] [--nights 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.trac_fixture import create_trac  # noqa: E402

from hpcos.cluster import mpi_errors  # noqa: E402
from hpcos.cluster.launchers import CommandResult  # noqa: E402
from hpcos.results.model import RunResults, TestResult  # noqa: E402
from hpcos.site.specs import Tracker  # noqa: E402
from hpcos.tickets.backends.trac import TracTracker, TracWebTransport  # noqa: E402
from hpcos.tickets.grouping import group_failures  # noqa: E402
from hpcos.tickets.lifecycle import file_run  # noqa: E402
from hpcos.tickets.queue import TicketQueue  # noqa: E402
from hpcos.tickets.state import TicketState  # noqa: E402

DATA = ROOT / "tests" / "data" / "mpi_errors"
OPENMPI = [
    (DATA / name).read_text()
    for name in (
        "openmpi_btl_self.stderr",
        "openmpi_btl_self_noise_first.stderr",
        "openmpi_btl_self_noise_after.stderr",
        "openmpi_btl_self_noise_only.stderr",
    )
]
IB = "ibv_devinfo exited 255\nFailed to get IB devices list: Function not implemented\n"
TIME_LIMIT = (
    "slurmstepd: error: *** STEP {job}.0 ON {node} CANCELLED AT 2026-11-26T02:{minute:02d}:07 "
    "DUE TO TIME LIMIT ***\nsrun: Job step aborted: Waiting up to 32 seconds for job step to finish.\n"
)
TESTS = [
    "integration_tests/test_mpi.py::test_pingpong",
    "integration_tests/test_mpi.py::test_allreduce",
    "integration_tests/test_osu.py::test_osu[osu_latency]",
    "integration_tests/test_osu.py::test_osu[osu_bw]",
]
STACKS = ["openmpi", "mpich"]


def workload(run_id: str, total: int, day: int) -> RunResults:
    """``total`` failing (test, stack, node) results; every node, pid and job id different."""
    results = []
    for i in range(total):
        cause = i % 3
        stack = "openmpi" if cause == 0 else STACKS[(i // 3) % 2]
        test = f"{TESTS[(i // 6) % 4]}[{stack}]"
        node = f"cn{i:04d}"
        if cause == 0:
            stderr = OPENMPI[(i + day) % len(OPENMPI)].replace("[vm:", f"[{node}:")
        elif cause == 1:
            stderr = IB
        else:
            stderr = TIME_LIMIT.format(job=4000 + i + 1000 * day, node=node, minute=i % 60)
        command = f"{'mpirun.openmpi' if stack == 'openmpi' else 'mpiexec.mpich'} -np 2 ./pingpong"
        message = mpi_errors.explain(CommandResult(node, command, 1, "", stderr, 0.5))
        results.append(
            TestResult(
                test,
                node,
                "failed",
                failure_class="error",
                message=message,
                command=command,
                mpi=stack,
            )
        )
    started = f"2026-11-{day:02d}T02:00:00+00:00"
    return RunResults(
        run_id,
        "test-cluster",
        started,
        started,
        build_url="https://jenkins.example.org/job/n/1/",
        results=results,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=1000)
    parser.add_argument("--nights", type=int, default=3)
    args = parser.parse_args()
    nights = [workload(f"night-{n}", args.results, n) for n in range(1, args.nights + 1)]
    started = time.perf_counter()
    groups = group_failures(nights[0])
    grouping = time.perf_counter() - started
    outcomes, times = [], []
    with tempfile.TemporaryDirectory(prefix="hpcos-bench-tickets-") as tmp:
        base = Path(tmp)
        server = create_trac(base)
        server.start()
        try:
            tracker = TracTracker(
                TracWebTransport(server.url, server.user, server.password), server.url
            )
            spec = Tracker(backend="trac", url=server.url)
            state, queue = TicketState(base / "state.sqlite"), TicketQueue(base / "queue")
            for night in nights:
                started = time.perf_counter()
                outcomes.append(file_run(night, tracker, state, spec, queue)[1])
                times.append(time.perf_counter() - started)
        finally:
            server.stop()
    created = sum(line.endswith(": created") for out in outcomes for line in out.done)
    commented = sum(line.endswith(": commented") for out in outcomes[1:] for line in out.done)
    tests = {r.test_id for r in nights[0].failures()}
    print(
        f"failing (test, stack, node) results:  {len(nights[0].failures())} per night, 3 root causes, "
        f"{len({t.rsplit('[', 1)[0] for t in tests})} tests x {len(STACKS)} stacks"
    )
    print(
        f"fingerprint groups:                   {len(groups)}  (grouping 1 night: {grouping * 1000:.0f} ms)"
    )
    for group in groups:
        print(
            f"    {len(group.results):>4} results, {len(group.tests)} test ids, stacks {','.join(group.stacks)}: "
            f"{group.fingerprint.signature[:70]}"
        )
    print(
        f"night 1: tickets created:             {sum(': created' in d for d in outcomes[0].done)}  (goal: 3)"
        f"  in {times[0]:.2f} s"
    )
    for n, (out, seconds) in enumerate(zip(outcomes[1:], times[1:], strict=True), 2):
        print(
            f"night {n}: comments / new tickets:     {sum(': commented' in d for d in out.done)} / "
            f"{sum(': created' in d for d in out.done)}  in {seconds:.2f} s"
        )
    print(
        f"over {args.nights} nights: tickets / comments:  {created} / {commented}  "
        f"(goal: 3 / {3 * (args.nights - 1)})"
    )
    print(f"queued (tracker errors):              {sum(out.queued for out in outcomes)}")
    return 0 if (created, commented) == (3, 3 * (args.nights - 1)) else 1


if __name__ == "__main__":
    sys.exit(main())
