"""The Slurm launcher: ``srun`` for node commands and MPI jobs, ``sbatch --wait`` for batch scripts.

Every srun/sbatch runs under ``hpcos.core.runner``'s timeout: a request the partition cannot satisfy
stays pending forever.  Each launch gets its own job name so that, after a timeout, ``scancel --name``
removes a pending or running job that the killed client left behind.
"""

from __future__ import annotations

import os
import shlex
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ClusterShell.NodeSet import NodeSet

from hpcos.cluster.launchers.base import Command, CommandResult, Launcher, command_text, with_env
from hpcos.cluster.profiles import MpiStack
from hpcos.cluster.schedulers import slurm as slurm_scheduler
from hpcos.core import runner
from hpcos.core.environment import launch_environment

SCANCEL_TIMEOUT = 10


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
        """Slurm's own node states: a node srun cannot start on is the scheduler's to report."""
        return slurm_scheduler.unavailable(nodes, self.profile.slurm.partition, self.profile.timeouts.command)

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


def _job_name() -> str:
    return f"hpcos-{uuid.uuid4().hex[:12]}"


def _shell(command: Command, module: str | None) -> list[str]:
    if isinstance(command, str) or module:
        return ["sh", "-c", with_env(command, None, module)]
    return list(command)
