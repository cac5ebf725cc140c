"""Fixtures the integration tests use: the profile, nodes, MPI stack, launcher and the run helpers.

Every command a test runs goes through ``run`` or ``mpi_run``: through the profile's launcher, under
a timeout that kills the whole process tree, recorded on the current (test, node) result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

import pytest
from ClusterShell.NodeSet import NodeSet

from harness.repeats import Reading, judge, settle
from harness.repeats import describe as describe_judgement
from harness.session import HarnessSession
from harness.state import ItemState, harness_session, item_state, site
from hpcos.cluster.launchers import CommandResult, Launcher
from hpcos.cluster.launchers.base import Command
from hpcos.cluster.profiles import MpiStack, Profile
from hpcos.core.environment import launch_environment
from hpcos.results.model import Direction, Measurement
from hpcos.site.credentials import job_environment

log = logging.getLogger("hpcos.harness")


@pytest.fixture(scope="session")
def hpcos_session(request) -> HarnessSession:
    return harness_session(request.config)


@pytest.fixture(scope="session")
def profile(hpcos_session) -> Profile:
    return hpcos_session.profile


@pytest.fixture(scope="session")
def nodes(hpcos_session) -> NodeSet:
    """The selected nodes (``--nodes``, else the profile's)."""
    return hpcos_session.nodes


@pytest.fixture
def mpi_nodes(hpcos_session) -> NodeSet:
    """The selected nodes the pre-flight found available (and none lost so far): where MPI jobs run."""
    return hpcos_session.available


@pytest.fixture(scope="session")
def launcher(hpcos_session) -> Launcher:
    return hpcos_session.launcher


@pytest.fixture
def node(request) -> str:
    # Replaced by the per-node parametrization (plugin.pytest_generate_tests); reaching this is a bug.
    raise pytest.UsageError(
        f"{request.node.nodeid}: the node fixture is parametrized by the hpcos plugin"
    )


@pytest.fixture
def mpi_stack(request) -> MpiStack:
    raise pytest.UsageError(
        f"{request.node.nodeid}: the mpi_stack fixture is parametrized by the hpcos plugin"
    )


def _state(request) -> ItemState:
    return item_state(request.node)


@pytest.fixture
def run(request, hpcos_session) -> Callable[..., CommandResult]:
    """``run(command, *, node=None, timeout=None, env=None) -> CommandResult``.

    ``node`` defaults to the test's node (node tests) or the first available selected node.  In a node
    test the command fans out over all available selected nodes once and each (test, node) reads its
    own result.
    """
    state = _state(request)

    def run(
        command: Command,
        *,
        node: str | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        target = node or state.node or (hpcos_session.available or hpcos_session.nodes)[0]
        if state.node and target == state.node:
            result, launched = hpcos_session.run_on_node(
                state.test_id, command, target, timeout=timeout, env=env
            )
            state.fanout_wall += launched
            state.fanout_own += result.duration
        else:
            result = hpcos_session.run_once(command, target, timeout=timeout, env=env)
            hpcos_session.recheck([result], state.test_id)
        state.commands.append(result)
        return result

    return run


@pytest.fixture
def mpi_run(request, hpcos_session) -> Callable[..., CommandResult]:
    """``mpi_run(binary, args=(), *, np=2, stack, timeout=None, env=None) -> CommandResult``:
    one MPI job across the available selected nodes, ``ranks_per_node`` on each of the first ones
    (mpirun with a host list for local/ssh, ``srun --mpi=... -w`` for Slurm); ``result.placement``
    says where the launcher put the ranks."""
    state = _state(request)

    def mpi_run(
        binary: str,
        args: Sequence[str] = (),
        *,
        np: int = 2,
        stack: MpiStack | str,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        chosen = hpcos_session.stack(stack)
        nodes = hpcos_session.mpi_nodes(chosen)
        if not nodes:
            pytest.skip(
                f"no node of {hpcos_session.nodes} is available for {chosen.name} jobs (each is reported once)"
            )
        argv = [str(a) for a in args]
        limit = timeout or hpcos_session.profile.timeouts.mpi
        result = hpcos_session.launcher.mpi(
            str(binary), argv, np=np, stack=chosen, nodes=nodes, timeout=limit, env=env
        )
        # A lost node is marked now, before the next job; a job that failed on nodes that all answer
        # is bisected to the node(s) it fails on alone, which this stack's next jobs leave out.
        if not result.ok and not hpcos_session.recheck([result], state.test_id):
            hpcos_session.blame(result, str(binary), argv, chosen, timeout=limit, env=env)
        state.commands.append(result)
        # What the job ran with, for the results and a ticket's reproduce command: a night's
        # OMPI_MCA_btl or LD_PRELOAD otherwise passes for whoever reruns it.
        night = launch_environment() if hpcos_session.launcher.inherits_environment else {}
        state.env, state.profile_env = job_environment(
            night, {**chosen.env, **(env or {})}, site(request.config).secrets
        )
        return result

    return mpi_run


@pytest.fixture
def measure(request, hpcos_session) -> Callable[..., Measurement]:
    """``measure(metric, value, unit, direction, size=None, samples=(), reference_key=None)``.

    Records a Measurement on the current (test, node) result.  When the profile has a reference
    for (reference_key or metric, MPI stack, size), a value outside it fails the test once the test
    body has finished, so every measurement of the test is still recorded.
    """
    state = _state(request)

    def measure(
        metric: str,
        value: float,
        unit: str,
        direction: Direction,
        size: int | None = None,
        samples: Sequence[float] = (),
        reference_key: str | None = None,
    ) -> Measurement:
        reference = hpcos_session.profile.reference(reference_key or metric, state.mpi, size)
        measurement = Measurement(
            metric, float(value), unit, direction, size, [float(s) for s in samples], reference
        )
        state.measurements.append(measurement)
        if reference is not None and not reference.admits(measurement.value):
            lo, hi = reference.bounds()
            where = f" at {size} B" if size is not None else ""
            state.violations.append(
                f"{metric}{where}: measured {measurement.value:g} {unit}, expected {reference.value:g} "
                f"{reference.unit} ({_bound(lo)}..{_bound(hi)})"
            )
        return measurement

    return measure


@pytest.fixture
def measure_repeatedly(request, hpcos_session) -> Callable[..., list[Measurement]]:
    """``measure_repeatedly(run_once, repeat=None) -> list[Measurement]``.

    ``run_once()`` runs the benchmark once and returns its ``Reading``s; it is called ``repeat``
    times (the profile's ``repeat``, default 3).  Each (metric, size) is recorded once: its value
    is the median of the runs, its samples every run's own samples (or the runs' values).  A
    reference is judged on the repeats as ``harness.repeats`` says, which may run the whole
    benchmark ``repeat`` times more, once.  Violations fail the test after its body, like ``measure``.
    """
    state = _state(request)
    profile = hpcos_session.profile

    def rounds(
        run_once: Callable[[], Iterable[Reading]], n: int
    ) -> dict[tuple[str, int | None], list[Reading]]:
        series: dict[tuple[str, int | None], list[Reading]] = {}
        for i in range(n):
            for reading in run_once():
                series.setdefault((reading.metric, reading.size), []).append(reading)
            short = [k for k, v in series.items() if len(v) != i + 1]
            if short:
                metric, size = short[0]
                pytest.fail(
                    f"run {i + 1} of {n} gave {metric}{'' if size is None else f' at {size} B'} "
                    f"{len(series[short[0]])} times, expected once per run",
                    pytrace=False,
                )
        return series

    def measure_repeatedly(
        run_once: Callable[[], Iterable[Reading]], repeat: int | None = None
    ) -> list[Measurement]:
        n = repeat or profile.repeat
        series = rounds(run_once, n)
        judgements = {}
        for (metric, size), readings in series.items():
            reference = profile.reference(metric, state.mpi, size)
            judgements[metric, size] = judge(
                [r.value for r in readings], readings[0].direction, reference
            )
        suspects = [key for key, j in judgements.items() if j.needs_rerun]
        if suspects:  # one rerun of the whole benchmark, however many of its values are suspect
            again = rounds(run_once, n)
            for metric, size in suspects:
                if (metric, size) not in again:
                    pytest.fail(
                        f"the rerun gave no {metric}{'' if size is None else f' at {size} B'}, which the "
                        "first runs did",
                        pytrace=False,
                    )
                judgements[metric, size] = settle(
                    judgements[metric, size], [r.value for r in again[metric, size]]
                )
        recorded = []
        for (metric, size), readings in series.items():
            first, j = readings[0], judgements[metric, size]
            samples = [s for r in readings for s in r.samples] or [r.value for r in readings]
            m = Measurement(
                metric, j.median, first.unit, first.direction, size, samples, j.reference
            )
            state.measurements.append(m)
            recorded.append(m)
            if j.reference is None:
                continue
            if j.fails:
                state.violations.append(describe_judgement(metric, size, first.unit, j))
            elif j.assessment.verdict == "not confirmed":
                # A pass worth knowing about: say it where the run is read, not only in a captured log.
                note = f"{state.test_id} [{state.mpi}]: {describe_judgement(metric, size, first.unit, j)}"
                log.warning("%s", note)
                _say(request.config, f"hpcos: reference {note}")
        return recorded

    return measure_repeatedly


def _say(config: pytest.Config, line: str) -> None:
    """A line on the terminal from inside a test body (where output is captured), as live logging does."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capture is None:
        reporter.write_line(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
