"""Why a failure happened, in one line: the most informative line of its output.

A failed MPI job prints many lines, and the first is often launcher noise: Open MPI 4.1 regularly
loses the help message a rank relays to mpirun and prints ``ORTE_ERROR_LOG: Data unpack would read
past end of buffer in file ../../../orte/util/show_help.c`` *before* (or instead of) the real
explanation.  Taking the first error line therefore files one cause under many names.  Instead every
line is ranked against two small tables, and the best line wins (the first of equal rank):

``NOISE``       lines known to carry no cause: launcher relay failures, abort banners, cleanup lines.
``SIGNATURES``  messages known to name a cause, per MPI library, scheduler, fabric and kernel, each
                with a rank.  A message is *specific* when it names a cause that may hit several
                tests at once (ranks unable to reach each other, no IB device); *generic* ones
                ("exit code 1", a bare ``assert``) say only that something failed.

An Open MPI help block (text between two dashed rules) counts as one line: its first sentence.
Lines that match neither table rank by whether they look like an error at all.  The tables are
tested against real captured output in ``tests/test_tickets_reasons.py``; add a row there first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

# (family, pattern): searched in each line with the "[host:pid] " / "E   " prefixes removed.
NOISE: list[tuple[str, re.Pattern[str]]] = [
    (family, re.compile(pattern))
    for family, pattern in [
        # Open MPI 4.1: the help message relay from a rank to mpirun failed (show_help.c race).
        ("openmpi", r"ORTE_ERROR_LOG: .* in file \S*show_help\.c"),
        (
            "openmpi",
            r"ORTE_ERROR_LOG: (?:Data unpack would read past end of buffer|Out of resource)",
        ),
        ("openmpi", r"PMIX_ERROR .*in file"),
        ("openmpi", r"more process(?:es)? ha(?:s|ve) sent help message"),
        ("openmpi", r"Set MCA parameter \"orte_base_help_aggregate\""),
        ("openmpi", r"Delaying for \d+ seconds? before aborting"),
        # The MPI_ERRORS_ARE_FATAL banner around the call that failed: says where, not why.
        (
            "openmpi",
            r"^\*\*\* (?:reported by process|on a NULL communicator|on communicator|Unknown error"
            r"|MPI_ERRORS_ARE_FATAL|\s*and potentially your MPI job)",
        ),
        ("openmpi", r"^Primary job\s+terminated normally"),
        ("openmpi", r"has detected an attempt to run as root"),
        ("openmpi", r"Your MPI job is now going to abort; sorry"),
        # MPICH hydra's cleanup banner.
        ("mpich", r"BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES"),
        (
            "mpich",
            r"^(?:=\s*)?(?:PID \d+ RUNNING AT|EXIT CODE: \d+|CLEANING UP REMAINING PROCESSES"
            r"|YOU CAN IGNORE THE BELOW CLEANUP MESSAGES)",
        ),
        # Slurm's step teardown after a task failed.
        ("slurm", r"^srun: launch/slurm: _step_signal: Terminating"),
        ("slurm", r"^srun: Job step aborted: Waiting up to"),
        ("slurm", r"^srun: error: Timed out waiting for job step to complete"),
        # The harness's own framing of a command's output.
        ("harness", r"^--- (?:stderr|stdout)\b"),
        (
            "harness",
            r"^(?:Traceback \(most recent call last\):|During handling of the above exception)",
        ),
        ("harness", r"^File \".*\", line \d+"),
    ]
]


# "PATH: No such file or directory" (the runner, mpirun's exec), "sh: 1: PATH: not found" (a shell),
# "env: 'PATH': Permission denied"; group "path" is what could not be executed.
_CANNOT_EXECUTE = (
    r"^(?:(?:sh|bash|env|/bin/sh|/usr/bin/env)(?:: \d+)?: )?'?(?P<path>[\w.+/-]*/?[\w.+-]+)'?: "
    r"(?:No such file or directory|Permission denied|not found|command not found"
    r"|cannot execute(?: binary file)?(?:: .*)?|Exec format error)$"
)
# The head line of a command that exited 126/127 (cannot execute / not found) when its output is lost.
_EXIT_126_127 = re.compile(r"^exit code (?:126|127)(?: on \S+)?: (?P<path>\S+)")


@dataclass(frozen=True)
class Signature:
    family: str  # openmpi, mpich, slurm, infiniband, kernel, assertion, generic
    pattern: re.Pattern[str]
    rank: int
    specific: bool = True
    # Rows that say the same cause in different words share a name, and the fingerprint uses it: Open
    # MPI's relay loses either of its two help messages about unreachable ranks, whichever came first.
    cause: str = ""


def _sig(family: str, pattern: str, rank: int, specific: bool = True, cause: str = "") -> Signature:
    return Signature(family, re.compile(pattern), rank, specific, cause)


SIGNATURES: list[Signature] = [
    # Open MPI: help-mca-bml-r2.txt, help-mpi-runtime.txt, orterun's own help blocks.
    _sig(
        "openmpi",
        r"unable to reach each other",
        90,
        cause="openmpi: MPI processes unable to reach each other",
    ),
    _sig("openmpi", r"not enough slots available", 85),
    _sig("openmpi", r"noticed that process rank \d+ .* exited on signal", 80),
    _sig(
        "openmpi",
        r"MPI_INIT has failed because at least one MPI process is unreachable",
        70,
        cause="openmpi: MPI processes unable to reach each other",
    ),
    _sig("openmpi", r"MPI_INIT has failed because", 70),
    _sig("openmpi", r"^\*\*\* (?:MPI_ERR_\w+|Process received signal)", 60),
    _sig("openmpi", r"^\*\*\* An error occurred in MPI_\w+", 30, specific=False),  # where, not why
    _sig(
        "openmpi",
        r"detected that one or more processes exited with non-zero status",
        8,
        specific=False,
    ),
    # MPICH / hydra.
    # MPICH's error stack, as its deepest line (``_candidates``): the call that actually failed.
    _sig("mpich", r"^MPI\w*\(\d+\)\.*:\s*\S", 86),
    _sig("mpich", r"Fatal error in (?:P?MPI_|internal_)\w+", 85),
    _sig("mpich", r"HYDU?_\w+ \(.*\): .*(?:error|unable|failed)", 70),
    _sig("mpich", r"Abort\(\d+\) on node \d+", 60),
    # A timed-out MPI job's ranks, as hpcos.core.stacks found them before the kill.
    _sig("hang", r"^ranks hung: ", 87),
    # UCX (MPICH's ch4:ucx, Open MPI's pml/ucx): its ERROR line names the transport problem.
    _sig("ucx", r"^UCX\s+ERROR\b", 88),
    # Slurm.
    _sig("slurm", r"DUE TO TIME LIMIT|DUE TO NODE FAILURE|DUE TO PREEMPTION", 85),
    _sig("slurm", r"^srun: error: Unable to (?:allocate|create step)", 80),
    _sig("slurm", r"^slurmstepd: error: ", 70),
    _sig("slurm", r"^srun: error: .*Exited with exit code \d+", 8, specific=False),
    _sig("slurm", r"^srun: error: ", 65),
    # InfiniBand / RDMA.
    _sig("infiniband", r"Failed to get IB devices list|No IB devices found|No RDMA devices", 88),
    _sig(
        "infiniband", r"got completion with error|IBV_WC_\w+|transport retry counter exceeded", 85
    ),
    _sig("infiniband", r"(?:Port|port) \d+ (?:state: )?(?:DOWN|Down|INIT|POLLING)", 75),
    _sig("infiniband", r"ibv_\w+.*(?:failed|error|No such device)", 72),
    # Kernel and signals.
    _sig("kernel", r"Out of memory: Killed process|oom-kill|invoked oom-killer", 92),
    _sig("kernel", r"\bsegfault at\b|Segmentation fault|Bus error|general protection fault", 82),
    _sig("kernel", r"\bBUG: |kernel panic|soft lockup|hung_task", 82),
    _sig("kernel", r"\bkernel: .*(?:error|fail)", 60),
    # Assertions: the message after "AssertionError:" names a cause; a bare assert does not.
    _sig("assertion", r"^AssertionError: \S", 50),
    _sig("assertion", r"^AssertionError\s*$|^assert (?:False|0|None)\s*$", 5, specific=False),
    _sig("assertion", r"^assert .+", 40, specific=False),
    # What every failing command says: no cause of its own.
    _sig(
        "generic",
        r"^(?:exit code|exited with(?: exit)? (?:code|status)|returned non-zero exit status) ?-?\d+",
        6,
        specific=False,
    ),
    _sig("generic", r"^timed out after [\d.]+ s", 6, specific=False),
    # The program could not be started (the runner's, the shell's or env's words): a cause of its own,
    # keyed on the path (``classify``), whichever test ran it.
    _sig("launch", _CANNOT_EXECUTE, 89),
]

_ERRORISH = re.compile(
    r"error|fail|unable|cannot|can't|could not|abort|fatal|timed? ?out|refused|not found|no such|denied|"
    r"killed|signal|segmentation|unreachable|mismatch|expected|regression|not implemented|no devices",
    re.IGNORECASE,
)
# pytest's "E   " and "Failed: " (before the first line of a ``pytest.fail`` text), Open MPI's
# "[host:pid] ", UCX's "[timestamp] [host:pid:thread] file.c:line ".
_PREFIX = re.compile(
    r"^(?:E\s+|>\s+)?(?:Failed:\s*)?(?:\[\d+\.\d+\]\s+\[[^\]]*\]\s+[\w.]+:\d+\s+)?"
    r"(?:\[[^\]\s]*:\d+\]\s*)?"
)
_MPICH_STACK_LINE = re.compile(r"^\w+\(\d+\)\.*:")
_RULE = re.compile(r"^\s*(?:-{20,}|={20,})\s*$")
_SEPARATOR = re.compile(r"^[-=*_#~\s]{3,}$")  # a rule or banner line, not "*** An error ..."
_SENTENCE_END = re.compile(r"(?<=[.;:!?])\s")


@dataclass(frozen=True)
class Reason:
    line: str  # as printed (prefixes removed)
    family: str  # the table family that matched, "noise", "unknown" or "none"
    rank: int
    specific: bool  # names a cause that can be shared by several tests
    cause: str = ""  # the table's name for the cause, when several wordings share one
    noise: str = ""  # the family of the first launcher noise in the output ("openmpi"...), if any


def _first_sentence(block: list[str]) -> str:
    paragraph = []
    for line in block:
        if not line.strip():
            if paragraph:
                break
            continue
        paragraph.append(line.strip())
    text = " ".join(" ".join(paragraph).split())
    return _SENTENCE_END.split(text, 1)[0].rstrip(".:;") if text else ""


def _deepest(stack: list[str]) -> list[str]:
    """The innermost call of an MPICH error stack that says something: MPICH prints the stack
    outermost first, and the callers in between often have nothing after their colon."""
    said = [line for line in stack if line.split(":", 1)[1].strip()]
    if not said:
        return []
    name, text = said[-1].split(":", 1)
    return [f"{name.rstrip('.')}: {' '.join(text.split())}"]


def _candidates(message: str) -> list[str]:
    """Lines of ``message``, with each Open MPI help block (between dashed rules) as its first sentence."""
    out: list[str] = []
    block: list[str] | None = None
    stack: list[str] | None = None  # MPICH's "error stack:" lines, outermost call first
    for raw in message.splitlines():
        if stack is not None:
            line = _PREFIX.sub("", raw).strip()
            if _MPICH_STACK_LINE.match(line):
                stack.append(line)
                continue
            out.extend(_deepest(stack))
            stack = None
        if _RULE.match(_PREFIX.sub("", raw)):
            if block is None:
                block = []
            else:
                out.append(_first_sentence(block))
                block = None
            continue
        if block is not None:
            block.append(_PREFIX.sub("", raw))
            continue
        line = _PREFIX.sub("", raw).strip()
        if line and not _SEPARATOR.match(line):
            out.append(line)
            if line.endswith("error stack:"):
                stack = []
    if stack:
        out.extend(_deepest(stack))
    if block:  # a block cut off by the output's tail
        out.append(_first_sentence(block))
    return [line for line in out if line]


# One search per table first: most lines of a failure match no row (a thousand failures are a
# few seconds of row-by-row searching otherwise).
_ANY_NOISE = re.compile("|".join(f"(?:{pattern.pattern})" for _, pattern in NOISE))
_ANY_SIGNATURE = re.compile(
    "|".join(f"(?:{sig.pattern.pattern.replace('?P<path>', '')})" for sig in SIGNATURES)
)


def classify(line: str) -> Reason:
    if _ANY_NOISE.search(line):
        for family, pattern in NOISE:
            if pattern.search(line):
                return Reason(line, "noise", 0, False, noise=family)
    exited = _EXIT_126_127.match(line)
    if exited:
        return Reason(line, "launch", 50, True, f"launch: cannot execute {exited.group('path')}")
    if _ANY_SIGNATURE.search(line):
        for sig in SIGNATURES:
            match = sig.pattern.search(line)
            if match:
                path = match.groupdict().get("path")
                # The path is the whole cause: every test that runs it fails the same way.
                cause = f"launch: cannot execute {path}" if path else sig.cause
                return Reason(line, sig.family, sig.rank, sig.specific, cause)
    if _ERRORISH.search(line):
        return Reason(line, "unknown", 20, True)
    return Reason(line, "unknown", 2, False)


def choose(message: str) -> Reason:
    """The most informative line of a failure's output (the first of equal rank)."""
    best: Reason | None = None
    noise = ""
    for line in _candidates(message):
        reason = classify(line)
        noise = noise or (reason.noise if reason.noise != "harness" else "")
        if best is None or reason.rank > best.rank:
            best = reason
    if best is None:
        return Reason("", "none", 0, False)
    return replace(best, noise=noise)
