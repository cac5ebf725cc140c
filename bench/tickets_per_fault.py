"""Figure: tickets filed per injected MPI fault, from real nights of ``hpcos test --cluster local``.

Each fault of issue 24's table is injected into a copy of the shipped local profile (or the night's
environment) and ``hpcos test --tickets local`` runs integration_tests/test_mpi.py for real (probes
built with mpicc, launched by the local launcher, failures parsed by the tests, tickets filed by the
plugin).  Prints, per fault, the tickets a site expects, the tickets created and comments made, each
night's failing tests, and the load average (the help-text loss of Open MPI 4.1 grows with load).

    .venv/bin/python bench/tickets_per_fault.py [--only NAME] [--hang-timeout 8]
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.mpi_replay import replay_mpirun  # noqa: E402
from support.tracker_doubles.runs import site_with_tracker  # noqa: E402

from hpcos.results.model import RunResults  # noqa: E402

HPCOS = str(Path(sys.executable).with_name("hpcos"))
PRELOAD = r"""
#include <mpi.h>
#include <signal.h>
#include <unistd.h>
int MPI_Init(int *argc, char ***argv) { int r = PMPI_Init(argc, argv), rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank); if (rank == 1) { %s } return r; }
"""
HANG, SEGV = "pause();", "raise(SIGSEGV);"


def profile(work: Path, name: str, stacks: dict, timeouts: dict | None = None) -> Path:
    data = yaml.safe_load((ROOT / "integration_tests" / "clusters" / "local.yaml").read_text())
    data["name"] = name
    data["mpi"] = {stack: {**data["mpi"][stack], **changes} for stack, changes in stacks.items()}
    if timeouts:
        data["timeouts"] = timeouts
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def preload(work: Path, mpicc: str, body: str, name: str) -> str:
    source = work / f"{name}.c"
    source.write_text(PRELOAD % body)
    subprocess.run(
        [mpicc, "-shared", "-fPIC", "-o", str(work / f"{name}.so"), str(source)],
        check=True,
        timeout=120,
    )
    return str(work / f"{name}.so")


def night(work: Path, specs: Path, store: Path, cluster: str, mpi: str, env: dict | None, n: int):
    results = work / f"night{n}.json"
    argv = [
        HPCOS,
        "test",
        "--specs",
        str(specs),
        "--store",
        str(store),
        "--cluster",
        cluster,
        "--mpi",
        mpi,
        "--results",
        str(results),
        "--tickets",
        "local",
        "integration_tests/test_mpi.py",
        "-p",
        "no:cacheprovider",
    ]
    done = subprocess.run(
        argv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "HPCOS_PROBE_CACHE": str(work / "probes"), **(env or {})},
    )
    out = done.stdout + done.stderr
    line = next((x for x in out.splitlines() if x.startswith("hpcos tickets (local)")), "")
    created = int(m.group(1)) if (m := re.search(r"(\d+) created", line)) else 0
    commented = int(m.group(1)) if (m := re.search(r"(\d+) commented", line)) else 0
    run = RunResults.read(results) if results.exists() else None
    failing = len(run.failures()) if run else -1
    lost = (
        sum(
            1
            for r in run.failures()
            if "ORTE_ERROR_LOG" in r.message
            and "reach each other" not in r.message
            and "unreachable from" not in r.message
        )
        if run
        else 0
    )
    return created, commented, failing, lost, line


def summaries(store: Path) -> list[str]:
    """The local tracker's ticket summaries, as a person reads them."""
    found = []
    for db in sorted(store.glob("tickets*.sqlite")):
        with closing(sqlite3.connect(db)) as conn:
            try:
                found += [row[0] for row in conn.execute("SELECT summary FROM tickets ORDER BY id")]
            except sqlite3.Error:
                continue  # the state database, not the tracker's
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run one fault (its name in the table)")
    parser.add_argument(
        "--hang-timeout", type=int, default=8, help="timeouts.mpi of the hang fault (s)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hpcos-bench-faults-") as tmp:
        work = Path(tmp)
        local = yaml.safe_load((ROOT / "integration_tests" / "clusters" / "local.yaml").read_text())
        allow = local["mpi"]["openmpi"]["env"]
        hang_timeouts = {"command": 60, "mpi": args.hang_timeout}
        faults = [
            # name, expected tickets, [(cluster, mpi, night env)] per night
            (
                "OMPI_MCA_btl=self, 2 nights",
                1,
                [("local", "openmpi", {"OMPI_MCA_btl": "self"})] * 2,
            ),
            # Night 2 replays, through the profile's mpirun, a real night on which Open MPI lost the
            # explanation in every job (tests/data/mpi_failures/all-lost-stderr/): it must comment.
            (
                "btl=self, then all explanations lost",
                1,
                [
                    ("local", "openmpi", {"OMPI_MCA_btl": "self"}),
                    (
                        lambda: str(
                            profile(
                                work,
                                "all-lost",
                                {
                                    "openmpi": {
                                        "mpirun": replay_mpirun(
                                            work,
                                            ROOT
                                            / "tests"
                                            / "data"
                                            / "mpi_failures"
                                            / "all-lost-stderr",
                                        )
                                    }
                                },
                            )
                        ),
                        "openmpi",
                        {"OMPI_MCA_btl": "self"},
                    ),
                ],
            ),
            (
                "mpirun path does not exist",
                1,
                [
                    (
                        lambda: str(
                            profile(
                                work,
                                "missing",
                                {
                                    "openmpi": {
                                        "mpirun": [
                                            "/opt/openmpi-5.0.3/bin/mpirun",
                                            "--oversubscribe",
                                        ]
                                    }
                                },
                            )
                        ),
                        "openmpi",
                        None,
                    )
                ],
            ),
            (
                "rank 1 hangs in MPI_Init",
                1,
                [
                    (
                        lambda: str(
                            profile(
                                work,
                                "hang",
                                {
                                    "openmpi": {
                                        "env": {
                                            **allow,
                                            "LD_PRELOAD": preload(
                                                work, "mpicc.openmpi", HANG, "hang"
                                            ),
                                        }
                                    }
                                },
                                hang_timeouts,
                            )
                        ),
                        "openmpi",
                        None,
                    )
                ],
            ),
            ("MPICH with UCX_TLS=bogus", 1, [("local", "mpich", {"UCX_TLS": "bogus"})]),
            (
                "Open MPI with too few slots",
                1,
                [
                    (
                        lambda: str(
                            profile(
                                work,
                                "slots",
                                {
                                    "openmpi": {
                                        "mpirun": ["mpirun.openmpi", "--host", "localhost:1"]
                                    }
                                },
                            )
                        ),
                        "openmpi",
                        None,
                    )
                ],
            ),
            (
                "a segfaulting rank, both stacks",
                2,
                [
                    (
                        lambda: str(
                            profile(
                                work,
                                "segv",
                                {
                                    "openmpi": {
                                        "env": {
                                            **allow,
                                            "LD_PRELOAD": preload(
                                                work, "mpicc.openmpi", SEGV, "segv-ompi"
                                            ),
                                        }
                                    },
                                    "mpich": {
                                        "env": {
                                            "LD_PRELOAD": preload(
                                                work, "mpicc.mpich", SEGV, "segv-mpich"
                                            )
                                        }
                                    },
                                },
                            )
                        ),
                        "openmpi,mpich",
                        None,
                    )
                ],
            ),
        ]
        print(
            f"{'fault':<34} {'expected':>8} {'tickets':>7} {'comments':>8}  nights (failing results, "
            f"Open MPI explanations lost)  load"
        )
        for name, expected, nights in faults:
            if args.only and args.only not in name:
                continue
            specs = site_with_tracker(
                work / name.replace(" ", "_").replace("/", "_"), ROOT, {"backend": "local"}
            )
            store = specs.parent / "store"
            created = commented = 0
            shown = []
            started = time.monotonic()
            for n, (cluster, mpi, env) in enumerate(nights, 1):
                cluster = cluster() if callable(cluster) else cluster
                c, m, failing, lost, _line = night(specs.parent, specs, store, cluster, mpi, env, n)
                created, commented = created + c, commented + m
                shown.append(f"{failing} failing, {lost} lost")
            load = os.getloadavg()[0]
            print(
                f"{name:<34} {expected:>8} {created:>7} {commented:>8}  {'; '.join(shown)}  "
                f"load {load:.1f} ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
            for summary in summaries(store):
                print(f"    {summary}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
