"""Promotions serialise on the store lock: a second one waits (saying for whom) or fails with --no-wait."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from support.rpm_repo_fixtures import make_site
from test_repo_lifecycle import rpm_factory, synced_and_published  # noqa: F401

from hpcos.core.store_layout import StoreLayout
from hpcos.repo.locking import store_lock


def test_two_promotions_at_once_serialise(rpm_factory, tmp_path):  # noqa: F811
    site = synced_and_published(make_site(rpm_factory, tmp_path))
    layout = StoreLayout(site.store)
    # Hold the lock until both promotions say they are waiting for it, then let go.
    logs = [tmp_path / f"promote{i}.err" for i in range(2)]
    with store_lock(layout, "test holding the lock"):
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hpcos.cli",
                    *site.argv("promote", "daily", "testing", "--reason", f"run {i}"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=log.open("w"),
            )
            for i, log in enumerate(logs)
        ]
        deadline = time.monotonic() + 60
        while not all("waiting for test holding the lock" in log.read_text() for log in logs):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [
                log.read_text() for log in logs
            ]
            time.sleep(0.05)
    for p, log in zip(procs, logs, strict=True):
        assert p.wait(timeout=120) == 0, log.read_text()
    # Each promotion saw the other's result: the second's "previous" is the first's snapshot.
    log = [
        json.loads(line)
        for line in (site.store / "environments" / "testing.log").read_text().splitlines()
    ]
    assert [r["action"] for r in log] == ["promote", "promote"]
    assert log[0]["previous"] is None and log[1]["previous"] == log[0]["snapshot"]
    assert log[0]["snapshot"] != log[1]["snapshot"]


def test_no_wait_fails_at_once_naming_the_holder(rpm_factory, tmp_path, capsys):  # noqa: F811
    site = synced_and_published(make_site(rpm_factory, tmp_path))
    with store_lock(StoreLayout(site.store), "repo promote testing production"):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "hpcos.cli",
                *site.argv("promote", "daily", "testing", "--no-wait"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2
    assert (
        "locked by repo promote testing production (pid" in proc.stderr
        and "--no-wait" in proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert not (site.store / "environments" / "testing").exists()


def test_a_holder_file_of_another_shape_names_no_holder(tmp_path):
    """The holder file is a store file like any: a list, or a text where the time goes, raised a
    TypeError while another run held the lock."""
    from hpcos.core.errors import UserError

    layout = StoreLayout(tmp_path / "store")
    for holder in ("[]", json.dumps({"what": "x", "pid": 1, "since": "noon"}), "1e400"):
        with store_lock(layout, "the first run"):
            (layout.locks / "repo.lock.holder").write_text(holder)
            try:
                with store_lock(layout, "the second run", wait=False):
                    raise AssertionError("the lock was taken twice")
            except UserError as exc:
                assert "another hpcos repo command" in str(exc)
