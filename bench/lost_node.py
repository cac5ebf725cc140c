"""What a node lost during the run costs: a four-node Slurm (tests/support/slurm_cluster_fixture.py)
where n3's slurmd is killed after the pre-flight (as a crashed node's is), against the same run with
every node up.  ``hpcos test`` runs the MPI job tests and the node tests (profile timeouts: command
30 s, MPI 60 s).  Before the re-check, the lost node cost every test that touched it its timeout
(issue 25: 214 s against 44 s); now the first job on it fails as srun says so and the rest skip it.

    .venv/bin/python bench/lost_node.py        # as root
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from ClusterShell.NodeSet import NodeSet  # noqa: E402
from support.slurm_cluster_fixture import start_slurm_cluster, stop_slurm_cluster  # noqa: E402

from hpcos.results.model import RunResults  # noqa: E402


def one_run(kill: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="hpcos-bench-lost-") as tmp:
        work = Path(tmp)
        cluster = start_slurm_cluster(work / "slurm")
        try:
            suite = work / "suite" / "integration_tests"
            suite.mkdir(parents=True)
            for name in ("test_mpi.py", "test_nodes.py", "conftest.py"):
                (suite / name).write_text((REPO / "integration_tests" / name).read_text())
            pid_file = cluster.directory / "slurmd-n3.pid"
            body = (
                f"    os.kill(int(open({str(pid_file)!r}).read()), signal.SIGKILL)\n"
                if kill
                else "    pass\n"
            )
            (suite / "test_0_kill_n3.py").write_text(
                f"import os, signal\n\ndef test_kill_n3(mpi_nodes):\n{body}"
            )
            profile = work / "slurm4.yaml"
            profile.write_text(cluster.profile_yaml(command_timeout=30, mpi_timeout=60))
            results = work / "results.json"
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "hpcos.cli",
                    "test",
                    "--cluster",
                    str(profile),
                    "--results",
                    str(results),
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "-k",
                    "kill or rank_count or test_nodes",
                ],
                cwd=suite.parent,
                capture_output=True,
                text=True,
                timeout=1800,
                env={
                    **os.environ,
                    **cluster.env,
                    "XDG_CACHE_HOME": str(work / "cache"),
                    "HPCOS_STORE": str(work / "store"),
                },
            )
            wall = time.perf_counter() - started
            run = RunResults.read(results)
        finally:
            stop_slurm_cluster(cluster)
    on_n3 = [r for r in run.results if r.node and "n3" in NodeSet(r.node)]
    outcomes = {
        o: sum(r.outcome == o for r in run.results)
        for o in ("passed", "failed", "error", "skipped")
    }
    print(
        f"  {'n3 slurmd killed' if kill else 'every node up    '}: {wall:6.1f} s wall; "
        + ", ".join(f"{n} {o}" for o, n in outcomes.items() if n)
        + f"; timeouts: {sum(r.failure_class == 'timeout' for r in run.results)}; "
        f"time in results touching n3: {sum(r.duration for r in on_n3):.1f} s"
    )


def main() -> int:
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    print("four-node Slurm, `hpcos test -k 'rank_count or test_nodes'` (2 MPI jobs, 4 node tests)")
    for kill in (False, True):
        one_run(kill)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
