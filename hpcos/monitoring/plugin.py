"""A finding as a Nagios plugin, through the ``nagiosplugin`` library: exit 0/1/2/3, one status line,
performance data (``label=value[uom];warn;crit;min;max``).

The check itself runs inside ``nagiosplugin``'s resource, so anything unexpected (a broken profile
on the monitoring host, a launcher that cannot start) still ends as UNKNOWN with one line, the
plugin convention, rather than a traceback Nagios would show as output.
"""

from __future__ import annotations

from collections.abc import Callable

import nagiosplugin

from hpcos.core.errors import UserError
from hpcos.monitoring.checks import CRITICAL, OK, UNKNOWN, WARNING, Finding

_STATES = {OK: nagiosplugin.Ok, WARNING: nagiosplugin.Warn, CRITICAL: nagiosplugin.Critical,
           UNKNOWN: nagiosplugin.Unknown}


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
            yield nagiosplugin.Metric(perf.label, value, uom=perf.uom or None, min=perf.min, max=perf.max,
                                      context=perf.label)


class _Verdict(nagiosplugin.Context):
    """The finding's own state and line (the checks decide, not thresholds on a number)."""

    def evaluate(self, metric, resource):
        return nagiosplugin.Result(_STATES[resource.finding.state], resource.finding.summary, metric)


class _PerfOnly(nagiosplugin.Context):
    """Performance data with the ranges it is judged by, shown but not re-judged: the verdict decides."""

    def __init__(self, name: str, warning: str | None, critical: str | None):
        super().__init__(name)
        self.warning, self.critical = warning, critical

    def performance(self, metric, resource):
        return nagiosplugin.Performance(metric.name, metric.value, metric.uom, self.warning, self.critical,
                                        metric.min, metric.max)


class _Summary(nagiosplugin.Summary):
    def ok(self, results):
        return str(results.first_significant) if results else "ok"

    def problem(self, results):
        return str(results.first_significant)


def plugin(check: str, run: Callable[[], Finding], perf_labels: list[tuple[str, str | None, str | None]]
           ) -> nagiosplugin.Check:
    """The Nagios plugin for one check; ``perf_labels``: (label, warning, critical) of its perfdata."""
    contexts = [_Verdict("verdict")] + [_PerfOnly(label, w, c) for label, w, c in perf_labels]
    return nagiosplugin.Check(_Node(check, run), *contexts, _Summary())


def run_plugin(check: str, run: Callable[[], Finding], timeout: int) -> None:
    """Run as a plugin: prints the status line and exits with the state's code (0, 1, 2, 3).

    The performance data labels are only known once the check ran, so the finding is computed
    first and the plugin is built around it."""
    finding_holder: list[Finding] = []

    def once() -> Finding:
        if not finding_holder:
            try:
                finding_holder.append(run())
            except UserError as exc:  # a profile or option the plugin cannot work with: said in one line
                finding_holder.append(Finding(UNKNOWN, " ".join(str(exc).split()).replace("|", "/")))
        return finding_holder[0]

    @nagiosplugin.guarded(verbose=0)
    def main() -> None:
        finding = once()
        labels = [(p.label, p.warning, p.critical) for p in finding.perfdata]
        plugin(check, once, labels).main(verbose=0, timeout=timeout)

    main()
