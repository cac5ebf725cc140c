"""The ticket lifecycle against the embedded SQLite tracker: dedupe, comments, streaks, caps, queue."""

from __future__ import annotations

import pytest
from support.tracker_doubles.runs import (
    IBV_MISSING,
    OPENMPI_UNREACHABLE,
    SRUN_FAILED,
    latency_regression,
    nodes,
    run,
)

from hpcos.site.specs import Tracker
from hpcos.tickets.backends import TrackerUnavailable
from hpcos.tickets.backends.local import LocalTracker
from hpcos.tickets.lifecycle import RUN_WIDE_KEY, file_run, flush, plan
from hpcos.tickets.queue import TicketQueue
from hpcos.tickets.state import TicketState

PINGPONG = "integration_tests/test_mpi.py::test_pingpong[openmpi]"
HCA = "integration_tests/test_ib.py::test_hca_present"


class Site:
    def __init__(self, tmp_path, **spec):
        self.spec = Tracker(**{"close_after_passing_runs": 2, **spec})
        self.tracker = LocalTracker(tmp_path / "tickets.sqlite")
        self.state = TicketState(tmp_path / "state.sqlite")
        self.queue = TicketQueue(tmp_path / "queue")

    def night(self, results, backend=None):
        return file_run(results, backend or self.tracker, self.state, self.spec, self.queue)


@pytest.fixture
def site(tmp_path):
    return Site(tmp_path)


def test_lifecycle_files_once_comments_closes_after_streak_and_reopens(site):
    failing = {PINGPONG: (OPENMPI_UNREACHABLE, nodes(300))}
    _, out = site.night(run("n1", failing, build_url="https://jenkins.example.org/job/nightly/41/"))
    assert out.done == ["#1: created"]
    summary, description, _ = site.tracker.ticket("1")
    assert summary == (
        "[openmpi] test_pingpong[openmpi] fails on node[001-300]: At least one pair of MPI processes "
        "are unable to reach each other for MPI communications"
    )
    assert "Nodes (300): node[001-300]" in description and "MPI stacks: openmpi" in description
    assert "https://jenkins.example.org/job/nightly/41/" in description
    assert (
        "hpcos test --cluster test-cluster -k 'test_pingpong[openmpi]' --nodes 'node[001-300]' --mpi openmpi"
        in description
    )
    assert "openmpi: 4.1.6-2.el9.hpc1" in description

    _, out = site.night(run("n2", {PINGPONG: (OPENMPI_UNREACHABLE, nodes(40))}))
    assert out.done == ["#1: commented"]
    assert (
        "Seen again in run n2 on 40 node(s), 1 test(s):\n\nNodes (40): node[001-040]\n"
        in site.tracker.comments("1")[0]
    )
    # Filing the same results again (a Jenkins retry) does not comment twice.
    _, out = site.night(run("n2", {PINGPONG: (OPENMPI_UNREACHABLE, nodes(40))}))
    assert out.done == ["#1: already commented in run n2"]

    fixed = {PINGPONG: nodes(300)}
    _, out = site.night(run("n3", {}, passing=fixed))
    assert out.done == []
    _, out = site.night(run("n4", {}, passing=fixed))
    assert out.done == ["#1: closed after passing runs"]
    assert site.tracker.tickets(include_closed=True)[0][1:3] == ("closed", "fixed")
    assert "Passed on all nodes for 2 consecutive runs" in site.tracker.comments("1")[-1]

    _, out = site.night(run("n5", {PINGPONG: (OPENMPI_UNREACHABLE, ["node007"])}))
    assert out.done == ["#1: reopened"]
    assert len(site.tracker.tickets(include_closed=True)) == 1


def test_a_streak_is_broken_by_the_failure_and_not_advanced_by_a_run_without_the_test(site):
    site.night(run("n1", {HCA: (IBV_MISSING, nodes(3))}))
    site.night(run("n2", {}, passing={HCA: nodes(3)}))
    site.night(run("n3", {}, passing={PINGPONG: nodes(3)}))  # HCA test not run: no evidence
    site.night(run("n4", {HCA: (IBV_MISSING, ["node001"])}))
    _, out = site.night(run("n5", {}, passing={HCA: nodes(3)}))
    assert out.done == []
    _, out = site.night(run("n6", {}, passing={HCA: nodes(3)}))
    assert out.done == ["#1: closed after passing runs"]


@pytest.mark.parametrize(
    ("policy", "done", "tickets"),
    [
        ("reopen", "#1: reopened", 1),
        ("new", "#2: created (follows #1)", 2),
        ("ignore", "#1: closed as fixed, ignored by policy", 1),
    ],
)
def test_recurrence_after_close_follows_the_policy_for_that_resolution(
    tmp_path, policy, done, tickets
):
    site = Site(
        tmp_path,
        recurrence="reopen",
        recurrence_by_status={"FIXED": policy},
        close_after_passing_runs=1,
    )
    site.night(run("n1", {HCA: (IBV_MISSING, nodes(2))}))
    site.night(run("n2", {}, passing={HCA: nodes(2)}))
    _, out = site.night(run("n3", {HCA: (IBV_MISSING, nodes(2))}))
    assert out.done == [done]
    assert len(site.tracker.tickets(include_closed=True)) == tickets
    if policy == "new":
        assert "tracked before in #1 (closed as fixed)" in site.tracker.ticket("2")[1]


def test_caps_file_one_run_wide_ticket_instead_of_hundreds(tmp_path):
    site = Site(tmp_path, max_new_per_run=5, max_new_per_day=8)
    broken = {
        f"integration_tests/test_mpi.py::test_case{i}": (SRUN_FAILED, nodes(50)) for i in range(40)
    }
    decided, out = site.night(run("n1", broken))
    assert decided.capped == "at most 5 new per run, 8 left of 8 today"
    assert out.done == ["#1: created"]
    assert site.tracker.find(RUN_WIDE_KEY).id == "1"
    summary, description, _ = site.tracker.ticket("1")
    assert summary.startswith("Run-wide failure: 40 new failure groups in run n1")
    assert description.count("test_case") == 40
    # Within the caps again: individual tickets, and the run-wide one keeps being commented while it lasts.
    _, out = site.night(
        run("n2", dict(list(broken.items())[:4]), started="2026-11-26T03:00:00+00:00")
    )
    assert sorted(out.done) == ["#2: created", "#3: created", "#4: created", "#5: created"]
    # The day cap counts what was created today: 4 more would exceed 8 - 5.
    more = {
        f"integration_tests/test_mpi.py::test_other{i}": (SRUN_FAILED, nodes(2)) for i in range(4)
    }
    decided, out = site.night(run("n3", more, started="2026-11-26T04:00:00+00:00"))
    assert decided.capped == "at most 5 new per run, 3 left of 8 today"
    assert out.done == ["#1: commented"]


def test_performance_regression_shows_measured_against_expected(site):
    site.night(latency_regression("n1", ["cn0001", "cn0002"]))
    summary, description, _ = site.tracker.ticket("1")
    assert summary == (
        "[openmpi] test_latency[openmpi] regresses on cn[0001-0002]: "
        "latency outside the profile's reference"
    )
    assert (
        "cn0001: latency 8 B: measured 3.61 us, expected 0.17 us within [-inf, 0.255]"
        in description
    )


class Down(LocalTracker):
    """The local tracker with its server gone after ``ok`` successful requests."""

    def __init__(self, path, ok):
        super().__init__(path)
        self.ok = ok

    def find(self, key):
        if self.ok <= 0:
            raise TrackerUnavailable("connection refused")
        self.ok -= 1
        return super().find(key)


def test_tracker_down_mid_run_queues_and_flush_files_each_once(tmp_path):
    site = Site(tmp_path)
    # "exit code 1" names no cause: four tests, four tickets.
    failing = {f"integration_tests/test_x.py::test_{i}": (SRUN_FAILED, nodes(3)) for i in range(4)}
    flaky = Down(tmp_path / "tickets.sqlite", ok=2)
    _, out = site.night(run("n1", failing), backend=flaky)
    assert out.done == ["#1: created", "#2: created"] and out.queued == 2
    assert out.error == "unreachable: connection refused"
    assert len(site.queue) == 2
    # A retried job with the tracker still down queues the two sent ones, not the queued ones again.
    _, out = site.night(run("n1", failing), backend=Down(tmp_path / "tickets.sqlite", ok=0))
    assert len(site.queue) == 4
    out = flush(site.tracker, site.state, site.spec, site.queue)
    assert out.done == [
        "#3: created",
        "#4: created",
        "#1: already commented in run n1",
        "#2: already commented in run n1",
    ]
    assert len(site.queue) == 0
    assert len(site.tracker.tickets()) == 4
    assert flush(site.tracker, site.state, site.spec, site.queue).done == []


def test_plan_is_read_only(site):
    decided = plan(run("n1", {HCA: (IBV_MISSING, nodes(2))}), site.state, site.spec, "plain")
    assert [a.kind for a in decided.actions] == ["report"]
    assert site.tracker.tickets() == [] and site.state.open_tickets() == []


def test_tickets_of_fingerprint_v1_are_carried_over_not_orphaned(site):
    """Version 1 filed one ticket per test; version 2 files one per root cause.  The first v1 ticket
    takes the new key, the other is closed as its duplicate, and the survivor still closes later."""
    from hpcos.tickets.fingerprint import alias_v1
    from hpcos.tickets.grouping import run_nodes

    other = "integration_tests/test_ib.py::test_ibv_devinfo"
    night = run("n1", {HCA: (IBV_MISSING, nodes(4)), other: (IBV_MISSING, nodes(4))})
    for test_id in (HCA, other):  # what version 1 filed and remembered
        old = alias_v1(test_id, "error", IBV_MISSING, run_nodes(night))
        ticket = site.tracker.create(f"{test_id}: error on 4 nodes", "v1", old)
        site.state.track(old, test_id, ticket.id, is_open=True)
    decided, out = site.night(
        run("n2", {HCA: (IBV_MISSING, nodes(4)), other: (IBV_MISSING, nodes(4))})
    )
    [action] = decided.actions
    assert action.key.startswith("hpcos-v2-") and len(action.aliases) == 2 and not action.new
    assert out.done == ["#1: commented"]
    assert [(t[0], t[1]) for t in site.tracker.tickets(include_closed=True)] == [
        (1, "new"),
        (2, "closed"),
    ]
    assert "continues in #1" in site.tracker.comments("2")[0]
    assert site.tracker.find(action.key).id == "1"
    assert [row[0] for row in site.state.open_tickets()] == [action.key]  # no v1 key left behind
    for n in (3, 4):
        _, out = site.night(run(f"n{n}", {}, passing={HCA: nodes(4), other: nodes(4)}))
    assert out.done == ["#1: closed after passing runs"]


def test_reproduce_command_keeps_the_profile_path_the_run_was_started_with():
    """A site profile outside integration_tests/clusters/ does not resolve by its name: the ticket's
    command takes ``--cluster`` from the harness's own rerun command."""
    from hpcos.tickets.content import reproduce_command
    from hpcos.tickets.grouping import group_failures

    nightly = run("n1", {PINGPONG: (OPENMPI_UNREACHABLE, nodes(2))})
    for result in nightly.results:
        result.rerun = f"hpcos test --cluster /etc/hpcos/cluster.yaml -k 'test_pingpong[openmpi]' --nodes {result.node}"
    assert (
        reproduce_command(group_failures(nightly)[0], nightly)
        == "hpcos test --cluster /etc/hpcos/cluster.yaml -k 'test_pingpong[openmpi]' "
        "--nodes 'node[001-002]' --mpi openmpi"
    )


def test_summary_shows_the_raw_error_line_not_the_normalised_signature():
    from hpcos.results.model import RunResults, TestResult
    from hpcos.tickets.content import summary
    from hpcos.tickets.grouping import group_failures

    message = "openmpi is not installed (testing has 4.1.5-2.el9.hpc1.x86_64)"
    results = [
        TestResult(
            "integration_tests/test_os_update.py::test_overlay_packages_are_installed",
            node,
            "failed",
            failure_class="error",
            message=message,
        )
        for node in ("cn01", "cn02")
    ]
    (group,) = group_failures(RunResults("r1", "cluster", "2026-11-26T00:00:00Z", results=results))
    assert "<n>" in group.fingerprint.signature  # grouping still ignores the numbers
    assert summary(group) == f"test_overlay_packages_are_installed fails on cn[01-02]: {message}"


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "trac.example.org/trac"])
def test_a_url_that_cannot_work_is_bad_configuration_one_line_nothing_queued(tmp_path, url):
    """`specs check` refuses these; should one reach a run anyway (an old site.yaml), it is one line
    and nothing waits in the queue for a URL that will never work."""
    from hpcos.tickets.backends.trac import TracTracker, TracWebTransport

    site = Site(tmp_path)
    backend = TracTracker(TracWebTransport(url, "bot", "pw", timeout=5), url)
    _, out = site.night(run("n1", {HCA: (IBV_MISSING, nodes(2))}), backend=backend)
    assert (
        out.error.startswith(f"bad configuration: Trac at {url}: unusable URL (")
        and "\n" not in out.error
    )
    assert out.queued == 0 and out.dropped == 1 and len(site.queue) == 0
