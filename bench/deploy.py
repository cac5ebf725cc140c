"""``hpcos deploy`` on simulated nodes: wall time, per-task split, growth with batch size, 1,000-node projection.

    .venv/bin/python bench/deploy.py [--nodes 4] [--batch-sizes 1,2,4] [--project 1000] [--no-slurm]
                                     [--launcher local|slurm]

Nodes are dnf install roots (as in tests/test_deploy.py) moved from snapshot A to snapshot B: three
packages change, among them the kernel, so every node distro-syncs and "reboots" (the profile's
script).  Drain and resume go through a real Slurm with one slurmd per node name unless --no-slurm;
with --launcher slurm every node command goes through srun in the deployment's maintenance reservation.
Each batch size starts from fresh copies of the same A nodes.

The projection reads the recorded per-node durations (the deployment records in the store, as the
outage plan will): a batch takes, task by task, as long as its slowest node, batches run one after
another, so N nodes take ceil(N / batch) times the mean batch time.  Within a batch the nodes here
share two cores; on a real cluster they do not, and the reboot takes minutes instead of the script's
tenths of a second -- the projection says what the procedure costs, not what the hardware adds.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from support.deploy_fixtures import profile_yaml, provision  # noqa: E402
from support.rpm_repo_fixtures import Rpm, RpmFactory, make_site  # noqa: E402
from support.slurm_nodes_fixture import start_slurm_nodes, stop_slurm_nodes  # noqa: E402

from hpcos.cli import main  # noqa: E402
from hpcos.core.store_layout import StoreLayout  # noqa: E402
from hpcos.repo import deployments  # noqa: E402

A = {
    "base": [Rpm("alpha", "1.0"), Rpm("beta", "1.0")],
    "hpc-overlay": [Rpm("openmpi", "4.1.1", "1.hpc1", "x86_64")],
    "kernel-overlay": [Rpm("kernel", "5.14.0", "1.hpc1", "x86_64")],
}
B = {
    "base": [Rpm("alpha", "1.1"), Rpm("beta", "1.0")],
    "hpc-overlay": [Rpm("openmpi", "4.1.2", "1.hpc1", "x86_64")],
    "kernel-overlay": [Rpm("kernel", "5.14.0", "2.hpc1", "x86_64")],
}


def hpcos(site, *args: str) -> None:
    code = main(["--specs", str(site.specs), "--store", str(site.store), *args])
    if code != 0:
        sys.exit(f"hpcos {' '.join(args)} exited {code}")


def snapshot(site, contents) -> None:
    site.set_upstream("base", contents["base"])
    site.set_overlay("hpc-overlay", contents["hpc-overlay"])
    site.set_overlay("kernel-overlay", contents["kernel-overlay"])
    for step in (
        ["sync"],
        ["publish", "hpc-overlay"],
        ["publish", "kernel-overlay"],
        ["promote", "daily", "testing"],
    ):
        hpcos(site, "repo", *step)


def site_with_golden_nodes(root: Path, names: list[str]):
    """A site whose testing snapshot went A -> B, and nodes ``names`` installed at A under ``root/golden``
    (copied for each measured rollout)."""
    site = make_site(RpmFactory(root / "rpmbuild"), root / "site")
    snapshot(site, A)
    repo = root / "a.repo"
    hpcos(site, "repo", "client-config", "testing", "--no-gpgcheck", "-o", str(repo))
    golden = root / "golden"
    golden.mkdir()
    for name in names:
        provision(golden / name, repo.read_text(), ["alpha", "beta", "openmpi", "kernel"])
    snapshot(site, B)
    return site, golden


def batch_time(record: deployments.DeploymentRecord, nodes: list[str]) -> float:
    """A batch lasts, task by task, as long as its slowest node."""
    return sum(
        max(record.nodes[n].durations.get(task, 0.0) for n in nodes) for task in deployments.TASKS
    )


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--batch-sizes", default="1,2,4")
    parser.add_argument(
        "--project", type=int, default=1000, help="project the wall time for this many nodes"
    )
    parser.add_argument("--no-slurm", action="store_true")
    parser.add_argument(
        "--launcher",
        choices=("local", "slurm"),
        default="local",
        help="how the node commands reach the nodes (slurm: srun in a maintenance reservation)",
    )
    args = parser.parse_args()
    if args.launcher == "slurm" and args.no_slurm:
        parser.error("--launcher slurm needs Slurm (drop --no-slurm)")
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    names = [f"node{i}" for i in range(1, args.nodes + 1)]
    import logging

    logging.getLogger("hpcos").setLevel(
        logging.WARNING
    )  # the deployment's progress lines are not figures
    with tempfile.TemporaryDirectory(prefix="hpcos-bench-deploy-") as tmp:
        root = Path(tmp)
        slurm = None if args.no_slurm else start_slurm_nodes(root / "slurm", names)
        try:
            if slurm:
                os.environ.update(slurm.env)
                slurm.wait_idle()
            site, golden = site_with_golden_nodes(root, names)
            print(
                f"{args.nodes} simulated nodes, snapshot A -> B (alpha, openmpi and the kernel change; every node "
                f"reboots); drain/resume: {'none' if args.no_slurm else 'real Slurm'}; launcher {args.launcher}; "
                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n"
            )
            rows = []
            for size in sizes:
                nodes_dir = root / f"nodes-{size}"
                shutil.copytree(golden, nodes_dir, symlinks=True)
                profile = root / f"profile-{size}.yaml"
                profile.write_text(
                    profile_yaml(
                        nodes_dir,
                        f"node[1-{args.nodes}]",
                        batch_size=size,
                        drain="none" if args.no_slurm else "slurm",
                        launcher=args.launcher,
                    )
                )
                started = time.monotonic()
                code = main(
                    [
                        "--specs",
                        str(site.specs),
                        "--store",
                        str(site.store),
                        "deploy",
                        "testing",
                        "--cluster",
                        str(profile),
                    ]
                )
                wall = time.monotonic() - started
                record = deployments.records(StoreLayout(site.store))[-1]
                if code != 0 or record.failed_nodes:
                    sys.exit(f"deployment with batch size {size} failed: {record.failed_nodes}")
                batches = [names[i : i + size] for i in range(0, len(names), size)]
                mean_batch = statistics.mean(batch_time(record, b) for b in batches)
                rows.append((size, wall, record, mean_batch))
            print(
                "| batch size | wall time | batches | mean batch time | projected for "
                f"{args.project:,} nodes |"
            )
            print("|---:|---:|---:|---:|---:|")
            for size, wall, _record, mean_batch in rows:
                batches = math.ceil(args.nodes / size)
                projected = math.ceil(args.project / size) * mean_batch
                print(
                    f"| {size} | {wall:.1f} s | {batches} | {mean_batch:.2f} s | {_duration(projected)} |"
                )
            print(
                "\nper-task split (seconds per node: mean over nodes, and that task's share of the node's total)"
            )
            print("| batch size | " + " | ".join(deployments.TASKS) + " |")
            print("|---:|" + "---:|" * len(deployments.TASKS))
            for size, _wall, record, _mean in rows:
                means = {
                    t: statistics.mean(n.durations.get(t, 0.0) for n in record.nodes.values())
                    for t in deployments.TASKS
                }
                total = sum(means.values()) or 1.0
                print(
                    f"| {size} | "
                    + " | ".join(
                        f"{means[t]:.2f} ({100 * means[t] / total:.0f}%)" for t in deployments.TASKS
                    )
                    + " |"
                )
        finally:
            if slurm:
                stop_slurm_nodes(slurm)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


if __name__ == "__main__":
    main_bench()
