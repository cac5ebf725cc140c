"""pytest plugin: file tickets for what failed, once the whole run is known.

``--tickets BACKEND|dry-run|off`` (ini ``hpcos_tickets``, default ``site``: the backend site.yaml
names).  Runs last among ``pytest_hpcos_run_finished`` implementations, after the perf plugin has
turned regressions into failures.  A tracker problem never fails the test session nor keeps the
results file from being written: it is one line (cause and URL), and what cannot be sent waits in the
queue.
"""

from __future__ import annotations

import pytest

from harness.state import site
from hpcos.core.errors import UserError
from hpcos.site.trackers import TRACKERS

CHOICES = ("site", "dry-run", "off", *TRACKERS)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hpcos-tickets", "hpcos ticket filing")
    group.addoption(
        "--tickets",
        dest="hpcos_tickets",
        metavar="BACKEND|dry-run|off",
        choices=CHOICES,
        default=None,
        help="file tickets for failures at the end of the run: a backend name, "
        "'site' (site.yaml's tracker), 'dry-run' (print only) or 'off'",
    )
    parser.addini("hpcos_tickets", "default for --tickets", default="site")


def _mode(config: pytest.Config) -> str:
    mode = config.getoption("hpcos_tickets") or config.getini("hpcos_tickets")
    if mode not in CHOICES:
        raise pytest.UsageError(f"hpcos_tickets = {mode!r}: expected one of {', '.join(CHOICES)}")
    return mode


@pytest.hookimpl(trylast=True)
def pytest_hpcos_run_finished(config: pytest.Config, run) -> None:
    mode = _mode(config)
    if mode == "off":
        return
    from hpcos.tickets.session import TicketSession, describe, summarise

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    # The reporter's write_line starts a new line first (the progress line may still be open).
    write = reporter.write_line if reporter else config.get_terminal_writer().line
    try:
        the_site = site(config)
        spec = the_site.tracker(None if mode in ("site", "dry-run") else mode)
        with TicketSession(spec, the_site.store_root, the_site.environ) as session:
            for warning in session.warnings:  # e.g. a ~/.netrc ignored because others can read it
                write(f"hpcos tickets: {warning}", yellow=True)
            if mode == "dry-run":
                write(f"hpcos tickets (dry run, {spec.backend}):\n{describe(session.plan(run))}")
                return
            _, outcome = session.file(run)
            write(f"hpcos tickets ({spec.backend}): {summarise(outcome)}")
    except UserError as exc:
        write(f"hpcos tickets: not filed: {exc}", yellow=True)
    except Exception as exc:  # a bug in filing must not cost the night's results: one line, then on
        write(f"hpcos tickets: not filed: internal error {type(exc).__name__}: {exc}", red=True)
