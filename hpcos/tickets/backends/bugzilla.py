"""Bugzilla through python-bugzilla's REST backend.  The fingerprint lives in the status whiteboard,
which every Bugzilla has and its bug search matches (GET /rest/bug?whiteboard=...)."""

from __future__ import annotations

from pathlib import Path

import bugzilla
from bugzilla.exceptions import BugzillaError, BugzillaHTTPError

from hpcos.tickets.backends import (
    Ticket,
    TrackerBackend,
    TrackerMisconfigured,
    credential,
    pick,
    translated,
)

CLOSED = ("RESOLVED", "VERIFIED", "CLOSED")
_ERRORS = (BugzillaError, BugzillaHTTPError)


def _status(exc) -> int | None:
    response = getattr(exc, "response", None)
    if response is not None:
        return response.status_code
    return 400 if isinstance(exc, BugzillaError) else None  # a fault Bugzilla explained in JSON


class BugzillaTracker(TrackerBackend):
    name = "bugzilla"

    def __init__(
        self,
        client,
        product: str,
        component: str,
        fields: dict[str, str] | None = None,
        close_status: str = "RESOLVED",
        reopen_status: str = "CONFIRMED",
    ):
        self.client = client
        self.product = product
        self.component = component
        self.fields = {"version": "unspecified", **(fields or {})}
        self.close_status = close_status
        self.reopen_status = reopen_status

    @classmethod
    def from_spec(cls, spec, store_root: Path, credentials) -> BugzillaTracker:
        if not (spec.url and spec.project and spec.component):
            raise TrackerMisconfigured(
                "tracker.url, tracker.project (product) and tracker.component are required "
                "for bugzilla"
            )
        with translated("Bugzilla", _ERRORS, _status, spec.url or ""):
            # No config files, cookies or token caches: credentials come from hpcos only.
            client = bugzilla.Bugzilla(
                spec.url,
                api_key=credential(credentials, "Bugzilla"),
                force_rest=True,
                configpaths=[],
                cookiefile=None,
                tokenfile=None,
                use_creds=False,
            )
        return cls(
            client,
            spec.project,
            spec.component,
            dict(spec.fields),
            spec.close_status or "RESOLVED",
            spec.reopen_status or "CONFIRMED",
        )

    def _errors(self):
        return translated("Bugzilla", _ERRORS, _status, self.url)

    def _ticket(self, bug, key: str) -> Ticket:
        return Ticket(
            id=str(bug.id),
            key=key,
            status=bug.status,
            closed=bug.status in CLOSED,
            resolution=bug.resolution or "",
            url=f"{self.client.url.rsplit('/rest', 1)[0]}/show_bug.cgi?id={bug.id}",
        )

    def find(self, key: str) -> Ticket | None:
        query = {
            "product": self.product,
            "whiteboard": key,
            "include_fields": ["id", "status", "resolution", "whiteboard"],
        }
        with self._errors():
            bugs = [b for b in self.client.query(query) if key in b.whiteboard.split()]
        return pick([self._ticket(b, key) for b in sorted(bugs, key=lambda b: -b.id)])

    def create(self, summary: str, description: str, key: str) -> Ticket:
        with self._errors():
            data = self.client.build_createbug(
                product=self.product,
                component=self.component,
                summary=summary,
                description=description,
                **self.fields,
            )
            # Bug.create maps ``whiteboard`` like Bug.update does: the fingerprint is there atomically.
            data["whiteboard"] = key
            bug = self.client.createbug(data)
        return Ticket(id=str(bug.id), key=key, status="NEW", closed=False)

    def _update(self, ticket: Ticket, text: str, **change) -> None:
        with self._errors():
            self.client.update_bugs(
                [int(ticket.id)], self.client.build_update(comment=text, **change)
            )

    def comment(self, ticket: Ticket, text: str) -> None:
        self._update(ticket, text)

    def has_marker(self, ticket: Ticket, marker: str) -> bool:
        """Every comment, the description being comment 0 (GET /rest/bug/ID/comment)."""
        with self._errors():
            found = self.client.get_comments([int(ticket.id)])
        comments = found.get("bugs", {}).get(str(ticket.id), {}).get("comments", [])
        return any(marker in (c.get("text") or "") for c in comments)

    def reopen(self, ticket: Ticket, text: str) -> None:
        self._update(ticket, text, status=self.reopen_status)

    def close(self, ticket: Ticket, text: str) -> None:
        self._update(ticket, text, status=self.close_status, resolution="FIXED")
