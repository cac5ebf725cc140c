"""The ssh launcher: ClusterShell fans a command out over ssh with the profile's fanout limit.

ClusterShell gathers each node's output into a MsgTree, so 500 nodes printing the same error are
one group.  Each remote command runs under coreutils
``timeout`` so a hung command dies on its node with its whole process group; ClusterShell's own
worker timeout, a little later, is the backstop for a node that stops answering altogether.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping, Sequence

from ClusterShell.Event import EventHandler
from ClusterShell.NodeSet import NodeSet
from ClusterShell.Task import task_self
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from harness.launchers.base import Command, CommandResult, Launcher, command_text, host_arguments, with_env
from harness.parsers import mpi_errors
from harness.profiles import MpiStack

SSH_FAILED = 255  # ssh's own exit code when it cannot connect or authenticate
TIMEOUT_EXIT = 124  # coreutils timeout's exit code when the command ran out of time
REMOTE_KILL_GRACE = 2  # seconds between the remote TERM and KILL
BACKSTOP = 5  # seconds ClusterShell waits beyond the remote timeout before it gives up on a node
# A fan-out of many nodes shows a bar on stderr while pytest waits (pytest's own output is on stdout).
PROGRESS = Console(stderr=True, highlight=False)
PROGRESS_FROM = 64  # nodes; smaller fan-outs finish before a progress bar would help


class SshLauncher(Launcher):
    name = "ssh"

    def run(self, command: Command, nodes: NodeSet, *, timeout: float,
            env: Mapping[str, str] | None = None) -> dict[str, CommandResult]:
        text = command_text(command)
        remote = (f"timeout -k {REMOTE_KILL_GRACE} {timeout:g} "
                  f"sh -c {shlex.quote(with_env(command, env))}")
        task = task_self()
        task.set_info("fanout", self.profile.ssh.fanout)
        task.set_info("connect_timeout", self.profile.ssh.connect_timeout)
        options = ["-oStrictHostKeyChecking=accept-new"]
        if self.profile.ssh.config:
            options = ["-F", self.profile.ssh.config, *options]
        task.set_info("ssh_options", shlex.join(options))
        task.set_info("ssh_user", self.profile.ssh.user)
        started = time.monotonic()
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=PROGRESS, transient=True, disable=len(nodes) < PROGRESS_FROM) as progress:
            bar = progress.add_task(f"ssh {text[:40]}", total=len(nodes))
            handler = _Advance(progress, bar, started)
            worker = task.shell(remote, nodes=str(nodes), stderr=True, handler=handler,
                                timeout=timeout + REMOTE_KILL_GRACE + BACKSTOP + self.profile.ssh.connect_timeout)
            task.run()
        duration = time.monotonic() - started
        stdout = {node: bytes(buf).decode(errors="replace") for buf, ns in worker.iter_buffers() for node in ns}
        stderr = {node: bytes(buf).decode(errors="replace") for buf, ns in worker.iter_errors() for node in ns}
        codes = {node: rc for rc, ns in worker.iter_retcodes() for node in ns}
        lost = set(worker.iter_keys_timeout())
        results = {}
        for node in nodes:
            code = codes.get(node, -1)
            err = stderr.get(node, "")
            results[node] = CommandResult(
                # Each node's own time (JUnit shows it per node), the whole fan-out's for one that never answered.
                node, text, code, stdout.get(node, ""), err, handler.finished.get(node, duration),
                timed_out=node in lost or code == TIMEOUT_EXIT,
                unreachable=code == SSH_FAILED and _is_ssh_error(err),
            )
        return results

    def mpi(self, binary: str, args: Sequence[str], *, np: int, stack: MpiStack, nodes: NodeSet,
            timeout: float, env: Mapping[str, str] | None = None) -> CommandResult:
        # mpirun starts on the first node of the job and reaches the others itself (its own ssh or
        # the site's resource manager), with the host list of the selection.
        placement = self.placement(np, nodes)
        head = next(iter(placement))
        argv = [*stack.mpirun, *host_arguments(stack, placement), "-np", str(np), binary, *args]
        command = with_env(argv, None, stack.module)
        result = self.run(command, NodeSet(head), timeout=timeout, env={**stack.env, **(env or {})})[head]
        result.placement = placement
        others = {node.split(".")[0] for node in placement if node != head}
        if result.unreachable and others & {h.split(".")[0] for h in mpi_errors.unreachable_hosts(result.stderr)}:
            result.unreachable = False  # mpirun ran on the head; its own ssh to another node failed
        if not result.unreachable:  # an unreachable head is that one node's problem, not the job's nodes'
            result.node = str(NodeSet.fromlist(placement))
        return result

    def unavailable(self, nodes: NodeSet) -> dict[str, str]:
        """A short ssh probe of every node: the ones that do not answer within the connect timeout."""
        probe = self.run("true", nodes, timeout=self.profile.ssh.connect_timeout)
        return {node: _why(result) for node, result in probe.items() if not result.ok}


def _why(result: CommandResult) -> str:
    if result.timed_out:
        return f"no answer to ssh within {result.duration:.0f} s"
    said = next((line.strip() for line in result.stderr.splitlines() if line.strip()), "")
    return f"unreachable: {said}" if result.unreachable else f"ssh probe failed (exit {result.exit_code}): {said}"


class _Advance(EventHandler):
    """Moves the progress bar as each node's ssh finishes, and notes when it finished."""

    def __init__(self, progress: Progress, bar: TaskID, started: float):
        super().__init__()
        self.progress, self.bar, self.started = progress, bar, started
        self.finished: dict[str, float] = {}  # node -> seconds from the fan-out's start

    def ev_hup(self, worker, node, rc):
        self.finished[node] = time.monotonic() - self.started
        self.progress.advance(self.bar)


def _is_ssh_error(stderr: str) -> bool:
    # ssh's own complaints, as opposed to a remote command that happens to exit 255.
    markers = ("ssh: ", "Connection refused", "Connection timed out", "Permission denied",
               "Could not resolve hostname", "kex_exchange_identification", "Connection closed by",
               "No route to host", "Host key verification failed")
    return any(m in stderr for m in markers)
