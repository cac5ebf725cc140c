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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ClusterShell.NodeSet import NodeSet

from hpcos.cluster.launchers import CommandResult, Launcher, launcher_for
from hpcos.cluster.launchers.base import Command, command_text
from hpcos.cluster.profiles import MpiStack, Profile, load_profile
from hpcos.core.files import file_digest
from hpcos.results.model import RunResults, TestResult
from hpcos.site import Site

DEFAULT_CLUSTER = "local"


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
    reported_by: str | None  # the test id whose result carries the failure; None until a test meets it


@dataclass
class HarnessSession:
    selection: Selection
    rootpath: Path
    site: Site
    results: list[TestResult] = field(default_factory=list)
    unreachable: dict[str, Unreachable] = field(default_factory=dict)
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

    def run_on_node(self, test_id: str, command: Command, node: str, *, timeout: float | None,
                    env: Mapping[str, str] | None) -> tuple[CommandResult, float]:
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
            return self._fanout[key][node], time.monotonic() - started
        return self._fanout[key][node], 0.0

    def run_once(self, command: Command, node: str, *, timeout: float | None,
                 env: Mapping[str, str] | None) -> CommandResult:
        timeout = timeout or self.profile.timeouts.command
        return self.launcher.run(command, NodeSet(node), timeout=timeout, env=env)[node]

    def note_unreachable(self, node: str, reason: str, test_id: str) -> bool:
        """Remember a node lost during the run; True when this test is the first to meet it (it reports it)."""
        if node in self.unreachable or node not in self.nodes:
            return False
        self.unreachable[node] = Unreachable(reason, test_id)
        return True

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
        script = "; ".join(f"echo {shlex.quote(name + '=')}\"$({cmd} 2>&1 | grep -m1 -E '[0-9]+[.][0-9]+' "
                           f"| sed 's/^ *//')\""
                           for name, cmd in probes.items())
        result = self.run_once(script, first, timeout=self.profile.timeouts.command, env=None)
        versions = {}
        for line in result.stdout.splitlines():
            name, _, value = line.partition("=")
            if name in probes and value.strip():
                versions[name] = value.strip()
        return versions


def with_module(command: str, stack: MpiStack) -> str:
    return f"module load {shlex.quote(stack.module)} >/dev/null 2>&1; {command}" if stack.module else command


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
