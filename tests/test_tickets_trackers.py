"""Bugzilla, Jira, GitHub, GitLab and Redmine through their real client libraries (python-bugzilla,
jira, PyGithub, python-gitlab, python-redmine), against HTTP doubles on loopback that follow each
tracker's documented REST API (see tests/tracker_doubles/).  No such tracker can run here."""

from __future__ import annotations

import pytest
from tracker_doubles.github import GitHubDouble
from tracker_doubles.runs import IBV_MISSING, OPENMPI_UNREACHABLE, nodes, run

from harness.tickets.backends import open_backend
from harness.tickets.credentials import resolve
from harness.tickets.lifecycle import file_run, flush
from harness.tickets.queue import TicketQueue
from harness.tickets.state import TicketState
from jobs.specs import Tracker

TOKEN = "tok-9f8e7d6c5b4a-never-print"
PINGPONG = "integration_tests/test_mpi.py::test_pingpong[openmpi]"


def github():
    double = GitHubDouble(TOKEN).start()
    return double, {"backend": "github", "url": double.url, "project": "site/cluster"}


DOUBLES = {"github": github}


@pytest.fixture(params=sorted(DOUBLES))
def tracker(request, tmp_path):
    double, spec = DOUBLES[request.param]()
    spec = Tracker(**spec, close_after_passing_runs=2, timeout=5)
    backend = open_backend(spec, tmp_path, resolve(spec.url, {"HPCOS_TRACKER_USER": "hpcos-bot",
                                                              "HPCOS_TRACKER_TOKEN": TOKEN}))
    yield double, spec, backend
    double.stop()


def nights(tmp_path, spec, backend):
    state, queue = TicketState(tmp_path / "state.sqlite"), TicketQueue(tmp_path / "queue")
    return lambda results: file_run(results, backend, state, spec, queue)[1]


def test_one_ticket_comment_close_after_passing_reopen(tracker, tmp_path):
    double, spec, backend = tracker
    night = nights(tmp_path, spec, backend)
    out = night(run("night-1", {PINGPONG: (OPENMPI_UNREACHABLE, nodes(50))},
                    build_url="https://jenkins.example.org/job/nightly/7/"))
    [ticket_id] = [line.split(":")[0].lstrip("#") for line in out.done]
    assert out.done == [f"#{ticket_id}: created"]
    description = double.ticket_texts(ticket_id)[0]
    assert "node[001-050]" in description and "https://jenkins.example.org/job/nightly/7/" in description
    assert night(run("night-2", {PINGPONG: (OPENMPI_UNREACHABLE, nodes(5))})).done == [f"#{ticket_id}: commented"]
    assert "Seen again in run night-2 on 5 node(s): node[001-005]" in double.ticket_texts(ticket_id)[-1]
    night(run("night-3", {}, passing={PINGPONG: nodes(50)}))
    assert night(run("night-4", {}, passing={PINGPONG: nodes(50)})).done == [f"#{ticket_id}: closed after passing runs"]
    assert double.states() == ["closed"]
    assert night(run("night-5", {PINGPONG: (OPENMPI_UNREACHABLE, ["node009"])})).done == [f"#{ticket_id}: reopened"]
    assert len(double.states()) == 1 and double.states() != ["closed"]
    assert all(TOKEN not in text for text in double.ticket_texts(ticket_id))
    assert all(TOKEN not in (r.body.decode() + r.path + str(r.query)) for r in double.requests
               if r.method != "GET" or "Bugzilla_api_key" not in r.query)


def test_5xx_queues_and_flush_files_each_once(tracker, tmp_path):
    double, spec, backend = tracker
    night = nights(tmp_path, spec, backend)
    failing = {PINGPONG: (OPENMPI_UNREACHABLE, nodes(8)), "integration_tests/test_ib.py::test_hca": (IBV_MISSING,
                                                                                                    nodes(3))}
    double.fail_with = 503
    out = night(run("night-1", failing))
    assert out.queued == 2 and out.error.startswith("TrackerUnavailable:") and TOKEN not in out.error
    assert double.issues == {}
    double.fail_with = None
    state, queue = TicketState(tmp_path / "state.sqlite"), TicketQueue(tmp_path / "queue")
    out = flush(backend, state, spec, queue)
    assert [line.split(": ")[1] for line in out.done] == ["created", "created"] and len(queue) == 0
    assert flush(backend, state, spec, queue).done == []
    assert len(double.issues) == 2


def test_github_finds_through_the_label_filtered_issue_list_not_search(tmp_path):
    double, spec = github()
    try:
        backend = open_backend(Tracker(**spec), tmp_path, resolve(spec["url"], {"HPCOS_TRACKER_TOKEN": TOKEN}))
        ticket = backend.create("a", "b", "hpcos-v1-0123456789abcdef")
        assert backend.find("hpcos-v1-0123456789abcdef").id == ticket.id
        [listing] = double.called("GET", "/repos/site/cluster/issues")
        assert listing.query["labels"] == ["hpcos-v1-0123456789abcdef"] and listing.query["state"] == ["all"]
        assert double.called("GET", "/search/issues") == []
    finally:
        double.stop()
