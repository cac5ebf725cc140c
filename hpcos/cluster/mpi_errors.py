"""The lines of an MPI job's stderr that say why it failed, in the MPI library's own words.

A failed Open MPI job prints its explanation as help blocks between dashed lines at the *top* of
stderr, followed by dozens of abort and ORTE lines; MPICH prints "Fatal error in ..." and a
"BAD TERMINATION" banner.  A failure message that keeps only the tail of stderr would lose the one
sentence that matters ("At least one pair of MPI processes are unable to reach each other"), so
this picks those parts out, in order, without duplicates.  Help blocks keep their dashed rules, so
whoever reads the summary (``hpcos.tickets.reasons``) still sees where a block's first sentence ends.
"""

from __future__ import annotations

import re

_RULE = re.compile(r"^-{20,}$")
HELP_RULE = "-" * 74  # as Open MPI prints it
_KEY_LINE = re.compile(
    r"(\*\*\* An error occurred in|\*\*\* MPI_ERRORS_ARE_FATAL|ORTE_ERROR_LOG|PMIX_ERROR|"
    r"Fatal error in |BAD TERMINATION|YOUR APPLICATION TERMINATED|HYD_|HYDU_|\[proxy:|"
    r"Abort\(\d+\)|MPI_ABORT was invoked|exited on signal|not enough slots|^ssh: )"
)
# How a launch says which host it could not reach or lost: ssh's own words (mpirun and hydra pass their
# ssh's stderr through), Open MPI's and hydra's daemon errors, srun's node failures.  A host may be
# named as the launcher was given it, by an ssh HostName (an address), or as the node calls itself:
# the launcher maps it back to a node (``Launcher.node_named``).
_HOST_NAMED = [
    re.compile(r"ssh: connect to host (?P<host>[^\s]+) port \d+"),
    re.compile(r"ssh: Could not resolve hostname (?P<host>[^\s:]+)"),
    re.compile(
        r"Connection (?:closed|reset) by (?:authenticating user \S+ |invalid user \S+ )?(?P<host>[^\s]+) port"
    ),
    re.compile(r"unable to connect from \S+ to (?P<host>[^\s\"]+)"),
    # Open MPI: "ORTE has lost communication with a remote daemon." then "Remote daemon: [[x,0],1] on node n2"
    re.compile(r"Remote daemon\s*: \S+ on node (?P<host>[^\s]+)"),
    # srun: "Task launch for StepId=7.0 failed on node n3: Communication connection failure"
    re.compile(r"Task launch for \S+ failed on node (?P<host>[^\s:]+):"),
    re.compile(r"srun: error: Node failure on (?P<host>[^\s,]+)"),
]


def summary(stderr: str, *, max_lines: int = 40) -> str:
    """Open MPI help blocks and MPI error lines from ``stderr``; empty when there are none."""
    picked: list[str] = []
    seen: set[str] = set()
    block: list[str] | None = None
    for line in stderr.splitlines():
        text = line.rstrip()
        if _RULE.match(text.strip()):
            if block is not None:  # a help block closes
                body = "\n".join(block).strip()
                if body and body not in seen:
                    seen.add(body)
                    picked.append(f"{HELP_RULE}\n{body}\n{HELP_RULE}")
                block = None
            else:
                block = []
            continue
        if block is not None:
            block.append(text)
            continue
        # "[vm:1234] *** An error ..." -> compare without the host:pid prefix
        key = re.sub(r"^\[[^\]]*\]\s*", "", text)
        if _KEY_LINE.search(text) and key not in seen:
            seen.add(key)
            picked.append(text)
    lines = "\n".join(picked).splitlines()
    return "\n".join(lines[:max_lines])


def unreachable_hosts(stderr: str) -> list[str]:
    """The hosts a failed MPI launch says it could not reach, in order of first mention."""
    return list(host_lines(stderr))


def host_lines(stderr: str) -> dict[str, str]:
    """host -> the first line that says the launch could not reach or lost it, in order of mention."""
    hosts: dict[str, str] = {}
    for line in stderr.splitlines():
        for pattern in _HOST_NAMED:
            match = pattern.search(line)
            host = match.group("host").strip("\"'[]") if match else ""
            if host and host not in hosts:
                hosts[host] = line.strip()
    return hosts


def explain(result) -> str:
    """A failed MPI launch (a ``CommandResult``) in words: the MPI library's own lines first, then
    the command with the tail of its output."""
    why = summary(result.stderr)
    described = result.describe()
    if why and getattr(result, "blamed", None):  # the node a bisection named comes first
        first, _, rest = described.partition("\n")
        return f"{first}\n{why}\n{rest}"
    return f"{why}\n{described}" if why else described
