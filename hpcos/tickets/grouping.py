"""Group a run's failing (test, node) results by root cause; nodes as ClusterShell node sets.

Each failure gets its fingerprint (``fingerprint.fingerprint``).  One more rule needs the whole run:
a failure whose output names no cause of its own but carries an MPI library's launcher noise joins
the commonest cause *of that library* that its own test and stack show on other nodes in the same
run.  Open MPI 4.1 loses the help text that names the cause in about one launch of four and prints
only its ``show_help.c`` relay errors; those launches belong to the ticket of the Open MPI cause
their siblings print, not to an InfiniBand or Slurm cause of the same test.  A bare "exit code 1"
joins nothing: it stays with its test.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from ClusterShell.NodeSet import NodeSet

from hpcos.results.model import RunResults, TestResult
from hpcos.tickets.fingerprint import Fingerprint, alias_v1, fingerprint_and_reason
from hpcos.tickets.reasons import choose


def short_test(test_id: str) -> str:
    return test_id.split("::", 1)[-1]


@dataclass
class FailureGroup:
    """Every failing result that shares one fingerprint: one ticket."""

    fingerprint: Fingerprint
    results: list[TestResult] = field(default_factory=list)
    aliases: set[str] = field(default_factory=set)  # version-1 keys of the results
    lines: list[str] = field(default_factory=list)  # each result's reason line, when the grouping knew it
    _by_message: list | None = field(default=None, repr=False, compare=False)  # computed once

    @property
    def key(self) -> str:
        return self.fingerprint.key

    @property
    def tests(self) -> list[str]:
        return sorted({r.test_id for r in self.results})

    @property
    def test_id(self) -> str:
        """What the state remembers for the group: its test, or its first test for a shared cause."""
        return self.fingerprint.scope if self.fingerprint.by_test else self.tests[0]

    @property
    def stacks(self) -> list[str]:
        return sorted({r.mpi for r in self.results if r.mpi})

    @property
    def nodes(self) -> NodeSet:
        return _nodes(self.results)

    def reason(self) -> str:
        """The cause as printed by the commonest variant (the normalised signature is for grouping)."""
        return self.nodes_by_message()[0][0] if self.results else self.fingerprint.signature

    def nodes_by_message(self) -> list[tuple[str, NodeSet, int]]:
        """(reason line as printed, nodes, count of results), most frequent first.

        The fingerprint hides what differs between nodes; a reader still wants to see the raw lines,
        grouped the way ClusterShell's clubak groups identical output.
        """
        if self._by_message is None:
            by_line: dict[str, list[TestResult]] = defaultdict(list)
            lines = self.lines if len(self.lines) == len(self.results) else \
                [choose(result.message).line for result in self.results]
            for result, line in zip(self.results, lines, strict=True):
                by_line[line].append(result)
            rows = [(line, _nodes(results), len(results)) for line, results in by_line.items()]
            rows.sort(key=lambda row: (-row[2], row[0]))
            self._by_message = rows
        return self._by_message

    def matrix(self) -> list[tuple[str, str, NodeSet, int]]:
        """(test, stack, nodes, results): the tests x stacks x nodes a ticket lists."""
        cells: dict[tuple[str, str], list[TestResult]] = defaultdict(list)
        for result in self.results:
            cells[(result.test_id, result.mpi or "")].append(result)
        return [(test, stack, _nodes(results), len(results)) for (test, stack), results in sorted(cells.items())]


def _nodes(results) -> NodeSet:
    # One parse of the joined names: NodeSet.update per result costs a parse each (seconds per 1,000).
    names = sorted({result.node for result in results if result.node})
    return NodeSet(",".join(names)) if names else NodeSet()


def run_nodes(run: RunResults) -> frozenset[str]:
    """Every node name the run tested (node sets expanded)."""
    return frozenset(_nodes(run.results))


def assign(run: RunResults, names: frozenset[str] | None = None) -> list[tuple[TestResult, Fingerprint, str]]:
    """Each failure of ``run`` with the fingerprint it is filed under (the run-wide rule applied) and
    its reason line as printed."""
    names = run_nodes(run) if names is None else names
    assigned = [(r, *fingerprint_and_reason(r.test_id, r.failure_class, r.message, r.mpi, names))
                for r in run.failures()]
    # The commonest shared cause per (test, stack, class, library): where its cause-less siblings go.
    causes: dict[tuple[str, str, str, str], Counter] = defaultdict(Counter)
    for result, fp, reason in assigned:
        if not fp.by_test and reason is not None:
            causes[(result.test_id, result.mpi or "", fp.failure_class, reason.family)][fp] += 1
    out = []
    for result, fp, reason in assigned:
        if fp.by_test and reason is not None and reason.noise:
            sibling = causes.get((result.test_id, result.mpi or "", fp.failure_class, reason.noise))
            if sibling:
                fp = sibling.most_common(1)[0][0]
        out.append((result, fp, reason.line if reason is not None else result.message.strip().split("\n", 1)[0]))
    return out


def group_failures(run: RunResults) -> list[FailureGroup]:
    """One group per fingerprint, in a stable order (first test, then key)."""
    names = run_nodes(run)
    groups: dict[str, FailureGroup] = {}
    for result, fp, line in assign(run, names):
        group = groups.setdefault(fp.key, FailureGroup(fp))
        group.results.append(result)
        group.lines.append(line)
        group.aliases.add(alias_v1(result.test_id, result.failure_class, result.message, names))
    return sorted(groups.values(), key=lambda g: (g.tests[0], g.key))


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
