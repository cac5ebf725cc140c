"""Bugzilla, Jira, GitHub, GitLab and Redmine through their real client libraries (python-bugzilla,
jira, PyGithub, python-gitlab, python-redmine), against HTTP doubles on loopback that follow each
tracker's documented REST API (see tests/tracker_doubles/).  No such tracker can run here."""

from __future__ import annotations

import pytest
from support.tracker_doubles.bugzilla import BugzillaDouble
from support.tracker_doubles.github import GitHubDouble
from support.tracker_doubles.gitlab import GitLabDouble
from support.tracker_doubles.jira import JiraDouble
from support.tracker_doubles.redmine import RedmineDouble
from support.tracker_doubles.runs import IBV_MISSING, OPENMPI_UNREACHABLE, nodes, run

from hpcos.site.credentials import resolve
from hpcos.site.specs import Tracker
from hpcos.tickets.backends import open_backend
from hpcos.tickets.lifecycle import file_run, flush
from hpcos.tickets.queue import TicketQueue
from hpcos.tickets.state import TicketState

TOKEN = "tok-9f8e7d6c5b4a-never-print"
PINGPONG = "integration_tests/test_mpi.py::test_pingpong[openmpi]"


def github():
    double = GitHubDouble(TOKEN).start()
    return double, {"backend": "github", "url": double.url, "project": "site/cluster"}


def gitlab():
    double = GitLabDouble(TOKEN).start()
    return double, {"backend": "gitlab", "url": double.url, "project": "hpc/cluster"}


def jira():
    double = JiraDouble("hpcos-bot", TOKEN).start()
    return double, {"backend": "jira", "url": double.url, "project": "HPC"}


def bugzilla():
    double = BugzillaDouble(TOKEN).start()
    return double, {
        "backend": "bugzilla",
        "url": double.url,
        "project": "HPC cluster",
        "component": "nightly",
    }


def redmine():
    double = RedmineDouble(TOKEN, field_id=7).start()
    return double, {
        "backend": "redmine",
        "url": double.url,
        "project": "hpc",
        "fingerprint_field": "7",
    }


DOUBLES = {
    "github": github,
    "gitlab": gitlab,
    "jira": jira,
    "bugzilla": bugzilla,
    "redmine": redmine,
}
CLOSED = {
    "github": "closed",
    "gitlab": "closed",
    "jira": "Done",
    "bugzilla": "RESOLVED",
    "redmine": "Closed",
}


@pytest.fixture(params=sorted(DOUBLES))
def tracker(request, tmp_path):
    double, spec = DOUBLES[request.param]()
    spec = Tracker(**spec, close_after_passing_runs=2, timeout=30)
    backend = open_backend(
        spec,
        tmp_path,
        resolve(
            "tracker", spec.url, {"HPCOS_TRACKER_USER": "hpcos-bot", "HPCOS_TRACKER_TOKEN": TOKEN}
        ),
    )
    yield double, spec, backend
    double.stop()


def nights(tmp_path, spec, backend):
    state, queue = TicketState(tmp_path / "state.sqlite"), TicketQueue(tmp_path / "queue")
    return lambda results: file_run(results, backend, state, spec, queue)[1]


def test_one_ticket_comment_close_after_passing_reopen(tracker, tmp_path):
    double, spec, backend = tracker
    night = nights(tmp_path, spec, backend)
    out = night(
        run(
            "night-1",
            {PINGPONG: (OPENMPI_UNREACHABLE, nodes(50))},
            build_url="https://jenkins.example.org/job/nightly/7/",
        )
    )
    [ticket_id] = [line.split(":")[0].lstrip("#") for line in out.done]
    assert out.done == [f"#{ticket_id}: created"]
    description = double.ticket_texts(ticket_id)[0]
    assert (
        "node[001-050]" in description
        and "https://jenkins.example.org/job/nightly/7/" in description
    )
    assert night(run("night-2", {PINGPONG: (OPENMPI_UNREACHABLE, nodes(5))})).done == [
        f"#{ticket_id}: commented"
    ]
    comment = double.ticket_texts(ticket_id)[-1]
    assert "Seen again in run " in comment and "night" in comment and "on 5 node(s)" in comment
    assert "node[001-005]" in comment.replace("\\", "")  # Jira escapes brackets in inline code
    night(run("night-3", {}, passing={PINGPONG: nodes(50)}))
    assert night(run("night-4", {}, passing={PINGPONG: nodes(50)})).done == [
        f"#{ticket_id}: closed after passing runs"
    ]
    assert double.states() == [CLOSED[spec.backend]]
    assert night(run("night-5", {PINGPONG: (OPENMPI_UNREACHABLE, ["node009"])})).done == [
        f"#{ticket_id}: reopened"
    ]
    assert len(double.states()) == 1 and double.states() != ["closed"]
    assert all(TOKEN not in text for text in double.ticket_texts(ticket_id))
    # The token travels only in the authentication header or parameter, never in what is sent as content.
    assert all(TOKEN not in r.body.decode() for r in double.requests)


def test_5xx_queues_and_flush_files_each_once(tracker, tmp_path):
    double, spec, backend = tracker
    night = nights(tmp_path, spec, backend)
    failing = {
        PINGPONG: (OPENMPI_UNREACHABLE, nodes(8)),
        "integration_tests/test_ib.py::test_hca": (IBV_MISSING, nodes(3)),
    }
    double.fail_with = 503
    out = night(run("night-1", failing))
    assert out.queued == 2 and out.error.startswith("server error: ") and TOKEN not in out.error
    assert spec.url.rstrip("/") in out.error  # one line that names the URL
    assert double.states() == []
    double.fail_with = None
    state, queue = TicketState(tmp_path / "state.sqlite"), TicketQueue(tmp_path / "queue")
    out = flush(backend, state, spec, queue)
    assert [line.split(": ")[1] for line in out.done] == ["created", "created"] and len(queue) == 0
    assert flush(backend, state, spec, queue).done == []
    assert len(double.states()) == 2


KEY = "hpcos-v1-0123456789abcdef"
# How each tracker is asked for a fingerprint: an endpoint that sees a ticket created a moment ago.
FIND = {
    "github": ("/repos/site/cluster/issues", {"labels": [KEY], "state": ["all"]}, "/search/issues"),
    "gitlab": ("/api/v4/projects/hpc%2Fcluster/issues", {"labels": [KEY]}, None),
    "jira": (
        "/rest/api/3/search/jql",
        {"jql": [f'project = "HPC" AND labels = "{KEY}" ORDER BY created DESC']},
        "/rest/api/[23]/search",
    ),
    "bugzilla": ("/rest/bug", {"whiteboard": [KEY], "product": ["HPC cluster"]}, None),
    "redmine": ("/issues.json", {"cf_7": [KEY], "status_id": ["*"], "project_id": ["hpc"]}, None),
}


def test_find_uses_the_documented_immediate_endpoint(tracker):
    double, spec, backend = tracker
    ticket = backend.create("summary", "description", KEY)
    found = backend.find(KEY)
    assert (found.id, found.key, found.closed) == (ticket.id, KEY, False)
    path, query, never = FIND[spec.backend]
    [listing, *_] = double.called("GET", path)
    assert {name: listing.query.get(name) for name in query} == query
    if never:
        assert double.called("GET", never) == [] and double.called("POST", never) == []
    assert backend.find("hpcos-v1-ffffffffffffffff") is None


def test_a_slow_tracker_times_out_into_the_queue(tmp_path):
    double, spec = gitlab()
    try:
        spec = Tracker(**spec, timeout=0.5)
        backend = open_backend(
            spec, tmp_path, resolve("tracker", spec.url, {"HPCOS_TRACKER_TOKEN": TOKEN})
        )
        double.delay = 1.5
        out = nights(tmp_path, spec, backend)(
            run("night-1", {PINGPONG: (OPENMPI_UNREACHABLE, nodes(4))})
        )
        assert (
            out.queued == 1
            and out.error == f"unreachable: GitLab at {spec.url} unreachable: ReadTimeout"
        )
    finally:
        double.delay = 0
        double.stop()


@pytest.mark.parametrize("name", sorted(DOUBLES))
def test_a_comment_the_tracker_already_has_is_not_posted_again(name, tmp_path):
    """As after a reply lost once the tracker stored the comment: hpcos's state has no record of it,
    the issue has the run's marker, so the queued comment is not posted twice."""
    from hpcos.tickets.lifecycle import apply, plan

    double, spec = DOUBLES[name]()
    try:
        spec = Tracker(**spec)
        backend = open_backend(
            spec,
            tmp_path,
            resolve(
                "tracker",
                spec.url,
                {"HPCOS_TRACKER_USER": "hpcos-bot", "HPCOS_TRACKER_TOKEN": TOKEN},
            ),
        )
        night = nights(tmp_path, spec, backend)
        [created] = night(run("night-1", {PINGPONG: (OPENMPI_UNREACHABLE, nodes(4))})).done
        ticket_id = created.split(":")[0].lstrip("#")
        later = run("night-2", {PINGPONG: (OPENMPI_UNREACHABLE, nodes(4))})
        [action] = plan(later, TicketState(tmp_path / "state.sqlite"), spec, backend.markup).actions
        assert (
            apply(action, backend, TicketState(tmp_path / "state.sqlite"), spec)
            == f"#{ticket_id}: commented"
        )
        forgetful = TicketState(
            tmp_path / "lost-state.sqlite"
        )  # knows nothing of night-2's comment
        assert (
            apply(action, backend, forgetful, spec)
            == f"#{ticket_id}: already commented in run night-2"
        )
        # And never "seen again" in the run that created the ticket.
        [first] = plan(
            run("night-1", {PINGPONG: (OPENMPI_UNREACHABLE, nodes(4))}),
            forgetful,
            spec,
            backend.markup,
        ).actions
        assert (
            apply(first, backend, forgetful, spec)
            == f"#{ticket_id}: already commented in run night-1"
        )
        assert len(double.ticket_texts(ticket_id)) == 2  # description and night-2's comment
    finally:
        double.stop()
