"""One harness run: the selected profile, nodes, stacks and launcher, the node fan-out, the results.

The plugin keeps one ``HarnessSession`` per pytest session; fixtures and hooks read it.  Node tests
are parametrized per node, yet a command is fanned out over all selected nodes at once: the first
(test, node) item that runs a command launches it everywhere, and the items for the other nodes read
their node's share.  That keeps one result per (test, node) without one ssh round per item.

Before the first test, a pre-flight asks the launcher which nodes cannot run tests now (Slurm's node
states, a short ssh probe).  Those nodes, and any node lost during the run, are reported once, by the
first (test, node) that meets them; their other tests are skipped with a pointer to that report, and
MPI jobs run on the nodes that are left.
"""

from __future__ import annotations

import os
import shlex
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ClusterShell.NodeSet import NodeSet, NodeSetParseError

from hpcos.cluster import mpi_errors
from hpcos.cluster.launchers import CommandResult, Launcher, launcher_for
from hpcos.cluster.launchers.base import Command, command_text
from hpcos.cluster.profiles import MpiStack, Profile, load_profile
from hpcos.core.files import file_digest
from hpcos.results.model import RunResults, TestResult
from hpcos.site import Site

DEFAULT_CLUSTER = "local"
BLAME_TIMEOUT = (
    30  # seconds for each bisecting run of a failed job (a hang there is the node's answer)
)
BLAME_RUNS = (
    16  # bisecting runs per failed job at most (two per node to blame on 1,000 nodes: log2)
)


@dataclass
class Selection:
    """What the command line (or ini file) asked for."""

    cluster: str = DEFAULT_CLUSTER
    nodes: str | None = None
    mpi: str | None = None
    explicit: bool = False  # a cluster or results file was asked for: every test is a harness test


@dataclass
class Unreachable:
    reason: str  # "drained: <Slurm's reason>", "unreachable: ssh: connect to host ...", ...
    reported_by: (
        str | None
    )  # the test id whose result carries the failure; None until a test meets it


@dataclass
class HarnessSession:
    selection: Selection
    rootpath: Path
    site: Site
    results: list[TestResult] = field(default_factory=list)
    unreachable: dict[str, Unreachable] = field(default_factory=dict)
    mpi_broken: dict[str, set[str]] = field(
        default_factory=dict
    )  # stack -> nodes its jobs failed on alone
    started: str = field(default_factory=lambda: _now())
    _profile: Profile | None = None
    _launcher: Launcher | None = None
    _fanout: dict[tuple, dict[str, CommandResult]] = field(default_factory=dict)
    _fanout_test: str | None = None
    _preflight: dict[str, str] | None = None
    preflight_shown: bool = False  # the plugin said on the terminal what the pre-flight found

    @property
    def used(self) -> bool:
        return self._profile is not None

    @property
    def profile_file(self) -> Path:
        return self.site.profile_path(self.selection.cluster, root=self.rootpath)

    @property
    def profile(self) -> Profile:
        if self._profile is None:
            self._profile = load_profile(self.profile_file)
        return self._profile

    @property
    def launcher(self) -> Launcher:
        if self._launcher is None:
            self._launcher = launcher_for(self.profile)
        return self._launcher

    @property
    def nodes(self) -> NodeSet:
        return self.profile.select_nodes(self.selection.nodes)

    @property
    def available(self) -> NodeSet:
        """The selected nodes that can run tests: MPI jobs run on these."""
        self.preflight()
        return self.nodes - NodeSet.fromlist(self.unreachable)

    def mpi_nodes(self, stack: MpiStack) -> NodeSet:
        """Where ``stack``'s next job runs: the available nodes, less those a bisected job of this stack
        failed on alone (named once, by that job)."""
        return self.available - NodeSet.fromlist(self.mpi_broken.get(stack.name, ()))

    def preflight(self) -> dict[str, str]:
        """node -> why it is unavailable, as the launcher's check found at the start of the run (the
        check runs once, on the first call)."""
        if self._preflight is None:
            self._preflight = self.launcher.unavailable(self.nodes)
            for node, reason in self._preflight.items():
                self.unreachable.setdefault(node, Unreachable(reason, None))
        return self._preflight

    def stacks(self) -> list[MpiStack]:
        return self.profile.stacks(self.selection.mpi)

    def stack(self, stack: MpiStack | str) -> MpiStack:
        return stack if isinstance(stack, MpiStack) else self.profile.stacks(stack)[0]

    def run_on_node(
        self,
        test_id: str,
        command: Command,
        node: str,
        *,
        timeout: float | None,
        env: Mapping[str, str] | None,
    ) -> tuple[CommandResult, float]:
        """``command`` on ``node``, fanned out over every selected node the first time a test asks;
        with the wall time of the fan-out when this call launched it (0 when it read its share)."""
        timeout = timeout or self.profile.timeouts.command
        if test_id != self._fanout_test:
            self._fanout, self._fanout_test = {}, test_id  # one test's outputs at a time
        text = command_text(command)
        key = (text, tuple(sorted((env or {}).items())), timeout)
        if key not in self._fanout or node not in self._fanout[key]:
            targets = NodeSet(node)
            # A command that names its node is meant for that node only: fanning it out would run
            # it N times per test instead of once per node.
            if node in self.nodes and node not in text:
                targets.update(self.available)
            started = time.monotonic()
            self._fanout[key] = self.launcher.run(command, targets, timeout=timeout, env=env)
            self.recheck(list(self._fanout[key].values()), test_id)
            return self._fanout[key][node], time.monotonic() - started
        return self._fanout[key][node], 0.0

    def run_once(
        self, command: Command, node: str, *, timeout: float | None, env: Mapping[str, str] | None
    ) -> CommandResult:
        timeout = timeout or self.profile.timeouts.command
        return self.launcher.run(command, NodeSet(node), timeout=timeout, env=env)[node]

    def note_unreachable(self, node: str, reason: str, test_id: str) -> bool:
        """Remember a node lost during the run; True when this test is the first to meet it (it reports it)."""
        if node in self.unreachable or node not in self.nodes:
            return False
        self.unreachable[node] = Unreachable(reason, test_id)
        return True

    def recheck(self, results: list[CommandResult], test_id: str) -> dict[str, str]:
        """After failed or timed-out commands or jobs: which of their nodes are lost.  The launcher's own
        words first (Open MPI's lost daemon, ssh's and hydra's launch errors, srun's node failures,
        hosts mapped to nodes as the launcher resolves them), then one launcher check of the nodes they
        used (sinfo, one ssh ``true`` each).  Each lost node is marked once: its remaining tests skip,
        jobs run on the rest.  Returns node -> reason for the nodes this call marked."""
        failed = [r for r in results if not r.ok]
        if not failed or not self.used:
            return {}
        known = NodeSet.fromlist(self.unreachable)
        lost: dict[str, str] = {}
        used = NodeSet()
        for result in failed:
            nodes = (
                NodeSet.fromlist(result.placement) if result.placement else _node_set(result.node)
            ) & self.nodes
            candidates = nodes - known
            used.update(candidates)
            for host, line in mpi_errors.host_lines(result.stderr + "\n" + result.stdout).items():
                node = self.launcher.node_named(host, candidates)
                if node is not None:
                    lost.setdefault(node, f"lost during the run: {line[:300]}")
            if result.unreachable and result.node and result.node in candidates:
                lost.setdefault(result.node, f"unreachable: {_first_line(result.stderr)}")
        rest = used - NodeSet.fromlist(lost)
        if rest:
            for node, why in self.launcher.unavailable(rest).items():
                lost.setdefault(node, f"lost during the run: {why}")
        return {
            node: why for node, why in lost.items() if self.note_unreachable(node, why, test_id)
        }

    def blame(
        self,
        result: CommandResult,
        binary: str,
        args: list[str],
        stack: MpiStack,
        *,
        timeout: float,
        env: Mapping[str, str] | None,
    ) -> None:
        """A multi-node job failed on nodes that all still answer: bisect it.  The same program runs on
        halves of the job's nodes, then on the halves of each half that fails, down to single nodes,
        each run bounded (``BLAME_TIMEOUT`` at most) and at most ``BLAME_RUNS`` runs; the nodes where it
        fails alone are named first in the failure (``result.blamed``) and become the result's node.

        The runs of one level share no node, so they run at once: a hang costs the bound once per
        level, not once per run.  They are not looked at when they time out: only pass or fail
        counts here, and the failed job's own look already says where its ranks were."""
        if result.ok or len(result.placement) < 2:
            return
        bound = min(timeout, BLAME_TIMEOUT)
        # A node alone gets at least two ranks, as a job on one node would: the probes that exchange
        # messages (ring, pingpong) refuse one rank, which would blame every healthy node.
        least = min(sum(result.placement.values()), 2)

        def alone(nodes: list[str]) -> CommandResult:
            np = max(sum(result.placement[n] for n in nodes), least)
            return self.launcher.mpi(
                binary,
                args,
                np=np,
                stack=stack,
                nodes=NodeSet.fromlist(nodes),
                timeout=bound,
                env=env,
                look=False,
            )

        runs = 0
        pending = [list(result.placement)]
        while pending and runs < BLAME_RUNS:
            level = [half for nodes in pending for half in _halves(nodes)][: BLAME_RUNS - runs]
            runs += len(level)
            with ThreadPoolExecutor(max_workers=len(level)) as pool:
                answers = list(pool.map(alone, level))
            pending = []
            for half, got in zip(level, answers, strict=True):
                if got.ok:
                    result.passed_alone.extend(half)
                elif len(half) == 1:
                    result.blamed[half[0]] = _why_alone(got)
                else:
                    pending.append(half)
        if result.blamed:
            result.node = str(NodeSet.fromlist(result.blamed))
            self.mpi_broken.setdefault(stack.name, set()).update(result.blamed)

    def rerun_command(self, keyword: str, nodes: str | None, mpi: str | None) -> str:
        """The ``hpcos test`` command that reruns one (test, node)."""
        argv = ["hpcos", "test", "--cluster", self.selection.cluster, "-k", keyword]
        if nodes:
            argv += ["--nodes", nodes]
        if mpi:
            argv += ["--mpi", mpi]
        return shlex.join(argv)

    def run_results(self) -> RunResults:
        cluster = self._profile.name if self._profile else self.selection.cluster
        return RunResults(
            run_id=f"{cluster}-{self.started.replace(':', '').replace('-', '')[:15]}-{uuid.uuid4().hex[:6]}",
            cluster=cluster,
            started=self.started,
            finished=_now(),
            versions=self.versions() if self._profile else {},
            testing_snapshot=os.environ.get("HPCOS_TESTING_SNAPSHOT") or None,
            build_url=os.environ.get("BUILD_URL") or None,
            profile_sha256=file_digest(self.profile_file) if self._profile else None,
            results=list(self.results),
        )

    def versions(self) -> dict[str, str]:
        """Kernel and MPI versions on the first reachable node: what this run tested."""
        reachable = self.nodes - NodeSet.fromlist(self.unreachable)
        if not reachable:
            return {}
        first = reachable[0]
        probes = {"kernel": "uname -r"}
        for stack in self.stacks():
            probes[stack.name] = with_module(f"{shlex.join(stack.mpirun[:1])} --version", stack)
        # The first line with a version number: Open MPI prints it first, MPICH's hydra second.
        script = "; ".join(
            f"echo {shlex.quote(name + '=')}\"$({cmd} 2>&1 | grep -m1 -E '[0-9]+[.][0-9]+' "
            f"| sed 's/^ *//')\""
            for name, cmd in probes.items()
        )
        result = self.run_once(script, first, timeout=self.profile.timeouts.command, env=None)
        versions = {}
        for line in result.stdout.splitlines():
            name, _, value = line.partition("=")
            if name in probes and value.strip():
                versions[name] = value.strip()
        return versions


def _node_set(text: str | None) -> NodeSet:
    try:
        return NodeSet(text or "")
    except NodeSetParseError:
        return NodeSet()


def _halves(nodes: list[str]) -> list[list[str]]:
    """A bisecting step: a single node is run alone, more are split in two."""
    if len(nodes) == 1:
        return [nodes]
    middle = len(nodes) // 2
    return [nodes[:middle], nodes[middle:]]


def _why_alone(result: CommandResult) -> str:
    """The node's own first word on why the job failed there: the first stderr line outside Open MPI's
    help blocks (which say only that a process failed), else the MPI library's summary."""
    if result.timed_out:
        return f"timed out after {result.duration:.0f} s"
    lines, inside = [], False
    for line in result.stderr.splitlines():
        if line.strip().startswith("-" * 20):
            inside = not inside
        elif not inside and line.strip():
            lines.append(line.strip())
    said = (
        lines[0] if lines else _first_line(mpi_errors.summary(result.stderr).replace("-" * 74, ""))
    )
    return f"exit code {result.exit_code}" + (f": {said[:300]}" if said else "")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def with_module(command: str, stack: MpiStack) -> str:
    return (
        f"module load {shlex.quote(stack.module)} >/dev/null 2>&1; {command}"
        if stack.module
        else command
    )


def _now() -> str:
    # To the microsecond: the gate orders a run's start against deployments and out-of-service marks
    # that can fall in the same second.
    return datetime.now(UTC).isoformat(timespec="microseconds")
