"""Is a measurement a performance regression?  (Hoefler & Belli, SC15, made into one rule.)

* Warm-up repetitions are dropped before a sample gets here; at least ``min_repeats`` remain.
* With history (``min_baseline_runs`` accepted runs or more): the candidate's samples are compared
  with the baseline's by a one-sided Mann-Whitney U test, AND the worsening of the medians must
  exceed the noise floor learned from the accepted runs themselves.  Both, because a rank test on
  a few thousand pooled samples finds "significant" differences far below what a rerun of
  unchanged software already shows, and a large change on three noisy samples is not evidence.
* Such a measurement is only a *suspect*.  One rerun decides, and it must stand clear of the noise
  on its own: the rerun is suspect too, the low end of its effect interval (its own samples' noise)
  is still beyond the noise floor, and the low end of its median's interval is worse than the worst
  accepted run (the history's own spread).  Then -> regression; else -> not confirmed (reported, not
  failed).  On a loaded machine the first run and its rerun are slowed by the same neighbours: a
  rerun that is merely as slow as the history has already been, or whose samples scatter across the
  floor, confirms nothing (bench/detection.py measures what this costs and buys).  Never more reruns
  than one: retrying until it passes would hide real regressions.
* Without history, the profile's fixed reference (ReFrame's value/lower/upper) decides.
* Every verdict carries the effect size (worse ratio of medians) with its bootstrap interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from hpcos.perf.baselines import Baseline
from hpcos.perf.statistics import (
    Interval,
    bootstrap_ratio_ci,
    mann_whitney_worse,
    median_ci,
    noise_floor,
)
from hpcos.results.model import Direction, Reference

Verdict = Literal[
    "ok",  # within the baseline's range, or the difference is within noise
    "improved",  # significantly and beyond the noise floor *better*
    "suspect",  # looks like a regression; needs its one confirming rerun
    "regression",  # suspect, and the rerun was suspect too
    "not confirmed",  # suspect, but the rerun was not
    "outside reference",  # no history; the fixed reference is violated
    "within reference",  # no history; the fixed reference holds
    "no baseline",  # no history and no reference: recorded only
    "too few samples",
]
FAILING = ("regression", "outside reference")


@dataclass(frozen=True)
class DecisionPolicy:
    alpha: float = 0.01  # one-sided significance level of the rank test
    confidence: float = 0.95  # of the median and effect-size intervals
    min_repeats: int = 5
    min_baseline_runs: int = (
        3  # fewer accepted runs: no noise floor can be learned, fixed references apply
    )
    noise_quantile: float = 0.95
    min_noise_floor: float = 0.02  # below 2% nobody can act on a change anyway
    resamples: int = 2000


DEFAULT_POLICY = DecisionPolicy()


@dataclass(frozen=True)
class Assessment:
    verdict: Verdict
    direction: Direction
    measured: Interval | None  # median of the candidate samples with its CI
    baseline: float | None = None  # median of the baseline samples
    effect: Interval | None = None  # worse ratio of medians (1.10 = 10% worse) with its CI
    p_value: float | None = None
    noise_floor: float | None = None
    baseline_runs: int = 0
    history_worst: float | None = (
        None  # the worst of the accepted runs' medians: the history's spread
    )
    rerun: Assessment | None = None

    @property
    def fails(self) -> bool:
        return self.verdict in FAILING

    def describe(self, unit: str) -> str:
        """One line for a failure message or a report row."""
        if self.measured is None:
            return f"{self.verdict}: too few samples"
        m = self.measured
        text = f"measured {m.estimate:.4g} {unit} (CI {m.low:.4g}..{m.high:.4g})"
        if self.baseline is not None:
            text += f", baseline {self.baseline:.4g} {unit} from {self.baseline_runs} accepted runs"
        if self.effect is not None:
            e = self.effect
            worse = "(fell to 0)" if math.isinf(e.estimate) else "worse"
            text += (
                f", effect {_effect(e.estimate)} {worse}"
                f" ({e.confidence:.0%} CI {_effect(e.low)}..{_effect(e.high)})"
                f", p={self.p_value:.2g}, noise floor {self.noise_floor:.1%}"
            )
        if self.rerun is not None and self.rerun.measured is not None:
            why: str = self.rerun.verdict
            if self.verdict == "not confirmed" and why == "suspect":
                why = "suspect, within the noise: not beyond the worst accepted run or the noise floor"
            text += f"; rerun measured {self.rerun.measured.estimate:.4g} {unit} ({why})"
        return text


def _effect(ratio: float) -> str:
    """+12.3% for changes a person reads as percentages, x313 for a broken stack, "total" for a
    measurement that fell to zero (a bandwidth of 0 is infinitely worse)."""
    if math.isinf(ratio):
        return "total"
    return f"x{ratio:.3g}" if ratio >= 3 else f"{(ratio - 1) * 100:+.1f}%"


def assess(
    samples: Sequence[float],
    direction: Direction,
    baseline: Baseline | None = None,
    reference: Reference | None = None,
    policy: DecisionPolicy = DEFAULT_POLICY,
    rng: np.random.Generator | None = None,
    recorded: float | None = None,
) -> Assessment:
    """The verdict on one measurement's samples (warm-up already dropped).

    ``recorded`` is the value the measurement is stored with when that is not the median of its
    samples (a repeated benchmark records the median of its runs): the verdict's "measured" shows
    it, so the message and the store give the same number; the interval is still the samples'."""
    if len(samples) < policy.min_repeats:
        return Assessment(
            "too few samples",
            direction,
            _shown(median_ci(samples, policy.confidence), recorded) if len(samples) else None,
        )
    measured = _shown(median_ci(samples, policy.confidence), recorded)
    if baseline is None or len(baseline.runs) < policy.min_baseline_runs:
        if reference is None:
            return Assessment("no baseline", direction, measured)
        held: Verdict = (
            "within reference" if reference.admits(measured.estimate) else "outside reference"
        )
        return Assessment(held, direction, measured, baseline=reference.value)
    pooled = baseline.pooled
    effect = bootstrap_ratio_ci(
        samples, pooled, direction, policy.confidence, policy.resamples, rng
    )
    floor = max(
        policy.min_noise_floor, noise_floor(baseline.run_medians, direction, policy.noise_quantile)
    )
    p_worse = mann_whitney_worse(samples, pooled, direction)
    verdict: Verdict = "ok"
    if p_worse < policy.alpha and effect.estimate - 1 > floor:
        verdict = "suspect"
    elif (
        effect.estimate < 1 / (1 + floor)
        and mann_whitney_worse(pooled, samples, direction) < policy.alpha
    ):
        verdict = "improved"
    medians = baseline.run_medians
    worst = max(medians) if direction == "lower" else min(medians)
    return Assessment(
        verdict,
        direction,
        measured,
        float(np.median(pooled)),
        effect,
        p_worse,
        floor,
        len(baseline.runs),
        worst,
    )


def _shown(interval: Interval, recorded: float | None) -> Interval:
    return interval if recorded is None else replace(interval, estimate=float(recorded))


def confirms(rerun: Assessment) -> bool:
    """Whether a suspect's rerun confirms it.  Against history: only when it stands clear of the noise
    (``beyond_the_noise``).  Against a fixed reference (``harness.repeats``): outside it again."""
    if rerun.effect is None:
        return rerun.verdict == "suspect"
    return beyond_the_noise(rerun)


def beyond_the_noise(a: Assessment) -> bool:
    """Whether a suspect stands clear of the noise with its own samples' noise counted: its effect
    interval beyond the noise floor, its median's interval beyond the worst accepted run."""
    if a.verdict != "suspect" or a.effect is None or a.measured is None or a.history_worst is None:
        return False
    worse_than_history = (
        a.measured.low > a.history_worst
        if a.direction == "lower"
        else a.measured.high < a.history_worst
    )
    return a.effect.low - 1 > (a.noise_floor or 0.0) and worse_than_history


def confirm(first: Assessment, rerun: Assessment) -> Assessment:
    """Settle a suspect with its one rerun.  The rerun's own verdict is kept for the report."""
    if first.verdict != "suspect":
        raise ValueError(f"only a suspect is confirmed, not {first.verdict!r}")
    return replace(first, verdict="regression" if confirms(rerun) else "not confirmed", rerun=rerun)
