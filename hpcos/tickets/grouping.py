"""Group a run's failing (test, node) results by root cause; nodes as ClusterShell node sets.

Each failure gets its fingerprint (``fingerprint.fingerprint``).  One more rule needs the whole run,
and it goes by evidence, not by test id: a failed MPI job whose output names no cause of its own
("exit code 1", only launcher noise) joins a specific cause that the same run shows for the same MPI
stack, class and overlapping nodes, in whichever test (one carrying the library's launcher noise also
joins that cause shown by its own test on other nodes).  Open MPI 4.1 loses the help text that names
the cause in about one launch of three and prints only its ``show_help.c`` relay errors; an MPI job
test records one result per run, so the cause is shown by *another* test of the night.  Among
several such causes, the one of the library whose noise the failure carries wins (an Open MPI relay
error belongs to an Open MPI cause, not to a Slurm one), then the commonest.  The group keeps why
(``FailureGroup.joined``), and the ticket says it.  Noise with no cause anywhere in the run makes
one group per stack and class (``lost_explanation`` names its library).  An assertion joins nothing:
it is the test's own judgement.  Across nights, ``lifecycle.plan`` files such a group under the open
ticket of a specific cause of the same stack on overlapping nodes (``FailureGroup.continues``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from ClusterShell.NodeSet import NodeSet

from hpcos.results.model import RunResults, TestResult
from hpcos.tickets.fingerprint import (
    CAUSE,
    TIMEOUT_CLASS,
    Fingerprint,
    alias_v1,
    fingerprint_and_reason,
)
from hpcos.tickets.reasons import Reason, choose


def short_test(test_id: str) -> str:
    return test_id.split("::", 1)[-1]


@dataclass
class FailureGroup:
    """Every failing result that shares one fingerprint: one ticket."""

    fingerprint: Fingerprint
    results: list[TestResult] = field(default_factory=list)
    aliases: set[str] = field(default_factory=set)  # version-1 keys of the results
    lines: list[str] = field(
        default_factory=list
    )  # each result's reason line, when the grouping knew it
    joined: list[str] = field(default_factory=list)  # why cause-less failures were grouped here
    borrowed: set[str] = field(
        default_factory=set
    )  # reason lines only of results that joined the cause
    # The key of an open ticket of an earlier night this group is filed under (a night on which the
    # MPI library lost every explanation continues the ticket of the cause it showed before).
    continues: str = ""
    _by_message: list | None = field(default=None, repr=False, compare=False)  # computed once

    @property
    def key(self) -> str:
        return self.continues or self.fingerprint.key

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
        """The cause as printed by the commonest variant (the normalised signature is for grouping);
        a line only the joined results printed ("An error occurred in MPI_Init") is not the cause."""
        if not self.results:
            return self.fingerprint.signature
        rows = self.nodes_by_message()
        return next((line for line, _, _ in rows if line not in self.borrowed), rows[0][0])

    def nodes_by_message(self) -> list[tuple[str, NodeSet, int]]:
        """(reason line as printed, nodes, count of results), most frequent first.

        The fingerprint hides what differs between nodes; a reader still wants to see the raw lines,
        grouped the way ClusterShell's clubak groups identical output.
        """
        if self._by_message is None:
            by_line: dict[str, list[TestResult]] = defaultdict(list)
            lines = (
                self.lines
                if len(self.lines) == len(self.results)
                else [choose(result.message).line for result in self.results]
            )
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
        return [
            (test, stack, _nodes(results), len(results))
            for (test, stack), results in sorted(cells.items())
        ]


def _nodes(results) -> NodeSet:
    # One parse of the joined names: NodeSet.update per result costs a parse each (seconds per 1,000).
    names = sorted({result.node for result in results if result.node})
    return NodeSet(",".join(names)) if names else NodeSet()


def run_nodes(run: RunResults) -> frozenset[str]:
    """Every node name the run tested (node sets expanded)."""
    return frozenset(_nodes(run.results))


# The families of a reason that only says an MPI job failed ("exit code 1", "An error occurred in
# MPI_Init", srun's "Exited with exit code"): such a failure can belong to a cause its run shows
# elsewhere.  An assertion is the test's own judgement and joins nothing.
_JOINABLE = frozenset({"generic", "openmpi", "mpich", "slurm", "unknown", "noise", "none"})


# Libraries whose launcher noise means "the explanation was lost" (Open MPI's show_help relay), as
# opposed to a scheduler's teardown lines after a task's own exit code.
_LOSES_ITS_EXPLANATION = frozenset({"openmpi", "mpich"})


LOST = "MPI jobs fail, the MPI library's explanation lost"

# Open MPI 4.1's help relay (show_help.c) can crash mpirun itself while it relays a rank's explanation:
# "ORTE_ERROR_LOG: ... show_help.c", then mpirun's "Signal: Segmentation fault" with a backtrace through
# pmix_server_log_fn.  That crash is the explanation lost, not a fault of the test's own.
_HELP_RELAY = re.compile(r"ORTE_ERROR_LOG: .* in file \S*show_help\.c")
_CRASH = re.compile(r"Segmentation fault|Bus error|\bsegfault at\b")


def _relay_crash(result: TestResult, reason: Reason | None) -> bool:
    """Whether ``reason`` is mpirun's help relay crashing (see _HELP_RELAY) rather than the job's cause."""
    return (
        reason is not None
        and reason.family == "kernel"
        and bool(_CRASH.search(reason.line))
        and bool(_HELP_RELAY.search(result.message))
    )


def lost_explanation(fp: Fingerprint) -> str:
    """The library whose explanation a run lost in every job of ``fp`` ("" for any other group)."""
    head, sep, tail = fp.signature.partition(": ")
    return head if fp.scope == CAUSE and sep and tail == LOST else ""


def cause_of_one_stack(fp: Fingerprint) -> bool:
    """A specific cause in one MPI library's own words (what a lost explanation may have been)."""
    return (
        fp.scope == CAUSE
        and bool(fp.stack)
        and not lost_explanation(fp)
        and fp.failure_class != TIMEOUT_CLASS
    )


@dataclass
class _Cause:
    fingerprint: Fingerprint
    family: str
    line: str
    nodes: set[str] = field(default_factory=set)
    tests: set[str] = field(default_factory=set)
    results: int = 0


def assign(
    run: RunResults, names: frozenset[str] | None = None
) -> list[tuple[TestResult, Fingerprint, str, str]]:
    """Each failure of ``run`` with the fingerprint it is filed under (the run-wide rule applied), its
    reason line as printed, and why it joined that cause ("" when its own output named it)."""
    names = run_nodes(run) if names is None else names
    assigned = [
        (r, *fingerprint_and_reason(r.test_id, r.failure_class, r.message, r.mpi, names, r.node))
        for r in run.failures()
    ]
    expanded: dict[str, frozenset[str]] = {"": frozenset()}

    def nodes_of(result: TestResult) -> frozenset[str]:
        node = result.node or ""
        if node not in expanded:
            expanded[node] = frozenset(NodeSet(node))
        return expanded[node]

    # The specific causes the run shows, per (MPI stack, class): where cause-less failures may go.
    causes: dict[tuple[str, str], dict[str, _Cause]] = defaultdict(dict)
    for result, fp, reason in assigned:
        if (
            result.mpi
            and not fp.by_test
            and reason is not None
            and reason.specific
            and not _relay_crash(result, reason)
        ):
            cause = causes[(result.mpi, fp.failure_class)].setdefault(
                fp.key, _Cause(fp, reason.family, reason.line)
            )
            cause.nodes |= nodes_of(result)
            cause.tests.add(result.test_id)
            cause.results += 1
    out = []
    for result, fp, reason in assigned:
        line = reason.line if reason is not None else result.message.strip().split("\n", 1)[0]
        why = ""
        relay_crash = _relay_crash(result, reason)
        if (
            reason is not None
            and result.mpi
            and ((fp.by_test and reason.family in _JOINABLE) or relay_crash)
        ):
            mine = nodes_of(result)
            # Evidence: the cause on overlapping nodes (another test's job), or its own test on other nodes.
            found = [
                c
                for c in causes.get((result.mpi, fp.failure_class), {}).values()
                if c.nodes & mine or (reason.noise and result.test_id in c.tests)
            ]
            if found:
                # The cause of the library whose launcher noise the failure carries first, then the commonest.
                found.sort(
                    key=lambda c: (
                        c.family != reason.noise,
                        not c.nodes & mine,
                        -c.results,
                        c.fingerprint.key,
                    )
                )
                chosen = found[0]
                overlap = NodeSet.fromlist(sorted(chosen.nodes & mine or chosen.nodes))
                said = line.split(": ", 1)[0] if line.startswith("exit code") else line[:80]
                noise = f" and {reason.noise}'s launcher noise" if reason.noise else ""
                if relay_crash:
                    noise = " from mpirun's help relay, which crashed relaying it"
                why = (
                    f"{short_test(result.test_id)} on {result.node} printed no cause of its own (only "
                    f"{said or 'no output'!r}{noise}); the same run shows this cause for {result.mpi} on {overlap}"
                )
                fp = chosen.fingerprint
            elif reason.noise in _LOSES_ITS_EXPLANATION:
                # Noise only, and no test of the run says why: one group per stack and class, not one
                # per test (Open MPI lost every explanation that night).
                fp = Fingerprint(CAUSE, result.mpi, fp.failure_class, f"{reason.noise}: {LOST}")
                why = (
                    f"{short_test(result.test_id)} on {result.node} printed only {reason.noise}'s launcher "
                    f"noise, and no test of the run says why"
                )
        out.append((result, fp, line, why))
    return out


def group_failures(run: RunResults) -> list[FailureGroup]:
    """One group per fingerprint, in a stable order (first test, then key)."""
    names = run_nodes(run)
    groups: dict[str, FailureGroup] = {}
    own: dict[str, set[str]] = defaultdict(
        set
    )  # per key, the lines of results that named the cause
    for result, fp, line, why in assign(run, names):
        group = groups.setdefault(fp.key, FailureGroup(fp))
        group.results.append(result)
        group.lines.append(line)
        if why and why not in group.joined:
            group.joined.append(why)
        (group.borrowed if why else own[fp.key]).add(line)
        group.aliases.add(alias_v1(result.test_id, result.failure_class, result.message, names))
    for key, lines in own.items():
        groups[key].borrowed -= lines
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
