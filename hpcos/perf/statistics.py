"""Robust statistics for performance samples (pure functions, no I/O).

Performance samples are skewed and heavy-tailed (a late interrupt, a busy neighbour), so
following Hoefler & Belli (SC15) everything here is nonparametric: medians with order-statistic
confidence intervals, a rank test, and bootstrap intervals; no means, no normality assumption.

"Worse" is oriented by the metric's direction so one number reads the same for latency and for
bandwidth: a *worse ratio* of 1.10 means 10% slower, whichever way the metric counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hpcos.results.model import Direction

# scipy.stats costs about a second to import; it is imported by the functions that need it, so a
# run without measurements (most node checks) never pays for it.


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    confidence: (
        float  # the coverage actually achieved (order statistics only reach discrete levels)
    )


def median_ci(samples: Sequence[float], confidence: float = 0.95) -> Interval:
    """The median with a distribution-free interval from order statistics (Le Boudec, ch. 2).

    The number of samples below the true median is Binomial(n, 1/2); the narrowest symmetric pair
    of order statistics whose coverage reaches ``confidence`` is returned.  With few samples the
    level cannot be reached (5 samples give at most 93.75%, min..max): the widest interval is
    returned with the coverage it really has.
    """
    from scipy import stats

    x = np.sort(np.asarray(samples, dtype=float))
    n = len(x)
    if n == 0:
        raise ValueError("no samples")
    median = float(np.median(x))
    if n == 1:
        return Interval(median, median, median, 0.0)
    best = (0, n - 1, 1 - 2 * stats.binom.cdf(0, n, 0.5))
    # j is the 0-based index of the lower order statistic; coverage = P(j < B <= n-1-j), B ~ Bin(n, 1/2).
    for j in range((n - 1) // 2, -1, -1):
        coverage = stats.binom.cdf(n - 1 - j, n, 0.5) - stats.binom.cdf(j, n, 0.5)
        if coverage >= confidence:
            best = (j, n - 1 - j, coverage)
            break
    j, k, coverage = best
    return Interval(median, float(x[j]), float(x[k]), float(coverage))


def worse_ratio(candidate: float | np.ndarray, baseline: float | np.ndarray, direction: Direction):
    """How many times worse ``candidate`` is than ``baseline`` (> 1: worse, < 1: better).

    A zero is a real measurement (a link that moved no data): against it the ratio is infinite,
    never a division error; two zeros are no change."""
    numerator, denominator = (
        (candidate, baseline) if direction == "lower" else (baseline, candidate)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.true_divide(numerator, denominator)
    ratio = np.where(np.isnan(ratio), 1.0, ratio)
    return float(ratio) if ratio.ndim == 0 else ratio


def mann_whitney_worse(
    candidate: Sequence[float], baseline: Sequence[float], direction: Direction
) -> float:
    """One-sided p-value of the Mann-Whitney U test that ``candidate`` is stochastically worse."""
    from scipy import stats

    alternative = "greater" if direction == "lower" else "less"
    return float(stats.mannwhitneyu(candidate, baseline, alternative=alternative).pvalue)


def bootstrap_ratio_ci(
    candidate: Sequence[float],
    baseline: Sequence[float],
    direction: Direction,
    confidence: float = 0.95,
    resamples: int = 2000,
    rng: np.random.Generator | None = None,
) -> Interval:
    """Percentile-bootstrap interval of the worse ratio of the two medians (the effect size)."""
    rng = rng or np.random.default_rng(0)
    c = np.asarray(candidate, dtype=float)
    b = np.asarray(baseline, dtype=float)
    c_med = np.median(rng.choice(c, size=(resamples, len(c)), replace=True), axis=1)
    b_med = np.median(rng.choice(b, size=(resamples, len(b)), replace=True), axis=1)
    ratios = worse_ratio(c_med, b_med, direction)
    tail = (1 - confidence) / 2
    # Order statistics, not interpolation: between two infinite ratios (zero bandwidths) lies no number.
    low = np.quantile(ratios, tail, method="lower")
    high = np.quantile(ratios, 1 - tail, method="higher")
    estimate = float(worse_ratio(np.median(c), np.median(b), direction))
    return Interval(estimate, float(low), float(high), confidence)


def noise_floor(
    run_medians: Sequence[float], direction: Direction, quantile: float = 0.95
) -> float:
    """How much worse unchanged software has already looked from one run to the next.

    Each accepted run's median is compared with the median of the other runs (leave one out); the
    ``quantile`` of those relative worsenings is the floor a change must exceed to count.  Run-to-run
    variation (placement, clocks, neighbours) is what a within-run test cannot see, which is why
    significance alone is not enough.
    """
    medians = np.asarray(run_medians, dtype=float)
    if len(medians) < 2:
        raise ValueError("a noise floor needs at least two runs")
    worsening = []
    for i, m in enumerate(medians):
        others = np.median(np.delete(medians, i))
        worsening.append(max(0.0, float(worse_ratio(m, others, direction)) - 1.0))
    return float(np.quantile(worsening, quantile, method="higher"))
