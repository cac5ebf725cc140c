"""Real Open MPI launches with OMPI_MCA_btl=self: whatever noise Open MPI prints first, one fingerprint.

Open MPI 4.1.4 (Debian 12) fails MPI_Init when no BTL reaches the peer rank, and in about a third of
the launches its help message is lost on the way to mpirun, which then prints only
``ORTE_ERROR_LOG: ... show_help.c`` lines -- before the explanation, after it, or instead of it.
"""

from __future__ import annotations

import os
import subprocess
import time

from conftest import require_tool

from hpcos.cluster import mpi_errors
from hpcos.cluster.launchers import CommandResult
from hpcos.results.model import RunResults, TestResult
from hpcos.tickets import content
from hpcos.tickets.fingerprint import fingerprint
from hpcos.tickets.grouping import assign, group_failures
from hpcos.tickets.reasons import choose

LAUNCHES = 24
LAUNCH_TIMEOUT = 60  # one launch normally takes under a second; a hung one is killed
ROOT_OK = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
TEST_ID = "integration_tests/test_mpi.py::test_pingpong[openmpi]"


def launch(binary) -> CommandResult:
    argv = ["mpirun.openmpi", "--oversubscribe", "-np", "2", str(binary)]
    env = {**os.environ, **ROOT_OK, "OMPI_MCA_btl": "self"}
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)
    return CommandResult(
        "localhost",
        " ".join(argv),
        done.returncode,
        done.stdout,
        done.stderr,
        time.monotonic() - started,
    )


def test_every_btl_self_launch_gets_the_same_fingerprint(pingpong):
    require_tool("mpirun.openmpi", "openmpi-bin")
    launches = [launch(pingpong["openmpi"]) for _ in range(LAUNCHES)]
    assert all(not result.ok for result in launches)
    # As the harness records them, each launch standing for one node of a 24-node night.
    results = [
        TestResult(
            TEST_ID,
            f"node{i:03d}",
            "failed",
            failure_class="error",
            mpi="openmpi",
            message=mpi_errors.explain(result),
            command=result.command,
        )
        for i, result in enumerate(launches, 1)
    ]
    noise_first = sum(
        r.stderr.lstrip().startswith("[") and "ORTE_ERROR_LOG" in r.stderr.splitlines()[0]
        for r in launches
    )
    explained = [r for r in results if "unable to reach each other" in r.message]
    print(
        f"{LAUNCHES} launches: {noise_first} printed ORTE_ERROR_LOG first, "
        f"{LAUNCHES - len(explained)} lost the explanation"
    )
    assert explained, "no launch printed Open MPI's explanation at all"

    # Every launch that says why has one fingerprint, whatever came first; none is "a buffer bug".
    keys = {fingerprint(r.test_id, r.failure_class, r.message, r.mpi).key for r in explained}
    assert len(keys) == 1
    assert {choose(r.message).line for r in explained} == {
        "At least one pair of MPI processes are unable to reach each other for MPI communications"
    }
    # The launches that lost it carry no cause of their own and join their siblings' cause.
    night = RunResults("real-mpi", "local", "2026-11-26T02:00:00+00:00", results=results)
    assert len({fp.key for _, fp, _, _ in assign(night)}) == 1
    [group] = group_failures(night)
    assert len(group.results) == LAUNCHES
    assert content.summary(group) == (
        "[openmpi] test_pingpong[openmpi] fails on node[001-024]: At least one pair of "
        "MPI processes are unable to reach each other for MPI communications"
    )
