"""Every tracker hpcos can file tickets in, written once: the name site.yaml uses, the class that
talks to it, and the markup its ticket text is written in.  ``tracker.backend`` is validated against
these names, ``--tickets``/``--backend`` offer them, and ``hpcos.tickets.backends`` imports the class
only when a site uses it (each pulls in its own client library)."""

from __future__ import annotations

from typing import NamedTuple


class TrackerKind(NamedTuple):
    implementation: str  # "module:Class"
    markup: str  # how ticket text is written for it (hpcos.tickets.content renders each)


TRACKERS: dict[str, TrackerKind] = {
    "local": TrackerKind("hpcos.tickets.backends.local:LocalTracker", "plain"),
    "trac": TrackerKind("hpcos.tickets.backends.trac:TracTracker", "trac"),
    "bugzilla": TrackerKind("hpcos.tickets.backends.bugzilla:BugzillaTracker", "plain"),
    "jira": TrackerKind("hpcos.tickets.backends.jira:JiraTracker", "jira"),
    "github": TrackerKind("hpcos.tickets.backends.github:GitHubTracker", "markdown"),
    "gitlab": TrackerKind("hpcos.tickets.backends.gitlab:GitLabTracker", "markdown"),
    "redmine": TrackerKind("hpcos.tickets.backends.redmine:RedmineTracker", "textile"),
}
