"""The ssh launcher: ClusterShell fans a command out over ssh with the profile's fanout limit.

ClusterShell gathers each node's output into a MsgTree, so 500 nodes printing the same error are
one group (``harness.grouping`` shows them that way).  Each remote command runs under coreutils
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
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from harness.launchers.base import Command, CommandResult, Launcher, command_text, with_env
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
            bar = progress.add_task(escape(f"ssh {text[:40]}"), total=len(nodes))  # command text is not markup
            worker = task.shell(remote, nodes=str(nodes), stderr=True, handler=_Advance(progress, bar),
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
                node, text, code, stdout.get(node, ""), err, duration,
                timed_out=node in lost or code == TIMEOUT_EXIT,
                unreachable=code == SSH_FAILED and _is_ssh_error(err),
            )
        return results

    def mpi(self, binary: str, args: Sequence[str], *, np: int, stack: MpiStack, nodes: NodeSet,
            timeout: float, env: Mapping[str, str] | None = None) -> CommandResult:
        # mpirun starts on the first node and reaches the others through the cluster's own
        # hostfile / resource manager, as a user would run it there.
        head = NodeSet(nodes[0])
        argv = [*stack.mpirun, "-np", str(np), binary, *args]
        command = with_env(argv, None, stack.module)
        result = self.run(command, head, timeout=timeout, env={**stack.env, **(env or {})})[str(head)]
        result.node = str(nodes)
        return result


class _Advance(EventHandler):
    """Moves the progress bar as each node's ssh finishes."""

    def __init__(self, progress: Progress, bar: TaskID):
        super().__init__()
        self.progress, self.bar = progress, bar

    def ev_hup(self, worker, node, rc):
        self.progress.advance(self.bar)


def _is_ssh_error(stderr: str) -> bool:
    # ssh's own complaints, as opposed to a remote command that happens to exit 255.
    markers = ("ssh: ", "Connection refused", "Connection timed out", "Permission denied",
               "Could not resolve hostname", "kex_exchange_identification", "Connection closed by",
               "No route to host", "Host key verification failed")
    return any(m in stderr for m in markers)
