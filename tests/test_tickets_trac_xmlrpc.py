"""Trac through the XML-RPC transport, against a double of the XmlRpcPlugin's documented ``ticket.*``
API (tests/tracker_doubles/trac_xmlrpc.py): the plugin on PyPI is Python 2 only and cannot load into
the Trac 1.6 the other Trac tests run for real."""

from __future__ import annotations

import pytest
from support.tracker_doubles.runs import IBV_MISSING, nodes, run
from support.tracker_doubles.trac_xmlrpc import TracXmlRpcDouble

from hpcos.site.credentials import resolve
from hpcos.site.specs import Tracker
from hpcos.tickets.backends import TrackerError, open_backend
from hpcos.tickets.backends.trac import TracXmlRpcTransport
from hpcos.tickets.fingerprint import ALGORITHM_VERSION
from hpcos.tickets.lifecycle import file_run
from hpcos.tickets.queue import TicketQueue
from hpcos.tickets.state import TicketState

USER, PASSWORD = "hpcos-bot", "xmlrpc-secret-31337"
HCA = "integration_tests/test_ib.py::test_hca_present"


@pytest.fixture
def double():
    server = TracXmlRpcDouble(USER, PASSWORD).start()
    yield server
    server.stop()


def backend_for(double, tmp_path):
    spec = Tracker(
        backend="trac", url=double.url, trac_transport="xmlrpc", close_after_passing_runs=1
    )
    credentials = resolve(
        "tracker", spec.url, {"HPCOS_TRACKER_USER": USER, "HPCOS_TRACKER_PASSWORD": PASSWORD}
    )
    return spec, open_backend(spec, tmp_path, credentials)


def test_lifecycle_over_xmlrpc_with_digest_auth(double, tmp_path):
    spec, backend = backend_for(double, tmp_path)
    assert isinstance(backend.transport, TracXmlRpcTransport)
    state, queue = TicketState(tmp_path / "state.sqlite"), TicketQueue(tmp_path / "queue")

    def night(results):
        return file_run(results, backend, state, spec, queue)[1].done

    assert night(run("n1", {HCA: (IBV_MISSING, nodes(40))})) == ["#1: created"]
    assert double.tickets[1]["fingerprint"].startswith(f"hpcos-v{ALGORITHM_VERSION}-")
    assert double.tickets[1]["type"] == "defect"
    assert " * Nodes (40): `node[001-040]`" in double.tickets[1]["description"]
    assert night(run("n2", {HCA: (IBV_MISSING, nodes(2))})) == ["#1: commented"]
    assert night(run("n3", {}, passing={HCA: nodes(40)})) == ["#1: closed after passing runs"]
    assert (double.tickets[1]["status"], double.tickets[1]["resolution"]) == ("closed", "fixed")
    assert night(run("n4", {HCA: (IBV_MISSING, nodes(1))})) == ["#1: reopened"]
    assert double.tickets[1]["status"] == "reopened" and len(double.tickets) == 1
    assert all(
        r.headers.get("authorization", "").startswith("Digest ") for r in double.requests[1:]
    )


def test_stale_ts_is_a_mid_air_collision_and_is_retried(double, tmp_path):
    _, backend = backend_for(double, tmp_path)
    ticket = backend.create("summary", "description", "hpcos-v1-00000000000000aa")
    collisions = [1, 1]

    def someone_edits(ticket_id):
        if collisions:
            collisions.pop()
            double.comment_by_someone_else(ticket_id)

    double.on_get = someone_edits
    backend.comment(ticket, "ours")
    assert double.changes[1] == ["a human was here", "a human was here", "ours"]


def test_missing_custom_field_is_refused(tmp_path):
    double = TracXmlRpcDouble(USER, PASSWORD, custom_fields=()).start()
    try:
        _, backend = backend_for(double, tmp_path)
        with pytest.raises(TrackerError, match="no ticket field 'fingerprint'"):
            backend.find("hpcos-v1-00000000000000aa")
    finally:
        double.stop()
