"""Jira through the ``jira`` library.  The fingerprint is a label.

Jira Cloud removed the old search (/rest/api/2|3/search answers 410); tickets are found through the
current JQL search, /rest/api/3/search/jql (``enhanced_search_issues`` on a v3 client).  Jira Data
Center has no such endpoint and keeps the classic search.  Writes go through REST v2, which takes
wiki markup; v3 would need Atlassian Document Format.
"""

from __future__ import annotations

from pathlib import Path

from jira import JIRA, JIRAError

from hpcos.tickets.backends import (
    Ticket,
    TrackerBackend,
    TrackerError,
    TrackerMisconfigured,
    credential,
    pick,
    translated,
)

FIELDS = ["status", "resolution", "labels"]


def _status(exc) -> int | None:
    return getattr(exc, "status_code", None)


class JiraTracker(TrackerBackend):
    name = "jira"

    def __init__(
        self,
        client: JIRA,
        search: JIRA,
        project: str,
        issue_type: str = "Bug",
        close_transition: str = "Done",
        reopen_transition: str = "Reopen",
        fields: dict[str, str] | None = None,
    ):
        self.client = client
        self.search = search
        self.project = project
        self.issue_type = issue_type
        self.close_transition = close_transition
        self.reopen_transition = reopen_transition
        self.fields = fields or {}

    @classmethod
    def from_spec(cls, spec, store_root: Path, credentials) -> JiraTracker:
        if not spec.url or not spec.project:
            raise TrackerMisconfigured(
                "tracker.url and tracker.project (the project key) are required for jira"
            )
        auth = (credentials.user, credential(credentials, "Jira"))
        common = {"basic_auth": auth, "max_retries": 0, "timeout": spec.timeout}
        with translated("Jira", (JIRAError,), _status, spec.url or ""):
            client = JIRA(spec.url, **common)
            search = JIRA(spec.url, options={"rest_api_version": "3"}, **common)
        return cls(
            client,
            search,
            spec.project,
            spec.issue_type,
            spec.close_status or "Done",
            spec.reopen_status or "Reopen",
            dict(spec.fields),
        )

    def _errors(self):
        return translated("Jira", (JIRAError,), _status, self.url)

    def _ticket(self, issue, key: str) -> Ticket:
        fields = issue.fields
        status = fields.status.name
        closed = fields.status.statusCategory.key == "done"
        resolution = fields.resolution.name if getattr(fields, "resolution", None) else ""
        return Ticket(
            id=issue.key,
            key=key,
            status=status,
            closed=closed,
            resolution=resolution,
            url=f"{self.client.server_url}/browse/{issue.key}",
        )

    def find(self, key: str) -> Ticket | None:
        jql = f'project = "{self.project}" AND labels = "{key}" ORDER BY created DESC'
        with self._errors():
            found = self.search.enhanced_search_issues(jql, fields=list(FIELDS), maxResults=50)
            if (
                found is None
            ):  # not Cloud: Data Center's classic search is still the current one there
                found = self.client.search_issues(jql, fields=list(FIELDS), maxResults=50)
            return pick([self._ticket(issue, key) for issue in found])

    def create(self, summary: str, description: str, key: str) -> Ticket:
        fields = {
            "project": {"key": self.project},
            "issuetype": {"name": self.issue_type},
            "summary": summary,
            "description": description,
            "labels": [key],
            **self.fields,
        }
        with self._errors():
            return self._ticket(self.client.create_issue(fields=fields), key)

    def comment(self, ticket: Ticket, text: str) -> None:
        with self._errors():
            self.client.add_comment(ticket.id, text)

    def has_marker(self, ticket: Ticket, marker: str) -> bool:
        """The description (GET /issue/KEY?fields=description), then the comments (GET /issue/KEY/comment)."""
        with self._errors():
            description = (
                self.client.issue(ticket.id, fields="description").fields.description or ""
            )
            return marker in description or any(
                marker in (c.body or "") for c in self.client.comments(ticket.id)
            )

    def _transition(self, ticket: Ticket, name: str, text: str) -> None:
        with self._errors():
            transition = self.client.find_transitionid_by_name(ticket.id, name)
            if transition is None:
                names = [t["name"] for t in self.client.transitions(ticket.id)]
                raise TrackerError(
                    f"Jira issue {ticket.id} has no transition {name!r} (has: {', '.join(names)}); "
                    "set tracker.close_status / tracker.reopen_status"
                )
            self.client.transition_issue(ticket.id, transition, comment=text)

    def reopen(self, ticket: Ticket, text: str) -> None:
        self._transition(ticket, self.reopen_transition, text)

    def close(self, ticket: Ticket, text: str) -> None:
        self._transition(ticket, self.close_transition, text)
