"""Slurm at scale: node commands as one job step against one job per node, on a simulated Slurm of
many slurmd on this one host (one slurmctld, ``slurmd -N nX`` per node, each on its own port).

Prints, for N nodes: how long the slurmd took to come up; the node-check wall time of one command
(``hostname``) through the Slurm launcher as one labelled step across all N (what ``hpcos test``
does for each node test), against N separate ``srun -N1 -w nX`` jobs 16 at a time (what it did
before); the jobs each way cost slurmctld (its log's allocations); and a whole ``hpcos test -m node``
(4 node tests, the pre-flight sinfo, the versions probe) with its jobs, against the formula
``jobs per night = node tests + MPI job tests + 1`` (before: ``N x node tests + MPI job tests + 1``).

The host's cores are the limit, not Slurm: every step forks one slurmstepd per node at once.

    .venv/bin/python bench/slurm_scale.py [--nodes 256]        # as root
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from ClusterShell.NodeSet import NodeSet  # noqa: E402
from support.slurm_nodes_fixture import start_slurm_nodes, stop_slurm_nodes  # noqa: E402

from hpcos.cluster.launchers import launcher_for  # noqa: E402
from hpcos.cluster.profiles import load_profile  # noqa: E402
from hpcos.results.model import RunResults  # noqa: E402

NODE_TESTS = 4  # integration_tests/test_nodes.py


def allocations(log: Path) -> int:
    return log.read_text(errors="replace").count("_slurm_rpc_allocate_resources")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=256)
    parser.add_argument(
        "--skip-old", action="store_true", help="skip the one-job-per-node comparison"
    )
    args = parser.parse_args()
    n = args.nodes
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="hpcos-bench-slurm-scale-") as tmp:
        work = Path(tmp)
        names = [f"n{i}" for i in range(1, n + 1)]
        started = time.perf_counter()
        slurm = start_slurm_nodes(
            work / "slurm",
            names,
            munge_threads=16,
            extra_conf="SlurmdDebug=error\nTreeWidth=16\nMessageTimeout=30\n",
        )
        try:
            slurm.wait_idle(timeout=300)
            print(f"{n} slurmd idle after {time.perf_counter() - started:.1f} s")
            os.environ.update(slurm.env)
            log = slurm.directory / "log" / "slurmctld.log"
            nodes = f"n[1-{n}]"
            profile = work / "scale.yaml"
            profile.write_text(
                f"name: scale\nlauncher: slurm\nnodes: '{nodes}'\nnode_class: sim\n"
                "timeouts: {command: 600, mpi: 600}\nslurm: {time_limit: '00:30:00'}\n"
                "mpi:\n  openmpi: {mpicc: mpicc.openmpi, mpirun: [mpirun.openmpi]}\n"
            )
            launcher = launcher_for(load_profile(profile))

            before = allocations(log)
            t = time.perf_counter()
            results = launcher.run("hostname", NodeSet(nodes), timeout=600)
            step = time.perf_counter() - t
            ok = sum(r.ok for r in results.values())
            print(
                f"one step across {n} nodes (srun --label): {step:6.1f} s wall, {ok}/{n} ok, "
                f"{allocations(log) - before} job(s)"
            )
            t = time.perf_counter()
            problems = launcher.unavailable(NodeSet(nodes))
            print(
                f"pre-flight (sinfo) of {n} nodes:           {time.perf_counter() - t:6.2f} s, "
                f"{len(problems)} unavailable"
            )

            if not args.skip_old:
                before = allocations(log)
                t = time.perf_counter()

                def one(node: str) -> int:
                    return subprocess.run(
                        ["srun", "-N1", "-n1", "-w", node, "hostname"],
                        capture_output=True,
                        timeout=600,
                    ).returncode

                with ThreadPoolExecutor(max_workers=16) as pool:
                    codes = list(pool.map(one, names))
                old = time.perf_counter() - t
                print(
                    f"{n} jobs, srun -N1 -w NODE 16 at a time:  {old:6.1f} s wall, "
                    f"{codes.count(0)}/{n} ok, {allocations(log) - before} job(s)"
                )

            before = allocations(log)
            t = time.perf_counter()
            results_file = work / "results.json"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "hpcos.cli",
                    "test",
                    "--cluster",
                    str(profile),
                    "--results",
                    str(results_file),
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "-m",
                    "node",
                    str(REPO / "integration_tests/test_nodes.py"),
                ],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=3600,
                env={
                    **os.environ,
                    "XDG_CACHE_HOME": str(work / "cache"),
                    "HPCOS_STORE": str(work / "store"),
                },
            )
            wall = time.perf_counter() - t
            run = RunResults.read(results_file)
            passed = sum(r.outcome == "passed" for r in run.results)
            jobs = allocations(log) - before
            print(
                f"hpcos test -m node ({NODE_TESTS} node tests): {wall:6.1f} s wall, {passed}/{len(run.results)} "
                f"(test, node) passed, {jobs} job(s) through slurmctld; formula {NODE_TESTS} + 0 + 1 = "
                f"{NODE_TESTS + 1} (one job per node and test: {n} x {NODE_TESTS} + 1 = {n * NODE_TESTS + 1})"
            )
        finally:
            stop_slurm_nodes(slurm)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
