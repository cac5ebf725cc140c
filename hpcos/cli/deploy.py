"""``hpcos deploy ENV --cluster PROFILE [--nodes SET]``: put an environment's snapshot on a cluster (docs/deploy.md)."""

from __future__ import annotations

import json
from dataclasses import asdict

from hpcos.cli.console import emit
from hpcos.cli.options import COUNT
from hpcos.cluster.profiles import load_profile
from hpcos.site.trackers import TRACKERS

TICKET_CHOICES = ("site", "off", *TRACKERS)


def register(sub) -> None:
    p = sub.add_parser(
        "deploy",
        help="drain, distro-sync to an environment's snapshot, reboot, verify and resume "
        "a cluster's nodes in batches",
        description="Deploy the snapshot ENV points at onto the nodes of a cluster profile, "
        "a batch at a time; nodes that fail stay drained with the reason, and get "
        "a ticket per cause.",
    )
    p.add_argument("env", help="environment whose snapshot to deploy (e.g. testing)")
    p.add_argument("--cluster", required=True, help="cluster profile name or YAML path")
    p.add_argument(
        "--nodes", help="ClusterShell node set within the profile's nodes (default: all)"
    )
    p.add_argument(
        "--batch-size",
        type=COUNT,
        help="most nodes out at once (default: the profile's deploy.batch_size)",
    )
    p.add_argument(
        "--snapshot", help="deploy this snapshot id rather than the one ENV points at now"
    )
    p.add_argument(
        "--tickets",
        choices=TICKET_CHOICES,
        default="site",
        metavar="BACKEND|site|off",
        help="file a ticket per cause of failed nodes (and close what verified nodes fixed): "
        "site.yaml's tracker (site, the default), another backend, or off",
    )
    p.add_argument(
        "--rolling",
        action="store_true",
        help="without an outage: Slurm reboots each node when its jobs end (scontrol reboot ASAP), the "
        "site's RebootProgram installing the packages downloaded beforehand; hpcos verifies each "
        "node before it resumes it",
    )
    p.add_argument(
        "--json", action="store_true", help="print the deployment record as JSON on stdout"
    )
    p.set_defaults(func=run)


def deploy_cluster(
    site,
    env: str,
    cluster: str,
    *,
    nodes: str | None = None,
    batch_size: int | None = None,
    snapshot: str | None = None,
    tickets: str = "site",
    rolling: bool = False,
):
    """The deployment, then its tickets; the record.  Shared with ``hpcos repo fastpath --deploy``."""
    from hpcos.deploy import failures
    from hpcos.deploy.procedure import deploy

    path = site.profile_path(cluster)
    profile = load_profile(path)
    record = deploy(
        site.specs,
        site.layout,
        env,
        profile,
        path,
        nodes=nodes,
        batch_size=batch_size,
        snapshot_id=snapshot,
        cluster_ref=cluster,
        rolling=rolling,
    )
    if tickets != "off":  # each action is logged: stdout stays the record's (--json)
        failures.file_tickets(site, record, None if tickets == "site" else tickets)
    return record


def run(args) -> int:
    record = deploy_cluster(
        args.site,
        args.env,
        args.cluster,
        nodes=args.nodes,
        batch_size=args.batch_size,
        snapshot=args.snapshot,
        tickets=args.tickets,
        rolling=args.rolling,
    )
    if args.json:
        emit(json.dumps(asdict(record), indent=2, sort_keys=True))
    # (The summary, one line per node set, was logged by the procedure and shown on the terminal.)
    # Like `hpcos test`: 1 when some node failed (it is left drained and named above).
    return 0 if not record.failed_nodes else 1
