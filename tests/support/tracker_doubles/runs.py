"""Nightly runs for the ticket tests (real error texts on many nodes, as the harness reports them),
and sites whose tracker points at a test server."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from hpcos.results.model import Measurement, Reference, RunResults, TestResult

# Open MPI 4.1 with OMPI_MCA_btl=self (help-mca-bml-r2.txt), as mpirun prints it.
OPENMPI_UNREACHABLE = """\
--------------------------------------------------------------------------
At least one pair of MPI processes are unable to reach each other for
MPI communications.  This means that no Open MPI device has indicated
that it can be used to communicate between these processes.  This is
an error; Open MPI requires that all MPI processes be able to reach
each other.  This error may be caused by the lack of a BTL that is
appropriate for the connection.

  Process 1 ([[{jobid},1],0]) is on host: {node}
  Process 2 ([[{jobid},1],1]) is on host: {node}
  BTLs attempted: self

Your MPI job is now going to abort; sorry.
--------------------------------------------------------------------------
[{node}:{pid}] *** An error occurred in MPI_Init
"""
IBV_MISSING = "ibv_devinfo exited 255\nFailed to get IB devices list: Function not implemented\n"
SRUN_FAILED = (
    "srun: error: {node}: task {rank}: Exited with exit code 1\n"
    "srun: launch/slurm: _step_signal: Terminating StepId={jobid}.0\n"
)


def run(
    run_id: str,
    failing: dict[str, tuple[str, list[str]]],
    passing: dict[str, list[str]] | None = None,
    started: str = "2026-11-26T02:00:00+00:00",
    build_url: str | None = None,
) -> RunResults:
    """``failing``: test id -> (message template, nodes); the template sees node, pid, jobid, rank."""
    results = []
    for i, (test_id, (template, nodes)) in enumerate(failing.items()):
        for j, node in enumerate(nodes):
            message = template.format(
                node=node, pid=4000 + 7 * j, jobid=10000 + 31 * i + j, rank=j % 4
            )
            results.append(
                TestResult(
                    test_id=test_id,
                    node=node,
                    outcome="failed",
                    failure_class="error",
                    message=message,
                    command=f"mpirun.openmpi -np 2 --host {node} ./pingpong",
                    rerun=f"hpcos test -k {test_id.split('::')[-1]} --nodes {node}",
                    mpi="openmpi",
                )
            )
    for test_id, nodes in (passing or {}).items():
        results += [TestResult(test_id=test_id, node=node, outcome="passed") for node in nodes]
    return RunResults(
        run_id=run_id,
        cluster="test-cluster",
        started=started,
        finished=started,
        versions={
            "kernel": "5.14.0-427.el9.hpc1",
            "rdma-core": "48.0-1.el9.hpc1",
            "openmpi": "4.1.6-2.el9.hpc1",
        },
        testing_snapshot="2026-11-25T0100",
        build_url=build_url,
        results=results,
    )


def latency_regression(run_id: str, nodes: list[str]) -> RunResults:
    results = run(run_id, {})
    for node in nodes:
        results.results.append(
            TestResult(
                test_id="integration_tests/test_pingpong.py::test_latency[openmpi]",
                node=node,
                outcome="failed",
                failure_class="performance regression",
                message=f"latency 8 B: 3.61 us on {node}, expected 0.17 us (+50%)",
                mpi="openmpi",
                measurements=[
                    Measurement(
                        "latency",
                        3.61,
                        "us",
                        "lower",
                        size=8,
                        samples=[3.6, 3.61, 3.62],
                        reference=Reference(0.17, None, 0.5, "us"),
                    )
                ],
            )
        )
    return results


def nodes(count: int, prefix: str = "node", width: int = 3) -> list[str]:
    return [f"{prefix}{i:0{width}d}" for i in range(1, count + 1)]


def site_with_tracker(tmp_path, repo_root, tracker: dict) -> Path:
    """A copy of the sample site whose site.yaml names ``tracker``."""
    specs = tmp_path / "specs"
    if not specs.exists():
        shutil.copytree(repo_root / "overlay_specs", specs)
    site = yaml.safe_load((specs / "site.yaml").read_text())
    site["tracker"] = tracker
    (specs / "site.yaml").write_text(yaml.safe_dump(site))
    return specs
