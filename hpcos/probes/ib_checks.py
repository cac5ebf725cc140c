"""InfiniBand checks: turn ``ibstat`` / ``ibv_devinfo`` / perftest runs into a verdict against the profile.

A missing HCA must fail loudly, in the tool's own words: ``ibv_devinfo`` exits 255 with "Failed to
get IB devices list: Function not implemented", while ``ibstat`` prints nothing and exits 0.  Empty
output therefore counts as "no HCA", never as "nothing wrong".
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from hpcos.cluster.launchers import CommandResult
from hpcos.cluster.profiles import Infiniband
from hpcos.probes.parsers import ParseError
from hpcos.probes.parsers.hca import Hca

# Separates perftest's text output from the JSON report the same command prints after it.
JSON_MARK = "@@hpcos-perftest-json@@"


class IbCheckFailed(AssertionError):
    """An IB tool failed or found nothing; the message quotes what it printed."""


def hcas_from(result: CommandResult, parse: Callable[[str], list[Hca]]) -> list[Hca]:
    """HCAs the tool reported, or IbCheckFailed carrying its own error text."""
    tool = result.command.split()[0] if result.command else "tool"
    where = f" on {result.node}" if result.node else ""
    if not result.ok:
        raise IbCheckFailed(
            f"{tool} failed{where} (InfiniBand expected by the profile):\n{result.describe()}"
        )
    try:
        hcas = parse(result.stdout)
    except ParseError as exc:
        raise IbCheckFailed(f"{tool}{where}: {exc}") from None
    if not hcas:
        raise IbCheckFailed(
            f"{tool} found no HCA{where}: it printed nothing and exited {result.exit_code} "
            f"(InfiniBand expected by the profile)\n{result.describe()}"
        )
    return hcas


def port_problems(
    hcas: list[Hca], expected: Infiniband, *, check_rate: bool = True, check_physical: bool = True
) -> list[str]:
    """Every way the HCAs differ from the profile, one line each (empty: all as expected).

    ``check_rate`` / ``check_physical`` are off for plain ``ibv_devinfo``, which prints neither.
    """
    problems = []
    by_name = {h.name: h for h in hcas}
    wanted = expected.devices or [
        h.name for h in hcas if any(p.link_layer == expected.link_layer for p in h.ports)
    ]
    if not wanted:
        found = ", ".join(
            f"{h.name} ({'/'.join(str(p.link_layer) for p in h.ports)})" for h in hcas
        )
        return [f"no HCA with a {expected.link_layer} port; found {found}"]
    for name in wanted:
        hca = by_name.get(name)
        if hca is None:
            problems.append(f"{name}: missing; HCAs present: {', '.join(by_name) or 'none'}")
            continue
        if expected.firmware and hca.firmware != expected.firmware:
            problems.append(f"{name}: firmware {hca.firmware}, expected {expected.firmware}")
        if not hca.ports:
            problems.append(f"{name}: no ports reported")
        for port in hca.ports:
            where = f"{name} port {port.number}"
            checks = [
                ("state", port.state, expected.port_state),
                ("link layer", port.link_layer, expected.link_layer),
            ]
            if check_physical:
                checks.append(("physical state", port.physical_state, expected.physical_state))
            for what, found, want in checks:
                if found != want:
                    problems.append(f"{where}: {what} {found}, expected {want}")
            if check_rate and expected.rate is not None and port.rate != expected.rate:
                problems.append(
                    f"{where}: rate {port.rate:g} Gb/s, expected {expected.rate:g} Gb/s"
                    if port.rate is not None
                    else f"{where}: no rate reported"
                )
    return problems


def perftest_command(
    tool: str, *, device: str | None, server: str | None, extra: list[str], json: bool = True
) -> str:
    """Shell command running one perftest side, its JSON report printed after ``JSON_MARK``."""
    argv = [tool, *(["-d", device] if device else []), *extra]
    if server:
        argv.append(server)
    line = shlex.join(argv)  # device, peer and arguments come from the profile: one shell word each
    if not json:
        return line
    return (
        f'f=$(mktemp) && {line} --out_json --out_json_file="$f"; rc=$?; '
        f'echo {JSON_MARK}; cat "$f"; rm -f "$f"; exit $rc'
    )


def split_perftest_output(stdout: str) -> tuple[str, str]:
    """(text table, JSON report) of a ``perftest_command`` run; the JSON part may be empty."""
    text, _, json_part = stdout.partition(JSON_MARK)
    return text, json_part.strip()
