"""Everything one filing needs, opened from the site's tracker settings and the store.

Shared by the pytest plugin (end of a nightly run) and ``hpcos tickets``: credentials resolved once,
a redacting filter on the tickets logger for as long as the session lives, the backend, the state
and the queue under the store.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hpcos.core.errors import UserError
from hpcos.core.store_layout import StoreLayout
from hpcos.results.model import RunResults
from hpcos.site import credentials
from hpcos.site.specs import Tracker as TrackerSpec
from hpcos.tickets import lifecycle
from hpcos.tickets.backends import MARKUP, TrackerBackend, TrackerError, open_backend
from hpcos.tickets.queue import TicketQueue
from hpcos.tickets.state import TicketState

log = logging.getLogger("hpcos.tickets")


class TicketSession:
    def __init__(self, spec: TrackerSpec, store_root: Path, environ: dict[str, str] | None = None):
        self.spec = spec
        self.store_root = Path(store_root)
        self.credentials = credentials.resolve("tracker", spec.url, environ)
        layout = StoreLayout(self.store_root)
        self.state = TicketState(layout.ticket_state)
        self.queue = TicketQueue(layout.ticket_queue)
        self._filter = credentials.RedactingFilter(self.credentials.secrets)
        log.addFilter(self._filter)
        self._backend: TrackerBackend | None = None

    def close(self) -> None:
        log.removeFilter(self._filter)
        self.state.close()

    def __enter__(self) -> TicketSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def backend(self) -> TrackerBackend:
        if self._backend is None:
            try:
                self._backend = open_backend(self.spec, self.store_root, self.credentials)
            except TrackerError as exc:
                raise UserError(f"tracker {self.spec.backend}: {self.credentials.redact(str(exc))}") from exc
        return self._backend

    def plan(self, run: RunResults) -> lifecycle.Plan:
        """What filing ``run`` would do; nothing is sent or remembered (dry run)."""
        return lifecycle.plan(run, self.state, self.spec, MARKUP[self.spec.backend], self.credentials.redact)

    def file(self, run: RunResults, progress=None) -> tuple[lifecycle.Plan, lifecycle.Outcome]:
        try:
            backend = self.backend
        except UserError as exc:  # cannot even open the tracker: keep everything for later
            log.warning("%s; queueing", exc)
            decided = lifecycle.plan(run, self.state, self.spec, MARKUP[self.spec.backend],
                                     self.credentials.redact)
            outcome = lifecycle.Outcome(error=str(exc))
            outcome.queued = sum(self.queue.put(action) for action in decided.actions)
            return decided, outcome
        decided, outcome = lifecycle.file_run(run, backend, self.state, self.spec, self.queue,
                                              self.credentials.redact, progress)
        return decided, self._redacted(outcome)

    def flush(self) -> lifecycle.Outcome:
        return self._redacted(lifecycle.flush(self.backend, self.state, self.spec, self.queue))

    def _redacted(self, outcome: lifecycle.Outcome) -> lifecycle.Outcome:
        """A client library's error message may quote a request URL with its api-key parameter."""
        if outcome.error:
            outcome.error = self.credentials.redact(outcome.error)
        return outcome


def describe(decided: lifecycle.Plan) -> str:
    """A dry run's report: every action with what would be sent."""
    lines = []
    if decided.capped:
        lines.append(f"caps reached ({decided.capped}): one run-wide ticket instead of the new ones")
    for action in decided.actions:
        if action.kind == "report":
            verb = "new ticket" if action.new else "comment (or reopen) on the ticket"
            lines += [f"== {verb} for {action.key}: {action.summary}",
                      action.description if action.new else action.comment]
        else:
            lines += [f"== {'close' if action.close else 'comment on'} ticket for {action.key} ({action.test_id})",
                      action.comment]
    if not decided.actions:
        lines.append("nothing to file")
    return "\n".join(lines)


def summarise(outcome: lifecycle.Outcome) -> str:
    """One line for the end of a run: what was done, what waits in the queue and why."""
    counts: dict[str, int] = {}
    for line in outcome.done:
        verb = line.split(": ", 1)[1].split(" ")[0]
        counts[verb] = counts.get(verb, 0) + 1
    parts = [f"{n} {verb}" for verb, n in sorted(counts.items())] or ["nothing sent"]
    if outcome.queued:
        parts.append(f"{outcome.queued} queued")
    text = ", ".join(parts)
    return f"{text} ({outcome.error})" if outcome.error else text
