"""A real Trac 1.6 on loopback for the Trac tests (the server itself: hpcos/demo/trac.py, one copy).
Used by the Trac tests and by ``bench/tickets.py``."""

from __future__ import annotations

import pytest

from hpcos.demo.trac import PASSWORD, REALM, USER, TracServer, create_trac, free_port  # noqa: F401


@pytest.fixture(scope="module")
def tracd(tmp_path_factory) -> TracServer:
    """A stock Trac on loopback for one test module, stopped by its PID at the end."""
    server = create_trac(tmp_path_factory.mktemp("trac"))
    server.start()
    yield server
    server.stop()
