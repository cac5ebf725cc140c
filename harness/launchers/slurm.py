"""The Slurm launcher: ``srun`` for node commands and MPI jobs, ``sbatch --wait`` for batch scripts.

Every srun/sbatch runs under ``hpcos.core.runner``'s timeout: a request the partition cannot satisfy
stays pending forever.  Each launch gets its own job name so that, after a timeout, ``scancel --name``
removes a pending or running job that the killed client left behind.
"""

from __future__ import annotations

import logging
import os
import shlex
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ClusterShell.NodeSet import NodeSet

from harness.launchers.base import Command, CommandResult, Launcher, command_text, with_env
from harness.profiles import MpiStack
from hpcos.core import runner
from hpcos.site.credentials import launch_environment

SCANCEL_TIMEOUT = 10
# Node states in which a job can start (with others' jobs beside it or after them); every other state
# (drained, draining, down, fail, maint, reserved, future, unknown...) keeps the node out of the run.
USABLE_STATES = frozenset({"idle", "mixed", "allocated", "completing", "planned"})
log = logging.getLogger("hpcos.harness")


class SlurmLauncher(Launcher):
    name = "slurm"

    def run(self, command: Command, nodes: NodeSet, *, timeout: float,
            env: Mapping[str, str] | None = None) -> dict[str, CommandResult]:
        # One srun per node, ssh-like: a node's failure (or a drained node) stays its own result.
        with ThreadPoolExecutor(max_workers=min(self.profile.ssh.fanout, len(nodes))) as pool:
            futures = {node: pool.submit(self._run_on, command, node, timeout, env) for node in nodes}
            return {node: future.result() for node, future in futures.items()}

    def _run_on(self, command: Command, node: str, timeout: float, env) -> CommandResult:
        argv = ["-N", "1", "-n", "1", "-w", node, *_shell(command, None)]
        return self.srun(argv, node=node, shown=command_text(command), timeout=timeout, env=env)

    def mpi(self, binary: str, args: Sequence[str], *, np: int, stack: MpiStack, nodes: NodeSet,
            timeout: float, env: Mapping[str, str] | None = None) -> CommandResult:
        placement = self.placement(np, nodes)
        used = NodeSet.fromlist(placement)
        program = [binary, *args]
        # Block distribution, as the placement says: ranks 0..k-1 on the first node of -w.
        argv = [f"--mpi={stack.srun_mpi}", "-n", str(np), "-N", str(len(used)), "-w", str(used),
                "--distribution=block", *(_shell(program, stack.module) if stack.module else program)]
        result = self.srun(argv, node=str(used), shown=None, timeout=timeout, env={**stack.env, **(env or {})})
        result.placement = placement
        return result

    def unavailable(self, nodes: NodeSet) -> dict[str, str]:
        """Slurm's own node states (``sinfo``): drained, down, failed, ... nodes with Slurm's reason."""
        argv = ["sinfo", "--noheader", "--Node", f"--nodes={nodes}", "--format=%N|%T|%E"]
        if self.profile.slurm.partition:
            argv.append(f"--partition={self.profile.slurm.partition}")
        done = runner.run(argv, timeout=self.profile.timeouts.command)
        if done.exit_code != 0 or done.timed_out:
            log.warning("pre-flight: sinfo failed (exit %s), assuming every node is up: %s",
                        done.exit_code, done.stderr.strip()[:500])
            return {}
        return node_problems(done.stdout, nodes)

    def srun(self, args: Sequence[str], *, node: str | None, shown: str | None, timeout: float,
             env: Mapping[str, str] | None = None) -> CommandResult:
        """``srun`` with the profile's partition, time limit and extra arguments, under a timeout."""
        name = _job_name()
        argv = ["srun", f"--job-name={name}", *self._allocation_args(), *args]
        done = runner.run(argv, timeout=timeout, env=env, base_env=launch_environment())
        if done.timed_out:
            self._cancel(name)
        return CommandResult(node, shown or shlex.join(argv), done.exit_code, done.stdout, done.stderr,
                             done.duration, done.timed_out)

    def batch(self, script: str, *, nodes: NodeSet, timeout: float,
              env: Mapping[str, str] | None = None) -> CommandResult:
        name = _job_name()
        # The job's output is written by slurmd on the node: the directory must be shared with this
        # host on a real cluster ($HPCOS_BATCH_DIR, e.g. in the Jenkins workspace).
        with tempfile.TemporaryDirectory(prefix="hpcos-sbatch-", dir=os.environ.get("HPCOS_BATCH_DIR")) as tmp:
            output = Path(tmp) / "job.out"
            # --wait makes sbatch exit with the job's own exit code.
            argv = ["sbatch", "--wait", f"--job-name={name}", *self._allocation_args(),
                    "-N", "1", "-w", nodes[0], f"--output={output}", "--wrap", script]
            done = runner.run(argv, timeout=timeout, env=env, base_env=launch_environment())
            if done.timed_out:
                self._cancel(name)
            job_output = output.read_text(errors="replace") if output.exists() else ""
        return CommandResult(nodes[0], f"sbatch --wait --wrap {shlex.quote(script)}", done.exit_code,
                             job_output, done.stderr + done.stdout, done.duration, done.timed_out)

    def _allocation_args(self) -> list[str]:
        slurm = self.profile.slurm
        args = [f"--time={slurm.time_limit}"]
        if slurm.partition:
            args.append(f"--partition={slurm.partition}")
        return args + list(slurm.extra_args)

    def _cancel(self, name: str) -> None:
        runner.run(["scancel", f"--name={name}"], timeout=SCANCEL_TIMEOUT)


def node_problems(sinfo: str, nodes: NodeSet) -> dict[str, str]:
    """node -> ``STATE: reason`` for the nodes of ``nodes`` that ``sinfo -N -o %N|%T|%E`` shows unable to
    take a job, or does not list at all."""
    problems: dict[str, str] = {}
    listed: set[str] = set()
    for line in sinfo.splitlines():
        name, _, rest = line.strip().partition("|")
        state, _, reason = rest.partition("|")
        if not name or name not in nodes:
            continue
        listed.add(name)
        # "idle*" is a node slurmctld cannot reach; "~" powered down, "#" powering up, "!" pending power down.
        base = state.strip().rstrip("*~#!%$@^-").lower()
        if base in USABLE_STATES and not state.strip().endswith(("*", "~", "#", "!", "%")):
            continue
        why = reason.strip() if reason.strip() and reason.strip() != "none" else "no reason given"
        problems.setdefault(name, f"{base or 'unknown'}{' (not responding)' if state.endswith('*') else ''}: {why}")
    for node in nodes:
        if node not in listed:
            problems[node] = "unknown to Slurm: sinfo lists no such node"
    return problems


def _job_name() -> str:
    return f"hpcos-{uuid.uuid4().hex[:12]}"


def _shell(command: Command, module: str | None) -> list[str]:
    if isinstance(command, str) or module:
        return ["sh", "-c", with_env(command, None, module)]
    return list(command)
