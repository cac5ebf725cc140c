"""The perf side of the hpcos pytest plugin: record every measurement, fail confirmed regressions.

It runs first at the end of a session (``tryfirst``), so the results file and the tickets see the
regressions as ordinary failures of class "performance regression".

Confirm-by-rerun uses the harness's public contract only: every (test, node) result carries the
``hpcos test ... -k ...`` command that reruns exactly it.  A suspect's result is rerun once, in a
child session (``--results`` to a temporary file, ``--tickets off``, and ``HPCOS_PERF_CONFIRMING``
set so the child neither records nor reruns); the child's measurement is the rerun's verdict.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from argparse import Namespace
from collections.abc import Sequence
from pathlib import Path

import pytest

from harness.perf.store import results_db as locate
from harness.results import RunResults, TestResult
from harness.state import SESSION_KEY
from hpcos.errors import UserError

CONFIRMING = "HPCOS_PERF_CONFIRMING"
REGRESSIONS = pytest.StashKey[int]()


def pytest_addoption(parser):
    group = parser.getgroup("hpcos-perf", "hpcos performance history")
    group.addoption("--perf-db", metavar="FILE",
                    help="results database (default: the store's site.harness.results_db; none: not recorded)")
    group.addoption("--perf-charts", metavar="DIR", default="perf-charts",
                    help="where trend charts of regressions go (default: ./perf-charts)")
    group.addoption("--perf-rerun-timeout", type=float, default=900.0, metavar="SECONDS",
                    help="time limit of the one rerun that confirms a suspected regression")


def results_db(config: pytest.Config) -> Path | None:
    try:
        return locate(Namespace(db=config.getoption("perf_db"), store=None, specs=None))
    except UserError:
        return None


def node_class(config: pytest.Config, run: RunResults) -> str:
    """The profile's node class; the cluster name when the harness session does not say."""
    try:
        return config.stash[SESSION_KEY].profile.node_class
    except KeyError:  # the run did not come from a harness session
        return run.cluster


def rerun_by_command(result: TestResult, timeout: float, options: Sequence[str] = ()) -> TestResult | None:
    """Run the result's own rerun command once and return its fresh (test, node) result."""
    argv = shlex.split(result.rerun)
    if argv[:2] != ["hpcos", "test"]:
        return None
    with tempfile.TemporaryDirectory(prefix="hpcos-confirm-") as tmp:
        out = Path(tmp) / "results.json"
        command = [sys.executable, "-m", "hpcos.cli", "test", "--results", str(out), *options, *argv[2:]]
        try:
            subprocess.run(command, env={**os.environ, CONFIRMING: "1"}, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if not out.exists():
            return None
        again = RunResults.read(out)
    return next((r for r in again.results if (r.test_id, r.node) == (result.test_id, result.node)), None)


@pytest.hookimpl(tryfirst=True)
def pytest_hpcos_run_finished(config: pytest.Config, run: RunResults) -> None:
    if os.environ.get(CONFIRMING):
        return  # this session is a confirming rerun: the session that started it judges it
    db = results_db(config)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if db is None:
        if reporter:
            reporter.write_line("hpcos perf: no results database (--perf-db or a store); measurements not recorded")
        return
    from harness.perf.judge import judge_run
    from harness.perf.store import ResultsStore

    timeout = config.getoption("perf_rerun_timeout")
    missing = object()
    # The rerun must not file tickets of its own: its failures are this session's to report.
    quiet = ["--tickets", "off"] if config.getoption("--tickets", missing) is not missing else []
    judgements = judge_run(ResultsStore(db), run, node_class(config, run),
                           rerun=lambda result: rerun_by_command(result, timeout, quiet),
                           charts=Path(config.getoption("perf_charts")))
    regressions = [j for j in judgements if j.assessment.verdict == "regression"]
    config.stash[REGRESSIONS] = len(regressions)
    if reporter:
        reporter.write_line(f"hpcos perf: {len(judgements)} measurements recorded in {db}, "
                            f"{len(regressions)} confirmed regressions")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """A run whose only failures are regressions must not exit 0: Jenkins goes by the exit code."""
    if session.config.stash.get(REGRESSIONS, 0) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
