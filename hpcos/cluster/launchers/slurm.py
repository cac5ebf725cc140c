"""The Slurm launcher: ``srun`` for node commands and MPI jobs, ``sbatch --wait`` for batch scripts.

Every srun/sbatch runs under ``hpcos.core.runner``'s timeout: a request the partition cannot satisfy
stays pending forever.  Each launch gets its own job name so that, after a timeout, ``scancel --name``
removes a pending or running job that the killed client left behind.
"""

from __future__ import annotations

import os
import re
import shlex
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ClusterShell.NodeSet import NodeSet

from hpcos.cluster import mpi_errors
from hpcos.cluster.launchers.base import Command, CommandResult, Launcher, command_text, with_env
from hpcos.cluster.profiles import MpiStack
from hpcos.cluster.schedulers import slurm as slurm_scheduler
from hpcos.core import runner, stacks
from hpcos.core.environment import launch_environment

SCANCEL_TIMEOUT = 10
REMOTE_KILL_GRACE = 2  # seconds between a node's own TERM and KILL of its command
STEP_GRACE = 15  # seconds for srun to allocate, launch and collect beyond the nodes' own timeout
# What each task of a node-command step runs: $0 the command, $1 its timeout, $2 the kill grace.  It
# names its node first and says last how the command ended (a marker line the launcher takes out).
STEP_SCRIPT = (
    'printf "@hpcos-node %s\\n" "$SLURMD_NODENAME"; s=$(date +%s.%N); '
    'timeout -k "$2" "$1" sh -c "$0" </dev/null; r=$?; '
    'printf "\\n@hpcos-end %s %s %s\\n" "$r" "$s" "$(date +%s.%N)"'
)
TIMEOUT_EXIT = 124  # coreutils timeout's exit code when the command ran out of time
# Nodes per job step.  One step of 256 tasks on a simulated 256-slurmd cluster lost every task's output
# (srun: "io_init_msg_unpack: unpack error") while 128 ran whole; larger node sets go as several steps
# at once, still a handful of jobs for slurmctld where one job per node was a thousand.
STEP_NODES = 128
STEPS_AT_ONCE = 8
# A step whose tasks all vanished (none named its node, srun did not time out) is split in two and each
# half run again, down to this size: below it, srun's own lines are attributed to the nodes.
SPLIT_DOWN_TO = 8
_LABELLED = re.compile(r"^\s*(\d+): ?(.*)$")
_END = re.compile(r"^(?P<rest>.*)@hpcos-end (?P<code>\d+) (?P<start>[\d.]+) (?P<end>[\d.]+)$")


class SlurmLauncher(Launcher):
    name = "slurm"

    def run(
        self,
        command: Command,
        nodes: NodeSet,
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
    ) -> dict[str, CommandResult]:
        """One job step across ``nodes``, one task each, output labelled by task (``srun --label``): a
        thousand nodes cost slurmctld one job, not a thousand.  Each task says which node it is on and
        how its command ended, under a per-node timeout; ``--no-kill`` keeps the step going on the
        other nodes when one fails to launch, and srun's own error lines name that node."""
        chunks = [
            NodeSet.fromlist(list(nodes)[i : i + STEP_NODES])
            for i in range(0, len(nodes), STEP_NODES)
        ]
        if len(chunks) == 1:
            return self._step(command, nodes, timeout, env)
        results: dict[str, CommandResult] = {}
        with ThreadPoolExecutor(max_workers=min(len(chunks), STEPS_AT_ONCE)) as pool:
            for part in pool.map(lambda chunk: self._step(command, chunk, timeout, env), chunks):
                results.update(part)
        return results

    def _step(
        self, command: Command, nodes: NodeSet, timeout: float, env: Mapping[str, str] | None
    ) -> dict[str, CommandResult]:
        text = command_text(command)
        done = self.srun(
            _step_arguments(command, nodes, timeout),
            node=str(nodes),
            shown=text,
            timeout=timeout + REMOTE_KILL_GRACE + STEP_GRACE,
            env=env,
        )
        if len(nodes) > SPLIT_DOWN_TO and lost_every_task(done):
            half = len(nodes) // 2
            return {
                **self._step(command, NodeSet.fromlist(list(nodes)[:half]), timeout, env),
                **self._step(command, NodeSet.fromlist(list(nodes)[half:]), timeout, env),
            }
        return split_step(done, nodes, text)

    def rank_stacks(self, job_name: str, binary: str, nodes: NodeSet) -> str:
        """Where the ranks of ``binary`` are on ``nodes``, in the running job ``job_name``: the
        node-side look (``hpcos.core.stacks``) as a step of that job beside the hung one (``srun
        --jobid --overlap``: the job's CPUs are all taken), one task per node, labelled output."""
        found = runner.run(
            ["squeue", "-h", f"--name={job_name}", "-o", "%A"],
            timeout=SCANCEL_TIMEOUT,
            base_env=launch_environment(),
        )
        ids = [word for word in found.stdout.split() if word.isdigit()]
        if not ids:
            said = (found.output.strip().splitlines() or ["no such job"])[-1][:200]
            return f"{stacks.HEADLINE} not looked at: the job was not found ({said})"
        command = stacks.node_command(binary)
        argv = [
            "srun",
            f"--jobid={ids[0]}",
            "--overlap",
            *_step_arguments(command, nodes, stacks.NODE_TOTAL),
        ]
        done = runner.run(
            argv,
            timeout=stacks.NODE_TOTAL + REMOTE_KILL_GRACE + STEP_GRACE,
            base_env=launch_environment(),
        )
        step = CommandResult(
            None, "", done.exit_code, done.stdout, done.stderr, done.duration, done.timed_out
        )
        return stacks.node_stacks(
            {
                node: stacks.NodeLook(r.exit_code, r.stdout, r.stderr, r.timed_out)
                for node, r in split_step(step, nodes, "").items()
            }
        )

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
        placement = self.placement(np, nodes)
        used = NodeSet.fromlist(placement)
        program = [binary, *args]
        # Block distribution, as the placement says: ranks 0..k-1 on the first node of -w.
        argv = [
            f"--mpi={stack.srun_mpi}",
            "-n",
            str(np),
            "-N",
            str(len(used)),
            "-w",
            str(used),
            "--distribution=block",
            *(_shell(program, stack.module) if stack.module else program),
        ]
        result = self.srun(
            argv,
            node=str(used),
            shown=None,
            timeout=timeout,
            env={**stack.env, **(env or {})},
            look=(lambda name: self.rank_stacks(name, binary, used)) if look else None,
        )
        result.placement = placement
        return result

    def unavailable(self, nodes: NodeSet) -> dict[str, str]:
        """Slurm's own node states: a node srun cannot start on is the scheduler's to report."""
        return slurm_scheduler.unavailable(
            nodes, self.profile.slurm.partition, self.profile.timeouts.command
        )

    def srun(
        self,
        args: Sequence[str],
        *,
        node: str | None,
        shown: str | None,
        timeout: float,
        env: Mapping[str, str] | None = None,
        look: Callable[[str], str] | None = None,
    ) -> CommandResult:
        """``srun`` with the profile's partition, time limit and extra arguments, under a timeout;
        ``look(job name)`` runs at the timeout, before the kill (where an MPI job's ranks are)."""
        name = _job_name()
        argv = ["srun", f"--job-name={name}", *self._allocation_args(), *args]
        done = runner.run(
            argv,
            timeout=timeout,
            env=env,
            base_env=launch_environment(),
            before_kill=(lambda pid: look(name)) if look else None,
        )
        if done.timed_out:
            self._cancel(name)
        return CommandResult(
            node,
            shown or shlex.join(argv),
            done.exit_code,
            done.stdout,
            done.stderr,
            done.duration,
            done.timed_out,
            stacks=done.before_kill,
        )

    def batch(
        self, script: str, *, nodes: NodeSet, timeout: float, env: Mapping[str, str] | None = None
    ) -> CommandResult:
        name = _job_name()
        # The job's output is written by slurmd on the node: the directory must be shared with this
        # host on a real cluster ($HPCOS_BATCH_DIR, e.g. in the Jenkins workspace).
        with tempfile.TemporaryDirectory(
            prefix="hpcos-sbatch-", dir=os.environ.get("HPCOS_BATCH_DIR")
        ) as tmp:
            output = Path(tmp) / "job.out"
            # --wait makes sbatch exit with the job's own exit code.
            argv = [
                "sbatch",
                "--wait",
                f"--job-name={name}",
                *self._allocation_args(),
                "-N",
                "1",
                "-w",
                nodes[0],
                f"--output={output}",
                "--wrap",
                script,
            ]
            done = runner.run(argv, timeout=timeout, env=env, base_env=launch_environment())
            if done.timed_out:
                self._cancel(name)
            job_output = output.read_text(errors="replace") if output.exists() else ""
        return CommandResult(
            nodes[0],
            f"sbatch --wait --wrap {shlex.quote(script)}",
            done.exit_code,
            job_output,
            done.stderr + done.stdout,
            done.duration,
            done.timed_out,
        )

    def _allocation_args(self) -> list[str]:
        slurm = self.profile.slurm
        args = [f"--time={slurm.time_limit}"]
        if slurm.partition:
            args.append(f"--partition={slurm.partition}")
        return args + list(slurm.extra_args)

    def _cancel(self, name: str) -> None:
        runner.run(["scancel", f"--name={name}"], timeout=SCANCEL_TIMEOUT)


def lost_every_task(done: CommandResult) -> bool:
    """Whether a node-command step failed before any task could say which node it ran on: srun's own
    failure (its I/O set-up, a launch refused), not the nodes' commands, which always name their node."""
    return not done.timed_out and done.exit_code != 0 and "@hpcos-node " not in done.stdout


def split_step(done: CommandResult, nodes: NodeSet, text: str) -> dict[str, CommandResult]:
    """One result per node from a labelled node-command step (``STEP_SCRIPT``).  A node whose task
    never started is unreachable when srun names it in a launch or node failure, else it shares the
    step's end (its timeout, srun's exit code and its lines)."""
    tasks: dict[str, dict[str, list[str]]] = {}
    node_of: dict[str, str] = {}
    ends: dict[str, re.Match] = {}
    own: list[str] = []  # srun's own lines (unlabelled)
    for stream in ("stdout", "stderr"):
        for line in getattr(done, stream).splitlines():
            match = _LABELLED.match(line)
            if not match:
                own.append(line)
                continue
            task, body = match.groups()
            if stream == "stdout" and body.startswith("@hpcos-node ") and task not in node_of:
                node_of[task] = body.split(" ", 1)[1].strip()
                continue
            end = _END.match(body) if stream == "stdout" else None
            lines = tasks.setdefault(task, {"stdout": [], "stderr": []})[stream]
            if end:
                ends[task] = end
                if end.group("rest"):
                    lines.append(end.group("rest"))
                elif lines and lines[-1] == "":
                    lines.pop()  # the newline the marker line starts with
                continue
            lines.append(body)
    results: dict[str, CommandResult] = {}
    for task, node in node_of.items():
        if node not in nodes:
            continue
        out = tasks.get(task, {"stdout": [], "stderr": []})
        stdout = "\n".join(out["stdout"]) + ("\n" if out["stdout"] else "")
        stderr = "\n".join(out["stderr"]) + ("\n" if out["stderr"] else "")
        end = ends.get(task)
        if end is None:  # the step ended (its timeout, a node failure) before this task did
            results[node] = CommandResult(
                node,
                text,
                done.exit_code,
                stdout,
                stderr + "\n".join(own),
                done.duration,
                timed_out=done.timed_out,
            )
            continue
        code = int(end.group("code"))
        results[node] = CommandResult(
            node,
            text,
            code,
            stdout,
            stderr,
            max(0.0, float(end.group("end")) - float(end.group("start"))),
            timed_out=code == TIMEOUT_EXIT,
        )
    srun_said = "\n".join(own)
    failed = set(mpi_errors.unreachable_hosts(srun_said))
    for node in nodes:
        if node not in results:
            results[node] = CommandResult(
                node,
                text,
                done.exit_code if done.exit_code else -1,
                "",
                srun_said,
                done.duration,
                timed_out=done.timed_out and node not in failed,
                unreachable=node in failed,
            )
    return results


def _step_arguments(command: Command, nodes: NodeSet, timeout: float) -> list[str]:
    """srun's arguments for a node-command step: one task per node, labelled, each under
    ``STEP_SCRIPT`` (names its node, ends its command at ``timeout``, says how it ended)."""
    return [
        "-N",
        str(len(nodes)),
        "-n",
        str(len(nodes)),
        "--ntasks-per-node=1",
        "-w",
        str(nodes),
        "--no-kill",
        "--kill-on-bad-exit=0",
        "--label",
        "sh",
        "-c",
        STEP_SCRIPT,
        with_env(command, None),
        f"{timeout:g}",
        str(REMOTE_KILL_GRACE),
    ]


def _job_name() -> str:
    return f"hpcos-{uuid.uuid4().hex[:12]}"


def _shell(command: Command, module: str | None) -> list[str]:
    if isinstance(command, str) or module:
        return ["sh", "-c", with_env(command, None, module)]
    return list(command)
