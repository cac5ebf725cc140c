"""``hpcos monitoring config --cluster P``: Nagios object configuration for a cluster profile's nodes."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import sys
from pathlib import Path

from hpcos.cli.console import console, emit
from hpcos.cli.options import COUNT, bounded_int
from hpcos.cli.test import DEFAULT_CLUSTER


def register(sub) -> None:
    monitoring = sub.add_parser(
        "monitoring",
        help="continuous monitoring of the production cluster with the harness's checks",
    )
    actions = monitoring.add_subparsers(dest="monitoring_command", metavar="ACTION", required=True)
    p = actions.add_parser(
        "config", help="write Nagios object configuration: a host per node, a service per check"
    )
    p.add_argument(
        "--cluster", metavar="PROFILE", default=DEFAULT_CLUSTER, help="cluster profile name or path"
    )
    p.add_argument("-o", "--output", metavar="FILE", help="objects file to write (default: stdout)")
    p.add_argument(
        "--via",
        choices=("local", "ssh", "nrpe"),
        default="local",
        help="local: hpcos on the Nagios host reaches nodes through the profile's launcher; "
        "ssh: check_by_ssh; nrpe: check_nrpe (default: local)",
    )
    p.add_argument(
        "--node-cluster",
        metavar="PROFILE",
        default="local",
        help="profile `hpcos check` uses on the node itself (--via ssh/nrpe; default: local)",
    )
    p.add_argument(
        "--repo", metavar="URL", help="the environment's repositories (kernel, packages checks)"
    )
    p.add_argument(
        "--check", action="append", metavar="CHECK", help="only these checks (repeatable)"
    )
    p.add_argument(
        "--hpcos", metavar="PATH", help="the hpcos command Nagios runs (default: this one)"
    )
    p.add_argument(
        "--check-period", default="24x7", help="timeperiod the objects use (default: 24x7)"
    )
    p.add_argument(
        "--contact-group", default="admins", help="contact group the objects use (default: admins)"
    )
    p.add_argument(
        "--check-interval", type=COUNT, default=5, help="in interval_length units (default: 5)"
    )
    p.add_argument("--retry-interval", type=COUNT, default=1)
    p.add_argument(
        "--check-timeout",
        type=bounded_int(1, 86400),  # what `hpcos check --timeout` takes
        default=50,
        metavar="SECONDS",
        help="`hpcos check --timeout` in the commands: keep it below Nagios' service_check_timeout "
        "(default: 50, --standalone sets Nagios' to 10 s more)",
    )
    p.add_argument(
        "--standalone",
        metavar="DIR",
        help="also write a private Nagios instance in DIR (nagios.cfg, base.cfg, resource.cfg) "
        "around the objects: `nagios4 -v DIR/nagios.cfg`",
    )
    p.add_argument(
        "--interval-length", type=COUNT, default=60, help="--standalone: seconds per interval unit"
    )
    p.add_argument(
        "--nrpe-output",
        metavar="FILE",
        help="--via nrpe: write the nodes' nrpe.cfg command lines here",
    )
    p.set_defaults(func=config_command)


def _hpcos_path() -> str:
    here = Path(sys.argv[0])
    if here.name == "hpcos" and here.exists():
        return str(here.resolve())
    return shutil.which("hpcos") or "hpcos"


def _write(path: Path, text: str) -> None:
    from hpcos.core.errors import UserError
    from hpcos.core.files import write_text_atomically

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, text)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}") from None


def config_command(args) -> int:
    from hpcos.cluster.profiles import load_profile
    from hpcos.monitoring import nagios
    from hpcos.monitoring.checks import SERVICE_CHECKS

    path = args.site.profile_path(args.cluster)
    profile = load_profile(path)
    options = nagios.Options(
        # On the nodes (ssh, nrpe) hpcos is found on PATH unless told; here, this very command.
        hpcos=args.hpcos or (_hpcos_path() if args.via == "local" else "hpcos"),
        cluster=str(Path(path).resolve()),
        via=args.via,
        node_cluster=args.node_cluster,
        repo=args.repo,
        checks=tuple(args.check or SERVICE_CHECKS),
        check_period=args.check_period,
        contact_group=args.contact_group,
        check_interval=args.check_interval,
        retry_interval=args.retry_interval,
        check_timeout=args.check_timeout,
    )
    text = nagios.objects(profile, options)
    if args.output:
        _write(Path(args.output), text)
        console.print(
            f"wrote {args.output}: {len(profile.node_set)} host(s), {len(options.checks)} service(s) each",
            markup=False,
        )
    else:
        emit(text, end="")
    if args.nrpe_output:
        _write(Path(args.nrpe_output), nagios.nrpe_commands(options))
    if args.standalone:
        objects_file = str(Path(args.output).resolve()) if args.output else None
        if objects_file is None:
            from hpcos.core.errors import UserError

            raise UserError("--standalone needs -o FILE (the objects file nagios.cfg includes)")
        directory = Path(args.standalone).resolve()
        for sub in ("var/spool", "var/rw"):
            _write(directory / sub / ".keep", "")
        files = nagios.standalone(
            str(directory),
            objects_file,
            options,
            args.interval_length,
            user=pwd.getpwuid(os.getuid()).pw_name,
            group=grp.getgrgid(os.getgid()).gr_name,
        )
        for name, content in files.items():
            _write(directory / name, content)
        console.print(
            f"wrote {directory}/nagios.cfg: check it with `nagios4 -v {directory}/nagios.cfg`",
            markup=False,
        )
    return 0
