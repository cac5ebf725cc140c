"""Node-hours out of service: the same update as an outage and as ``hpcos deploy --rolling``; the time
download-before-drain takes out of the window.

    .venv/bin/python bench/rolling.py [--nodes 3] [--batch-size 3] [--project 1000]

The nodes are dnf install roots moved from snapshot A to snapshot B (alpha, openmpi and the kernel
change: every node reboots), on a real Slurm with one slurmd per node whose RebootProgram reboots them
(tests/support/rolling_fixture.py).  The same A nodes are deployed twice from fresh copies: once with
the batch procedure (hpcos drains, installs, reboots with the profile's script, verifies, resumes),
once with ``--rolling`` (Slurm reboots each node, its RebootProgram installing from the cache).
No job runs: the figures are the procedure's, not the jobs' (under --rolling a node's running jobs
finish in service).

Measured per node, from the deployment records: ``download`` (in service, both procedures) and the
time out of service (batches: drain..resume; rolling: reboot, verify, resume).  Projection to P nodes:
  outage   every node is out for the whole window: P x ceil(P / b) x T_batch, with T_batch the measured
           batch time out of service (a batch lasts as long as its slowest node) and b the batch size;
  rolling  each node is out only for its own reboot: P x t_node (mean measured per node);
  download saved = what the window would have held had the download stayed after the drain:
           outage P x ceil(P / b) x max(download in a batch); rolling P x mean(download).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from deploy import hpcos, site_with_golden_nodes  # noqa: E402
from support.deploy_fixtures import profile_yaml  # noqa: E402
from support.rolling_fixture import start_rolling_slurm  # noqa: E402
from support.slurm_nodes_fixture import stop_slurm_nodes  # noqa: E402

from hpcos.core.store_layout import StoreLayout  # noqa: E402
from hpcos.repo import deployments  # noqa: E402


def out_of_service(node: deployments.NodeDeployment) -> float:
    return node.out_of_service_seconds


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=3)
    parser.add_argument("--project", type=int, default=1000)
    args = parser.parse_args()
    names = [f"node{i}" for i in range(1, args.nodes + 1)]
    logging.getLogger("hpcos").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="hpcos-bench-rolling-") as tmp:
        root = Path(tmp)
        site, golden = site_with_golden_nodes(root, names)
        nodes_dir = root / "nodes"
        shutil.copytree(golden, nodes_dir, symlinks=True)
        slurm = start_rolling_slurm(
            root / "slurm", names, nodes_dir, "/var/lib/hpcos/update-at-reboot"
        )
        records = {}
        try:
            os.environ.update(slurm.env)
            slurm.wait_idle()
            for mode in ("batches", "rolling"):
                shutil.rmtree(nodes_dir)
                shutil.copytree(golden, nodes_dir, symlinks=True)
                profile = root / f"{mode}.yaml"
                profile.write_text(
                    profile_yaml(nodes_dir, f"node[1-{args.nodes}]", batch_size=args.batch_size)
                )
                hpcos(
                    site,
                    "deploy",
                    "testing",
                    "--cluster",
                    str(profile),
                    "--tickets",
                    "off",
                    *(["--rolling"] if mode == "rolling" else []),
                )
                [records[mode]] = [
                    r for r in deployments.records(StoreLayout(site.store)) if r.mode == mode
                ]
                slurm.wait_idle()
        finally:
            stop_slurm_nodes(slurm)
    p, b = args.project, args.batch_size
    batches, rolling = records["batches"], records["rolling"]
    assert not batches.failed_nodes and not rolling.failed_nodes, (
        batches.failed_nodes,
        rolling.failed_nodes,
    )
    t_batch = max(out_of_service(n) for n in batches.nodes.values())
    dl_batch = max(n.durations["download"] for n in batches.nodes.values())
    t_node = statistics.mean(out_of_service(n) for n in rolling.nodes.values())
    dl_node = statistics.mean(n.durations["download"] for n in rolling.nodes.values())
    window = math.ceil(p / b) * t_batch
    print(
        f"{args.nodes} simulated nodes, A -> B (3 packages, kernel: every node reboots), batch size {b}; real Slurm, "
        "RebootProgram-driven reboots for --rolling"
    )
    print("| procedure | per node out of service (measured, s) | download in service (s) |")
    print("|---|---:|---:|")
    for mode, record in (("outage (batches)", batches), ("rolling", rolling)):
        shown = ", ".join(f"{out_of_service(n):.2f}" for n in record.nodes.values())
        downloads = ", ".join(f"{n.durations['download']:.2f}" for n in record.nodes.values())
        print(f"| {mode} | {shown} | {downloads} |")
    print(f"projection to {p} nodes, batch size {b}:")
    print(
        f"  outage:  P x ceil(P/b) x T_batch = {p} x {math.ceil(p / b)} x {t_batch:.2f} s = "
        f"{p * window / 3600:,.1f} node-hours (window {window / 3600:.2f} h)"
    )
    print(f"  rolling: P x t_node = {p} x {t_node:.2f} s = {p * t_node / 3600:,.2f} node-hours")
    print(
        f"  download before drain saves: outage {p} x {math.ceil(p / b)} x {dl_batch:.2f} s = "
        f"{p * math.ceil(p / b) * dl_batch / 3600:,.1f} node-hours ({math.ceil(p / b) * dl_batch / 60:.1f} min of "
        f"window); rolling {p} x {dl_node:.2f} s = {p * dl_node / 3600:,.2f} node-hours"
    )


if __name__ == "__main__":
    main_bench()
