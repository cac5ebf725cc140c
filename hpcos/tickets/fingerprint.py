"""Fingerprints: what makes two failures "the same problem".

Version 2 (current) fingerprints the *root cause*: the most informative line of the failure
(``hpcos.tickets.reasons.choose``), normalised, with a scope:

* a specific reason (ranks cannot reach each other, no IB device, a Slurm time limit) is one problem
  across tests, MPI stacks and nodes: scope ``cause``;
* a generic reason ("exit code 1", a bare ``assert``) says nothing shared: scope is the test id, and
  the MPI stack is part of the identity, so Open MPI and MPICH failing one test stay apart;
* performance regressions of one MPI stack group by stack and class, whichever tests measured them.

Version 1 was (test id, failure class, first error line).  Every version stays in ``ALGORITHMS``; the
keys the earlier versions give (``aliases``) find the tickets filed under them, so a rule change
orphans no ticket (``lifecycle.apply`` finds them and carries them over).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from hpcos.tickets.reasons import Reason, choose

ALGORITHM_VERSION = 2

# Order matters: specific shapes first (timestamps contain numbers, paths contain node names).
_RULES: list[tuple[re.Pattern[str], str]] = [
    # ISO 8601 / syslog / `date` timestamps.
    (
        re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"),
        "<time>",
    ),
    (
        re.compile(
            r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)?\s*(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
            r"\s+\d{1,2}\s+\d{2}:\d{2}:\d{2}(?:\s+\w{3,4})?(?:\s+\d{4})?"
        ),
        "<time>",
    ),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}(?:\.\d+)?\b"), "<time>"),
    # Temporary paths: pytest tmp dirs, mktemp names, Open MPI session dirs.
    (re.compile(r"(?:/var)?/tmp/[^\s:'\",;)]*"), "<tmp>"),
    (re.compile(r"/dev/shm/[^\s:'\",;)]*"), "<tmp>"),
    # Hex addresses and hashes.
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b[0-9a-f]{12,}\b"), "<hex>"),
    # Slurm: job and step ids.
    (
        re.compile(r"\b(?:job|jobid|job_id|JobId|StepId|step)[ =:]*\d+(?:\.\d+)?", re.IGNORECASE),
        "job <job>",
    ),
    # Node lists in ClusterShell/Slurm notation, then single node names (letters followed by digits).
    (re.compile(r"\b[A-Za-z][A-Za-z-]*\[[\d,\-]+\][\w.-]*"), "<nodes>"),
    (re.compile(r"\b[A-Za-z][A-Za-z_-]*\d+(?:-[A-Za-z0-9]+)*(?:\.[A-Za-z][\w-]*)+\b"), "<host>"),
    (re.compile(r"\b(?:cn|node|nid|compute|gpu|login|n|c)\d+\b", re.IGNORECASE), "<node>"),
    # IPv4 addresses (with port), before plain numbers eat them.
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    # PIDs and MPI ranks, so their word survives the number rule for readability.
    (re.compile(r"\b(pid|PID|process id)[ =:]*\d+"), r"\1 <n>"),
    (
        re.compile(r"\b(rank|task|MPI_COMM_WORLD rank|proc|process)[ =:]*\d+", re.IGNORECASE),
        r"\1 <n>",
    ),
    (re.compile(r"\[\d+\]"), "[<n>]"),
    # Every remaining number.
    (re.compile(r"(?<![<\w])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"), "<n>"),
]

# Lines that carry no information about the cause: separators, framework prefixes, boilerplate.
_NOISE = re.compile(
    r"^(?:[-=*_#~]{3,}.*|Traceback \(most recent call last\):|During handling of the above exception.*"
    r"|Primary job\s+terminated normally.*|.*--help.*|.*help-\S+\.txt.*|Local host:.*|Local PID:.*"
    r"|\s*File \".*\", line \d+.*)$"
)
_PYTEST_PREFIX = re.compile(r"^(?:E\s+|>\s+)")
_ERRORISH = re.compile(
    r"error|fail|unable|cannot|can't|could not|abort|fatal|exit(?:ed)? (?:code|status)|timed? ?out|refused|"
    r"not found|no such|denied|killed|signal|segmentation|unreachable|mismatch|expected|regression|"
    r"not implemented|no devices",
    re.IGNORECASE,
)
_SPACE = re.compile(r"\s+")


def _normalise_v1(line: str) -> str:
    for pattern, replacement in _RULES:
        line = pattern.sub(replacement, line)
    return _SPACE.sub(" ", line).strip()


# Version 2 adds paths (the directories of ``../../../orte/util/show_help.c`` or of an install
# prefix say nothing about the cause; the file name may).
_PATH = re.compile(r"(?<![\w<])(?:\.{1,2}/|/)?(?:[\w.+-]+/)+(?=[\w.+-]+)")


def _normalise_v2(line: str) -> str:
    return _PATH.sub("<path>/", _normalise_v1(line))


# Every algorithm ever released, by version; the highest is current.  Old ones stay, so a ticket
# filed under an old key is still found (``Fingerprint.aliases``) after the rules change.
ALGORITHMS: dict[int, Callable[[str], str]] = {1: _normalise_v1, 2: _normalise_v2}


def normalise(line: str) -> str:
    """The line with variable parts replaced by placeholders and whitespace collapsed."""
    return ALGORITHMS[max(ALGORITHMS)](line)


def first_meaningful_line(message: str) -> str:
    """The first line that looks like an error, else the first line with text at all."""
    candidates = []
    for raw in message.splitlines():
        line = _PYTEST_PREFIX.sub("", raw).strip()
        if line and not _NOISE.match(line):
            candidates.append(line)
    for line in candidates:
        if _ERRORISH.search(line):
            return line
    return candidates[0] if candidates else ""


def key_v1(test_id: str, failure_class: str, signature: str) -> str:
    """The key version 1 gave: (test id, class, normalised first error line)."""
    text = "\x1f".join(("1", test_id, failure_class, signature))
    return f"hpcos-v1-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _key(version: int, scope: str, stack: str, failure_class: str, signature: str) -> str:
    text = "\x1f".join((str(version), scope, stack, failure_class, signature))
    return f"hpcos-v{version}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


CAUSE = "cause"  # the scope of a specific reason: every test, stack and node that shows it


@dataclass(frozen=True)
class Fingerprint:
    scope: str  # CAUSE, a test id (generic reasons), or "perf:<stack>" (performance regressions)
    stack: str  # MPI stack in the identity ("" when the reason is shared across stacks)
    failure_class: str
    signature: str  # the normalised reason line
    version: int = ALGORITHM_VERSION

    @property
    def key(self) -> str:
        """Short stable key stored in the tracker: ``hpcos-v2-<16 hex>``."""
        return _key(self.version, self.scope, self.stack, self.failure_class, self.signature)

    @property
    def by_test(self) -> bool:
        return self.scope not in (CAUSE,) and not self.scope.startswith("perf:")


_WORD = re.compile(r"[A-Za-z0-9][\w.-]*[A-Za-z0-9]|[A-Za-z0-9]")


def without_nodes(line: str, nodes: frozenset[str]) -> str:
    """Replace the run's own node names (and their FQDNs) first: site naming schemes such as
    ``r1i2n3`` or ``sn042`` fit no general rule, but the run knows every node it tested."""
    if not nodes:
        return line
    return _WORD.sub(
        lambda m: (
            "<node>" if m.group() in nodes or m.group().split(".", 1)[0] in nodes else m.group()
        ),
        line,
    )


def alias_v1(
    test_id: str, failure_class: str | None, message: str, nodes: frozenset[str] = frozenset()
) -> str:
    """The version-1 key of one failing result: how tickets filed before version 2 are found."""
    line = without_nodes(first_meaningful_line(message), nodes)
    return key_v1(test_id, failure_class or "error", _normalise_v1(line))


PERF_CLASS = "performance regression"
TIMEOUT_CLASS = "timeout"
# Causes that hit every MPI stack alike.  "launch": a program that cannot be executed is keyed on its
# path alone (``reasons.classify`` puts the path in the cause), whichever test or stack ran it.
STACK_INDEPENDENT = frozenset({"infiniband", "slurm", "kernel", "launch"})


def fingerprint(
    test_id: str,
    failure_class: str | None,
    message: str,
    stack: str | None = None,
    nodes: frozenset[str] = frozenset(),
    where: str | None = None,
) -> Fingerprint:
    """One failing result's fingerprint.  ``nodes``: every node name of the run, so they normalise
    whatever the site calls them; ``stack``: the result's MPI stack; ``where``: the result's node (set)."""
    return fingerprint_and_reason(test_id, failure_class, message, stack, nodes, where)[0]


def fingerprint_and_reason(
    test_id: str,
    failure_class: str | None,
    message: str,
    stack: str | None = None,
    nodes: frozenset[str] = frozenset(),
    where: str | None = None,
) -> tuple[Fingerprint, Reason | None]:
    failure_class = failure_class or "error"
    stack = stack or ""
    if failure_class == PERF_CLASS:
        return Fingerprint(f"perf:{stack}" if stack else test_id, stack, failure_class, ""), None
    if failure_class == "node unreachable":
        return Fingerprint(CAUSE, "", failure_class, "node unreachable"), None
    reason = choose(message)
    if failure_class == TIMEOUT_CLASS and stack and where:
        # An MPI job that hangs says nothing of its own test: every job of that stack on those nodes
        # hangs alike (a rank stuck in MPI_Init, a dead fabric).  The nodes are the identity, as the
        # run named them (where the ranks were goes into the ticket, not the key: it differs by test).
        return Fingerprint(CAUSE, stack, failure_class, f"MPI jobs time out on {where}"), reason
    signature = reason.cause or normalise(without_nodes(reason.line, nodes))
    if reason.specific:
        # Fabric, scheduler and kernel causes hit every MPI stack alike; anything else (an MPI
        # library's own words, a line no table knows) is one problem per stack.
        shared = reason.family in STACK_INDEPENDENT
        return Fingerprint(CAUSE, "" if shared else stack, failure_class, signature), reason
    return Fingerprint(test_id, stack, failure_class, signature), reason
