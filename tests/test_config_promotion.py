"""Configuration promotion with real git: a bare "site" remote with testing and production branches.

Promotion merges the testing commit the nightly run recorded, with a merge commit naming the
snapshot and the reason; a conflicting hot-fix is reported by file and nothing moves; merge-back
brings production's hot-fixes to testing.
"""

from __future__ import annotations

import json

import pytest
from conftest import require_tool
from support.config_repos import SiteRepo, git, nightly_results, write_site

from hpcos.cli import main
from hpcos.results.model import RunResults, TestResult


@pytest.fixture
def site(tmp_path, monkeypatch):
    require_tool("git", "git")
    repo = SiteRepo(tmp_path / "git", {"motd": "release 1\n", "ntp.conf": "server a\n"})
    specs = write_site(
        tmp_path / "specs",
        tmp_path / "store",
        {"cm": {"url": f"file://{repo.remote}", "kind": "generic"}},
    )
    monkeypatch.setenv("HPCOS_SPECS", str(specs))
    monkeypatch.setenv("HPCOS_STORE", str(tmp_path / "store"))
    repo.tmp = tmp_path
    return repo


def status(capsys) -> dict:
    capsys.readouterr()
    assert main(["config", "status", "--json"]) == 0
    (state,) = json.loads(capsys.readouterr().out)["repositories"]
    return state


def record_nightly(site, commit: str, passed: bool = True) -> None:
    results = nightly_results(
        site.tmp / f"run{commit[:6]}.json", site.tmp / "specs", site.tmp / "store", passed=passed
    )
    assert main(["repo", "record-run", str(results), "--config-commit", f"cm={commit}"]) == 0


def test_status_shows_both_directions(site, capsys):
    change = site.commit("testing", {"motd": "release 2\n"}, "motd: release 2")
    hotfix = site.commit(
        "production", {"ntp.conf": "server b\n"}, "ntp: server b during the outage"
    )
    state = status(capsys)
    assert [c["sha"] for c in state["to_promote"]] == [change]
    assert [c["sha"] for c in state["hot_fixes"]] == [hotfix]
    assert state["hot_fixes"][0]["subject"] == "ntp: server b during the outage"
    assert main(["config", "status"]) == 0
    text = capsys.readouterr().out
    assert "motd: release 2" in text and "ntp: server b during the outage" in text


def test_promote_merges_the_tested_commit(site, capsys):
    old_production = site.head("production")
    tested = site.commit("testing", {"motd": "release 2\n"}, "motd: release 2")
    record_nightly(site, tested)
    untested = site.commit(
        "testing", {"motd": "release 3\n"}, "motd: release 3, pushed after the nightly run"
    )

    assert main(["config", "promote", "--reason", "CHG-42 validated"]) == 0

    new = site.head("production")
    parents = git(site.remote, "log", "-1", "--format=%P", new).split()
    assert parents == [old_production, tested]  # a merge commit of exactly what was tested
    message = git(site.remote, "log", "-1", "--format=%B", new)
    assert "CHG-42 validated" in message and "snap-20261201" in message and tested in message
    assert git(site.remote, "show", f"{new}:motd") == "release 2"
    state = status(capsys)
    assert [c["sha"] for c in state["to_promote"]] == [untested]
    assert state["hot_fixes"] == []


def test_gate_refuses_without_a_passing_run_that_recorded_the_commit(site, capsys):
    before = site.head("production")
    change = site.commit("testing", {"motd": "release 2\n"}, "motd: release 2")
    assert main(["config", "promote", "--reason", "x"]) == 2
    assert "no nightly run has been recorded by the harness" in capsys.readouterr().err
    # A results file written by hand names the commit and says passed: imported, it merges nothing.
    by_hand = site.tmp / "by-hand.json"
    RunResults(
        run_id="by-hand",
        cluster="local",
        started="2099-01-01T00:00:00+00:00",
        testing_snapshot="snap-1",
        results=[
            TestResult("integration_tests/test_nodes.py::test_hostname", "localhost", "passed")
        ],
    ).write(by_hand)
    assert main(["repo", "record-run", str(by_hand), "--config-commit", f"cm={change}"]) == 0
    assert main(["config", "promote", "--reason", "x"]) == 2
    assert "no nightly run has been recorded by the harness" in capsys.readouterr().err
    record_nightly(site, change, passed=False)
    assert main(["config", "promote", "--reason", "x"]) == 2
    assert "failed" in capsys.readouterr().err
    assert site.head("production") == before
    assert main(["config", "promote", "--force"]) == 2  # an override needs its reason
    assert main(["config", "promote", "--force", "--reason", "outage fix, tested by hand"]) == 0
    message = git(site.remote, "log", "-1", "--format=%B", site.head("production"))
    assert "Gate overridden" in message and "outage fix, tested by hand" in message


def test_conflicting_hotfix_is_reported_by_file_and_nothing_changes(site, capsys):
    tested = site.commit(
        "testing", {"ntp.conf": "server c\n", "motd": "release 2\n"}, "ntp: server c"
    )
    site.commit("production", {"ntp.conf": "server b\n"}, "hot-fix: ntp server b")
    record_nightly(site, tested)
    before = {b: site.head(b) for b in ("testing", "production")}
    mirror = site.tmp / "store" / "config" / "cm" / "mirror.git"

    assert main(["config", "promote", "--reason", "CHG-43"]) == 2
    err = capsys.readouterr().err
    assert "conflicts in ntp.conf;" in err and "nothing was changed" in err
    assert "motd" not in err.split("conflicts in", 1)[1]  # only the conflicting file is named
    assert {b: site.head(b) for b in ("testing", "production")} == before
    assert git(mirror, "rev-parse", "refs/heads/production") == before["production"]
    assert not (mirror / "MERGE_HEAD").exists()

    assert (
        main(["config", "merge-back", "--reason", "after outage"]) == 2
    )  # same conflict, other way
    assert "conflicts in ntp.conf" in capsys.readouterr().err
    assert {b: site.head(b) for b in ("testing", "production")} == before


def test_merge_back_brings_the_hotfix_to_testing(site, capsys):
    site.commit("testing", {"motd": "release 2\n"}, "motd: release 2")
    hotfix = site.commit("production", {"ntp.conf": "server b\n"}, "hot-fix: ntp server b")
    old_testing = site.head("testing")

    assert main(["config", "merge-back", "--reason", "outage 2026-12-01 over"]) == 0

    new = site.head("testing")
    assert git(site.remote, "log", "-1", "--format=%P", new).split() == [old_testing, hotfix]
    assert "outage 2026-12-01 over" in git(site.remote, "log", "-1", "--format=%B", new)
    assert git(site.remote, "show", f"{new}:ntp.conf") == "server b"
    assert git(site.remote, "show", f"{new}:motd") == "release 2"
    assert status(capsys)["hot_fixes"] == []
    assert main(["config", "merge-back", "--reason", "again"]) == 0  # nothing left: no empty merge
    assert site.head("testing") == new


def test_push_race_changes_nothing(site, capsys, monkeypatch):
    """Someone pushes to production between the fetch and the push: the push is refused, the mirror's
    ref stays, and the other person's commit is not lost."""
    from hpcos.config import repositories

    tested = site.commit("testing", {"motd": "release 2\n"}, "motd: release 2")
    record_nightly(site, tested)
    real_fetch = repositories.Repository.fetch

    def fetch_then_race(self):
        real_fetch(self)
        site.commit("production", {"other": "x\n"}, "someone else's hot-fix")

    monkeypatch.setattr(repositories.Repository, "fetch", fetch_then_race)
    assert main(["config", "promote", "--reason", "race"]) == 2
    assert "refused" in capsys.readouterr().err
    raced_before = site.head("production")
    assert git(site.remote, "log", "-1", "--format=%s", raced_before) == "someone else's hot-fix"


def test_commit_subjects_cannot_drive_the_terminal(site, capsys):
    site.commit("testing", {"motd": "x\n"}, "motd \x1b]0;owned\x07 title")
    capsys.readouterr()
    assert main(["config", "status"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "motd ?]0;owned? title" in out
