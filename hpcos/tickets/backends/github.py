"""GitHub issues through PyGithub.  The fingerprint is a label; tickets are found through the
repository's issue list filtered by that label (GET /repos/{owner}/{repo}/issues?labels=...&state=all),
never through the search API, whose index lags behind a ticket created a moment ago."""

from __future__ import annotations

from pathlib import Path

import github
from github import Auth, Github

from hpcos.tickets.backends import (
    Ticket,
    TrackerBackend,
    TrackerMisconfigured,
    credential,
    pick,
    translated,
)


def _status(exc) -> int | None:
    return getattr(exc, "status", None)


class GitHubTracker(TrackerBackend):
    name = "github"

    def __init__(self, client: Github, repository: str):
        self.client = client
        self.repository = repository
        self._repo = None
        self._issues: dict[str, github.Issue.Issue] = {}

    @classmethod
    def from_spec(cls, spec, store_root: Path, credentials) -> GitHubTracker:
        if not spec.project:
            raise TrackerMisconfigured(
                "tracker.project must name the GitHub repository (owner/name)"
            )
        client = Github(
            base_url=(spec.url or "https://api.github.com").rstrip("/"),
            auth=Auth.Token(credential(credentials, "GitHub")),
            timeout=int(spec.timeout),
            retry=None,
        )
        return cls(client, spec.project)

    def _errors(self):
        return translated("GitHub", (github.GithubException,), _status, self.url)

    @property
    def repo(self):
        if self._repo is None:
            with self._errors():
                self._repo = self.client.get_repo(self.repository)
        return self._repo

    def _ticket(self, issue, key: str) -> Ticket:
        self._issues[str(issue.number)] = issue
        return Ticket(
            id=str(issue.number),
            key=key,
            status=issue.state,
            closed=issue.state == "closed",
            resolution=issue.state_reason or "",
            url=issue.html_url,
        )

    def find(self, key: str) -> Ticket | None:
        with self._errors():
            issues = self.repo.get_issues(
                state="all", labels=[key], sort="created", direction="desc"
            )
            # The issues list includes pull requests; a PR never carries an hpcos fingerprint by design.
            return pick([self._ticket(i, key) for i in issues if i.pull_request is None])

    def create(self, summary: str, description: str, key: str) -> Ticket:
        with self._errors():
            return self._ticket(
                self.repo.create_issue(title=summary, body=description, labels=[key]), key
            )

    def _issue(self, ticket: Ticket):
        if ticket.id not in self._issues:
            with self._errors():
                self._issues[ticket.id] = self.repo.get_issue(int(ticket.id))
        return self._issues[ticket.id]

    def comment(self, ticket: Ticket, text: str) -> None:
        with self._errors():
            self._issue(ticket).create_comment(text)

    def has_marker(self, ticket: Ticket, marker: str) -> bool:
        """The issue body, then its comments (GET /repos/O/R/issues/N/comments)."""
        with self._errors():
            issue = self._issue(ticket)
            return marker in (issue.body or "") or any(
                marker in (c.body or "") for c in issue.get_comments()
            )

    def reopen(self, ticket: Ticket, text: str) -> None:
        with self._errors():
            issue = self._issue(ticket)
            issue.edit(state="open")
            issue.create_comment(text)

    def close(self, ticket: Ticket, text: str) -> None:
        with self._errors():
            issue = self._issue(ticket)
            issue.create_comment(text)
            issue.edit(state="closed", state_reason="completed")
