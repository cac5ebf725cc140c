"""Nodes of the test cluster taken out of service, with who, when and why.

``hpcos repo out-of-service NODES --reason TEXT`` appends one JSON line to
``StoreLayout.node_service``; ``--back`` appends the return.  The production gate requires every node
of the site's test profile except those out of service when the run started, and names them (with
the reason) in its refusal or acceptance: a node with a hardware fault is not a hole in the proof as
long as someone said so, and why, before the run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from ClusterShell.NodeSet import NodeSet, NodeSetParseError

from hpcos.core.budgets import node_set_problem
from hpcos.core.errors import UserError
from hpcos.core.store_files import BadStoreFile, dataclass_from, read_bytes_limited
from hpcos.core.store_layout import StoreLayout
from hpcos.repo.deployments import parse_time
from hpcos.repo.environments import who

log = logging.getLogger("hpcos.repo")


@dataclass(frozen=True)
class ServiceChange:
    time: str
    user: str
    cluster: str  # the profile's name
    nodes: str  # a ClusterShell node set
    out: bool  # True: taken out of service; False: back in service
    reason: str

    @property
    def when(self) -> str:
        """The time as people read it, to the second."""
        return parse_time(self.time).isoformat(timespec="seconds")


def mark(
    layout: StoreLayout, cluster: str, nodes: str, reason: str, out: bool = True
) -> ServiceChange:
    try:
        NodeSet(nodes)
    except NodeSetParseError as exc:
        raise UserError(f"node set {nodes!r}: {exc}") from None
    reason = " ".join(reason.split())
    if out and not reason:
        raise UserError(
            "out-of-service needs --reason TEXT (the fault, the ticket): the gate shows it"
        )
    # To the microsecond, as the harness records a run's start: the gate orders the two, and a node
    # marked in the second a run started must not count as out of service before it.
    change = ServiceChange(
        datetime.now(UTC).isoformat(timespec="microseconds"),
        who(),
        cluster,
        str(NodeSet(nodes)),
        out,
        reason,
    )
    layout.node_service.parent.mkdir(parents=True, exist_ok=True)
    with layout.node_service.open("a", encoding="utf-8") as log:  # one short line: appended whole
        log.write(json.dumps(asdict(change), sort_keys=True) + "\n")
    return change


def changes(layout: StoreLayout) -> list[ServiceChange]:
    try:
        raw = read_bytes_limited(layout.node_service, what="node service log")
    except FileNotFoundError:
        return []
    found = []
    for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
        # Untrusted like every store file: a line of the wrong shape, a node set ClusterShell refuses
        # or one over the node budget ended the gate, `repo out-of-service` and the outage plan in a
        # traceback (or ran for minutes).  Skipping it leaves the node required: the safe side.
        try:
            change = dataclass_from(
                ServiceChange, json.loads(line), f"{layout.node_service}:{number}"
            )
            if node_set_problem(change.nodes) is not None:
                raise BadStoreFile("over the node budget")
            NodeSet(change.nodes)
            parse_time(change.time)
        except (ValueError, RecursionError, BadStoreFile, NodeSetParseError):
            if line.strip():
                log.warning(
                    "%s:%d: not a node service change; ignored", layout.node_service, number
                )
            continue
        found.append(change)
    return found


def out_at(
    layout: StoreLayout, cluster: str, moment: datetime | None = None
) -> dict[str, ServiceChange]:
    """node -> the change that took it out of service, for nodes of ``cluster`` out at ``moment``
    (now when None)."""
    state: dict[str, ServiceChange] = {}
    for change in changes(layout):
        if change.cluster != cluster or (moment is not None and parse_time(change.time) > moment):
            continue
        for node in NodeSet(change.nodes):
            if change.out:
                state[node] = change
            else:
                state.pop(node, None)
    return state


def describe(out: dict[str, ServiceChange]) -> str:
    """``n4 (fan failure, by alice on 2026-12-01T10:00:00+00:00)``, nodes with the same change together."""
    groups: dict[ServiceChange, NodeSet] = {}
    for node, change in out.items():
        groups.setdefault(change, NodeSet()).add(node)
    return "; ".join(
        f"{nodes} ({change.reason}, by {change.user} on {change.when})"
        for change, nodes in sorted(groups.items(), key=lambda g: g[0].time)
    )
