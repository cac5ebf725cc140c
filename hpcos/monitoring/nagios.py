"""Nagios object configuration for a cluster profile: one host per node of the profile's node set,
one service per check (on a hostgroup of those hosts), and the command definitions that run
``hpcos check``.

How a check reaches a node (``via``):
- ``local``: Nagios runs ``hpcos check CHECK --cluster PROFILE --node $HOSTNAME$`` on the monitoring
  host, and the profile's launcher (ssh, Slurm, ...) reaches the node, exactly as in the nightly run.
- ``ssh``: ``check_by_ssh`` runs ``hpcos check CHECK --cluster NODE_PROFILE`` on the node itself.
- ``nrpe``: ``check_nrpe`` asks the node's NRPE daemon for ``hpcos_CHECK``; the ``command[...]``
  lines for its nrpe.cfg come with the configuration.

Every value placed in the file is checked first: node names are plain host names; paths and URLs
carry no ``$`` (a Nagios macro), no newline, and are shell-quoted where Nagios hands them to a shell.
The objects name the site's own check period and contact group (Debian's ``24x7`` and ``admins`` by
default); ``standalone`` adds a whole private Nagios configuration around them.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from hpcos.cluster.profiles import Profile
from hpcos.core.errors import UserError
from hpcos.monitoring.checks import SERVICE_CHECKS

VIAS = ("local", "ssh", "nrpe")
NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
PLUGINS_DIR = "/usr/lib/nagios/plugins"  # monitoring-plugins' $USER1$ on Debian and EL


@dataclass(frozen=True)
class Options:
    hpcos: str  # the hpcos command on the host that runs it
    cluster: str  # profile given to `hpcos check` (via local)
    via: str = "local"
    node_cluster: str = "local"  # profile on the node (via ssh / nrpe)
    repo: str | None = None  # the environment's repositories, for the kernel and packages checks
    checks: tuple[str, ...] = SERVICE_CHECKS
    check_period: str = "24x7"
    contact_group: str = "admins"
    check_interval: int = 5  # in Nagios interval units (interval_length, 60 s by default)
    retry_interval: int = 1
    timeout: int = 120  # check_by_ssh / check_nrpe -t
    # `hpcos check --timeout`: below Nagios' default service_check_timeout (60 s), so the plugin's own
    # UNKNOWN answer, not Nagios' "check timed out", is what a hung node shows.
    check_timeout: int = 50


def _safe_value(what: str, value: str) -> str:
    if "$" in value or "\n" in value or "\r" in value or not value:
        raise UserError(
            f"{what} {value!r}: a value in the Nagios configuration must not be empty or hold '$' "
            f"(a Nagios macro) or a line break"
        )
    return shlex.quote(value)


def _name(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", value)


def _define(kind: str, fields: list[tuple[str, object]]) -> str:
    width = max(len(k) for k, _ in fields) + 2
    body = "".join(f"    {k.ljust(width)}{v}\n" for k, v in fields)
    return f"define {kind} {{\n{body}}}\n"


def _nrpe_name(check: str) -> str:
    return "hpcos_" + check.replace("-", "_")


def node_names(profile: Profile) -> list[str]:
    names = list(profile.node_set)
    bad = [n for n in names if not NODE_NAME.fullmatch(n)]
    if bad:
        raise UserError(
            f"profile {profile.name!r}: node name {bad[0]!r} cannot be a Nagios host name"
        )
    return names


def _node_command(options: Options, check: str) -> str:
    """``hpcos check`` as it runs on the node (via ssh / nrpe)."""
    cluster = _safe_value("--node-cluster", options.node_cluster)
    return f"{_safe_value('--hpcos', options.hpcos)} check {check} --cluster {cluster}"


def objects(profile: Profile, options: Options) -> str:
    """The object configuration (commands, hostgroup, hosts, services) for ``profile``."""
    if options.via not in VIAS:
        raise UserError(f"--via {options.via!r}: expected one of {', '.join(VIAS)}")
    unknown = [c for c in options.checks if c not in SERVICE_CHECKS]
    if unknown:
        raise UserError(
            f"unknown check {unknown[0]!r}; expected some of {', '.join(SERVICE_CHECKS)}"
        )
    nodes = node_names(profile)
    group = f"hpcos-{_name(profile.name)}"
    repo = f" --repo {_safe_value('--repo', options.repo)}" if options.repo else ""
    hpcos = _safe_value("--hpcos", options.hpcos)
    cluster = _safe_value("--cluster", options.cluster)
    limit = f" --timeout {int(options.check_timeout)}"
    if options.via == "local":
        service_line = f"{hpcos} check $ARG1$ --cluster {cluster} --node $HOSTNAME${repo}{limit}"
        host_line = f"{hpcos} check reachable --cluster {cluster} --node $HOSTNAME${limit}"
    elif options.via == "ssh":
        remote = (
            f"{hpcos} check $ARG1$ --cluster {_safe_value('--node-cluster', options.node_cluster)}"
            f"{repo}{limit}"
        )
        service_line = (
            f"$USER1$/check_by_ssh -H $HOSTADDRESS$ -t {options.timeout} -C {shlex.quote(remote)}"
        )
        host_line = f"$USER1$/check_by_ssh -H $HOSTADDRESS$ -t {options.timeout} -C true"
    else:
        service_line = f"$USER1$/check_nrpe -H $HOSTADDRESS$ -t {options.timeout} -c $ARG1$"
        host_line = f"$USER1$/check_nrpe -H $HOSTADDRESS$ -t {options.timeout}"
    common = [
        ("check_period", options.check_period),
        ("contact_groups", options.contact_group),
        ("notification_period", options.check_period),
        ("notification_interval", 60),
    ]
    parts = [
        f"# Generated by `hpcos monitoring config --cluster {profile.name} --via {options.via}`: "
        f"regenerate, do not edit.\n# {len(nodes)} host(s), {len(options.checks)} service(s) per host.\n",
        _define("command", [("command_name", f"{group}-check"), ("command_line", service_line)]),
        _define("command", [("command_name", f"{group}-host"), ("command_line", host_line)]),
        _define(
            "hostgroup",
            [
                ("hostgroup_name", group),
                ("alias", f"nodes of cluster profile {_name(profile.name)}"),
            ],
        ),
    ]
    for node in nodes:
        parts.append(
            _define(
                "host",
                [
                    ("host_name", node),
                    ("alias", node),
                    ("address", node),
                    ("hostgroups", group),
                    ("check_command", f"{group}-host"),
                    ("max_check_attempts", 3),
                    ("check_interval", options.check_interval),
                    ("retry_interval", options.retry_interval),
                    *common,
                ],
            )
        )
    for check in options.checks:
        argument = _nrpe_name(check) if options.via == "nrpe" else check
        parts.append(
            _define(
                "service",
                [
                    ("hostgroup_name", group),
                    ("service_description", check),
                    ("check_command", f"{group}-check!{argument}"),
                    ("max_check_attempts", 1),
                    ("check_interval", options.check_interval),
                    ("retry_interval", options.retry_interval),
                    *common,
                ],
            )
        )
    return "\n".join(parts)


def nrpe_commands(options: Options) -> str:
    """The ``command[...]`` lines each node's nrpe.cfg needs for ``--via nrpe``."""
    repo = f" --repo {_safe_value('--repo', options.repo)}" if options.repo else ""
    lines = ["# hpcos checks for NRPE (include from nrpe.cfg on every node)"]
    lines += [
        f"command[{_nrpe_name(c)}]={_node_command(options, c)}{repo} --timeout {options.check_timeout}"
        for c in options.checks
    ]
    return "\n".join(lines) + "\n"


def standalone(
    directory: str,
    objects_file: str,
    options: Options,
    interval_length: int = 60,
    user: str = "nagios",
    group: str = "nagios",
) -> dict[str, str]:
    """A private Nagios instance around ``objects_file``: nagios.cfg, resource.cfg and the check period
    and contact group the objects name (files by name, all paths under ``directory``)."""
    d = directory.rstrip("/")
    for what, value in (("directory", d), ("objects file", objects_file)):
        _safe_value(what, value)
    days = [
        (day, "00:00-24:00")
        for day in ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
    ]
    base = "\n".join(
        [
            _define(
                "timeperiod",
                [("timeperiod_name", options.check_period), ("alias", "always"), *days],
            ),
            _define(
                "command", [("command_name", "hpcos-notify-nobody"), ("command_line", "/bin/true")]
            ),
            _define(
                "contact",
                [
                    ("contact_name", "hpcos-nobody"),
                    ("alias", "notifications off"),
                    ("host_notifications_enabled", 0),
                    ("service_notifications_enabled", 0),
                    ("host_notification_period", options.check_period),
                    ("service_notification_period", options.check_period),
                    ("host_notification_options", "n"),
                    ("service_notification_options", "n"),
                    ("host_notification_commands", "hpcos-notify-nobody"),
                    ("service_notification_commands", "hpcos-notify-nobody"),
                ],
            ),
            _define(
                "contactgroup",
                [
                    ("contactgroup_name", options.contact_group),
                    ("alias", "monitoring"),
                    ("members", "hpcos-nobody"),
                ],
            ),
        ]
    )
    main = (
        "\n".join(
            [
                f"cfg_file={d}/base.cfg",
                f"cfg_file={objects_file}",
                f"resource_file={d}/resource.cfg",
                f"log_file={d}/var/nagios.log",
                f"status_file={d}/var/status.dat",
                f"object_cache_file={d}/var/objects.cache",
                f"precached_object_file={d}/var/objects.precache",
                f"lock_file={d}/var/nagios.pid",
                f"temp_file={d}/var/nagios.tmp",
                f"temp_path={d}/var",
                f"check_result_path={d}/var/spool",
                f"command_file={d}/var/rw/nagios.cmd",
                f"query_socket={d}/var/rw/nagios.qh",
                f"state_retention_file={d}/var/retention.dat",
                "retain_state_information=0",
                f"nagios_user={user}",
                f"nagios_group={group}",
                f"interval_length={interval_length}",
                "status_update_interval=1",
                "check_result_reaper_frequency=1",
                "max_service_check_spread=1",
                "max_host_check_spread=1",
                "service_inter_check_delay_method=n",
                "host_inter_check_delay_method=n",
                "enable_notifications=0",
                "illegal_macro_output_chars=`~$&|'\"<>",
                # Above the plugins' own --timeout: a hung node is answered by the plugin (UNKNOWN),
                # not killed by Nagios.
                f"service_check_timeout={options.check_timeout + 10}",
                f"host_check_timeout={options.check_timeout + 10}",
                "service_check_timeout_state=u",
            ]
        )
        + "\n"
    )
    return {"nagios.cfg": main, "base.cfg": base, "resource.cfg": f"$USER1$={PLUGINS_DIR}\n"}
