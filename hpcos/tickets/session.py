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


class _Collect(logging.Handler):
    """Keeps the warnings credential lookup logs (a netrc ignored for its mode), for callers that
    show their own lines (the pytest plugin) rather than the CLI's log handler."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class TicketSession:
    def __init__(self, spec: TrackerSpec, store_root: Path, environ: dict[str, str] | None = None):
        self.spec = spec
        self.store_root = Path(store_root)
        collect = _Collect()
        credentials_log = logging.getLogger("hpcos.credentials")
        credentials_log.addHandler(collect)
        try:
            self.credentials = credentials.resolve("tracker", spec.url, environ)
        finally:
            credentials_log.removeHandler(collect)
        self.warnings = collect.lines
        layout = StoreLayout(self.store_root).check()
        self.state = TicketState(layout.ticket_state)
        self.queue = TicketQueue(layout.ticket_queue, layout.quarantine)
        # Every secret hpcos knows of (tracker, Jenkins...), not only the tracker's: node output may
        # quote any of them, and the tickets are read by everyone.
        self.secrets = sorted(
            {*self.credentials.secrets, *credentials.known_secrets(environ)}, key=len
        )
        self._filter = credentials.RedactingFilter(self.secrets)
        log.addFilter(self._filter)
        self._backend: TrackerBackend | None = None

    def redact(self, text: str) -> str:
        return credentials.redact(text, self.secrets)

    def close(self) -> None:
        log.removeFilter(self._filter)
        self.state.close()

    def __enter__(self) -> TicketSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open(self) -> TrackerBackend:
        """The backend; a TrackerError (with its cause) when it cannot even be opened."""
        if self._backend is None:
            self._backend = open_backend(self.spec, self.store_root, self.credentials)
        return self._backend

    @property
    def backend(self) -> TrackerBackend:
        try:
            return self._open()
        except TrackerError as exc:
            raise UserError(f"tracker {self.spec.backend}: {self.redact(exc.line())}") from exc

    def plan(self, run: RunResults) -> lifecycle.Plan:
        """What filing ``run`` would do; nothing is sent or remembered (dry run)."""
        return lifecycle.plan(run, self.state, self.spec, MARKUP[self.spec.backend], self.redact)

    def file(self, run: RunResults, progress=None) -> tuple[lifecycle.Plan, lifecycle.Outcome]:
        try:
            backend = self._open()
        except TrackerError as exc:  # cannot even open the tracker: keep everything for later
            decided = self.plan(run)
            outcome = lifecycle.Outcome(error=self.redact(exc.line()))
            if exc.retry:
                outcome.queued = sum(self.queue.put(action) for action in decided.actions)
            else:
                outcome.dropped = len(decided.actions)
            log.warning(
                "tracker %s: %s; %s",
                self.spec.backend,
                outcome.error,
                "queueing" if exc.retry else "nothing queued",
            )
            return decided, outcome
        decided, outcome = lifecycle.file_run(
            run, backend, self.state, self.spec, self.queue, self.redact, progress
        )
        return decided, self._redacted(outcome)

    def flush(self) -> lifecycle.Outcome:
        return self._redacted(lifecycle.flush(self.backend, self.state, self.spec, self.queue))

    def _redacted(self, outcome: lifecycle.Outcome) -> lifecycle.Outcome:
        """A client library's error message may quote a request URL with its api-key parameter."""
        if outcome.error:
            outcome.error = self.redact(outcome.error)
        return outcome


def describe(decided: lifecycle.Plan) -> str:
    """A dry run's report: every action with what would be sent."""
    lines = []
    if decided.capped:
        lines.append(
            f"caps reached ({decided.capped}): one run-wide ticket instead of the new ones"
        )
    for action in decided.actions:
        if action.kind == "report":
            verb = "new ticket" if action.new else "comment (or reopen) on the ticket"
            lines += [
                f"== {verb} for {action.key}: {action.summary}",
                action.description if action.new else action.comment,
            ]
        else:
            lines += [
                f"== {'close' if action.close else 'comment on'} ticket for {action.key} ({action.test_id})",
                action.comment,
            ]
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
    if outcome.dropped:
        parts.append(
            f"{outcome.dropped} not queued (fix the tracker settings, then `hpcos tickets file`)"
        )
    text = ", ".join(parts)
    return f"{text} ({outcome.error})" if outcome.error else text
