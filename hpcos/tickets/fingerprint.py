"""Fingerprints: what makes two failures "the same problem".

A fingerprint is the test id (without the node), the failure class, and the first meaningful error
line with everything that varies between nodes, jobs and nights replaced by placeholders.  The
algorithm is versioned: the version is part of every key, so a later change of the rules produces
new keys, and the keys the earlier versions give (``aliases``) still find the tickets filed under them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

ALGORITHM_VERSION = 1

# Order matters: specific shapes first (timestamps contain numbers, paths contain node names).
_RULES: list[tuple[re.Pattern[str], str]] = [
    # ISO 8601 / syslog / `date` timestamps.
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)?\s*(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
                r"\s+\d{1,2}\s+\d{2}:\d{2}:\d{2}(?:\s+\w{3,4})?(?:\s+\d{4})?"), "<time>"),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}(?:\.\d+)?\b"), "<time>"),
    # Temporary paths: pytest tmp dirs, mktemp names, Open MPI session dirs.
    (re.compile(r"(?:/var)?/tmp/[^\s:'\",;)]*"), "<tmp>"),
    (re.compile(r"/dev/shm/[^\s:'\",;)]*"), "<tmp>"),
    # Hex addresses and hashes.
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b[0-9a-f]{12,}\b"), "<hex>"),
    # Slurm: job and step ids.
    (re.compile(r"\b(?:job|jobid|job_id|JobId|StepId|step)[ =:]*\d+(?:\.\d+)?", re.IGNORECASE), "job <job>"),
    # Node lists in ClusterShell/Slurm notation, then single node names (letters followed by digits).
    (re.compile(r"\b[A-Za-z][A-Za-z-]*\[[\d,\-]+\][\w.-]*"), "<nodes>"),
    (re.compile(r"\b[A-Za-z][A-Za-z_-]*\d+(?:-[A-Za-z0-9]+)*(?:\.[A-Za-z][\w-]*)+\b"), "<host>"),
    (re.compile(r"\b(?:cn|node|nid|compute|gpu|login|n|c)\d+\b", re.IGNORECASE), "<node>"),
    # IPv4 addresses (with port), before plain numbers eat them.
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    # PIDs and MPI ranks, so their word survives the number rule for readability.
    (re.compile(r"\b(pid|PID|process id)[ =:]*\d+"), r"\1 <n>"),
    (re.compile(r"\b(rank|task|MPI_COMM_WORLD rank|proc|process)[ =:]*\d+", re.IGNORECASE), r"\1 <n>"),
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


# Every algorithm ever released, by version; the highest is current.  Old ones stay, so a ticket
# filed under an old key is still found (``Fingerprint.aliases``) after the rules change.
ALGORITHMS: dict[int, Callable[[str], str]] = {1: _normalise_v1}


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


def _key(version: int, test_id: str, failure_class: str, signature: str) -> str:
    text = "\x1f".join((str(version), test_id, failure_class, signature))
    return f"hpcos-v{version}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class Fingerprint:
    test_id: str
    failure_class: str
    signature: str  # the normalised first meaningful line
    version: int = ALGORITHM_VERSION
    aliases: tuple[str, ...] = ()  # the same failure's keys under earlier algorithm versions

    @property
    def key(self) -> str:
        """Short stable key stored in the tracker: ``hpcos-v1-<16 hex>``."""
        return _key(self.version, self.test_id, self.failure_class, self.signature)


_WORD = re.compile(r"[A-Za-z0-9][\w.-]*[A-Za-z0-9]|[A-Za-z0-9]")


def without_nodes(line: str, nodes: frozenset[str]) -> str:
    """Replace the run's own node names (and their FQDNs) first: site naming schemes such as
    ``r1i2n3`` or ``sn042`` fit no general rule, but the run knows every node it tested."""
    if not nodes:
        return line
    return _WORD.sub(lambda m: "<node>" if m.group() in nodes or m.group().split(".", 1)[0] in nodes
                     else m.group(), line)


def fingerprint(test_id: str, failure_class: str | None, message: str,
                nodes: frozenset[str] = frozenset()) -> Fingerprint:
    """``nodes``: every node name of the run, so they normalise whatever the site calls them."""
    failure_class = failure_class or "error"
    line = without_nodes(first_meaningful_line(message), nodes)
    current = max(ALGORITHMS)
    aliases = tuple(_key(v, test_id, failure_class, ALGORITHMS[v](line)) for v in sorted(ALGORITHMS) if v != current)
    return Fingerprint(test_id, failure_class, ALGORITHMS[current](line), current, aliases)
