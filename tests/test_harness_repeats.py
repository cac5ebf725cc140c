"""harness.repeats: a reference judged on the median of repeated runs and the runs' own noise."""

import pytest

from harness.repeats import describe, judge, settle
from hpcos.results.model import Reference

LATENCY = Reference(0.5, None, 3.0, "us")  # local.yaml's pingpong_latency at 8 B: up to 2 us
BANDWIDTH = Reference(13000, -0.1, None, "MB/s")  # at least 11700 MB/s


def test_median_inside_the_reference_passes_whatever_one_run_did():
    j = judge([0.21, 7.5, 0.22], "lower", LATENCY)  # one run hit a neighbour's burst
    assert j.assessment.verdict == "within reference" and not j.fails and not j.needs_rerun
    assert j.median == 0.22 and j.noise > 10  # that run looked x30 worse than the others


def test_outside_with_runs_that_agree_fails_at_once():
    j = judge([3.61, 3.62, 3.60], "lower", LATENCY)
    assert j.noise < 0.02
    assert j.assessment.verdict == "outside reference" and j.fails and not j.needs_rerun
    assert describe("pingpong_latency", 8, "us", j) == (
        "pingpong_latency at 8 B: measured 3.61 us, expected 0.5 us (..2); median of 3 runs [3.61, 3.62, 3.6], "
        "which disagree by 0.4%; the runs agree, so not rerun"
    )


def test_outside_with_runs_that_disagree_is_a_suspect_the_rerun_decides():
    j = judge([2.4, 3.9, 1.1], "lower", LATENCY)
    assert j.needs_rerun and not j.fails and j.noise > 0.02
    confirmed = settle(j, [2.6, 3.0, 2.2])
    assert confirmed.fails and confirmed.assessment.verdict == "regression"
    assert "measured 2.4 us" in describe("pingpong_latency", 8, "us", confirmed)
    assert describe("pingpong_latency", 8, "us", confirmed).endswith(
        "rerun measured 2.6 us (outside again)"
    )
    cleared = settle(j, [0.3, 0.25, 0.4])
    assert not cleared.fails and cleared.assessment.verdict == "not confirmed"
    assert describe("pingpong_latency", 8, "us", cleared).endswith(
        "rerun measured 0.3 us (inside: not confirmed)"
    )
    with pytest.raises(ValueError, match="only a suspect"):
        settle(cleared, [3.0, 3.0, 3.0])


def test_higher_is_better_is_judged_the_other_way():
    assert judge([13036.41] * 3, "higher", BANDWIDTH).assessment.verdict == "within reference"
    low = judge([11000, 11010, 10990], "higher", BANDWIDTH)
    assert low.fails and low.noise < 0.02
    assert judge([11000, 13000, 9000], "higher", BANDWIDTH).needs_rerun


def test_without_reference_nothing_fails():
    j = judge([1.0, 50.0, 3.0], "lower", None)
    assert j.assessment.verdict == "no baseline" and not j.fails and not j.needs_rerun


def test_profile_repeat_defaults_to_three_and_must_be_positive(tmp_path):
    from hpcos.cluster.profiles import load_profile
    from hpcos.core.sourced_yaml import InvalidInput

    base = "name: tiny\nlauncher: local\n"
    (tmp_path / "default.yaml").write_text(base)
    assert load_profile(tmp_path / "default.yaml").repeat == 3
    (tmp_path / "five.yaml").write_text(base + "repeat: 5\n")
    assert load_profile(tmp_path / "five.yaml").repeat == 5
    (tmp_path / "zero.yaml").write_text(base + "repeat: 0\n")
    with pytest.raises(InvalidInput, match=r"zero\.yaml:3.*repeat"):
        load_profile(tmp_path / "zero.yaml")
