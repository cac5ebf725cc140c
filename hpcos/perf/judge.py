"""A whole run through the decision: record it, judge each measurement, confirm suspects by one rerun.

Regressions become failures of their (test, node) result with failure class "performance
regression", so ticket filing groups and files them like any other failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hpcos.perf.baselines import DEFAULT_RUNS, baseline_for
from hpcos.perf.store import ResultsStore, SeriesKey
from hpcos.results.model import Measurement, RunResults, TestResult

if (
    TYPE_CHECKING
):  # numpy and scipy: imported by a run that has measurements to judge, not by every run
    from hpcos.perf.decision import Assessment, DecisionPolicy

# Reruns the given (test, node) results once; returns the fresh results it got, by (test id, node).
Rerun = Callable[[list[TestResult]], dict[tuple[str, str | None], TestResult]]
MeasurementKey = tuple[str, str | None, str, int | None, str | None]


@dataclass
class Judgement:
    result: TestResult
    measurement: Measurement
    assessment: Assessment
    chart: Path | None = None


def _key(result: TestResult, m: Measurement) -> MeasurementKey:
    return (result.test_id, result.node, m.metric, m.size, result.mpi)


def judge_run(
    store: ResultsStore,
    run: RunResults,
    node_class: str,
    *,
    rerun: Rerun | None = None,
    policy: DecisionPolicy | None = None,
    baseline_runs: int = DEFAULT_RUNS,
    charts: Path | None = None,
) -> list[Judgement]:
    """Record ``run``, judge every measurement, and fail the results whose regression is confirmed.

    Without ``rerun`` a suspect stays a suspect: reported, never failed, because an unconfirmed
    suspect is as likely noise as not.
    """
    ids = store.record(run, node_class)
    if not any(result.measurements for result in run.results):
        store.update_outcomes(run)
        return []
    from hpcos.perf.decision import DEFAULT_POLICY, assess, confirm

    policy = policy or DEFAULT_POLICY
    judgements, baselines = [], []
    for result in run.results:
        for m in result.measurements:
            key = SeriesKey(run.cluster, node_class, result.test_id, m.metric, m.size)
            baseline = baseline_for(
                store, key, mpi=result.mpi, before=run.run_id, runs=baseline_runs
            )
            judgements.append(
                Judgement(
                    result,
                    m,
                    assess(
                        m.samples or [m.value],
                        m.direction,
                        baseline,
                        m.reference,
                        policy,
                        recorded=m.value,
                    ),
                )
            )
            baselines.append(baseline)
    suspects = [j for j in judgements if j.assessment.verdict == "suspect"]
    if suspects and rerun is not None:
        # One rerun per suspect (test, node), however many of its measurements are suspect, all in
        # one go: a cluster-wide regression must not cost one session per node.
        again = rerun(
            list({(j.result.test_id, j.result.node): j.result for j in suspects}.values())
        )
        for j, baseline in zip(judgements, baselines, strict=True):
            if j.assessment.verdict != "suspect":
                continue
            m2 = _same_measurement(again.get((j.result.test_id, j.result.node)), j.measurement)
            if m2 is not None:
                j.assessment = confirm(
                    j.assessment,
                    assess(
                        m2.samples or [m2.value],
                        m2.direction,
                        baseline,
                        m2.reference,
                        policy,
                        recorded=m2.value,
                    ),
                )
    store.set_verdicts(
        {
            ids[_key(j.result, j.measurement)]: (
                j.assessment.verdict,
                j.assessment.describe(j.measurement.unit),
            )
            for j in judgements
        }
    )
    for j in judgements:
        if j.assessment.verdict == "regression":
            if charts is not None:
                j.chart = _chart(store, run, node_class, j, charts)
            _fail(j)
    store.update_outcomes(run)
    return judgements


def _same_measurement(result: TestResult | None, m: Measurement) -> Measurement | None:
    if result is None:
        return None
    return next((x for x in result.measurements if (x.metric, x.size) == (m.metric, m.size)), None)


def _chart(
    store: ResultsStore, run: RunResults, node_class: str, j: Judgement, directory: Path
) -> Path:
    # matplotlib costs a second to import: only a run with a confirmed regression draws a chart.
    from hpcos.perf.charts import chart_path, trend_chart

    key = SeriesKey(
        run.cluster, node_class, j.result.test_id, j.measurement.metric, j.measurement.size
    )
    series = [s for s in store.series(key, mpi=j.result.mpi, limit=120) if s.node == j.result.node]
    path = chart_path(
        directory, j.result.test_id, j.result.node, j.measurement.metric, j.measurement.size
    )
    return trend_chart(
        series,
        path,
        f"{j.result.test_id} {j.measurement.metric} on {j.result.node}",
        baseline=j.assessment.baseline,
        noise_floor=j.assessment.noise_floor,
        highlight_run=run.run_id,
    )


def _fail(j: Judgement) -> None:
    m, r = j.measurement, j.result
    where = f" at {m.size} B" if m.size is not None else ""
    text = f"performance regression: {m.metric}{where}: {j.assessment.describe(m.unit)}"
    if j.chart is not None:
        text += f"; trend chart: {j.chart}"
    r.message = f"{r.message}\n{text}" if r.message else text
    if r.failure_class is None or not r.failed:
        r.failure_class = "performance regression"
    r.outcome = "failed"
