"""The local launcher: this machine is the only node (a laptop, a CI host, the ``local`` profile)."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence

from ClusterShell.NodeSet import NodeSet

from hpcos.cluster.launchers.base import Command, CommandResult, Launcher, command_text, with_env
from hpcos.cluster.profiles import MpiStack
from hpcos.core import runner
from hpcos.core.environment import launch_environment
from hpcos.core.stacks import rank_stacks


class LocalLauncher(Launcher):
    name = "local"

    def run(
        self,
        command: Command,
        nodes: NodeSet,
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
    ) -> dict[str, CommandResult]:
        # Every node name stands for this machine; running it once per name keeps one result per node.
        return {node: run_local(command, node=node, timeout=timeout, env=env) for node in nodes}

    def placement(self, np: int, nodes: NodeSet) -> dict[str, int]:
        return {socket.gethostname(): np}  # every rank runs here, whatever the node names

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
        argv = [*stack.mpirun, "-np", str(np), binary, *args]
        command = with_env(argv, None, stack.module) if stack.module else argv
        result = run_local(
            command,
            node=str(nodes),
            timeout=timeout,
            env={**stack.env, **(env or {})},
            before_kill=rank_stacks if look else None,
        )
        result.placement = self.placement(np, nodes)
        return result


def run_local(
    command: Command,
    *,
    node: str | None,
    timeout: float,
    env: Mapping[str, str] | None = None,
    before_kill=None,
) -> CommandResult:
    done = runner.run(
        command, timeout=timeout, env=env, base_env=launch_environment(), before_kill=before_kill
    )
    return CommandResult(
        node,
        command_text(command),
        done.exit_code,
        done.stdout,
        done.stderr,
        done.duration,
        done.timed_out,
        stacks=done.before_kill,
    )
