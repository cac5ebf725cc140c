"""A finding as a Nagios plugin, through the ``nagiosplugin`` library: exit 0/1/2/3, one status line,
performance data (``label=value[uom];warn;crit;min;max``).

The check itself runs inside ``nagiosplugin``'s resource, so anything unexpected (a broken profile
on the monitoring host, a launcher that cannot start) still ends as UNKNOWN with one line, the
plugin convention, rather than a traceback Nagios would show as output.

The Monitoring Plugins guidelines, kept here: ``--timeout`` bounds the whole plugin, from its first
line (profile loading included) to its answer; past it the plugin answers UNKNOWN and exits 3.  The
node commands it starts stay in its process group (Nagios kills the plugin's group when the plugin
overruns its own service timeout) and the plugin reaps their orphans; whatever is left when it
answers, on time or not, is killed: nothing survives the plugin.  The remote side runs under the
launcher's own ``timeout`` with what is left of the budget, so it ends on the node as well.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nagiosplugin

from hpcos.core import runner
from hpcos.core.errors import UserError
from hpcos.core.text import one_line
from hpcos.monitoring.checks import CRITICAL, OK, UNKNOWN, WARNING, Finding

_STATES = {
    OK: nagiosplugin.Ok,
    WARNING: nagiosplugin.Warn,
    CRITICAL: nagiosplugin.Critical,
    UNKNOWN: nagiosplugin.Unknown,
}


class _Node(nagiosplugin.Resource):
    def __init__(self, check: str, run: Callable[[], Finding]):
        self.check, self.run = check, run
        self.finding: Finding | None = None

    @property
    def name(self) -> str:  # the status line starts with it: "KERNEL CRITICAL - ..."
        return self.check.upper().replace("-", "_")

    def probe(self):
        self.finding = self.run()
        yield nagiosplugin.Metric("verdict", 0, context="verdict")
        for perf in self.finding.perfdata:
            # 200.0 Gb/s is printed as 200: graphers and people read the value as the tool said it.
            value = int(perf.value) if float(perf.value).is_integer() else perf.value
            yield nagiosplugin.Metric(
                perf.label,
                value,
                uom=perf.uom or None,
                min=perf.min,
                max=perf.max,
                context=perf.label,
            )


class _Verdict(nagiosplugin.Context):
    """The finding's own state and line (the checks decide, not thresholds on a number)."""

    def evaluate(self, metric, resource):
        return nagiosplugin.Result(
            _STATES[resource.finding.state], resource.finding.summary, metric
        )


class _PerfOnly(nagiosplugin.Context):
    """Performance data with the ranges it is judged by, shown but not re-judged: the verdict decides."""

    def __init__(self, name: str, warning: str | None, critical: str | None):
        super().__init__(name)
        self.warning, self.critical = warning, critical

    def performance(self, metric, resource):
        return nagiosplugin.Performance(
            metric.name,
            metric.value,
            metric.uom,
            self.warning,
            self.critical,
            metric.min,
            metric.max,
        )


class _Summary(nagiosplugin.Summary):
    def ok(self, results):
        return str(results.first_significant) if results else "ok"

    def problem(self, results):
        return str(results.first_significant)


def plugin(
    check: str, run: Callable[[], Finding], perf_labels: list[tuple[str, str | None, str | None]]
) -> nagiosplugin.Check:
    """The Nagios plugin for one check; ``perf_labels``: (label, warning, critical) of its perfdata."""
    contexts = [_Verdict("verdict")] + [_PerfOnly(label, w, c) for label, w, c in perf_labels]
    return nagiosplugin.Check(_Node(check, run), *contexts, _Summary())


def status_name(check: str) -> str:
    return check.upper().replace("-", "_")


def answer_unknown(check: str, message: str) -> None:
    """Answer UNKNOWN with one stdout line and exit 3, killing what the plugin started."""
    sys.stdout.write(f"{status_name(check)} UNKNOWN - {one_line(message, 400).replace('|', '/')}\n")
    sys.stdout.flush()  # the answer first: the kill below may be slow on a loaded host
    if _spare is not None:
        runner.kill_descendants(_spare)
    os._exit(
        3
    )  # from a signal handler too: no cleanup of the interrupted check may delay the answer


# Inside ``plugin_process``: the processes that were running before it (none in a real plugin; a test's
# fixtures when a test runs the plugin in process), which the plugin's final kill spares.
_spare: frozenset[int] | None = None


def answer_time(timeout: int) -> float:
    """Time kept, before --timeout, to kill what the check started, write the answer and exit: a tenth
    of the budget, 1 to 5 s (on a host at load 30, killing and reaping a tree takes seconds)."""
    return min(5.0, max(1.0, timeout / 10))


def process_age() -> float:
    """Seconds since this process started (interpreter start-up and imports included: on a loaded
    monitoring host they take seconds, and Nagios counts them against the plugin)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))


@contextlib.contextmanager
def plugin_process(check: str, timeout: int, own_process: bool = True) -> Iterator[float]:
    """What a plugin does first, undone when it ends (a test runs the plugin inside pytest): keep node
    commands in its process group, adopt their orphans, and arm the one timer that bounds the plugin,
    counted from the process's start.  Yields the deadline (``time.monotonic()``) the checks cut
    their node commands' timeouts to.  ``own_process``: the plugin is this process (counted from its
    start); else (a test calling ``main``) it is counted from now."""
    global _spare
    _spare = frozenset(runner.descendants(os.getpid()))
    runner.stay_in_process_group(True)
    runner.become_subreaper()
    deadline = time.monotonic() + timeout - (process_age() if own_process else 0.0)

    def expired(_signum, _frame) -> None:
        answer_unknown(
            check, f"no answer within --timeout {timeout} s; the node command was killed"
        )

    previous = signal.signal(signal.SIGALRM, expired)
    keep = answer_time(timeout)
    signal.setitimer(signal.ITIMER_REAL, max(0.01, deadline - keep - time.monotonic()))
    try:
        yield deadline - keep
    finally:  # the answer is out (or the plugin is leaving): the timer and the process-group rule end
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        runner.stay_in_process_group(False)
        runner.become_subreaper(False)
        _spare = None


def run_plugin(check: str, run: Callable[[], Finding], timeout: int) -> None:
    """Run as a plugin: prints the status line and exits with the state's code (0, 1, 2, 3).

    ``plugin_process`` must be entered (the caller arms the timer before it loads anything).  The
    performance data labels are only known once the check ran, so the finding is computed first and
    the plugin is built around it."""
    finding_holder: list[Finding] = []

    def once() -> Finding:
        if not finding_holder:
            try:
                finding_holder.append(run())
            except (
                UserError
            ) as exc:  # a profile or option the plugin cannot work with: said in one line
                finding_holder.append(Finding(UNKNOWN, one_line(str(exc)).replace("|", "/")))
        return finding_holder[0]

    @nagiosplugin.guarded(verbose=0)
    def main() -> None:
        finding = once()
        signal.setitimer(signal.ITIMER_REAL, 0)  # answered: the timer has done its work
        if _spare is not None:
            runner.kill_descendants(_spare)  # nothing the check started outlives it
        labels = [(p.label, p.warning, p.critical) for p in finding.perfdata]
        plugin(check, once, labels).main(verbose=0, timeout=0)  # 0: our own timer bounds the plugin

    main()
