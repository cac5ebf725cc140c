"""GitLab issues through python-gitlab.  The fingerprint is a label; tickets are found through the
project's issue list filtered by it (GET /projects/:id/issues?labels=...), which sees a new issue at once."""

from __future__ import annotations

from pathlib import Path

import gitlab

from hpcos.tickets.backends import (
    Ticket,
    TrackerBackend,
    TrackerMisconfigured,
    credential,
    pick,
    translated,
)


def _status(exc) -> int | None:
    return getattr(exc, "response_code", None)


class GitLabTracker(TrackerBackend):
    name = "gitlab"

    def __init__(self, client: gitlab.Gitlab, project: str):
        self.project = client.projects.get(project, lazy=True)
        self._issues: dict[str, object] = {}

    @classmethod
    def from_spec(cls, spec, store_root: Path, credentials) -> GitLabTracker:
        if not spec.url or not spec.project:
            raise TrackerMisconfigured(
                "tracker.url and tracker.project (group/name or id) are required for gitlab"
            )
        client = gitlab.Gitlab(
            spec.url,
            private_token=credential(credentials, "GitLab"),
            timeout=spec.timeout,
            retry_transient_errors=False,
        )
        return cls(client, spec.project)

    def _errors(self):
        return translated("GitLab", (gitlab.GitlabError,), _status, self.url)

    def _ticket(self, issue, key: str) -> Ticket:
        self._issues[str(issue.iid)] = issue
        return Ticket(
            id=str(issue.iid),
            key=key,
            status=issue.state,
            closed=issue.state == "closed",
            url=issue.web_url,
        )

    def find(self, key: str) -> Ticket | None:
        with self._errors():
            issues = self.project.issues.list(
                labels=[key], order_by="created_at", sort="desc", get_all=True
            )
            return pick([self._ticket(issue, key) for issue in issues])

    def create(self, summary: str, description: str, key: str) -> Ticket:
        with self._errors():
            issue = self.project.issues.create(
                {"title": summary, "description": description, "labels": key}
            )
            return self._ticket(issue, key)

    def _issue(self, ticket: Ticket):
        if ticket.id not in self._issues:
            with self._errors():
                self._issues[ticket.id] = self.project.issues.get(int(ticket.id))
        return self._issues[ticket.id]

    def comment(self, ticket: Ticket, text: str) -> None:
        with self._errors():
            self._issue(ticket).notes.create({"body": text})

    def has_marker(self, ticket: Ticket, marker: str) -> bool:
        """The issue description, then its notes (GET /projects/P/issues/IID/notes)."""
        with self._errors():
            issue = self._issue(ticket)
            return marker in (issue.description or "") or any(
                marker in (note.body or "") for note in issue.notes.list(get_all=True)
            )

    def _transition(self, ticket: Ticket, event: str, text: str) -> None:
        with self._errors():
            issue = self._issue(ticket)
            issue.notes.create({"body": text})
            issue.state_event = event
            issue.save()

    def reopen(self, ticket: Ticket, text: str) -> None:
        self._transition(ticket, "reopen", text)

    def close(self, ticket: Ticket, text: str) -> None:
        self._transition(ticket, "close", text)
