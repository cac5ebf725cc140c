"""The hpcos pytest plugin (registered through the ``pytest11`` entry point).

Options and ini settings are declared together; markers are registered; node tests are
parametrized per selected node and MPI tests per stack, so JUnit shows one testcase per
(test, node), each with its own node's time.  Before the first test, the session's pre-flight finds
the nodes that cannot run tests; the first (test, node) on each reports it, the others skip.  At the
end of the session the run's results go to the ``pytest_hpcos_run_finished`` hook (baselines,
tickets), then to the ``--hpcos-results`` file.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from ClusterShell.MsgTree import MsgTree
from ClusterShell.NodeSet import NodeSet, NodeSetParseError

from harness import hookspecs, run_record
from harness.session import DEFAULT_CLUSTER, HarnessSession, Selection
from harness.state import SESSION_KEY, harness_session, item_state, site
from hpcos.cluster import mpi_errors
from hpcos.cluster.launchers import CommandFailed, CommandResult
from hpcos.cluster.launchers.base import blamed_hosts
from hpcos.core.errors import HpcosError, StoreError, UserError, store_problem
from hpcos.core.text import printable
from hpcos.repo.environments import is_snapshot_id
from hpcos.results.model import TestResult
from hpcos.site.credentials import redact

FIXTURES_MODULE = "harness.fixtures"  # registered by pytest itself, so its asserts are rewritten
pytest_plugins = [FIXTURES_MODULE]

MARKERS = {
    "node": "runs on every selected node (parametrized per node, fanned out through the launcher)",
    "job": "one MPI job across the selected nodes",
    "mpi": "exercises an MPI stack (parametrized per stack, filtered by --mpi)",
    "ib": "needs InfiniBand (skipped when the profile expects none)",
    "perf": "measures performance against the profile's references",
}
HARNESS_FIXTURES = frozenset(
    {
        "hpcos_session",
        "profile",
        "nodes",
        "mpi_nodes",
        "node",
        "mpi_stack",
        "launcher",
        "run",
        "mpi_run",
        "measure",
    }
)
SUMMARY_LINES = 12  # of a failure group in the terminal; results and JUnit keep the whole text
# (option, ini name, help)
OPTIONS = [
    (
        "--cluster",
        "hpcos_cluster",
        f"cluster profile name or YAML path (default: {DEFAULT_CLUSTER})",
    ),
    ("--nodes", "hpcos_nodes", "ClusterShell node set to test, within the profile's nodes"),
    ("--mpi", "hpcos_mpi", "MPI stack(s) to test, comma-separated (default: all of the profile's)"),
    (
        "--hpcos-results",
        "hpcos_results",
        "write the run's results (JSON, hpcos.results.model) to this file",
    ),
]


def pytest_addhooks(pluginmanager):
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hpcos", "hpcos cluster integration tests")
    for option, ini, help_text in OPTIONS:
        group.addoption(option, dest=ini, default=None, help=help_text)
        parser.addini(ini, help_text)
    # The site, as `hpcos --specs DIR --store DIR test` names it (the plugins read it from the stash).
    group.addoption(
        "--hpcos-specs",
        dest="hpcos_specs",
        metavar="DIR",
        default=None,
        help="overlay specs directory (default: $HPCOS_SPECS or ./overlay_specs)",
    )
    group.addoption(
        "--hpcos-store",
        dest="hpcos_store",
        metavar="DIR",
        default=None,
        help="the site's store (default: $HPCOS_STORE or site.yaml store.root)",
    )
    # harness/suite.py's collection: what a run would record (run_record), written out, nothing run.
    group.addoption(
        "--hpcos-collected",
        dest="hpcos_collected",
        metavar="FILE",
        default=None,
        help="write [test id, node, MPI stack] of every collected test to FILE (JSON)",
    )


def _setting(config: pytest.Config, name: str) -> str | None:
    return config.getoption(name) or config.getini(name) or None


def pytest_configure(config: pytest.Config) -> None:
    the_site = site(config)
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    selection = Selection(
        cluster=_setting(config, "hpcos_cluster") or DEFAULT_CLUSTER,
        nodes=_setting(config, "hpcos_nodes"),
        mpi=_setting(config, "hpcos_mpi"),
        explicit=bool(_setting(config, "hpcos_cluster") or _setting(config, "hpcos_results")),
    )
    session = config.stash[SESSION_KEY] = HarnessSession(selection, Path(config.rootpath), the_site)
    testing = os.environ.get("HPCOS_TESTING_SNAPSHOT")
    if testing and not is_snapshot_id(testing):
        # It goes into the results and the run's signed record: a snapshot id or nothing.
        with _usage_errors():
            raise UserError(
                f"HPCOS_TESTING_SNAPSHOT={testing!r}: not a snapshot id "
                "(`hpcos repo status testing --id` prints one)"
            )
    if selection.explicit:
        # A wrong profile, node set or stack is the user's mistake: say so before collecting anything.
        with _usage_errors():
            session.nodes, session.stacks()


@contextlib.contextmanager
def _usage_errors():
    try:
        yield
    except UserError as exc:
        # pytest prints it as it is: a --mpi or --nodes from a Jenkins parameter may hold escapes.
        raise pytest.UsageError(printable(str(exc))) from None


def _ours(name2fixturedefs, name: str) -> bool:
    """Whether ``name`` resolves to this plugin's fixture, not to a same-named one of another suite."""
    defs = name2fixturedefs.get(name)
    return bool(defs) and defs[-1].func.__module__ == FIXTURES_MODULE


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    defs = metafunc._arg2fixturedefs  # pytest keeps no public accessor for the resolved fixtures
    wants_node = _ours(defs, "node")
    wants_stack = _ours(defs, "mpi_stack")
    if not (wants_node or wants_stack):
        return
    session = harness_session(metafunc.config)
    with _usage_errors():
        if wants_node:
            metafunc.parametrize("node", list(session.nodes), ids=str)
        if wants_stack:
            metafunc.parametrize("mpi_stack", session.stacks(), ids=lambda s: s.name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # ``-m node`` / ``-m mpi`` select a test by what it uses, marked or not.
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "node" in params and not item.get_closest_marker("node"):
            item.add_marker("node")
        if "mpi_stack" in params and not item.get_closest_marker("mpi"):
            item.add_marker("mpi")


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        run_record.deselected(items[0].config, items)


def pytest_collection_finish(session: pytest.Session) -> None:
    if harness_session(session.config).selection.explicit:
        run_record.collection_finished(session)
        if session.config.getoption("hpcos_collected", None):
            run_record.write_collection(
                session.config, Path(session.config.getoption("hpcos_collected"))
            )


def _is_harness_test(item: pytest.Item) -> bool:
    """Tests of a cluster run, as opposed to other tests in a session where the plugin is merely installed."""
    if harness_session(item.config).selection.explicit:
        return True
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(_ours(info.name2fixturedefs, name) for name in HARNESS_FIXTURES)


class NodeUnavailable(HpcosError, AssertionError):
    """The node of this (test, node) cannot run tests: the first test that meets it reports it."""

    family = "node"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if not _is_harness_test(item):
        return
    session = harness_session(item.config)
    if item.get_closest_marker("ib") and not session.profile.infiniband.expected:
        pytest.skip(
            f"profile {session.profile.name!r} expects no InfiniBand (infiniband.expected: false)"
        )
    state = item_state(item)
    if state.node is None and not item.get_closest_marker("job"):
        return
    with _usage_errors():
        found = session.preflight()
    if found and not session.preflight_shown:
        session.preflight_shown = True
        _say(item.config, _preflight_line(session, found))
    gone = session.unreachable.get(state.node) if state.node else None
    if gone is None:
        return
    if gone.reported_by is None:
        gone.reported_by = (
            state.test_id
        )  # no command runs on it: no timeout spent on a known-bad node
        raise NodeUnavailable(f"node unavailable: {gone.reason}")
    if gone.reported_by != state.test_id:
        pytest.skip(
            f"node unavailable: {state.node} (reported once, by {gone.reported_by}): {gone.reason}"
        )


def _preflight_line(session: HarnessSession, found: dict[str, str]) -> str:
    return (
        f"hpcos pre-flight: {len(found)} of {len(session.nodes)} node(s) unavailable "
        f"({NodeSet.fromlist(found)}); MPI jobs run on {session.available or 'none'}"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """The pre-flight, before the first test, so that what it finds is said on a line of its own and not
    in the middle of pytest's progress line."""
    config = session.config
    if config.option.collectonly or not session.items:
        return
    harness = harness_session(config)
    if not any(
        _is_harness_test(item)
        and (item_state(item).node is not None or item.get_closest_marker("job"))
        for item in session.items
    ):
        return
    with _usage_errors():
        found = harness.preflight()
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if found and reporter is not None:
        harness.preflight_shown = True
        reporter.write_line(_preflight_line(harness, found))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report: pytest.TestReport = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, NodeUnavailable):
        report.longrepr = str(
            call.excinfo.value
        )  # one line: the node and why, not the plugin's source
    _mask_secrets(report, site(item.config).secrets)
    if not _is_harness_test(item):
        return report
    session = harness_session(item.config)
    state = item_state(item)
    if report.when == "call" and report.passed and state.violations:
        report.outcome = "failed"
        report.longrepr = "performance outside the profile's reference:\n" + "\n".join(
            state.violations
        )
    if report.when == "call" and state.node is not None:
        # A fan-out's wall time belongs to every node, not to the item that launched it: each
        # (test, node) shows its own node's command time (JUnit's per-testcase time).
        report.duration = max(0.0, report.duration - state.fanout_wall) + state.fanout_own
    if report.failed or report.when == "call" or (report.when == "setup" and report.skipped):
        if state.result is not None and not state.result.failed:
            session.results.remove(state.result)  # a teardown failure turns a pass into an error
        if state.result is None or not state.result.failed:
            # A measured test needs its rerun command too: the perf plugin confirms a suspect with it.
            rerun = _rerun(session, item) if report.failed or state.measurements else ""
            if rerun and report.failed:
                report.sections.append(("hpcos rerun", rerun))
            state.result = _result(item, report, call, rerun)
            session.results.append(state.result)
            item.user_properties.extend(
                _properties(state.result)
            )  # junitxml reads them at teardown
    return report


def _mask_secrets(report: pytest.TestReport, secrets: list[str]) -> None:
    """Mask every secret hpcos knows in what the report carries (failure text, captured output), before
    the console, JUnit and the results (then the report, database and tickets) take it from there."""
    if not secrets:
        return
    if (
        isinstance(report.longrepr, tuple) and len(report.longrepr) == 3
    ):  # a skip: (path, line, reason)
        path, line, reason = report.longrepr
        report.longrepr = (path, line, redact(reason, secrets))
    elif report.longrepr is not None:
        text = str(report.longrepr)
        if any(s in text for s in secrets):
            report.longrepr = redact(text, secrets)
    report.sections = [(name, redact(text, secrets)) for name, text in report.sections]


def _say(config: pytest.Config, line: str) -> None:
    """A line on the terminal from inside a test's setup, past pytest's output capture."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line(line)


def _rerun(session: HarnessSession, item: pytest.Item) -> str:
    state = item_state(item)
    nodes = state.node or (str(session.nodes) if session.used else None)
    return session.rerun_command(state.keyword, nodes, state.mpi)


def _result(
    item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo, rerun: str
) -> TestResult:
    session = harness_session(item.config)
    state = item_state(item)
    if report.skipped:
        outcome = "skipped"
    elif report.failed:
        outcome = "failed" if report.when == "call" else "error"
    else:
        outcome = "passed"
    node = state.node
    if node is None and state.commands:
        # The nodes that ran its commands (an MPI job's placement), not the whole selection.
        node = str(NodeSet.fromlist([c.node for c in state.commands if c.node])) or None
    if node is None and session.used and item.get_closest_marker("job"):
        node = str(session.available)
    failure_class = None
    message = ""
    shown = state.commands[-1] if state.commands else None
    if report.failed:
        failure_class = _failure_class(session, state, call)
        failed_command = _failed_command(call)
        message = failed_command.describe() if failed_command else _message(report)
        if call.excinfo is not None and isinstance(call.excinfo.value, NodeUnavailable):
            message = str(call.excinfo.value)
        shown = failed_command or shown
    elif report.skipped and isinstance(report.longrepr, tuple):
        message = report.longrepr[2].removeprefix("Skipped: ")
    secrets = site(item.config).secrets
    return TestResult(
        test_id=state.test_id,
        node=node,
        outcome=outcome,
        duration=report.duration,
        failure_class=failure_class,
        message=redact(message, secrets),
        command=redact(shown.command, secrets) if shown else "",
        rerun=rerun,
        mpi=state.mpi,
        measurements=list(state.measurements),
        nodeid=item.nodeid,
        env=dict(state.env),
        profile_env=dict(state.profile_env),
    )


def _failed_command(call: pytest.CallInfo) -> CommandResult | None:
    """The command whose ``.check()`` failed the test, if that is what failed it."""
    if call.excinfo is not None and isinstance(call.excinfo.value, CommandFailed):
        return call.excinfo.value.result
    return None


def _failure_class(session: HarnessSession, state, call: pytest.CallInfo) -> str:
    if call.excinfo is not None and isinstance(call.excinfo.value, NodeUnavailable):
        return "node unreachable"
    failed_command = _failed_command(call)
    candidates = [failed_command] if failed_command else [c for c in state.commands if not c.ok]
    # The fixtures re-checked every failed command's nodes as it returned (HarnessSession.recheck):
    # a failure on a node found lost then is that node's loss, not the test's failure.
    lost = {node for node, gone in session.unreachable.items() if gone.reported_by == state.test_id}
    for result in candidates:
        used = set(result.placement) or set(_node_set(result.node))
        if result.unreachable or used & lost:
            return "node unreachable"
    if any(c.timed_out for c in candidates):
        return "timeout"
    if state.violations and call.excinfo is None:
        return "performance regression"
    return "error"


def _node_set(text: str | None) -> NodeSet:
    try:
        return NodeSet(text or "")
    except NodeSetParseError:
        return NodeSet()


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _message(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(longrepr)
    return text[:20000]  # a runaway tool output must not blow up the results file


def _properties(result: TestResult) -> list[tuple[str, str]]:
    props = [("node", result.node or ""), ("mpi", result.mpi or "")]
    if result.failure_class:
        props.append(("failure_class", result.failure_class))
    if result.rerun:
        props.append(("rerun", result.rerun))
    return props


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    session = harness_session(config)
    failed = [r for r in session.results if r.failed]
    if not failed:
        return
    terminalreporter.section("hpcos: failures grouped by (test, MPI stack, class, reason)")
    for group in group_failures(failed):
        stack = f" [{group.mpi}]" if group.mpi else ""
        count = len(group.nodes)
        terminalreporter.write(f"{group.test_id}{stack} {group.failure_class} on ")
        terminalreporter.write(str(group.nodes) or "-", red=True, bold=True)
        terminalreporter.write(f" ({count} node{'s' * (count != 1)}):\n")
        for line in group.shown_lines():
            _write_highlighted(terminalreporter, f"    {line}", group.hosts)
    terminalreporter.section("hpcos: rerun a failed (test, node) with")
    for result in failed:
        terminalreporter.write_line(_printable(result.rerun))


def _write_highlighted(terminalreporter, line: str, hosts: list[str]) -> None:
    """One line with each failing host (and the ``<node>`` placeholder) in bold red."""
    words = sorted({*hosts, NODE_PLACEHOLDER}, key=len, reverse=True)
    pattern = re.compile("|".join(rf"(?<![\w.-]){re.escape(w)}(?![\w-])" for w in words))
    at = 0
    for match in pattern.finditer(line):
        terminalreporter.write(line[at : match.start()])
        terminalreporter.write(match.group(), red=True, bold=True)
        at = match.end()
    terminalreporter.write(line[at:] + "\n")


def _printable(text: str) -> str:
    """Node output on a terminal: what is not printable (escape sequences, bidi overrides) shown, not obeyed."""
    return printable(text)


NODE_PLACEHOLDER = "<node>"


@dataclass
class FailureGroup:
    """Failures of one test on one MPI stack, of one class, with the same text once node names are set aside."""

    test_id: str
    mpi: str | None
    failure_class: str | None
    nodes: NodeSet
    text: str

    @property
    def hosts(self) -> list[str]:
        """The hosts the failure names as the ones it could not reach or to blame (what the terminal highlights)."""
        try:
            blamed = blamed_hosts(self.text)
        except NodeSetParseError:  # the result's own node, already replaced by the placeholder
            blamed = []
        return list(dict.fromkeys([*blamed, *mpi_errors.unreachable_hosts(self.text)]))

    def shown_lines(self, limit: int = SUMMARY_LINES) -> list[str]:
        """The first lines, plus any later line that names a failing host (MPI boilerplate can be long)."""
        lines = [_printable(line) for line in self.text.splitlines()]
        shown = lines[:limit]
        naming = [line for line in lines[limit:] if any(h in line for h in self.hosts)][:3]
        if len(lines) > limit:
            shown.append(f"... ({len(lines) - limit} more lines in the results and JUnit)")
        return shown + naming


def group_failures(failed: list[TestResult]) -> list[FailureGroup]:
    """Failures keyed on (test, MPI stack, failure class), then grouped by identical text (node names
    set aside) with ClusterShell's MsgTree, as it gathers identical outputs of a fan-out."""
    trees: dict[tuple[str, str | None, str | None], MsgTree] = {}
    for result in failed:
        node = result.node or "-"
        text = result.message
        if result.node:
            text = re.sub(rf"(?<![\w.-]){re.escape(result.node)}(?![\w-])", NODE_PLACEHOLDER, text)
        tree = trees.setdefault((result.test_id, result.mpi, result.failure_class), MsgTree())
        for line in text.splitlines() or [""]:
            tree.add(node, line.encode())
    groups = []
    for (test_id, mpi, failure_class), tree in trees.items():
        for msg, keys in tree.walk():
            groups.append(
                FailureGroup(
                    test_id,
                    mpi,
                    failure_class,
                    NodeSet.fromlist(keys),
                    bytes(msg).decode(errors="replace"),
                )
            )
    return groups


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    harness = harness_session(config)
    target = _setting(config, "hpcos_results")
    if not (harness.used or target):
        return  # a pytest session that never touched a cluster (the project's own tests)
    run = harness.run_results()
    # The hooks (baselines, tickets) may still judge the run; the results file is written after them
    # whatever happens there: a store that cannot take the baselines, tickets or queue must not cost
    # the user the outcome of the tests.
    problem: HpcosError | None = None
    try:
        config.hook.pytest_hpcos_run_finished(config=config, run=run)
    except (OSError, sqlite3.Error) as exc:
        problem = store_problem(exc)
        if problem is None:
            raise
    finally:
        if target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            run.write(target, mask=site(config).secrets)
    if target and run.testing_snapshot:
        # The nightly run records itself, signed: the production gate trusts no other record.
        try:
            record = run_record.record(config, Path(target))
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            if reporter:
                reporter.write_line(
                    f"hpcos: run {record.run_id} recorded for the production gate (signed, "
                    f"{site(config).layout.nightly_records})"
                )
        except UserError as exc:
            problem = problem or UserError(f"run not recorded for the production gate: {exc}")
        except OSError as exc:
            problem = problem or store_problem(exc) or StoreError(f"recording the run: {exc}")
    if problem is not None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        line = f"hpcos: {problem}" + (f" (results written to {target})" if target else "")
        if reporter:
            reporter.write_line(line, red=True)
        session.exitstatus = max(int(session.exitstatus), problem.exit_code)
