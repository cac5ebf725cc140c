"""The ticket lifecycle: decide what a run means for the tracker (``plan``), then do it (``apply``).

Per fingerprint: no ticket -> create; open ticket -> one "seen again" comment per later run (never
in the run that created it); closed ticket -> reopen, file a new one that references it, or leave
it, by the tracker's status word (``recurrence_by_status``).  Every failure seen resets the ticket's
passing streak; when every test of a ticket has passed on every node for N or more consecutive runs,
it gets a comment and, when configured, is closed.  New tickets are capped per run and per day; a
run that would exceed a cap files one "run-wide failure" ticket instead.

``apply`` always looks the ticket up by fingerprint before acting, and before changing a ticket reads
it for this run's marker (``content.run_marker``): sending an action twice (from the queue after a
crash or a lost reply, or a second ``hpcos tickets file``) creates nothing twice and comments once.
A ticket filed under an earlier fingerprint version is found by its old key (``aliases``), carried
over to the new key, and other open tickets of the same root cause are closed as its duplicates.

Across nights, one root cause stays one ticket when Open MPI loses its explanation (``_across_nights``):
a night on which every job of a stack printed only the library's launcher noise (the "explanation
lost" group) comments on the open ticket of a specific cause of that stack and class on overlapping
nodes; a night that names the cause takes over an open "explanation lost" ticket of the same stack
and nodes (it is re-keyed, as a fingerprint carried over).  Two specific causes never merge: only
the lost group joins, and it joins one ticket.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypedDict

from ClusterShell.NodeSet import NodeSet

from hpcos.results.model import RunResults
from hpcos.site.specs import Tracker as TrackerSpec
from hpcos.tickets import content
from hpcos.tickets.backends import Ticket, TrackerBackend, TrackerError
from hpcos.tickets.fingerprint import ALGORITHM_VERSION
from hpcos.tickets.grouping import (
    FailureGroup,
    cause_of_one_stack,
    group_failures,
    lost_explanation,
    passing_tests,
)
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
    aliases: list[str] = field(
        default_factory=list
    )  # keys of earlier fingerprint algorithms (or nights)
    tests: list[str] = field(default_factory=list)  # every test the failure was seen in
    # What the state records of the ticket (``TicketState.track``): "cause" (a specific cause of one
    # MPI stack) or "lost" (its explanation lost), the stack, class and nodes the failure was seen on.
    grouping: str = ""
    stack: str = ""
    failure_class: str = ""
    nodes: str = ""


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    streaks: dict[str, int] = field(
        default_factory=dict
    )  # passing streak per tracked key after this run
    capped: str | None = None  # why a run-wide ticket replaced the new ones


def _day(run: RunResults) -> str:
    try:
        return datetime.fromisoformat(run.started).astimezone(UTC).date().isoformat()
    except ValueError:
        return datetime.now(UTC).date().isoformat()


def _overlapping(rows: list[tuple[str, str, str, int]], nodes) -> list[tuple[str, str, str]]:
    """(key, ticket, shared nodes) of the tracked rows whose nodes overlap ``nodes``: the most recently
    failing first (shortest passing streak), then the widest overlap.  A row with no nodes recorded
    (tracked before nodes were) is no evidence."""
    found = []
    for key, ticket, known, streak in rows:
        shared = NodeSet(known) & nodes if known else NodeSet()
        if shared:
            found.append((streak, -len(shared), key, ticket, str(shared)))
    return [(key, ticket, shared) for _, _, key, ticket, shared in sorted(found)]


def _across_nights(group: FailureGroup, state: TicketState) -> tuple[str, list[str]]:
    """What earlier nights say about ``group``: its grouping for the state ("cause", "lost", "") and
    the keys of open tickets it takes over.  Files a lost group under an open cause's ticket
    (``group.continues``) and says why in ``group.joined``."""
    fp = group.fingerprint
    lost = lost_explanation(fp)
    if lost:
        found = _overlapping(state.open_grouped("cause", fp.stack, fp.failure_class), group.nodes)
        if not found:
            return "lost", []
        key, ticket, shared = found[0]
        group.continues = key
        group.joined.append(
            f"no explanation this night (every {fp.stack} job printed only {lost}'s launcher "
            f"noise); same stack and nodes ({shared}) as #{ticket}, open for this cause"
        )
        return "cause", []
    if not cause_of_one_stack(fp):
        return "", []
    if state.tracked(fp.key) is not None:
        return "cause", []
    found = _overlapping(state.open_grouped("lost", fp.stack, fp.failure_class), group.nodes)
    for _key, ticket, shared in found:
        group.joined.append(
            f"#{ticket} was filed on a night when every {fp.stack} job lost the explanation, on "
            f"the same stack and nodes ({shared}); this night names the cause"
        )
    return "cause", [key for key, _, _ in found]


def plan(
    run: RunResults,
    state: TicketState,
    spec: TrackerSpec,
    markup: str,
    redact: Callable[[str], str] = lambda text: text,
) -> Plan:
    """What this run means for the tracker.  Reads ``state``, changes nothing."""
    day = _day(run)
    result = Plan()
    reports = []
    groups = group_failures(run)
    for group in groups:
        grouping, earlier = _across_nights(group, state)
        aliases = sorted((group.aliases | set(earlier)) - {group.key})
        stack = group.fingerprint.stack
        reports.append(
            Action(
                "report",
                group.key,
                group.test_id,
                run.run_id,
                day,
                summary=redact(content.summary(group)),
                description=redact(content.description(group, run, markup)),
                comment=redact(content.seen_again(group, run, markup)),
                new=all(state.tracked(key) is None for key in (group.key, *aliases)),
                aliases=aliases,
                tests=group.tests,
                grouping=grouping,
                stack=stack if grouping else "",
                failure_class=group.fingerprint.failure_class if grouping else "",
                nodes=str(group.nodes) if grouping else "",
            )
        )
    new = [a for a in reports if a.new]
    allowed_today = spec.max_new_per_day - state.created_on(day)
    if len(new) > spec.max_new_per_run or len(new) > allowed_today:
        result.capped = (
            f"at most {spec.max_new_per_run} new per run, "
            f"{max(allowed_today, 0)} left of {spec.max_new_per_day} today"
        )
        new_keys = {a.key for a in new}
        reports = [a for a in reports if a.key not in new_keys]
        summary, description = content.run_wide(
            [g for g in groups if g.key in new_keys], run, result.capped, markup, RUN_WIDE_KEY
        )
        reports.append(
            Action(
                "report",
                RUN_WIDE_KEY,
                RUN_WIDE_TEST,
                run.run_id,
                day,
                summary=redact(summary),
                description=redact(description),
                comment=redact(description),
                new=state.tracked(RUN_WIDE_KEY) is None,
                tests=[RUN_WIDE_TEST],
            )
        )
    result.actions.extend(reports)

    passing = passing_tests(run)
    ran = {r.test_id for r in run.results if r.outcome != "skipped"}
    reported = {key for a in reports for key in (a.key, *a.aliases)}
    counted = state.counted(run.run_id)
    n = spec.close_after_passing_runs
    for key, test_id, _ticket, streak in state.open_tickets():
        tests = set(state.tests(key))
        if counted:
            runs = streak
        elif key in reported:
            runs = 0
        elif test_id == RUN_WIDE_TEST:
            runs = streak if result.capped else streak + 1
        elif tests & ran and (tests & ran) <= passing:
            runs = streak + 1
        else:
            runs = (
                streak  # not run this time (deselected, skipped), or failing otherwise: no evidence
            )
        result.streaks[key] = runs
        # ">=": a close that was queued, or a ticket reopened by hand, still closes on a later clean run.
        if runs >= n and runs > streak and (spec.close or streak < n):
            result.actions.append(
                Action(
                    "resolve",
                    key,
                    test_id,
                    run.run_id,
                    day,
                    close=spec.close,
                    tests=sorted(tests),
                    comment=redact(
                        content.passing(sorted(tests), runs, run, spec.close, markup, key)
                    ),
                )
            )
    return result


def recurrence(spec: TrackerSpec, ticket: Ticket) -> str:
    by_status = {k.lower(): v for k, v in spec.recurrence_by_status.items()}
    return (
        by_status.get(ticket.resolution.lower())
        or by_status.get(ticket.status.lower())
        or spec.recurrence
    )


def _find(
    action: Action, backend: TrackerBackend, state: TicketState, markup: str
) -> tuple[Ticket | None, str]:
    """The ticket for ``action`` and the key the tracker knows it by.

    Not found by its key: an earlier fingerprint version may have filed it (several tickets, when
    version 1 made one per test).  The open one (else the newest) is carried over to the new key;
    the other open ones are closed as its duplicates, so none is left behind.
    """
    ticket = backend.find(action.key)
    # Only the old keys hpcos remembers filing: a new failure costs no lookups per old variant.
    known = [alias for alias in action.aliases if state.tracked(alias) is not None]
    if ticket is not None or not known:
        return ticket, action.key
    found = [(alias, t) for alias in known if (t := backend.find(alias)) is not None]
    if not found:
        return None, action.key
    found.sort(key=lambda pair: (pair[1].closed, int(pair[1].id) if pair[1].id.isdigit() else 0))
    alias, ticket = found[0]
    ref = ticket.url or f"#{ticket.id}"
    for other_alias, other in found[1:]:
        if other.id != ticket.id and not other.closed:
            backend.close(other, content.carried_over(ref, action.key, markup))
            log.info(
                "#%s: closed as a duplicate of #%s (fingerprint carried over)", other.id, ticket.id
            )
        state.forget(other_alias)
    if backend.rekey(ticket, action.key):
        state.forget(alias)
        return ticket, action.key
    return ticket, alias  # a tracker that cannot change the key: keep using the old one


class _Seen(TypedDict):
    grouping: str
    stack: str
    failure_class: str
    nodes: str


def _seen(action: Action) -> _Seen:
    """What ``TicketState.track`` records of the failure the action reports."""
    return {
        "grouping": action.grouping,
        "stack": action.stack,
        "failure_class": action.failure_class,
        "nodes": action.nodes,
    }


def apply(action: Action, backend: TrackerBackend, state: TicketState, spec: TrackerSpec) -> str:
    """Do one action against the tracker; returns what was done, for the log."""
    ticket, key = _find(action, backend, state, backend.markup)
    tests = action.tests or [action.test_id]
    said = content.run_marker(action.run_id, action.key, action.kind)
    if action.kind == "resolve":
        if ticket is None or ticket.closed:
            if ticket is not None:
                state.track(key, action.test_id, ticket.id, is_open=False)
            return f"{action.key}: nothing to resolve"
        if state.touched(action.key, action.run_id) or backend.has_marker(ticket, said):
            state.touch(action.key, action.run_id)
            state.track(key, action.test_id, ticket.id, is_open=not action.close)
            return f"#{ticket.id}: already updated in run {action.run_id}"
        (backend.close if action.close else backend.comment)(ticket, action.comment)
        state.touch(action.key, action.run_id)
        state.track(key, action.test_id, ticket.id, is_open=not action.close)
        return f"#{ticket.id}: {'closed' if action.close else 'commented'} after passing runs"

    if ticket is not None and not ticket.closed:
        known = state.tracked(key) is not None
        state.track(
            key, action.test_id, ticket.id, is_open=True, tests=tests, failing=True, **_seen(action)
        )
        if state.touched(action.key, action.run_id) or backend.has_marker(ticket, said):
            # This run already told the ticket: it created it, or a reply was lost after the comment.
            state.touch(action.key, action.run_id)
            if not known and action.new:
                # Created by this very action, whose flush was killed before it could note the ticket.
                state.record_created(action.day, action.key, ticket.id)
                return f"#{ticket.id}: created"
            return f"#{ticket.id}: already commented in run {action.run_id}"
        backend.comment(ticket, action.comment)
        done = f"#{ticket.id}: commented"
    elif ticket is not None:
        what = recurrence(spec, ticket)
        if what == "ignore":
            state.track(key, action.test_id, ticket.id, is_open=False, tests=tests, **_seen(action))
            return (
                f"#{ticket.id}: closed as {ticket.resolution or ticket.status}, ignored by policy"
            )
        if what == "reopen" and backend.can_reopen:
            if not backend.has_marker(ticket, said):
                backend.reopen(ticket, action.comment)
            state.track(
                key,
                action.test_id,
                ticket.id,
                is_open=True,
                tests=tests,
                failing=True,
                **_seen(action),
            )
            done = f"#{ticket.id}: reopened"
        else:
            earlier = (
                f"This failure was tracked before in {ticket.url or '#' + ticket.id} "
                f"(closed as {ticket.resolution or ticket.status})."
            )
            created = backend.create(
                action.summary, action.description + "\n" + earlier + "\n", action.key
            )
            state.record_created(action.day, action.key, created.id)
            state.track(
                action.key,
                action.test_id,
                created.id,
                is_open=True,
                tests=tests,
                failing=True,
                **_seen(action),
            )
            done = f"#{created.id}: created (follows #{ticket.id})"
    else:
        created = backend.create(action.summary, action.description, action.key)
        state.record_created(action.day, action.key, created.id)
        state.track(
            action.key,
            action.test_id,
            created.id,
            is_open=True,
            tests=tests,
            failing=True,
            **_seen(action),
        )
        done = f"#{created.id}: created"
    state.touch(action.key, action.run_id)
    return done


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    queued: int = 0
    error: str | None = (
        None  # why the tracker could not be reached: "<cause>: <message naming the URL>"
    )
    dropped: int = 0  # actions not queued because the tracker settings are invalid


def send(
    actions: list[Action],
    backend: TrackerBackend,
    state: TicketState,
    spec: TrackerSpec,
    queue,
    outcome: Outcome,
    progress: Callable[[], None] = lambda: None,
) -> None:
    """Apply actions in order; from the first tracker failure on, queue the rest without trying."""
    for action in actions:
        if outcome.error is None:
            try:
                outcome.done.append(apply(action, backend, state, spec))
                log.debug("%s", outcome.done[-1])  # the command prints outcome.done: each line once
                progress()
                continue
            except TrackerError as exc:
                outcome.error = exc.line()
                if not exc.retry:  # the settings are wrong: queueing would only repeat the mistake
                    log.warning("tracker not usable, nothing queued: %s", outcome.error)
                    outcome.dropped = len(actions) - actions.index(action)
                    return
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
                log.debug("%s (from the queue)", outcome.done[-1])  # printed by the command, once
            except TrackerError as exc:
                outcome.error = exc.line()
                log.warning("tracker failed, the queue keeps the rest: %s", outcome.error)
                break
            done()
    outcome.queued = len(queue)
    return outcome


def file_run(
    run: RunResults,
    backend: TrackerBackend,
    state: TicketState,
    spec: TrackerSpec,
    queue,
    redact: Callable[[str], str] = lambda text: text,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> tuple[Plan, Outcome]:
    """The end of a nightly run: send what earlier runs queued, then this run's actions."""
    earlier = flush(backend, state, spec, queue) if len(queue) else Outcome()
    decided = plan(run, state, spec, backend.markup, redact)
    outcome = Outcome(done=earlier.done, error=earlier.error)
    tick = progress(len(decided.actions)) if progress else (lambda: None)
    send(decided.actions, backend, state, spec, queue, outcome, tick)
    state.record_streaks(run.run_id, decided.streaks)
    outcome.queued = len(queue)
    return decided, outcome
