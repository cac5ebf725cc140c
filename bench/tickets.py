"""Figure: 1,000 failing (test, node) results of 3 root causes, filed against a real Trac.

Prints how many tickets were created (goal: 3, one per root cause) and the wall time to file them
(tracd on loopback, started and stopped here exactly as the tests do), then the second night
(comments only) and the grouping time alone.

    .venv/bin/python bench/tickets.py [--results 1000]
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
from support.tracker_doubles.runs import IBV_MISSING, OPENMPI_UNREACHABLE, SRUN_FAILED, nodes, run  # noqa: E402

from hpcos.site.specs import Tracker  # noqa: E402
from hpcos.tickets.backends.trac import TracTracker, TracWebTransport  # noqa: E402
from hpcos.tickets.grouping import group_failures  # noqa: E402
from hpcos.tickets.lifecycle import file_run  # noqa: E402
from hpcos.tickets.queue import TicketQueue  # noqa: E402
from hpcos.tickets.state import TicketState  # noqa: E402


def workload(run_id: str, total: int):
    """Three root causes over ``total`` (test, node) results, every node/pid/job id different."""
    share = [total * 6 // 10, total * 3 // 10]
    share.append(total - sum(share))
    return run(run_id, {
        "integration_tests/test_mpi.py::test_pingpong[openmpi]": (OPENMPI_UNREACHABLE, nodes(share[0], "cn", 4)),
        "integration_tests/test_ib.py::test_hca_present": (IBV_MISSING, nodes(share[1], "gpu", 3)),
        "integration_tests/test_slurm.py::test_srun_mpich": (SRUN_FAILED, nodes(share[2], "node", 4)),
    }, build_url="https://jenkins.example.org/job/hpcos/job/nightly/1/")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hpcos-bench-tickets-") as tmp:
        base = Path(tmp)
        server = create_trac(base)
        server.start()
        try:
            tracker = TracTracker(TracWebTransport(server.url, server.user, server.password), server.url)
            spec = Tracker(backend="trac", url=server.url)
            state, queue = TicketState(base / "state.sqlite"), TicketQueue(base / "queue")
            night1 = workload("night-1", args.results)
            started = time.perf_counter()
            groups = group_failures(night1)
            grouping = time.perf_counter() - started

            started = time.perf_counter()
            _, first = file_run(night1, tracker, state, spec, queue)
            first_time = time.perf_counter() - started
            started = time.perf_counter()
            _, second = file_run(workload("night-2", args.results), tracker, state, spec, queue)
            second_time = time.perf_counter() - started
        finally:
            server.stop()
    created = sum(line.endswith(": created") for line in first.done)
    commented = sum(line.endswith(": commented") for line in second.done)
    print(f"failing (test, node) results:      {len(night1.failures())} of 3 root causes")
    print(f"fingerprint groups:                {len(groups)}  (grouping: {grouping * 1000:.0f} ms)")
    print(f"tickets created, night 1:          {created}  (goal: 3)")
    print(f"wall time to file, night 1:        {first_time:.2f} s against tracd on loopback")
    print(f"night 2: comments / new tickets:   {commented} / {sum(': created' in d for d in second.done)}"
          f"  in {second_time:.2f} s")
    print(f"queued (tracker errors):           {first.queued + second.queued}")
    return 0 if created == 3 else 1


if __name__ == "__main__":
    sys.exit(main())
