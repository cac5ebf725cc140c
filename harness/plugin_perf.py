"""The perf side of the hpcos pytest plugin: record every measurement, fail confirmed regressions.

It runs first at the end of a session (``tryfirst``), so the results file and the tickets see the
regressions as ordinary failures of class "performance regression".

Confirm-by-rerun uses the harness's results contract: every measured (test, node) result carries
the ``hpcos test ... -k ITEM --nodes NODE --mpi STACK`` command that reruns exactly it.  All
suspects are rerun once, together, in one child session per profile: their keywords joined with
``or``, their nodes and stacks united (``--hpcos-results`` to a temporary file, ``--tickets off``,
and ``HPCOS_PERF_CONFIRMING`` set so the child neither records nor reruns).  Each suspect's fresh
measurement decides it.

The child is a pytest session (``python -m pytest``) on this session's rootdir and test paths, not
``hpcos test``: the harness sits below the command line and does not start it.  The options of a
rerun command (``--cluster``, ``-k``, ``--nodes``, ``--mpi``) are the harness plugin's own pytest
options under the same names, which ``hpcos test`` passes to pytest unchanged.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from ClusterShell.NodeSet import NodeSet

from harness.state import SESSION_KEY, site
from hpcos.core import runner
from hpcos.core.environment import launch_environment
from hpcos.core.errors import UserError
from hpcos.results.model import RunResults, TestResult

CONFIRMING = "HPCOS_PERF_CONFIRMING"
REGRESSIONS = pytest.StashKey[int]()


def pytest_addoption(parser):
    group = parser.getgroup("hpcos-perf", "hpcos performance history")
    group.addoption(
        "--perf-db",
        metavar="FILE",
        help="results database (default: the store's site.harness.results_db; none: not recorded)",
    )
    group.addoption(
        "--perf-charts",
        metavar="DIR",
        default="perf-charts",
        help="where trend charts of regressions go (default: ./perf-charts)",
    )
    group.addoption(
        "--perf-rerun-timeout",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="time limit of the one rerun that confirms a suspected regression",
    )


def results_db(config: pytest.Config) -> Path | None:
    """--perf-db, else the site's results database; None when neither can be found."""
    if config.getoption("perf_db"):
        return Path(config.getoption("perf_db"))
    try:
        return site(config).results_db
    except UserError:
        return None


def node_class(config: pytest.Config, run: RunResults) -> str:
    """The profile's node class; the cluster name when the harness session does not say."""
    try:
        return config.stash[SESSION_KEY].profile.node_class
    except KeyError:  # the run did not come from a harness session
        return run.cluster


def _split_rerun(command: str) -> tuple[tuple[str, ...], str, str | None, str | None] | None:
    """(the other options, -k, --nodes, --mpi) of an ``hpcos test`` rerun command, or None."""
    argv = shlex.split(command)
    if argv[:2] != ["hpcos", "test"]:
        return None
    rest, picked = [], {"-k": None, "--nodes": None, "--mpi": None}
    args = iter(argv[2:])
    for arg in args:
        if arg in picked:
            picked[arg] = next(args, None)
        else:
            rest.append(arg)
    if picked["-k"] is None:
        return None
    return tuple(rest), picked["-k"], picked["--nodes"], picked["--mpi"]


def rerun_commands(results: Sequence[TestResult]) -> list[list[str]]:
    """``hpcos test`` argument lists that rerun all of ``results`` once: one session per profile
    (and other options), selecting every suspect item by keyword and every suspect node.  Past
    ``test``, each is a pytest command line of the harness too (see the module's docstring)."""
    groups: dict[tuple[str, ...], list[tuple[str, str | None, str | None]]] = {}
    for result in results:
        parts = _split_rerun(result.rerun)
        if parts is not None:
            groups.setdefault(parts[0], []).append(parts[1:])
    commands = []
    for rest, picks in groups.items():
        argv = ["test", *rest, "-k", " or ".join(dict.fromkeys(f"({k})" for k, _, _ in picks))]
        nodes = [n for _, n, _ in picks if n]
        if nodes:
            argv += ["--nodes", str(NodeSet.fromlist(nodes))]
        stacks = [s for _, _, m in picks if m for s in m.split(",")]
        if stacks:
            argv += ["--mpi", ",".join(dict.fromkeys(stacks))]
        commands.append(argv)
    return commands


def rerun_by_command(
    results: Sequence[TestResult],
    timeout: float,
    options: Sequence[str] = (),
    tests: Sequence[str] = (),
) -> dict[tuple[str, str | None], TestResult]:
    """Run the suspects' own rerun commands once, together, as pytest sessions of the harness on
    ``tests`` (this session's ``--rootdir`` and test paths), and return their fresh results."""
    fresh: dict[tuple[str, str | None], TestResult] = {}
    wanted = {(r.test_id, r.node) for r in results}
    for argv in rerun_commands(results):
        with tempfile.TemporaryDirectory(prefix="hpcos-confirm-") as tmp:
            out = Path(tmp) / "results.json"
            command = [
                sys.executable,
                "-m",
                "pytest",
                "--hpcos-results",
                str(out),
                *options,
                *argv[1:],
                *tests,
            ]
            # The runner kills the whole rerun tree (mpirun, srun, the ranks) when it runs out of time.
            done = runner.run(
                command, env={CONFIRMING: "1"}, timeout=timeout, base_env=launch_environment()
            )
            if done.timed_out or not out.exists():
                continue
            again = RunResults.read(out)
        fresh.update(
            {(r.test_id, r.node): r for r in again.results if (r.test_id, r.node) in wanted}
        )
    return fresh


def session_paths(config: pytest.Config) -> list[str]:
    """The test paths this session was given, made absolute: the rerun picks its suspects among them."""
    return [str(config.invocation_params.dir / arg) for arg in config.args]


@pytest.hookimpl(tryfirst=True)
def pytest_hpcos_run_finished(config: pytest.Config, run: RunResults) -> None:
    if os.environ.get(CONFIRMING):
        return  # this session is a confirming rerun: the session that started it judges it
    db = results_db(config)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if db is None:
        if reporter:
            reporter.write_line(
                "hpcos perf: no results database (--perf-db or a store); measurements not recorded"
            )
        return
    from hpcos.perf.judge import judge_run
    from hpcos.perf.store import ResultsStore

    timeout = config.getoption("perf_rerun_timeout")
    missing = object()
    # The rerun must not file tickets of its own: its failures are this session's to report.
    quiet = ["--tickets", "off"] if config.getoption("--tickets", missing) is not missing else []
    # The child works on the same site: named on its command line, not through this process's environment.
    the_site = site(config)
    quiet += ["--hpcos-specs", str(the_site.specs_dir)]
    if the_site.store_override is not None:
        quiet += ["--hpcos-store", str(the_site.store_override)]
    tests = ["--rootdir", str(config.rootpath), *session_paths(config)]
    judgements = judge_run(
        ResultsStore(db),
        run,
        node_class(config, run),
        rerun=lambda results: rerun_by_command(results, timeout, quiet, tests),
        charts=Path(config.getoption("perf_charts")),
    )
    regressions = [j for j in judgements if j.assessment.verdict == "regression"]
    config.stash[REGRESSIONS] = len(regressions)
    if reporter:
        reporter.write_line(
            f"hpcos perf: {len(judgements)} measurements recorded in {db}, "
            f"{len(regressions)} confirmed regressions"
        )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """A run whose only failures are regressions must not exit 0: Jenkins goes by the exit code."""
    if session.config.stash.get(REGRESSIONS, 0) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
