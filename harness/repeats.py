"""A benchmark run ``repeat`` times, and the profile's reference judged on the repeats.

One run of osu_latency on a shared node is one draw: a neighbour's burst lands in it and a healthy
stack fails its reference (1 run in 3 did here).  So a test that checks a reference runs the whole
benchmark ``repeat`` times (the profile's ``repeat``, default 3) and each (metric, size) is judged
the way the perf history judges a run (``hpcos.perf``), with its functions:

* the **median of the repeats** is compared with the reference (``decision.assess`` without history:
  ``within reference`` / ``outside reference``);
* the **noise of the repeats** is ``statistics.noise_floor`` over them -- how much worse one run
  looked than the others, the same leave-one-out measure the history learns from accepted runs;
* outside the reference, with repeats that **agree** (noise within ``min_noise_floor``, 2%): the
  stack really is there, and the test fails;
* outside, with repeats that **disagree** more than that: a ``suspect``.  The whole repeated
  measurement runs once more and the rerun's median decides (``decision.confirm``): outside again,
  the test fails; inside, it passes as ``not confirmed`` and says so.  Never more than one rerun:
  retrying until it passes would hide real regressions.

No fixed tolerance is added anywhere: how much a run may vary is learnt from the runs themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from hpcos.results.model import Direction, Reference

if (
    TYPE_CHECKING
):  # hpcos.perf pulls in scipy: imported when a judgement is made, not by every session
    from hpcos.perf.decision import Assessment, DecisionPolicy


@dataclass(frozen=True)
class Reading:
    """One value that one run of a benchmark gave."""

    metric: str
    value: float
    unit: str
    direction: Direction
    size: int | None = None
    samples: tuple[float, ...] = ()  # the run's own timed repetitions, when it prints them


@dataclass(frozen=True)
class RepeatedJudgement:
    repeats: tuple[float, ...]  # one value per run
    reference: Reference | None
    noise: float  # relative disagreement of the repeats (0.07 = one run looked 7% worse than the others)
    assessment: Assessment  # verdict, median with its interval, rerun when there was one

    @property
    def median(self) -> float:
        return self.assessment.measured.estimate

    @property
    def fails(self) -> bool:
        return self.assessment.fails

    @property
    def needs_rerun(self) -> bool:
        return self.assessment.verdict == "suspect"


def judge(
    repeats: Sequence[float],
    direction: Direction,
    reference: Reference | None,
    policy: DecisionPolicy | None = None,
) -> RepeatedJudgement:
    """The verdict on one (metric, size) from its repeats: see the module text."""
    from hpcos.perf.decision import DEFAULT_POLICY, assess
    from hpcos.perf.statistics import noise_floor

    policy = policy or DEFAULT_POLICY
    if not repeats:
        raise ValueError("no repeats to judge")
    values = tuple(float(v) for v in repeats)
    noise = noise_floor(values, direction, policy.noise_quantile) if len(values) > 1 else 0.0
    # The repeats are few by design (3 runs); the median of what there is decides.
    first = assess(values, direction, reference=reference, policy=replace(policy, min_repeats=1))
    if first.verdict == "outside reference" and noise > policy.min_noise_floor:
        first = replace(first, verdict="suspect", noise_floor=noise)
    return RepeatedJudgement(values, reference, noise, first)


def settle(
    suspect: RepeatedJudgement, rerun_repeats: Sequence[float], policy: DecisionPolicy | None = None
) -> RepeatedJudgement:
    """A suspect decided by its one rerun: a rerun median outside the reference confirms it."""
    from hpcos.perf.decision import confirm

    again = judge(rerun_repeats, suspect.assessment.direction, suspect.reference, policy)
    outside = again.assessment.verdict in ("outside reference", "suspect")
    rerun = replace(again.assessment, verdict="suspect" if outside else again.assessment.verdict)
    return replace(suspect, assessment=confirm(suspect.assessment, rerun))


def describe(metric: str, size: int | None, unit: str, judgement: RepeatedJudgement) -> str:
    """One line: measured vs expected first (what a person compares), then the repeats and the rerun."""
    reference = judgement.reference
    if reference is None:
        raise ValueError("only a judgement against a reference is described")
    lo, hi = reference.bounds()
    where = f" at {size} B" if size is not None else ""
    runs = ", ".join(f"{v:g}" for v in judgement.repeats)
    text = (
        f"{metric}{where}: measured {judgement.median:g} {unit}, expected {reference.value:g} {reference.unit} "
        f"({_bound(lo)}..{_bound(hi)}); median of {len(judgement.repeats)} runs [{runs}], "
        f"which disagree by {judgement.noise:.1%}"
    )
    rerun = judgement.assessment.rerun
    if rerun is not None:
        state = "outside again" if judgement.fails else "inside: not confirmed"
        text += f"; rerun measured {rerun.measured.estimate:g} {unit} ({state})"
    elif judgement.fails:
        text += "; the runs agree, so not rerun"
    return text


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
