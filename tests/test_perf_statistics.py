"""The statistics and the regression decision, on samples whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from hpcos.perf.baselines import Baseline
from hpcos.perf.decision import DecisionPolicy, assess, confirm
from hpcos.perf.statistics import (
    bootstrap_ratio_ci,
    mann_whitney_worse,
    median_ci,
    noise_floor,
    worse_ratio,
)
from hpcos.perf.store import SeriesKey
from hpcos.results.model import Reference

KEY = SeriesKey("local", "workstation", "test_pingpong[openmpi]", "latency", 8)


def test_median_ci_from_order_statistics():
    # 5 samples cannot reach 95%: min..max with its true coverage 1 - 2/32.
    ci = median_ci([5, 1, 4, 2, 3])
    assert (ci.estimate, ci.low, ci.high) == (3, 1, 5)
    assert ci.confidence == pytest.approx(0.9375)
    # 20 samples: the textbook 95% interval is the 6th..15th order statistics (1-based).
    ci = median_ci(range(1, 21))
    assert (ci.low, ci.high) == (6, 15)
    assert ci.confidence >= 0.95


def test_median_ci_covers_the_true_median_as_often_as_it_claims():
    rng = np.random.default_rng(7)
    hits = sum(
        ci.low <= 1.0 <= ci.high for ci in (median_ci(rng.lognormal(0, 1, 30)) for _ in range(400))
    )
    assert hits / 400 >= 0.93


def test_worse_ratio_follows_direction():
    assert worse_ratio(11.0, 10.0, "lower") == pytest.approx(1.1)
    assert worse_ratio(9.0, 10.0, "higher") == pytest.approx(10 / 9)
    assert worse_ratio(11.0, 10.0, "higher") < 1


def test_mann_whitney_is_one_sided_in_the_worse_direction():
    base = np.linspace(1.0, 1.1, 40)
    slower = base * 1.2
    assert mann_whitney_worse(slower, base, "lower") < 1e-6
    assert mann_whitney_worse(slower, base, "higher") > 0.99  # more bandwidth is not worse
    assert mann_whitney_worse(base / 1.2, base, "higher") < 1e-6


def test_bootstrap_interval_brackets_the_true_ratio():
    rng = np.random.default_rng(3)
    base = rng.lognormal(0, 0.05, 60)
    cand = rng.lognormal(0, 0.05, 30) * 1.10
    ci = bootstrap_ratio_ci(cand, base, "lower", rng=np.random.default_rng(0))
    assert ci.low < 1.10 < ci.high
    assert ci.low > 1.0


def test_noise_floor_is_the_worst_run_to_run_worsening():
    # One accepted run was 30% slower than the others: unchanged software can look 30% worse.
    assert noise_floor([1.0, 1.0, 1.0, 1.0, 1.3], "lower", quantile=1.0) == pytest.approx(0.3)
    # For bandwidth the slow run is the low one.
    assert noise_floor([10.0, 10.0, 10.0, 8.0], "higher", quantile=1.0) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        noise_floor([1.0], "lower")


def _baseline(rng, runs=10, per_run=7, spread=0.01):
    return Baseline(
        KEY,
        tuple(f"r{i}" for i in range(runs)),
        tuple(tuple(rng.normal(1.0, spread, per_run)) for _ in range(runs)),
    )


def test_unchanged_software_is_ok_and_a_clear_slowdown_is_suspect():
    rng = np.random.default_rng(11)
    base = _baseline(rng)
    same = assess(rng.normal(1.0, 0.01, 7), "lower", base)
    assert same.verdict == "ok"
    slow = assess(rng.normal(1.2, 0.01, 7), "lower", base)
    assert slow.verdict == "suspect"
    assert slow.effect.low > 1.15 and slow.effect.estimate == pytest.approx(1.2, rel=0.03)
    assert slow.p_value < 0.01
    faster = assess(rng.normal(0.8, 0.01, 7), "lower", base)
    assert faster.verdict == "improved"


def test_significant_but_within_the_noise_floor_is_not_a_regression():
    rng = np.random.default_rng(5)
    # One run of unchanged software was 14% slower than the others; each run is very steady.
    runs = tuple(
        tuple(rng.normal(level, 0.001, 7))
        for level in (1.0, 0.97, 1.02, 0.99, 1.14, 1.0, 0.98, 1.01)
    )
    base = Baseline(KEY, tuple(f"r{i}" for i in range(len(runs))), runs)
    a = assess(rng.normal(1.10, 0.001, 7), "lower", base)
    assert a.p_value < 0.01  # the rank test alone would call it
    assert a.noise_floor >= 0.10
    assert a.verdict == "ok"


def test_one_rerun_confirms_or_clears_a_suspect():
    rng = np.random.default_rng(2)
    base = _baseline(rng)
    first = assess(rng.normal(1.3, 0.01, 7), "lower", base)
    confirmed = confirm(first, assess(rng.normal(1.3, 0.01, 7), "lower", base))
    assert confirmed.verdict == "regression" and confirmed.fails
    cleared = confirm(first, assess(rng.normal(1.0, 0.01, 7), "lower", base))
    assert cleared.verdict == "not confirmed" and not cleared.fails
    assert "rerun measured" in cleared.describe("us")
    with pytest.raises(ValueError):
        confirm(cleared, first)


def test_without_history_the_fixed_reference_decides():
    ref = Reference(0.5, None, 3.0, "us")  # at most 2.0 us
    assert assess([0.2] * 5, "lower", None, ref).verdict == "within reference"
    out = assess([3.6] * 5, "lower", None, ref)
    assert out.verdict == "outside reference" and out.fails
    # Two accepted runs are too few to learn a noise floor: the reference still decides.
    few = Baseline(KEY, ("a", "b"), ((0.2,) * 5, (0.2,) * 5))
    assert assess([3.6] * 5, "lower", few, ref).verdict == "outside reference"
    assert assess([3.6] * 5, "lower", None, None).verdict == "no baseline"


def test_too_few_repeats_are_not_judged():
    policy = DecisionPolicy(min_repeats=5)
    a = assess([1.0, 1.0, 1.0], "lower", None, Reference(0.5, None, 0.1, "us"), policy)
    assert a.verdict == "too few samples" and not a.fails


def test_description_gives_effect_size_with_interval():
    rng = np.random.default_rng(9)
    base = _baseline(rng)
    text = assess(rng.normal(1.25, 0.01, 7), "lower", base).describe("us")
    assert (
        "effect +2" in text
        and "95% CI" in text
        and "noise floor" in text
        and "from 10 accepted runs" in text
    )


def test_effect_of_a_broken_stack_reads_as_a_factor():
    rng = np.random.default_rng(4)
    base = _baseline(rng)
    text = assess(rng.normal(20.0, 0.1, 7), "lower", base).describe("us")
    assert "effect x20 worse (95% CI x19" in text


def test_a_rerun_within_the_historys_spread_confirms_nothing():
    """A loaded machine: one accepted night already ran 40% slow, and tonight's run and its rerun are
    slowed by the same neighbours.  The rerun is a suspect, but not clearly slower than the history
    has already been."""
    rng = np.random.default_rng(3)
    runs = [tuple(rng.normal(1.0, 0.01, 7)) for _ in range(9)] + [tuple(rng.normal(1.4, 0.01, 7))]
    base = Baseline(KEY, tuple(f"r{i}" for i in range(10)), tuple(runs))
    first = assess(rng.normal(1.5, 0.01, 7), "lower", base)
    assert first.verdict == "suspect" and first.history_worst == pytest.approx(1.4, rel=0.02)
    # Its median is past the worst night, but its own samples reach back into the history's spread.
    loaded_rerun = assess([1.30, 1.33, 1.42, 1.46, 1.5, 1.55, 1.6], "lower", base)
    assert loaded_rerun.verdict == "suspect"  # the rule before: a confirmed regression
    settled = confirm(first, loaded_rerun)
    assert settled.verdict == "not confirmed" and not settled.fails
    assert "within the noise" in settled.describe("us")
    # A real regression stands clear of the worst accepted night: confirmed.
    assert confirm(first, assess(rng.normal(1.6, 0.01, 7), "lower", base)).verdict == "regression"


def test_a_rerun_whose_samples_scatter_across_the_floor_confirms_nothing():
    rng = np.random.default_rng(8)
    base = _baseline(rng)
    first = assess(rng.normal(1.3, 0.01, 7), "lower", base)
    # Median 30% slow, but its own samples range from no change to twice as slow (a busy neighbour).
    scattered = assess([1.0, 1.01, 1.2, 1.3, 1.5, 1.9, 2.0], "lower", base)
    assert scattered.verdict == "suspect" and scattered.effect.low - 1 < scattered.noise_floor
    assert confirm(first, scattered).verdict == "not confirmed"


def test_a_zero_bandwidth_is_infinitely_worse_not_a_division_error():
    rng = np.random.default_rng(6)
    runs = tuple(tuple(rng.normal(1000.0, 5.0, 7)) for _ in range(5))
    base = Baseline(KEY, tuple(f"r{i}" for i in range(5)), runs)
    with np.errstate(all="raise"):  # numpy's division warnings are errors here
        assert worse_ratio(0.0, 1000.0, "higher") == float("inf")
        assert worse_ratio(0.0, 0.0, "higher") == 1.0  # nothing then, nothing now: no change
        dead = assess([0.0] * 7, "higher", base)
        settled = confirm(dead, assess([0.0] * 7, "higher", base))
    assert settled.verdict == "regression"
    text = settled.describe("MB/s")
    assert "inf" not in text and "effect total (fell to 0)" in text


def test_the_measured_value_shown_is_the_value_recorded():
    """A repeated benchmark records the median of its runs; its samples' median differs.  The
    verdict's "measured" is the recorded value, so the message and the store say the same number."""
    rng = np.random.default_rng(12)
    base = _baseline(rng)
    samples = [1.30, 1.31, 1.32, 1.29, 1.40, 1.41, 1.42]
    a = assess(samples, "lower", base, recorded=1.35)
    assert a.measured.estimate == 1.35 and "measured 1.35 us" in a.describe("us")
