"""Redmine through python-redmine.  The fingerprint is an issue custom field (its id in
``tracker.fingerprint_field``), filtered with ``cf_<id>=`` on GET /issues.json across all statuses."""

from __future__ import annotations

from pathlib import Path

from redminelib import Redmine, exceptions

from hpcos.tickets.backends import (
    Ticket,
    TrackerBackend,
    TrackerError,
    TrackerMisconfigured,
    credential,
    pick,
    translated,
)

_STATUS = {
    exceptions.AuthError: 401,
    exceptions.ForbiddenError: 403,
    exceptions.ResourceNotFoundError: 404,
    exceptions.ConflictError: 409,
    exceptions.ValidationError: 422,
    exceptions.ServerError: 500,
}


def _status(exc) -> int | None:
    return getattr(exc, "status_code", None) or _STATUS.get(type(exc))


class RedmineTracker(TrackerBackend):
    name = "redmine"

    def __init__(
        self,
        client: Redmine,
        project: str,
        field_id: int,
        close_status: str | None = None,
        reopen_status: str | None = None,
        fields: dict[str, str] | None = None,
    ):
        self.client = client
        self.project = project
        self.field_id = field_id
        self.close_status = close_status
        self.reopen_status = reopen_status
        self.fields = fields or {}
        self._statuses: list | None = None

    @classmethod
    def from_spec(cls, spec, store_root: Path, credentials) -> RedmineTracker:
        if not spec.url or not spec.project:
            raise TrackerMisconfigured(
                "tracker.url and tracker.project (identifier) are required for redmine"
            )
        if not spec.fingerprint_field.isdigit():
            raise TrackerMisconfigured(
                f"tracker.fingerprint_field: {spec.fingerprint_field!r}: for redmine, "
                "the id of a text issue custom field that holds the fingerprint"
            )
        client = Redmine(
            spec.url, key=credential(credentials, "Redmine"), requests={"timeout": spec.timeout}
        )
        return cls(
            client,
            spec.project,
            int(spec.fingerprint_field),
            spec.close_status,
            spec.reopen_status,
            dict(spec.fields),
        )

    def _errors(self):
        return translated("Redmine", (exceptions.BaseRedmineError,), _status, self.url)

    def _status_id(self, name: str | None, closed: bool) -> int:
        if self._statuses is None:
            self._statuses = list(self.client.issue_status.all())
        for status in self._statuses:
            if (name and status.name.lower() == name.lower()) or (
                not name and bool(getattr(status, "is_closed", False)) == closed
            ):
                return status.id
        raise TrackerError(
            f"Redmine has no {'closed' if closed else 'open'} status {name or ''}".rstrip()
        )

    def _closed(self, status_id: int) -> bool:
        self._status_id(None, False)  # loads the statuses
        return any(s.id == status_id and getattr(s, "is_closed", False) for s in self._statuses)

    def find(self, key: str) -> Ticket | None:
        with self._errors():
            issues = self.client.issue.filter(
                project_id=self.project,
                status_id="*",
                sort="id:desc",
                **{f"cf_{self.field_id}": key},
            )
            # Redmine ignores a filter on a custom field it does not have: check the value ourselves.
            mine = [
                i
                for i in issues
                if any(f.id == self.field_id and f.value == key for f in i.custom_fields)
            ]
            return pick(
                [
                    Ticket(
                        id=str(i.id),
                        key=key,
                        status=i.status.name,
                        closed=self._closed(i.status.id),
                        url=f"{self.client.url}/issues/{i.id}",
                    )
                    for i in mine
                ]
            )

    def create(self, summary: str, description: str, key: str) -> Ticket:
        with self._errors():
            issue = self.client.issue.create(
                project_id=self.project,
                subject=summary,
                description=description,
                custom_fields=[{"id": self.field_id, "value": key}],
                **self.fields,
            )
        return Ticket(id=str(issue.id), key=key, status="New", closed=False)

    def comment(self, ticket: Ticket, text: str) -> None:
        with self._errors():
            self.client.issue.update(int(ticket.id), notes=text)

    def has_marker(self, ticket: Ticket, marker: str) -> bool:
        """The description and every journal's notes (GET /issues/ID.json?include=journals)."""
        with self._errors():
            issue = self.client.issue.get(int(ticket.id), include=["journals"])
            return marker in (issue.description or "") or any(
                marker in (getattr(journal, "notes", "") or "") for journal in issue.journals
            )

    def reopen(self, ticket: Ticket, text: str) -> None:
        with self._errors():
            self.client.issue.update(
                int(ticket.id), notes=text, status_id=self._status_id(self.reopen_status, False)
            )

    def close(self, ticket: Ticket, text: str) -> None:
        with self._errors():
            self.client.issue.update(
                int(ticket.id), notes=text, status_id=self._status_id(self.close_status, True)
            )
