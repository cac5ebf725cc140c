"""The ticket lifecycle: decide what a run means for the tracker (``plan``), then do it (``apply``).

Per fingerprint: no ticket -> create; open ticket -> one "seen again" comment per run; closed ticket
-> reopen, file a new one that references it, or leave it, by the tracker's status word
(``recurrence_by_status``).  A test that passes on every node for N consecutive runs gets a comment
and, when configured, its tickets are closed.  New tickets are capped per run and per day; a run
that would exceed a cap files one "run-wide failure" ticket instead.

``apply`` always looks the ticket up by fingerprint before acting, so sending an action twice (from
the queue after a crash, or a second ``hpcos tickets file``) creates nothing twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hpcos.results.model import RunResults
from hpcos.site.specs import Tracker as TrackerSpec
from hpcos.tickets import content
from hpcos.tickets.backends import Ticket, TrackerBackend, TrackerError
from hpcos.tickets.fingerprint import ALGORITHM_VERSION
from hpcos.tickets.grouping import group_failures, passing_tests
from hpcos.tickets.state import TicketState

log = logging.getLogger("hpcos.tickets")

RUN_WIDE_TEST = "<run-wide>"
RUN_WIDE_KEY = f"hpcos-v{ALGORITHM_VERSION}-" + hashlib.sha256(b"run-wide failure").hexdigest()[:16]


@dataclass
class Action:
    kind: str  # "report": make sure a ticket says we saw this failure; "resolve": passing streak reached
    key: str
    test_id: str
    run_id: str
    day: str  # the run's UTC day, for the per-day cap
    summary: str = ""
    description: str = ""
    comment: str = ""
    close: bool = False
    new: bool = False  # no ticket known for this fingerprint when planned (what the caps count)
    aliases: list[str] = field(default_factory=list)  # keys of earlier fingerprint algorithms


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    streaks: dict[str, int] = field(default_factory=dict)  # passing streak per tracked key after this run
    capped: str | None = None  # why a run-wide ticket replaced the new ones


def _day(run: RunResults) -> str:
    try:
        return datetime.fromisoformat(run.started).astimezone(UTC).date().isoformat()
    except ValueError:
        return datetime.now(UTC).date().isoformat()


def plan(run: RunResults, state: TicketState, spec: TrackerSpec, markup: str,
         redact: Callable[[str], str] = lambda text: text) -> Plan:
    """What this run means for the tracker.  Reads ``state``, changes nothing."""
    day = _day(run)
    result = Plan()
    reports = []
    groups = group_failures(run)
    for group in groups:
        reports.append(Action(
            "report", group.key, group.test_id, run.run_id, day,
            summary=redact(content.summary(group)),
            description=redact(content.description(group, run, markup)),
            comment=redact(content.seen_again(group, run, markup)),
            new=all(state.tracked(key) is None for key in (group.key, *group.fingerprint.aliases)),
            aliases=list(group.fingerprint.aliases)))
    new = [a for a in reports if a.new]
    allowed_today = spec.max_new_per_day - state.created_on(day)
    if len(new) > spec.max_new_per_run or len(new) > allowed_today:
        result.capped = (f"at most {spec.max_new_per_run} new per run, "
                         f"{max(allowed_today, 0)} left of {spec.max_new_per_day} today")
        new_keys = {a.key for a in new}
        reports = [a for a in reports if a.key not in new_keys]
        summary, description = content.run_wide([g for g in groups if g.key in new_keys], run, result.capped,
                                                markup)
        reports.append(Action("report", RUN_WIDE_KEY, RUN_WIDE_TEST, run.run_id, day,
                              summary=redact(summary), description=redact(description),
                              comment=redact(description), new=state.tracked(RUN_WIDE_KEY) is None))
    result.actions.extend(reports)

    passing = passing_tests(run)
    reported = {a.key for a in reports}
    counted = state.counted(run.run_id)
    for key, test_id, _ticket, streak in state.open_tickets():
        if counted:
            runs = streak
        elif key in reported:
            runs = 0
        elif test_id in passing or (test_id == RUN_WIDE_TEST and not result.capped):
            runs = streak + 1
        else:
            runs = streak  # not run this time (deselected, skipped): no evidence either way
        result.streaks[key] = runs
        if runs == spec.close_after_passing_runs and runs != streak:
            result.actions.append(Action(
                "resolve", key, test_id, run.run_id, day, close=spec.close,
                comment=redact(content.passing(test_id, runs, run, spec.close, markup))))
    return result


def recurrence(spec: TrackerSpec, ticket: Ticket) -> str:
    by_status = {k.lower(): v for k, v in spec.recurrence_by_status.items()}
    return by_status.get(ticket.resolution.lower()) or by_status.get(ticket.status.lower()) or spec.recurrence


def apply(action: Action, backend: TrackerBackend, state: TicketState, spec: TrackerSpec) -> str:
    """Do one action against the tracker; returns what was done, for the log."""
    ticket = backend.find(action.key)
    for alias in action.aliases:  # filed before the fingerprint algorithm changed
        if ticket is None:
            ticket = backend.find(alias)
    if action.kind == "resolve":
        if ticket is None or ticket.closed:
            if ticket is not None:
                state.track(action.key, action.test_id, ticket.id, is_open=False)
            return f"{action.key}: nothing to resolve"
        if state.touched(action.key, action.run_id):
            return f"#{ticket.id}: already updated in run {action.run_id}"
        (backend.close if action.close else backend.comment)(ticket, action.comment)
        state.touch(action.key, action.run_id)
        state.track(action.key, action.test_id, ticket.id, is_open=not action.close)
        return f"#{ticket.id}: {'closed' if action.close else 'commented'} after passing runs"

    if ticket is not None and not ticket.closed:
        state.track(action.key, action.test_id, ticket.id, is_open=True)
        if state.touched(action.key, action.run_id):
            return f"#{ticket.id}: already commented in run {action.run_id}"
        backend.comment(ticket, action.comment)
        done = f"#{ticket.id}: commented"
    elif ticket is not None:
        what = recurrence(spec, ticket)
        if what == "ignore":
            state.track(action.key, action.test_id, ticket.id, is_open=False)
            return f"#{ticket.id}: closed as {ticket.resolution or ticket.status}, ignored by policy"
        if what == "reopen" and backend.can_reopen:
            backend.reopen(ticket, action.comment)
            state.track(action.key, action.test_id, ticket.id, is_open=True)
            done = f"#{ticket.id}: reopened"
        else:
            earlier = f"This failure was tracked before in {ticket.url or '#' + ticket.id} " \
                      f"(closed as {ticket.resolution or ticket.status})."
            created = backend.create(action.summary, action.description + "\n" + earlier + "\n", action.key)
            state.record_created(action.day, action.key, created.id)
            state.track(action.key, action.test_id, created.id, is_open=True)
            done = f"#{created.id}: created (follows #{ticket.id})"
    else:
        created = backend.create(action.summary, action.description, action.key)
        state.record_created(action.day, action.key, created.id)
        state.track(action.key, action.test_id, created.id, is_open=True)
        done = f"#{created.id}: created"
    state.touch(action.key, action.run_id)
    return done


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    queued: int = 0
    error: str | None = None  # why the tracker could not be reached


def send(actions, backend: TrackerBackend, state: TicketState, spec: TrackerSpec, queue,
         outcome: Outcome, progress: Callable[[], None] = lambda: None) -> None:
    """Apply actions in order; from the first tracker failure on, queue the rest without trying."""
    for action in actions:
        if outcome.error is None:
            try:
                outcome.done.append(apply(action, backend, state, spec))
                log.info("%s", outcome.done[-1])
                progress()
                continue
            except TrackerError as exc:
                outcome.error = f"{type(exc).__name__}: {exc}"
                log.warning("tracker failed, queueing the remaining tickets: %s", outcome.error)
        if queue.put(action):
            outcome.queued += 1
        progress()


def flush(backend: TrackerBackend, state: TicketState, spec: TrackerSpec, queue) -> Outcome:
    """Send what the queue holds, oldest first; stop at the first failure and keep the rest."""
    outcome = Outcome()
    with queue.draining() as items:
        for action, done in items:
            try:
                outcome.done.append(apply(action, backend, state, spec))
                log.info("%s (from the queue)", outcome.done[-1])
            except TrackerError as exc:
                outcome.error = f"{type(exc).__name__}: {exc}"
                log.warning("tracker failed, the queue keeps the rest: %s", outcome.error)
                break
            done()
    outcome.queued = len(queue)
    return outcome


def file_run(run: RunResults, backend: TrackerBackend, state: TicketState, spec: TrackerSpec, queue,
             redact: Callable[[str], str] = lambda text: text,
             progress: Callable[[int], Callable[[], None]] | None = None) -> tuple[Plan, Outcome]:
    """The end of a nightly run: send what earlier runs queued, then this run's actions."""
    earlier = flush(backend, state, spec, queue) if len(queue) else Outcome()
    decided = plan(run, state, spec, backend.markup, redact)
    outcome = Outcome(done=earlier.done, error=earlier.error)
    tick = progress(len(decided.actions)) if progress else (lambda: None)
    send(decided.actions, backend, state, spec, queue, outcome, tick)
    state.record_streaks(run.run_id, decided.streaks)
    outcome.queued = len(queue)
    return decided, outcome
