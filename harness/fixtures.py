"""Fixtures the integration tests use: the profile, nodes, MPI stack, launcher and the run helpers.

Every command a test runs goes through ``run`` or ``mpi_run``: through the profile's launcher, under
a timeout that kills the whole process tree, recorded on the current (test, node) result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pytest
from ClusterShell.NodeSet import NodeSet

from harness.launchers import CommandResult, Launcher
from harness.launchers.base import Command
from harness.profiles import MpiStack, Profile
from harness.session import HarnessSession
from harness.state import ItemState, harness_session, item_state
from hpcos.results.model import Direction, Measurement


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
    raise pytest.UsageError(f"{request.node.nodeid}: the node fixture is parametrized by the hpcos plugin")


@pytest.fixture
def mpi_stack(request) -> MpiStack:
    raise pytest.UsageError(f"{request.node.nodeid}: the mpi_stack fixture is parametrized by the hpcos plugin")


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

    def run(command: Command, *, node: str | None = None, timeout: float | None = None,
            env: Mapping[str, str] | None = None) -> CommandResult:
        target = node or state.node or (hpcos_session.available or hpcos_session.nodes)[0]
        if state.node and target == state.node:
            result, launched = hpcos_session.run_on_node(state.test_id, command, target, timeout=timeout, env=env)
            state.fanout_wall += launched
            state.fanout_own += result.duration
        else:
            result = hpcos_session.run_once(command, target, timeout=timeout, env=env)
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

    def mpi_run(binary: str, args: Sequence[str] = (), *, np: int = 2, stack: MpiStack | str,
                timeout: float | None = None, env: Mapping[str, str] | None = None) -> CommandResult:
        chosen = hpcos_session.stack(stack)
        if not hpcos_session.available:
            pytest.skip(f"no node of {hpcos_session.nodes} is available for MPI jobs (each is reported once)")
        result = hpcos_session.launcher.mpi(
            str(binary), [str(a) for a in args], np=np, stack=chosen, nodes=hpcos_session.available,
            timeout=timeout or hpcos_session.profile.timeouts.mpi, env=env)
        state.commands.append(result)
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

    def measure(metric: str, value: float, unit: str, direction: Direction, size: int | None = None,
                samples: Sequence[float] = (), reference_key: str | None = None) -> Measurement:
        reference = hpcos_session.profile.reference(reference_key or metric, state.mpi, size)
        measurement = Measurement(metric, float(value), unit, direction, size, [float(s) for s in samples],
                                  reference)
        state.measurements.append(measurement)
        if reference is not None and not reference.admits(measurement.value):
            lo, hi = reference.bounds()
            where = f" at {size} B" if size is not None else ""
            state.violations.append(
                f"{metric}{where}: measured {measurement.value:g} {unit}, expected {reference.value:g} "
                f"{reference.unit} ({_bound(lo)}..{_bound(hi)})")
        return measurement

    return measure


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
