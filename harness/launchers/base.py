"""What every launcher returns, and the one interface the fixtures talk to.

Scheduler, launcher and test are kept apart (as in ReFrame): a test asks to run a command on a node
or an MPI job on the selected nodes; the profile's launcher decides how (subprocess, ssh, srun).
"""

from __future__ import annotations

import re
import shlex
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ClusterShell.NodeSet import NodeSet

from harness.profiles import MpiStack, Profile

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

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.unreachable

    def describe(self) -> str:
        """Why it failed, in the tool's own words: what a failure message and a ticket show."""
        where = f" on {self.node}" if self.node else ""
        if self.unreachable:
            head = f"node unreachable{where}: {self.command}"
        elif self.timed_out:
            head = f"timed out after {self.duration:.1f} s{where}, process tree killed: {self.command}"
        else:
            head = f"exit code {self.exit_code}{where}: {self.command}"
        parts = [head]
        for name, text in (("stderr", self.stderr), ("stdout", self.stdout)):
            lines = text.rstrip().splitlines()
            if lines:
                cut = lines[-TAIL_LINES:]
                more = f" (last {TAIL_LINES} of {len(lines)} lines)" if len(lines) > TAIL_LINES else ""
                parts.append(f"--- {name}{more}\n" + "\n".join(cut))
        return "\n".join(parts)

    def check(self) -> CommandResult:
        """Return self when the command succeeded, else fail the test with the tool's own output."""
        if not self.ok:
            raise CommandFailed(self)
        return self


class CommandFailed(AssertionError):
    """A command the test relied on failed; the plugin classes it by ``result`` (timeout, unreachable)."""

    def __init__(self, result: CommandResult):
        self.result = result
        super().__init__(result.describe())


def command_text(command: Command) -> str:
    return command if isinstance(command, str) else shlex.join(command)


def with_env(command: Command, env: Mapping[str, str] | None, module: str | None = None) -> str:
    """A shell command line that sets ``env`` and loads ``module`` first (for remote shells)."""
    for name in env or {}:
        # A name cannot be quoted in `export NAME=...`: it must be a name (profiles are validated so).
        if not _ENV_NAME.match(name):
            raise ValueError(f"not an environment variable name: {name!r}")
    prefix = "".join(f"export {k}={shlex.quote(v)}; " for k, v in (env or {}).items())
    if module:
        prefix += f"module load {shlex.quote(module)} && "
    return prefix + command_text(command)


class Launcher(ABC):
    name: str

    def __init__(self, profile: Profile):
        self.profile = profile

    @abstractmethod
    def run(self, command: Command, nodes: NodeSet, *, timeout: float,
            env: Mapping[str, str] | None = None) -> dict[str, CommandResult]:
        """Run ``command`` on every node of ``nodes`` (fanned out); one result per node."""

    @abstractmethod
    def mpi(self, binary: str, args: Sequence[str], *, np: int, stack: MpiStack, nodes: NodeSet,
            timeout: float, env: Mapping[str, str] | None = None) -> CommandResult:
        """One MPI job of ``np`` ranks across ``nodes``."""

    def batch(self, script: str, *, nodes: NodeSet, timeout: float,
              env: Mapping[str, str] | None = None) -> CommandResult:
        """Run a batch script; without a batch scheduler it runs as a shell script on the first node."""
        first = NodeSet(nodes[0])
        return self.run(["sh", "-c", script], first, timeout=timeout, env=env)[str(first)]
