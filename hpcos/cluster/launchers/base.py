"""What every launcher returns, and the one interface the fixtures talk to.

A test asks to run a command on a node or an MPI job on the selected nodes; the profile's launcher
decides how (subprocess, ssh, srun).  Node states (drained, down) are the scheduler's
(``hpcos.cluster.schedulers``): a launcher's ``unavailable`` asks it where there is one, and otherwise
probes reachability its own way.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ClusterShell.NodeSet import NodeSet

from hpcos.cluster.profiles import MpiStack, Profile
from hpcos.core.errors import HpcosError

Command = str | Sequence[str]  # a string is a shell command line; a list is an argv

# How much of a tool's output a failure message carries; the whole text stays in the result.
TAIL_LINES = 30
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class CommandResult:
    node: str | None
    command: str
    exit_code: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    unreachable: bool = False  # the launcher could not reach the node (ssh refused, no route, ...)
    # An MPI job: host -> ranks the launcher placed there, named as the ranks name their host.
    placement: dict[str, int] = field(default_factory=dict)
    # A failed multi-node job, bisected: node -> how the job failed there alone; the nodes it passed on.
    blamed: dict[str, str] = field(default_factory=dict)
    passed_alone: list[str] = field(default_factory=list)
    stacks: str = (
        ""  # a timed-out MPI job: where its ranks were before the kill (hpcos.core.stacks)
    )

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.unreachable

    def describe(self) -> str:
        """Why it failed, in the tool's own words: what a failure message and a ticket show."""
        where = f" on {self.node}" if self.node else ""
        if self.unreachable:
            head = f"node unreachable{where}: {self.command}"
        elif self.timed_out:
            head = (
                f"timed out after {self.duration:.1f} s{where}, process tree killed: {self.command}"
            )
        else:
            head = f"exit code {self.exit_code}{where}: {self.command}"
        parts = [head]
        if self.blamed:
            parts.insert(0, blame_line(self.blamed, self.passed_alone))
        if self.stacks:
            parts.append(f"--- where the ranks were before the kill\n{self.stacks}")
        for name, text in (("stderr", self.stderr), ("stdout", self.stdout)):
            lines = text.rstrip().splitlines()
            if lines:
                cut = lines[-TAIL_LINES:]
                more = (
                    f" (last {TAIL_LINES} of {len(lines)} lines)" if len(lines) > TAIL_LINES else ""
                )
                parts.append(f"--- {name}{more}\n" + "\n".join(cut))
        return "\n".join(parts)

    def check(self) -> CommandResult:
        """Return self when the command succeeded, else fail the test with the tool's own output."""
        if not self.ok:
            raise CommandFailed(self)
        return self


BLAME = re.compile(r"(?:^|: )fails on (?P<nodes>\S+) alone\b", re.MULTILINE)


def blame_line(blamed: Mapping[str, str], passed: Sequence[str]) -> str:
    """The first line of a bisected job's failure: the node(s) to blame, and what each said alone."""
    nodes = NodeSet.fromlist(blamed)
    said = "; ".join(f"{node}: {why}" for node, why in list(blamed.items())[:5])
    ok = f", passes on {NodeSet.fromlist(passed)} alone" if passed else ""
    return f"fails on {nodes} alone{ok} ({said})"


def blamed_hosts(text: str) -> list[str]:
    """The nodes a bisected failure names (the first line ``blame_line`` wrote)."""
    match = BLAME.search(text)
    return list(NodeSet(match.group("nodes"))) if match else []


class CommandFailed(HpcosError, AssertionError):
    """A command the test relied on failed; the plugin classes it by ``result`` (timeout, unreachable)."""

    family = "node"

    def __init__(self, result: CommandResult):
        self.result = result
        super().__init__(result.describe())


def command_text(command: Command) -> str:
    return command if isinstance(command, str) else shlex.join(command)


def with_env(command: Command, env: Mapping[str, str] | None, module: str | None = None) -> str:
    """A shell command line that sets ``env`` and loads ``module`` first (for remote shells)."""
    for name in env or {}:
        # A name cannot be quoted in `export NAME=...`: it must be a name (profiles are validated so).
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"not an environment variable name: {name!r}")
    prefix = "".join(f"export {k}={shlex.quote(v)}; " for k, v in (env or {}).items())
    if module:
        prefix += f"module load {shlex.quote(module)} && "
    return prefix + command_text(command)


# mpirun options by which a profile's MPI line names its own hosts; the launcher then adds none.
HOST_OPTIONS = frozenset(
    {
        "--host",
        "-host",
        "-H",
        "--hostfile",
        "-hostfile",
        "--machinefile",
        "-machinefile",
        "--default-hostfile",
        "-hosts",
        "-f",
        "-machine",
    }
)


def spread(np: int, nodes: NodeSet, ranks_per_node: int) -> dict[str, int]:
    """Where a job of ``np`` ranks goes: the first nodes of ``nodes``, ``ranks_per_node`` each, in
    blocks (ranks 0..k-1 on the first node); more ranks than that fill the nodes evenly."""
    count = max(1, min(len(nodes), -(-np // ranks_per_node)))
    used = list(nodes)[:count]
    per, extra = divmod(np, count)
    return {node: per + (i < extra) for i, node in enumerate(used)}


def is_hydra(stack: MpiStack) -> bool:
    """Whether the stack's launcher is MPICH's hydra (``-hosts``) rather than Open MPI's (``--host``).
    Read from the names a profile uses (``mpiexec.mpich``, ``mpi/mpich-x86_64``, a stack named mpich or
    mvapich); a bare ``mpiexec`` is hydra, a bare ``mpirun`` is Open MPI."""
    words = " ".join([stack.name, stack.mpirun[0], stack.mpicc, stack.module or ""]).lower()
    if any(w in words for w in ("mpich", "hydra", "mvapich", "intel")):
        return True
    if any(w in words for w in ("openmpi", "open-mpi", "ompi")):
        return False
    return os.path.basename(stack.mpirun[0]).startswith("mpiexec")


def host_arguments(stack: MpiStack, placement: Mapping[str, int]) -> list[str]:
    """The host list that puts ``placement``'s ranks on its nodes, in the stack's launcher's syntax;
    none when the profile's MPI line names its own hosts (then the probes check the site's choice)."""
    if HOST_OPTIONS & set(stack.mpirun):
        return []
    hosts = ",".join(f"{node}:{ranks}" for node, ranks in placement.items())
    return ["-hosts", hosts] if is_hydra(stack) else ["--host", hosts]


class Launcher(ABC):
    name: str
    # Whether a job gets the night's environment (as srun --export=ALL and a local launch do); over
    # ssh only what the profile or the test sets is exported on the node.
    inherits_environment = True

    def __init__(self, profile: Profile):
        self.profile = profile

    def placement(self, np: int, nodes: NodeSet) -> dict[str, int]:
        """host -> ranks for a job of ``np`` ranks on ``nodes``, named as the ranks will name their host."""
        return spread(np, nodes, self.profile.ranks_per_node)

    def unavailable(self, nodes: NodeSet) -> dict[str, str]:
        """The pre-flight: node -> why it cannot run tests now (``drained: <reason>``); empty when all can.
        Also the re-check of a failed or timed-out job's nodes: a node lost during the run shows here."""
        return {}

    def node_named(self, host: str, nodes: NodeSet) -> str | None:
        """The node of ``nodes`` that a launcher's message means by ``host`` (as given, or its short name)."""
        host = host.strip("[]\"'")
        if host in nodes:
            return host
        if _is_address(host):
            return None
        short = host.split(".")[0]
        return next((node for node in nodes if node.split(".")[0] == short), None)

    @abstractmethod
    def run(
        self,
        command: Command,
        nodes: NodeSet,
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
    ) -> dict[str, CommandResult]:
        """Run ``command`` on every node of ``nodes`` (fanned out); one result per node."""

    @abstractmethod
    def mpi(
        self,
        binary: str,
        args: Sequence[str],
        *,
        np: int,
        stack: MpiStack,
        nodes: NodeSet,
        timeout: float,
        env: Mapping[str, str] | None = None,
        look: bool = True,
    ) -> CommandResult:
        """One MPI job of ``np`` ranks across ``nodes``.  At the timeout, before the kill, the job's
        ranks are looked at (``CommandResult.stacks``) unless ``look`` is false: a bisecting run
        needs only to pass or fail, and a look costs up to ``stacks.NODE_TOTAL`` s per run."""

    def batch(
        self, script: str, *, nodes: NodeSet, timeout: float, env: Mapping[str, str] | None = None
    ) -> CommandResult:
        """Run a batch script; without a batch scheduler it runs as a shell script on the first node."""
        first = NodeSet(nodes[0])
        return self.run(["sh", "-c", script], first, timeout=timeout, env=env)[str(first)]


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
