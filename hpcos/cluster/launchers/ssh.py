"""The ssh launcher: ClusterShell fans a command out over ssh with the profile's fanout limit.

The fan-out runs in a small process of its own (``ssh_fanout.py``), where forking the ssh clients is
cheap.  Each remote command runs under coreutils ``timeout`` so a hung command dies on its node with
its whole process group; ClusterShell's own per-node timeout, a little later, is the backstop for a
node that stops answering altogether.  An MPI job's timeout is kept here instead, so that its ranks
can be looked at on every node of the job before it ends (``rank_stacks``).
"""

from __future__ import annotations

import json
import shlex
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ClusterShell.NodeSet import NodeSet
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hpcos.cluster import mpi_errors
from hpcos.cluster.launchers import ssh_fanout
from hpcos.cluster.launchers.base import (
    Command,
    CommandResult,
    Launcher,
    command_text,
    host_arguments,
    with_env,
)
from hpcos.cluster.profiles import MpiStack
from hpcos.core import runner, stacks
from hpcos.core.environment import launch_environment

# What runs on each node: the command ($0) in a session of its own, without stdin (as clush
# --nostdin: MPICH's mpiexec would forward it to rank 0), and a watchdog that ends that whole session
# at the timeout ($1; SIGKILL $2 s after SIGTERM, for what ignores it, as mpirun does) or as soon as the
# ssh client goes away (its stdin, which ClusterShell keeps open, closes: hpcos was stopped).  A
# session, not coreutils timeout's process group: mpirun puts each of its ssh clients and local ranks
# in a group of its own, which outlived a group kill.  Every fork here is paid per node: builtins where
# they do (read, kill), and pkill (which reads all of /proc) only when the command was killed.  Exit
# code 124 on timeout ($3: the timeout in whole seconds).
REMOTE_SCRIPT = (
    'exec 3<&0; read s _ </proc/uptime; setsid sh -c "$0" </dev/null 3<&- & c=$!; '
    '{ timeout --foreground "$1" cat >/dev/null; pkill -TERM -s "$c"; sleep "$2"; pkill -KILL -s "$c"; } '
    "<&3 >/dev/null 2>&1 & w=$!; exec 3<&-; "
    'wait "$c"; r=$?; kill "$w" 2>/dev/null; kill -KILL -"$c" 2>/dev/null; '
    'if [ "$r" -ge 128 ]; then pkill -KILL -s "$c"; read e _ </proc/uptime; '
    '[ $((${e%.*} - ${s%.*})) -ge "$3" ] && r=124; fi; exit "$r"'
)
SSH_FAILED = 255  # ssh's own exit code when it cannot connect or authenticate
TIMEOUT_EXIT = 124  # coreutils timeout's exit code when the command ran out of time
REMOTE_KILL_GRACE = 2  # seconds between the remote TERM and KILL
BACKSTOP = 5  # seconds ClusterShell waits beyond the remote timeout before it gives up on a node
# A fan-out of many nodes shows a bar on stderr while pytest waits (pytest's own output is on stdout).
PROGRESS = Console(stderr=True, highlight=False)
PROGRESS_FROM = 64  # nodes; smaller fan-outs finish before a progress bar would help
# The fan-out runs in a small process of its own: forks from it are cheap (see ssh_fanout.py).
FANOUT_SCRIPT = Path(ssh_fanout.__file__)
FANOUT_GRACE = 30  # seconds for that process to start and report, beyond the nodes' own timeouts
# A timed-out MPI job gets a look at its ranks before it is ended (``rank_stacks``): its timeout is
# then counted here, from the fan-out's start (FANOUT_START more for the fan-out's own start and ssh's
# connection), and the node's watchdog waits LOOK_ALLOWANCE more, for the look and the end.
FANOUT_START = 3
LOOK_ALLOWANCE = stacks.NODE_TOTAL + FANOUT_START + 20
FANOUT_END = 15  # seconds for an ended fan-out to report the output so far


class SshLauncher(Launcher):
    name = "ssh"
    inherits_environment = False

    def __init__(self, profile):
        super().__init__(profile)
        self._resolved: dict[str, frozenset[str]] = {}  # node -> the addresses ssh reaches it at

    def run(
        self,
        command: Command,
        nodes: NodeSet,
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
    ) -> dict[str, CommandResult]:
        return self._run(command, nodes, timeout=timeout, env=env)

    def _run(
        self,
        command: Command,
        nodes: NodeSet,
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        before_kill: Callable[[int], str] | None = None,
    ) -> dict[str, CommandResult]:
        """``run``; with ``before_kill``, the timeout is kept here rather than on the nodes: at
        ``timeout`` (plus the fan-out's start) ``before_kill(fan-out pid)`` looks, then ends the
        command (``_end_fan_out``); the nodes' own watchdog strikes only ``LOOK_ALLOWANCE`` later,
        as a backstop.  The results keep the output the command printed before."""
        text = command_text(command)
        remote_timeout = timeout + (LOOK_ALLOWANCE if before_kill else 0)
        remote = shlex.join(
            [
                "sh",
                "-c",
                REMOTE_SCRIPT,
                with_env(command, env),
                f"{remote_timeout:g}",
                str(REMOTE_KILL_GRACE),
                str(int(remote_timeout)),
            ]
        )
        options = ["-oStrictHostKeyChecking=accept-new"]
        if self.profile.ssh.config:
            options = ["-F", self.profile.ssh.config, *options]
        per_node = remote_timeout + REMOTE_KILL_GRACE + BACKSTOP + self.profile.ssh.connect_timeout
        request = {
            "command": remote,
            "nodes": str(nodes),
            "fanout": self.profile.ssh.fanout,
            "connect_timeout": self.profile.ssh.connect_timeout,
            "ssh_options": shlex.join(options),
            "ssh_user": self.profile.ssh.user,
            "timeout": per_node,
            "topology": self.profile.ssh.topology,
            "gateway_python": self.profile.ssh.gateway_python,
        }
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=PROGRESS,
            transient=True,
            disable=len(nodes) < PROGRESS_FROM,
        ) as progress:
            bar = progress.add_task(
                escape(f"ssh {text[:40]}"), total=len(nodes)
            )  # command text is not markup

            def advance(line: str) -> None:
                if line.startswith(ssh_fanout.PROGRESS_PREFIX):
                    progress.advance(bar)

            # ClusterShell's per-node timeout starts when the node's turn comes, fanout nodes at a time.
            waves = -(-len(nodes) // self.profile.ssh.fanout)
            # Tree mode: the gateways (ssh, then a Python start) come first, once per fan-out; a
            # job's timeout kept here allows for that second start.
            tree = bool(self.profile.ssh.topology)
            gateways = self.profile.ssh.connect_timeout + FANOUT_GRACE if tree else 0
            starts = FANOUT_START * (2 if tree else 1)
            done = runner.run(
                [sys.executable, str(FANOUT_SCRIPT)],
                input=json.dumps(request).encode(),
                timeout=timeout + starts
                if before_kill
                else per_node * waves + gateways + FANOUT_GRACE,
                on_line=advance,
                base_env=launch_environment(),
                before_kill=before_kill,
            )
        try:
            reply = json.loads(done.stdout) if done.exit_code == 0 else {}
        except json.JSONDecodeError:
            reply = {}
        results = {}
        for node in nodes:
            got = reply.get(node)
            if got is None:  # the fan-out process itself failed: every node says why
                why = "\n".join(
                    line
                    for line in done.stderr.splitlines()
                    if not line.startswith(ssh_fanout.PROGRESS_PREFIX)
                )
                results[node] = CommandResult(
                    node,
                    text,
                    -1,
                    "",
                    f"ssh fan-out failed: {why[-2000:]}",
                    done.duration,
                    timed_out=done.timed_out,
                    stacks=done.before_kill,
                )
                continue
            code, err = got["code"], got["stderr"]
            # Ended here after the look (unless it finished meanwhile): its ssh client was stopped.
            ended = done.timed_out and code != 0
            results[node] = CommandResult(
                node,
                text,
                code,
                got["stdout"],
                err,
                got["seconds"],  # each node's own time (JUnit shows it)
                timed_out=got["timed_out"] or code == TIMEOUT_EXIT or ended,
                unreachable=code == SSH_FAILED and _is_ssh_error(err) and not ended,
                stacks=done.before_kill,
            )
        return results

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
        # mpirun starts on the first node of the job and reaches the others itself (its own ssh or
        # the site's resource manager), with the host list of the selection.
        placement = self.placement(np, nodes)
        head = next(iter(placement))
        argv = [*stack.mpirun, *host_arguments(stack, placement), "-np", str(np), binary, *args]
        command = with_env(argv, None, stack.module)

        def look_then_end(pid: int) -> str:
            # Before the job is killed: where its ranks are, on every node of the job.
            found = self.rank_stacks(binary, NodeSet.fromlist(placement)) if look else ""
            _end_fan_out(pid)
            return found

        result = self._run(
            command,
            NodeSet(head),
            timeout=timeout,
            env={**stack.env, **(env or {})},
            before_kill=look_then_end,
        )[head]
        result.placement = placement
        others = {node.split(".")[0] for node in placement if node != head}
        if result.unreachable and others & {
            h.split(".")[0] for h in mpi_errors.unreachable_hosts(result.stderr)
        }:
            result.unreachable = False  # mpirun ran on the head; its own ssh to another node failed
        if (
            not result.unreachable
        ):  # an unreachable head is that one node's problem, not the job's nodes'
            result.node = str(NodeSet.fromlist(placement))
        return result

    def rank_stacks(self, binary: str, nodes: NodeSet) -> str:
        """Where the ranks of ``binary`` are on ``nodes``: the node-side look (``hpcos.core.stacks``)
        over this launcher's own ssh, on every node at once, within ``stacks.NODE_TOTAL`` s."""
        looks = self.run(stacks.node_command(binary), nodes, timeout=stacks.NODE_TOTAL)
        return stacks.node_stacks(
            {
                node: stacks.NodeLook(r.exit_code, r.stdout, r.stderr, r.timed_out)
                for node, r in looks.items()
            }
        )

    def unavailable(self, nodes: NodeSet) -> dict[str, str]:
        """A short ssh probe of every node: the ones that do not answer within the connect timeout."""
        probe = self.run("true", nodes, timeout=self.profile.ssh.connect_timeout)
        return {node: _why(result) for node, result in probe.items() if not result.ok}

    def node_named(self, host: str, nodes: NodeSet) -> str | None:
        """As the base, and by address: ssh's error names the ``HostName`` it connected to, Open MPI and
        hydra may name a node as it calls itself; both resolve to the address ssh uses for the node."""
        found = super().node_named(host, nodes)
        if found is not None:
            return found
        wanted = _addresses(host.strip("[]\"'"))
        return (
            next((node for node in nodes if wanted & self._addresses_of(node)), None)
            if wanted
            else None
        )

    def _addresses_of(self, node: str) -> frozenset[str]:
        if node not in self._resolved:
            # ssh -G prints the configuration ssh would use for the node, HostName included.
            argv = [
                "ssh",
                "-G",
                *(["-F", self.profile.ssh.config] if self.profile.ssh.config else []),
                node,
            ]
            done = runner.run(argv, timeout=self.profile.ssh.connect_timeout)
            hostname = next(
                (
                    line.split(None, 1)[1].strip()
                    for line in done.stdout.splitlines()
                    if line.startswith("hostname ")
                ),
                node,
            )
            self._resolved[node] = _addresses(hostname) | {hostname}
        return self._resolved[node]


def _end_fan_out(pid: int) -> None:
    """End a running fan-out's commands as a stopped hpcos would: its ssh clients (its children)
    get SIGTERM, so each node's watchdog, seeing its ssh session close, ends the command's session;
    the fan-out then reports what the nodes printed so far.  Waits for it within FANOUT_END s."""
    runner.signal_children(pid, signal.SIGTERM)
    runner.wait_exited(pid, FANOUT_END)


def _why(result: CommandResult) -> str:
    if result.timed_out:
        return f"no answer to ssh within {result.duration:.0f} s"
    said = next((line.strip() for line in result.stderr.splitlines() if line.strip()), "")
    return (
        f"unreachable: {said}"
        if result.unreachable
        else f"ssh probe failed (exit {result.exit_code}): {said}"
    )


def _addresses(host: str) -> frozenset[str]:
    try:
        return frozenset(str(info[4][0]) for info in socket.getaddrinfo(host, None))
    except (OSError, UnicodeError):
        return frozenset()


def _is_ssh_error(stderr: str) -> bool:
    # ssh's own complaints, as opposed to a remote command that happens to exit 255.
    markers = (
        "ssh: ",
        "Connection refused",
        "Connection timed out",
        "Permission denied",
        "Could not resolve hostname",
        "kex_exchange_identification",
        "Connection closed by",
        "No route to host",
        "Host key verification failed",
    )
    return any(m in stderr for m in markers)
