"""``hpcos check CHECK --cluster P --node N``: one of the harness's node checks as a Nagios plugin.

Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; one status line with performance data on stdout
(docs/monitoring in docs/configuration.md).
"""

from __future__ import annotations

import sys

from hpcos.cli.test import DEFAULT_CLUSTER
from hpcos.core.text import one_line

DEFAULT_TIMEOUT = 300


def usage_error(message: str) -> None:
    """argparse's ``error`` the plugin way: a usage mistake (a typo in a check name, an unknown option,
    ``--timeout abc``) is UNKNOWN, exit 3, with one line on stdout, never CRITICAL (exit 2)."""
    sys.stdout.write(
        f"UNKNOWN - hpcos check: {one_line(message, 300).replace('|', '/')} (see hpcos check --help)\n"
    )
    sys.exit(3)


def seconds(text: str) -> int:
    value = int(text)  # argparse turns a ValueError into "invalid _seconds value"
    if not 1 <= value <= 86400:
        raise ValueError(text)
    return value


def register(sub) -> None:
    from hpcos.monitoring.checks import CHECKS

    p = sub.add_parser(
        "check",
        help="run one node check as a Nagios plugin (exit 0/1/2/3, status line, performance data)",
    )
    p.error = usage_error
    p.add_argument("check", choices=sorted(CHECKS), metavar="CHECK", help=", ".join(sorted(CHECKS)))
    p.add_argument(
        "--cluster",
        metavar="PROFILE",
        default=DEFAULT_CLUSTER,
        help=f"cluster profile name or path (default: {DEFAULT_CLUSTER})",
    )
    p.add_argument("--node", help="the node to check (default: the profile's only node)")
    p.add_argument(
        "--repo",
        metavar="URL",
        help="the environment's served repositories for kernel/packages (default: the snapshot "
        "the profile's os_update.environment points at in the store)",
    )
    p.add_argument(
        "--mpi", metavar="STACK", help="MPI stack for mpi-hello (default: the profile's first)"
    )
    p.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="seconds the whole check may take, 1-86400; then it answers UNKNOWN and kills the "
        f"node command, local and remote (default: {DEFAULT_TIMEOUT})",
    )
    p.set_defaults(func=check_command)


def _target(args):
    from hpcos.core.errors import UserError
    from hpcos.monitoring.checks import Target

    profile = args.site.profile(args.cluster)
    nodes = profile.select_nodes(args.node)
    if len(nodes) != 1:
        raise UserError(f"--node: one node, please (profile {profile.name!r} has {profile.nodes})")
    return Target(
        profile, str(nodes), repo=args.repo, mpi=args.mpi, site=args.site, deadline=args.deadline
    )


def check_command(args) -> int:
    from hpcos.monitoring.plugin import plugin_process, run_plugin

    # The timer counts from the process's start: --timeout bounds the whole plugin.
    with plugin_process(args.check, args.timeout, own_process=args.own_process) as args.deadline:
        from hpcos.monitoring.checks import CHECKS

        # Everything, a bad profile included, is reported the plugin way (UNKNOWN, exit 3): Nagios shows
        # the line; an exit code 2 from the usual error path would read as CRITICAL.
        run_plugin(args.check, lambda: CHECKS[args.check](_target(args)), args.timeout)
    return 3  # not reached: the plugin exits
