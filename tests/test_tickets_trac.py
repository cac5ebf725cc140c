"""Tickets against a real Trac 1.6 (tracd on loopback, started by a fixture)."""

from __future__ import annotations

import csv
import io
import logging
import sqlite3
from contextlib import closing

import pytest
import requests
from support.tracker_doubles.runs import (
    IBV_MISSING,
    OPENMPI_UNREACHABLE,
    SRUN_FAILED,
    nodes,
    run,
    site_with_tracker,
)

from hpcos.site.credentials import Credentials, RedactingFilter
from hpcos.site.specs import Tracker
from hpcos.tickets.backends.trac import TracTracker, TracWebTransport
from hpcos.tickets.lifecycle import file_run, flush
from hpcos.tickets.queue import TicketQueue
from hpcos.tickets.state import TicketState

pytest_plugins = ["pytester"]


def backend(tracd) -> TracTracker:
    return TracTracker(
        TracWebTransport(tracd.url, tracd.user, tracd.password, timeout=30), tracd.url
    )


def trac_tickets(tracd, key: str) -> list[dict[str, str]]:
    """What Trac itself says, through an anonymous CSV query (independent of the backend under test)."""
    response = requests.get(
        f"{tracd.url}/query",
        timeout=30,
        params=[
            ("fingerprint", key),
            ("format", "csv"),
            ("col", "id"),
            ("col", "status"),
            ("col", "summary"),
            ("col", "resolution"),
            ("max", "0"),
        ],
    )
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def ticket_text(tracd, ticket_id: str) -> str:
    """The ticket's description and comments exactly as Trac stored them (its own database)."""
    with closing(sqlite3.connect(tracd.env / "db" / "trac.db")) as db:
        [(description,)] = db.execute(
            "SELECT description FROM ticket WHERE id = ?", (int(ticket_id),)
        )
        comments = [
            row[0]
            for row in db.execute(
                "SELECT newvalue FROM ticket_change WHERE ticket = ? AND field = 'comment' ORDER BY time",
                (int(ticket_id),),
            )
        ]
    return "\n".join([description, *comments])


class Night:
    def __init__(self, tmp_path, tracker, **spec):
        self.tracker = tracker
        self.spec = Tracker(
            backend="trac", url="http://unused", **{"close_after_passing_runs": 2, **spec}
        )
        self.state = TicketState(tmp_path / "state.sqlite")
        self.queue = TicketQueue(tmp_path / "queue")

    def __call__(self, results, redact=lambda text: text):
        return file_run(results, self.tracker, self.state, self.spec, self.queue, redact)


def test_nights_one_ticket_comment_close_after_passing_and_reopen(tracd, tmp_path):
    test_id = "integration_tests/test_mpi.py::test_pingpong[openmpi]"
    night = Night(tmp_path, backend(tracd))
    decided, out = night(
        run(
            "night-1",
            {test_id: (OPENMPI_UNREACHABLE, nodes(300))},
            build_url="https://jenkins.example.org/job/hpcos/job/nightly/101/",
        )
    )
    key = decided.actions[0].key
    [ticket] = trac_tickets(tracd, key)
    assert out.done == [f"#{ticket['id']}: created"]
    assert ticket["Status"] == "new"
    assert ticket["Summary"] == (
        "[openmpi] test_pingpong[openmpi] fails on node[001-300]: At least one pair "
        "of MPI processes are unable to reach each other for MPI communications"
    )
    text = ticket_text(tracd, ticket["id"])
    assert " * Nodes (300): `node[001-300]`\n" in text
    assert f"  300  openmpi   node[001-300]  {test_id}" in text
    assert "https://jenkins.example.org/job/hpcos/job/nightly/101/" in text
    assert "--nodes 'node[001-300]'" in text and "kernel: 5.14.0-427.el9.hpc1" in text

    _, out = night(run("night-2", {test_id: (OPENMPI_UNREACHABLE, nodes(120)[60:])}))
    assert out.done == [f"#{ticket['id']}: commented"]
    assert len(trac_tickets(tracd, key)) == 1
    assert (
        "Seen again in run `night-2` on 60 node(s), 1 test(s):\n\n * Nodes (60): `node[061-120]`"
        in ticket_text(tracd, ticket["id"])
    )

    for n in (3, 4):
        _, out = night(run(f"night-{n}", {}, passing={test_id: nodes(300)}))
    assert out.done == [f"#{ticket['id']}: closed after passing runs"]
    assert [(t["Status"], t["Resolution"]) for t in trac_tickets(tracd, key)] == [
        ("closed", "fixed")
    ]

    _, out = night(run("night-5", {test_id: (OPENMPI_UNREACHABLE, ["node042"])}))
    assert out.done == [f"#{ticket['id']}: reopened"]
    assert [t["Status"] for t in trac_tickets(tracd, key)] == ["reopened"]


class StopsMidway(TracTracker):
    """Stops the real tracd right after the second ticket is created (the outage hits mid-run)."""

    def __init__(self, tracd):
        super().__init__(
            TracWebTransport(tracd.url, tracd.user, tracd.password, timeout=30), tracd.url
        )
        self.tracd = tracd
        self.created = 0

    def create(self, summary, description, key):
        ticket = super().create(summary, description, key)
        self.created += 1
        if self.created == 2:
            self.tracd.stop()
        return ticket


def test_tracd_stopped_mid_filing_queues_and_flush_files_each_exactly_once(tracd, tmp_path):
    failing = {
        f"integration_tests/test_outage.py::test_{i}": (SRUN_FAILED, nodes(20)) for i in range(5)
    }
    night = Night(tmp_path, StopsMidway(tracd))
    try:
        decided, out = night(run("outage-1", failing))
        keys = [a.key for a in decided.actions]
        assert len(out.done) == 2 and out.queued == 3
        assert out.error.startswith(f"unreachable: Trac at {tracd.url} unreachable: ")
        # The next nightly job still cannot reach Trac: nothing is lost, nothing doubled in the queue.
        _, out = Night(tmp_path, backend(tracd))(run("outage-1", failing))
        assert out.queued == 5
    finally:
        tracd.start()
    out = flush(backend(tracd), night.state, night.spec, night.queue)
    assert out.error is None and out.queued == 0
    assert sorted(len(trac_tickets(tracd, key)) for key in keys) == [1, 1, 1, 1, 1]
    assert flush(backend(tracd), night.state, night.spec, night.queue).done == []
    assert sorted(len(trac_tickets(tracd, key)) for key in keys) == [1, 1, 1, 1, 1]


class Colliding(TracWebTransport):
    """Someone else comments on the ticket between our reading its form and posting to it, twice."""

    def __init__(self, tracd, other):
        super().__init__(tracd.url, tracd.user, tracd.password, timeout=30)
        self.other = other
        self.collisions = 2

    def request(self, method, path, **kwargs):
        response = super().request(method, path, **kwargs)
        if method == "GET" and path.startswith("/ticket/") and self.collisions:
            self.collisions -= 1
            self.other.update(path.rsplit("/", 1)[1], "leave", "a human was here", {})
        return response


def test_mid_air_collision_is_retried_with_a_fresh_view_time(tracd):
    plain = backend(tracd)
    ticket = plain.create("collision test", "body", "hpcos-v1-collision0000")
    colliding = TracTracker(Colliding(tracd, plain.transport), tracd.url)
    colliding.comment(ticket, "hpcos comment after the collisions")
    assert colliding.transport.collisions == 0
    text = ticket_text(tracd, ticket.id)
    assert text.count("a human was here") == 2 and "hpcos comment after the collisions" in text


def test_password_never_reaches_tickets_logs_or_queue(tracd, tmp_path, caplog):
    credentials = Credentials(tracd.user, tracd.password)
    leaky = f"curl -u {tracd.user}:{tracd.password} failed\n" + IBV_MISSING
    failing = {
        "integration_tests/test_ib.py::test_leaky": (leaky, nodes(3)),  # two causes: two tickets
        "integration_tests/test_ib.py::test_leaky2": (
            leaky.replace(IBV_MISSING, SRUN_FAILED),
            nodes(2),
        ),
    }
    logger = logging.getLogger("hpcos.tickets")
    redacting = RedactingFilter(credentials.secrets)
    logger.addFilter(redacting)
    caplog.set_level(logging.INFO, logger="hpcos.tickets")
    try:
        night = Night(tmp_path, StopsMidway(tracd))
        night.tracker.created = 1  # the first ticket reaches Trac, then it goes down
        try:
            decided, out = night(run("leak-1", failing), redact=credentials.redact)
            logger.info("failure text was: %s", leaky)
        finally:
            tracd.start()
    finally:
        logger.removeFilter(redacting)
    assert out.queued == 1
    queued = [p.read_text() for p in (tmp_path / "queue").glob("*.json")]
    assert len(queued) == 1 and "********" in queued[0]
    flush(backend(tracd), night.state, night.spec, night.queue)
    texts = [
        ticket_text(tracd, t["id"]) for a in decided.actions for t in trac_tickets(tracd, a.key)
    ]
    assert len(texts) == 2 and all("curl -u hpcos-bot:********" in text for text in texts)
    assert caplog.records and "********" in caplog.text
    for text in [*texts, *queued, caplog.text]:
        assert tracd.password not in text


def test_a_trac_without_the_custom_field_is_refused_not_answered_with_every_ticket(tracd):
    """Trac ignores unknown query fields; hpcos must not take "all tickets" as "the ticket"."""
    from hpcos.tickets.backends import TrackerError

    plain = backend(tracd)
    plain.create("someone else's ticket", "body", "hpcos-v1-stranger0000000")
    misconfigured = TracTracker(plain.transport, tracd.url, field="fingerprint_typo")
    with pytest.raises(
        TrackerError, match=r"no ticket field 'fingerprint_typo': add `fingerprint_typo = text`"
    ):
        misconfigured.find("hpcos-v1-stranger0000000")


CONFTEST = """
import os
from hpcos.results.model import RunResults

def pytest_sessionfinish(session):
    # What the harness plugin does at the end of a run: hand the whole run to the hook.
    run = RunResults.read(os.environ["HPCOS_TEST_RUN"])
    session.config.hook.pytest_hpcos_run_finished(config=session.config, run=run)
"""


def test_site_on_trac_end_to_end_plugin_queues_while_down_and_cli_flushes(
    tracd, tmp_path, pytester, monkeypatch, repo_root, capsys
):
    """site.yaml names the real Trac; the nightly session ends while tracd is down, so the plugin
    queues; `hpcos tickets flush` sends once tracd is back; the next night only comments."""
    from hpcos.cli import main

    specs = site_with_tracker(
        tmp_path, repo_root, {"backend": "trac", "url": tracd.url, "timeout": 30}
    )
    for name, value in {
        "HPCOS_SPECS": str(specs),
        "HPCOS_STORE": str(tmp_path / "store"),
        "HPCOS_TRACKER_USER": tracd.user,
        "HPCOS_TRACKER_PASSWORD": tracd.password,
    }.items():
        monkeypatch.setenv(name, value)
    test_id = "integration_tests/test_ib.py::test_hca_present[e2e]"
    night1 = tmp_path / "night1.json"
    # A cause of its own: the module's Trac already has the IB tickets of the tests above.
    e2e_cause = IBV_MISSING.replace("Function not implemented", "No such device (e2e)")
    run("e2e-1", {test_id: (e2e_cause, nodes(64, "cn", 4))}).write(night1)
    monkeypatch.setenv("HPCOS_TEST_RUN", str(night1))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("def test_nothing():\n    pass\n")

    tracd.stop()
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    finally:
        tracd.start()
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [f"hpcos tickets (trac): nothing sent, 1 queued (unreachable: Trac at {tracd.url} *"]
    )
    queued = list((tmp_path / "store" / "tickets" / "queue").glob("*.json"))
    assert len(queued) == 1 and tracd.password not in queued[0].read_text()

    assert main(["tickets", "flush"]) == 0
    assert main(["tickets", "flush"]) == 0
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["tickets", "list"]) == 0
    listing = capsys.readouterr()
    assert (
        "test_hca_present[e2e]" in listing.out
        and "queued, waiting for the tracker: 0" in listing.err
    )
    night2 = tmp_path / "night2.json"
    run("e2e-2", {test_id: (e2e_cause, nodes(8, "cn", 4))}).write(night2)
    monkeypatch.setenv("HPCOS_TEST_RUN", str(night2))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["hpcos tickets (trac): 1 commented"])
    with closing(sqlite3.connect(tracd.env / "db" / "trac.db")) as db:
        tickets = db.execute(
            "SELECT id FROM ticket WHERE summary LIKE ?", ("%test_hca_present[e2e]%",)
        ).fetchall()
    [(ticket_id,)] = tickets
    text = ticket_text(tracd, str(ticket_id))
    assert " * Nodes (64): `cn[0001-0064]`" in text and " * Nodes (8): `cn[0001-0008]`" in text
    assert tracd.password not in text


def test_wrong_password_is_a_clear_error_that_does_not_quote_it(tracd):
    from hpcos.tickets.backends import TrackerError, TrackerUnavailable

    wrong = TracTracker(
        TracWebTransport(tracd.url, tracd.user, "not-the-password", timeout=30), tracd.url
    )
    with pytest.raises(
        TrackerError, match=r"refused /login \(401\): check HPCOS_TRACKER_USER"
    ) as raised:
        wrong.find("hpcos-v1-0000000000000000")
    assert not isinstance(raised.value, TrackerUnavailable)  # not worth queueing as "down"
    assert "not-the-password" not in str(raised.value)
