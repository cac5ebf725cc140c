"""Group a run's failing (test, node) results by fingerprint; nodes as ClusterShell node sets."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ClusterShell.NodeSet import NodeSet

from hpcos.results.model import RunResults, TestResult
from hpcos.tickets.fingerprint import Fingerprint, fingerprint, first_meaningful_line


@dataclass
class FailureGroup:
    """Every failing result that shares one fingerprint: one ticket."""

    fingerprint: Fingerprint
    results: list[TestResult] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.fingerprint.key

    @property
    def test_id(self) -> str:
        return self.fingerprint.test_id

    @property
    def nodes(self) -> NodeSet:
        nodes = NodeSet()
        for result in self.results:
            if result.node:
                nodes.update(result.node)
        return nodes

    def nodes_by_message(self) -> list[tuple[str, NodeSet, int]]:
        """(first error line, nodes, count of results), most frequent first.

        The fingerprint hides what differs between nodes; a reader still wants to see the raw lines,
        grouped the way ClusterShell's clubak groups identical output.
        """
        by_line: dict[str, list[TestResult]] = defaultdict(list)
        for result in self.results:
            by_line[first_meaningful_line(result.message)].append(result)
        rows = []
        for line, results in by_line.items():
            nodes = NodeSet()
            for result in results:
                if result.node:
                    nodes.update(result.node)
            rows.append((line, nodes, len(results)))
        rows.sort(key=lambda row: (-row[2], row[0]))
        return rows


def run_nodes(run: RunResults) -> frozenset[str]:
    """Every node name the run tested (node sets expanded)."""
    nodes = NodeSet()
    for result in run.results:
        if result.node:
            nodes.update(result.node)
    return frozenset(nodes)


def group_failures(run: RunResults) -> list[FailureGroup]:
    """One group per fingerprint, in a stable order (test id, then key)."""
    names = run_nodes(run)
    groups: dict[str, FailureGroup] = {}
    for result in run.failures():
        fp = fingerprint(result.test_id, result.failure_class, result.message, names)
        groups.setdefault(fp.key, FailureGroup(fp)).results.append(result)
    return sorted(groups.values(), key=lambda g: (g.test_id, g.key))


def passing_tests(run: RunResults) -> set[str]:
    """Tests that ran and passed on every node they ran on in this run."""
    ran: set[str] = set()
    failed: set[str] = set()
    for result in run.results:
        if result.outcome == "skipped":
            continue
        ran.add(result.test_id)
        if result.failed:
            failed.add(result.test_id)
    return ran - failed
