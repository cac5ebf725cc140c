"""The harness's node checks, one node at a time, as findings a Nagios plugin reports.

The same code the nightly integration tests use decides (``hpcos.probes.ib_checks``, ``hpcos.repo.os_update``,
the MPI hello probe), reached through the profile's launcher, so production's continuous monitoring
checks exactly what the test cluster's nightly run checked.  A check never raises for what it finds:
a node that is wrong is CRITICAL with the reason; a node that cannot be asked is UNKNOWN.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ClusterShell.NodeSet import NodeSet

from hpcos.cluster.launchers import CommandResult, launcher_for
from hpcos.cluster.profiles import Profile
from hpcos.core import runner
from hpcos.core.errors import UserError
from hpcos.core.text import one_line
from hpcos.probes import ib_checks
from hpcos.probes.parsers import ParseError, ibstat, probe
from hpcos.probes.probe_build import ProbeBuildError, build_probe
from hpcos.repo import os_update
from hpcos.site import Site

OK, WARNING, CRITICAL, UNKNOWN = "ok", "warning", "critical", "unknown"


@dataclass
class Perf:
    """One performance data item: ``label=value[uom];warn;crit;min;max``."""

    label: str
    value: float
    uom: str = ""
    warning: str | None = None  # Nagios range, e.g. "1:" (below 1 is a problem)
    critical: str | None = None
    min: float | None = None
    max: float | None = None


@dataclass
class Finding:
    state: str  # ok, warning, critical, unknown
    summary: str  # one line: what was found, on which node
    perfdata: list[Perf] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    profile: Profile
    node: str
    repo: str | None = (
        None  # the environment's served repositories (kernel, packages); default: the store
    )
    mpi: str | None = None  # MPI stack for mpi-hello; default: the profile's first
    site: Site | None = (
        None  # the store the environment's snapshot is read from when no repo is given
    )
    deadline: float | None = None  # time.monotonic() by which the plugin answers (its --timeout)

    def seconds(self, limit: float) -> float:
        """A node command's timeout: the profile's ``limit``, cut to what is left of the plugin's budget
        less ``ANSWER_MARGIN``, so the remote side (``timeout -k``) ends before the plugin must answer."""
        if self.deadline is None:
            return limit
        return max(1.0, min(limit, self.deadline - time.monotonic() - ANSWER_MARGIN))


# What a plugin keeps of its budget for itself: the remote kill's grace (ssh launcher: 2 s) and the answer.
ANSWER_MARGIN = 3.0


def _one_line(text: str) -> str:
    """Node output in a status line: one line, no '|' (it starts the performance data), nothing that
    is not printable (a terminal escape in a node's output would reach every Nagios web page and log)."""
    return one_line(text.replace("|", "/"), 400)


def _asked(result: CommandResult) -> Finding | None:
    """UNKNOWN when the node could not be asked at all (unreachable, timed out)."""
    if result.unreachable or result.timed_out:
        what = "unreachable" if result.unreachable else f"no answer within {result.duration:.0f} s"
        return Finding(
            UNKNOWN,
            f"{result.node}: {what}: {_one_line(result.stderr or result.stdout)}",
            [Perf("time", round(result.duration, 3), "s", min=0)],
        )
    return None


def _run(target: Target, command) -> CommandResult:
    launcher = launcher_for(target.profile)
    return launcher.run(
        command, NodeSet(target.node), timeout=target.seconds(target.profile.timeouts.command)
    )[target.node]


class RepoQueryFailed(UserError):
    pass


# dnf repoquery prints one line per package, as ``rpm -q --qf`` does on the node.
QUERY_FORMAT = "%{name} %{version}-%{release}.%{arch}"


def newest_served(repo_url: str, packages: list[str], timeout: float) -> dict[str, set[str]]:
    """Newest version of each package in a served repository (a monitoring host may have no store), read
    with real dnf: private cache, no system repositories, an unreachable repository is an error."""
    with tempfile.TemporaryDirectory(prefix="hpcos-dnf-") as cachedir:
        done = runner.run(
            [
                "dnf",
                "-q",
                "--setopt=reposdir=/dev/null",
                "--setopt=skip_if_unavailable=False",
                f"--setopt=cachedir={cachedir}",
                "--releasever=9",
                f"--repofrompath=env,{repo_url}",
                "--repo",
                "env",
                "repoquery",
                "--latest-limit",
                "1",
                "--qf",
                QUERY_FORMAT,
                *packages,
            ],
            timeout=timeout,
        )
    if done.timed_out or done.exit_code != 0:
        why = "timed out" if done.timed_out else f"exit {done.exit_code}"
        raise RepoQueryFailed(
            f"dnf repoquery on {repo_url} {why}: {done.stderr.strip() or done.stdout.strip()}"
        )
    return os_update.parse_versions(done.stdout)


def _expected(target: Target, names: list[str]) -> tuple[str, dict[str, set[str]]]:
    """(where from, per package the versions a node must have): the served repositories given with
    --repo, else the snapshot the profile's os_update.environment points at in the store."""
    if target.repo:
        return target.repo, newest_served(
            target.repo, names, target.seconds(target.profile.timeouts.command)
        )
    if target.site is None:
        raise UserError(
            "no store to read the environment's snapshot from: pass --store or --repo URL"
        )
    snapshot_id, versions = os_update.snapshot_versions(target.site, target.profile, names)
    return f"snapshot {snapshot_id}", versions


def reachable(target: Target) -> Finding:
    """The host check: the profile's launcher reaches the node and runs a command there."""
    result = _run(target, ["true"])
    perf = [Perf("time", round(result.duration, 3), "s", min=0)]
    if result.ok:
        return Finding(
            OK, f"{target.node} answers through the {target.profile.launcher} launcher", perf
        )
    return Finding(CRITICAL, f"{target.node}: {_one_line(result.describe())}", perf)


def kernel(target: Target) -> Finding:
    """The running kernel is the newest kernel package of the environment's repositories."""
    config = target.profile.os_update
    try:
        source, versions = _expected(target, [config.kernel_package])
    except UserError as exc:
        return Finding(UNKNOWN, _one_line(str(exc)))
    expected = versions.get(config.kernel_package)
    if not expected:
        return Finding(UNKNOWN, f"no {config.kernel_package} package in {source}")
    result = _run(target, os_update.running_kernel_command(target.profile, target.node))
    if (unknown := _asked(result)) is not None:
        return unknown
    if not result.ok:
        return Finding(CRITICAL, f"{target.node}: {_one_line(result.describe())}")
    verdict = os_update.KernelVerdict(result.stdout.strip(), expected)
    perf = [
        Perf("kernel_current", int(verdict.ok), critical="1:", min=0, max=1),
        Perf("time", round(result.duration, 3), "s", min=0),
    ]
    if verdict.ok:
        return Finding(OK, f"{target.node} runs kernel {verdict.running}, the environment's", perf)
    return Finding(CRITICAL, _one_line(verdict.message(target.node)), perf)


def packages(target: Target) -> Finding:
    """The overlay packages are installed at the environment's versions."""
    names = target.profile.os_update.packages
    try:
        _source, expected = _expected(target, names)
    except UserError as exc:
        return Finding(UNKNOWN, _one_line(str(exc)))
    result = _run(
        target, os_update.rpm_query_command(names, os_update.node_root(target.profile, target.node))
    )
    if (unknown := _asked(result)) is not None:
        return unknown
    if result.exit_code and "is not installed" not in result.stdout:
        return Finding(CRITICAL, f"{target.node}: {_one_line(result.describe())}")
    problems = os_update.package_problems(target.node, result.stdout, expected, names)
    perf = [
        Perf("outdated", len(problems), critical="0", min=0, max=len(names)),
        Perf("time", round(result.duration, 3), "s", min=0),
    ]
    if problems:
        return Finding(CRITICAL, _one_line("; ".join(problems)), perf)
    return Finding(
        OK, f"{target.node}: {len(names)} overlay packages at the environment's versions", perf
    )


def ib_ports(target: Target) -> Finding:
    """InfiniBand ports: state, physical state, link layer and rate as the profile expects."""
    expected = target.profile.infiniband
    if not expected.expected:
        return Finding(
            UNKNOWN, f"profile {target.profile.name!r} expects no InfiniBand (infiniband.expected)"
        )
    result = _run(target, ["ibstat"])
    if (unknown := _asked(result)) is not None:
        return unknown
    try:
        hcas = ib_checks.hcas_from(result, ibstat.parse)
    except ib_checks.IbCheckFailed as exc:
        return Finding(CRITICAL, _one_line(str(exc)))
    # Performance data for the HCAs the profile names (all when it names none), judged as the check judges.
    wanted = set(expected.devices or [h.name for h in hcas])
    ports = [(h, p) for h in hcas if h.name in wanted for p in h.ports]
    active = sum(p.state == expected.port_state for _, p in ports)
    perf = [Perf("active_ports", active, critical=f"{len(ports)}:", min=0, max=len(ports))]
    for hca, port in ports:
        if port.rate is not None:
            floor = f"{expected.rate:g}:" if expected.rate is not None else None
            perf.append(Perf(f"{hca.name}_{port.number}_rate", port.rate, critical=floor, min=0))
    problems = ib_checks.port_problems(hcas, expected)
    if problems:
        return Finding(CRITICAL, _one_line(f"{target.node}: " + "; ".join(problems)), perf)
    return Finding(
        OK,
        f"{target.node}: {len(ports)} port(s) {expected.port_state}"
        + (f" at {expected.rate:g} Gb/s" if expected.rate else ""),
        perf,
    )


def mpi_hello(target: Target) -> Finding:
    """A two-rank MPI hello on the node with the profile's MPI stack: both ranks start and report."""
    stacks = target.profile.stacks(target.mpi)
    if not stacks:
        return Finding(UNKNOWN, f"profile {target.profile.name!r} has no MPI stack")
    stack = stacks[0]
    try:
        binary = build_probe("hello", stack.mpicc, module=stack.module, env=stack.env)
    except ProbeBuildError as exc:
        return Finding(UNKNOWN, _one_line(str(exc)))
    np = 2
    result = launcher_for(target.profile).mpi(
        str(binary),
        [],
        np=np,
        stack=stack,
        nodes=NodeSet(target.node),
        timeout=target.seconds(target.profile.timeouts.mpi),
    )
    if (unknown := _asked(result)) is not None:
        return unknown
    try:
        out = probe.parse(result.stdout, "hello")
        problem = out.rank_problem(np)
    except ParseError as exc:
        out, problem = None, str(exc)
    ranks = out.ranks if out else 0
    perf = [
        Perf("ranks", ranks, critical=f"{np}:", min=0),
        Perf("time", round(result.duration, 3), "s", min=0),
    ]
    if not result.ok or problem:
        return Finding(
            CRITICAL, _one_line(f"{target.node} {stack.name}: {problem or result.describe()}"), perf
        )
    return Finding(OK, f"{target.node}: {stack.name} hello with {ranks} ranks", perf)


# The checks `hpcos check` runs and `hpcos monitoring config` makes services of; `reachable` is the host check.
CHECKS: dict[str, Callable[[Target], Finding]] = {
    "ib-ports": ib_ports,
    "kernel": kernel,
    "packages": packages,
    "mpi-hello": mpi_hello,
    "reachable": reachable,
}
SERVICE_CHECKS = ("ib-ports", "kernel", "packages", "mpi-hello")
