"""A failed overlay build tells the package's owner through the ticket machinery (the site's local
tracker here): one ticket per package, target and failure class, one comment per later failure,
closed by the next good build.  Real rpmbuild; the host check is satisfied with rpm_fixtures.el_host."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.rpm_fixtures import (
    GOOD_PATCH,
    STALE_PATCH,
    UpstreamPackage,
    el9_build_host,  # noqa: F401 (a fixture)
    make_site,
    site_patch,
)

from hpcos.cli import main
from hpcos.tickets.backends.local import LocalTracker

pytestmark = pytest.mark.usefixtures("el9_build_host")

TARGET = "el9-x86_64"
OWNER = "Jane Packager <jane@example.org>"


def build(tmp_path: Path, srpm: Path, patch_text: str) -> int:
    make_site(
        tmp_path / "specs",
        {
            "name": "hello",
            "owner": OWNER,
            "upstream": {"srpm_path": str(srpm)},
            "patches": [site_patch("0001-greet.patch")],
        },
        {"0001-greet.patch": patch_text},
    )
    return main(
        [
            "--specs",
            str(tmp_path / "specs"),
            "--store",
            str(tmp_path / "store"),
            "build",
            "hello",
            "--target",
            TARGET,
        ]
    )


def tickets(tmp_path: Path) -> list[tuple]:
    """(id, status, resolution, comments, summary) of every ticket in the site's local tracker."""
    tracker = LocalTracker(tmp_path / "store" / "tickets.sqlite")
    return [(t[0], t[1], t[2], t[3], t[5]) for t in tracker.tickets(include_closed=True)]


def description(tmp_path: Path, ticket_id: int) -> str:
    tracker = LocalTracker(tmp_path / "store" / "tickets.sqlite")
    return tracker.db.execute(
        "SELECT description FROM tickets WHERE id = ?", (ticket_id,)
    ).fetchone()[0]


def test_failed_builds_file_one_ticket_to_the_owner_and_a_good_build_closes_it(tmp_path):
    srpm = UpstreamPackage().build_srpm(tmp_path / "upstream")

    assert build(tmp_path, srpm, STALE_PATCH) == 1
    [(ticket, status, _, comments, summary)] = tickets(tmp_path)
    assert (status, comments) == ("new", 0)
    assert summary == (
        f"hello::{TARGET} fails: patch-does-not-apply: hello for {TARGET} failed to build "
        f"(owner: {OWNER})"
    )
    text = description(tmp_path, ticket)
    assert "site patch 0001-greet.patch no longer applies to hello.c: Hunk #1 FAILED at 1" in text
    assert f"hpcos build hello --target {TARGET}" in text

    # The same failure again: a comment on the same ticket, no second ticket.
    assert build(tmp_path, srpm, STALE_PATCH) == 1
    assert [(t[0], t[1], t[3]) for t in tickets(tmp_path)] == [(ticket, "new", 1)]

    # The patch rebased: the build passes and closes the ticket.
    assert build(tmp_path, srpm, GOOD_PATCH) == 0
    assert [(t[0], t[1], t[2], t[3]) for t in tickets(tmp_path)] == [(ticket, "closed", "fixed", 2)]
