"""The repository lifecycle end to end, with real rpmbuild, createrepo_c, dnf reposync and dnf repoquery.

Upstream mirrors are local repositories of RPMs built by the test; every environment is checked the
way a cluster node sees it: ``dnf repoquery`` with the environment's pointer as baseurl.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import support.gate_fixtures as gate_fixtures
from support.rpm_repo_fixtures import (
    BASE_DAY1,
    BASE_DAY2,
    HPC_OVERLAY,
    KERNEL_V1,
    KERNEL_V2,
    TOOLS,
    RepoSite,
    RpmFactory,
    make_site,
    nevras,
    repoquery,
)

from hpcos.cli import main
from hpcos.core.store_layout import StoreLayout
from hpcos.results import model as results

BASE, TOOLS_REPO = "base-el9-x86_64", "tools-el9-x86_64"
HPC, KERNEL = "hpc-overlay-el9-x86_64", "kernel-overlay-el9-x86_64"
MIRRORED = {"alpha", "beta", "gamma", "delta", "tool"}


def mirrored(rpms):
    return {r.nevra for r in rpms if r.name in MIRRORED}


DAILY1 = {BASE: mirrored(BASE_DAY1), TOOLS_REPO: mirrored(TOOLS)}
DAILY2 = {BASE: mirrored(BASE_DAY2), TOOLS_REPO: mirrored(TOOLS)}


@pytest.fixture(scope="session")
def rpm_factory(tmp_path_factory) -> RpmFactory:
    return RpmFactory(tmp_path_factory.mktemp("rpmbuild"))


@pytest.fixture
def site(rpm_factory, tmp_path) -> RepoSite:
    return make_site(rpm_factory, tmp_path)


def hpcos(site: RepoSite, *args: str) -> int:
    return main(site.argv(*args))


def synced_and_published(site: RepoSite) -> RepoSite:
    """Day 1 mirrored into daily, and both overlays built (hpc: Open MPI, kernel: v1) and published."""
    site.set_overlay("hpc-overlay", HPC_OVERLAY)
    site.set_overlay("kernel-overlay", KERNEL_V1)
    assert hpcos(site, "sync") == 0
    for overlay in ("hpc-overlay", "kernel-overlay"):
        assert hpcos(site, "publish", overlay) == 0
    return site


def seen(site: RepoSite, env: str, cache: Path) -> dict[str, set[str]]:
    """What dnf sees through each repository of environment ``env``."""
    env_dir = site.store / "environments" / env
    return {
        repo.name: repoquery(site.env_url(env, repo.name), cache / env / repo.name)
        for repo in sorted(env_dir.iterdir())
        if repo.is_dir()
    }


def write_test_cluster(site: RepoSite) -> str:
    return gate_fixtures.write_test_cluster(site.specs)


def deployed(site: RepoSite, snapshot: str, profile_sha256: str) -> None:
    gate_fixtures.deployed(site.store, snapshot, profile_sha256)


def run_results(
    path: Path, snapshot: str, outcome: str, run_id: str, night: int = 1, profile_sha256=None
) -> Path:
    results.RunResults(
        run_id=run_id,
        cluster="test",
        started=f"2026-11-{night:02d}T02:00:00+00:00",
        finished=f"2026-11-{night:02d}T03:00:00+00:00",
        testing_snapshot=snapshot,
        profile_sha256=profile_sha256,
        results=[
            results.TestResult(
                test_id="integration_tests/test_mpi.py::test_pingpong",
                node="node001",
                outcome=outcome,
            )
        ],
    ).write(path)
    return path


def current(site: RepoSite, env: str) -> str:
    return os.path.basename(os.readlink(site.store / "environments" / env))


def test_lifecycle_sync_publish_promote_diff_rollback(site, tmp_path, capsys):
    cache = tmp_path / "dnf-cache"
    # Day 1: mirror, leaving out overlaid packages (openmpi*, kernel*), excludes and other arches.
    assert hpcos(site, "sync") == 0
    assert seen(site, "daily", cache / "1") == DAILY1

    site.set_overlay("hpc-overlay", HPC_OVERLAY)
    site.set_overlay("kernel-overlay", KERNEL_V1)
    assert hpcos(site, "publish", "hpc-overlay") == 0
    assert hpcos(site, "publish", "kernel-overlay") == 0
    assert hpcos(site, "promote", "daily", "testing", "--reason", "first") == 0
    testing1 = {**DAILY1, HPC: nevras(HPC_OVERLAY), KERNEL: nevras(KERNEL_V1)}
    assert seen(site, "testing", cache / "2") == testing1

    # The production gate: no nightly run yet, then a failed one, refuses; a passing one on the site's
    # test cluster, after a verified deployment, opens it (every condition: tests/test_gate.py).
    profile_sha256 = write_test_cluster(site)
    capsys.readouterr()
    assert hpcos(site, "promote", "testing", "production") == 2
    assert "no nightly run has been recorded" in capsys.readouterr().err
    assert hpcos(site, "status", "testing", "--id") == 0
    testing_id = capsys.readouterr().out.strip()
    assert testing_id == current(site, "testing")
    deployed(site, testing_id, profile_sha256)
    r1 = tmp_path / "r1.json"
    gate_fixtures.test_cluster_night(site.specs, site.store, testing_id, r1, passed=False)
    assert hpcos(site, "record-run", str(r1)) == 0
    assert hpcos(site, "promote", "testing", "production") == 2
    assert "failed (1 of 2 results failed)" in capsys.readouterr().err
    r2 = tmp_path / "r2.json"
    gate_fixtures.test_cluster_night(site.specs, site.store, testing_id, r2)
    assert hpcos(site, "record-run", str(r2)) == 0
    assert hpcos(site, "promote", "testing", "production", "--reason", "nightly green") == 0
    assert current(site, "production") == testing_id
    assert seen(site, "production", cache / "3") == testing1
    capsys.readouterr()
    assert hpcos(site, "status") == 0
    table = capsys.readouterr().out
    for line in (
        "daily",
        "testing",
        "production",
        "published/hpc-overlay",
        "published/kernel-overlay",
    ):
        assert line in table
    assert "nightly green" in table and "passed (1 results)" in table

    # Day 2: the mirror moves on; testing and production do not until promoted.
    site.set_upstream("base", BASE_DAY2)
    assert hpcos(site, "sync") == 0
    assert seen(site, "daily", cache / "4") == DAILY2
    assert seen(site, "testing", cache / "5") == testing1
    capsys.readouterr()
    assert hpcos(site, "diff", "testing", "daily", "--json") == 0
    changes = json.loads(capsys.readouterr().out)["repositories"]
    assert set(changes) == {BASE, HPC, KERNEL}  # tools is the very same directory: not even read
    assert changes[BASE]["added"] == ["delta-0:2.0-1.noarch"]
    assert changes[BASE]["removed"] == ["beta-0:1.0-1.noarch"]
    assert changes[BASE]["updated"] == [["alpha.noarch", "0:1.0-1", "0:1.1-1"]]
    assert changes[HPC]["status"] == "removed" and len(changes[HPC]["removed"]) == 2

    assert hpcos(site, "promote", "daily", "testing") == 0
    testing2 = {**DAILY2, HPC: nevras(HPC_OVERLAY), KERNEL: nevras(KERNEL_V1)}
    assert seen(site, "testing", cache / "6") == testing2
    assert hpcos(site, "diff", "production", "testing") == 0
    text = capsys.readouterr().out
    assert "+ delta-0:2.0-1.noarch" in text and "~ alpha.noarch 0:1.0-1 -> 0:1.1-1" in text

    # Rollback returns testing to day 1, and a record says who, when, why and from where.
    assert hpcos(site, "rollback", "testing", "--reason", "alpha 1.1 breaks the scheduler") == 0
    assert current(site, "testing") == testing_id
    assert seen(site, "testing", cache / "7") == testing1
    log = [
        json.loads(line)
        for line in (site.store / "environments" / "testing.log").read_text().splitlines()
    ]
    assert [r["action"] for r in log] == ["promote", "promote", "rollback"]
    assert log[-1]["snapshot"] == testing_id and log[-1]["previous"] == log[1]["snapshot"]
    assert log[-1]["reason"] == "alpha 1.1 breaks the scheduler" and log[-1]["user"]

    # One copy of every RPM: each snapshot file is a hard link into the content store.
    layout = StoreLayout(site.store)
    for rpm in (layout.snapshots).rglob("*.rpm"):
        assert rpm.stat().st_nlink >= 2, rpm
    content_inodes = {p.stat().st_ino for p in layout.content.rglob("*.rpm")}
    assert {p.stat().st_ino for p in layout.snapshots.rglob("*.rpm")} <= content_inodes


def test_fastpath_puts_one_overlay_into_testing_and_production(site, tmp_path, capsys):
    cache = tmp_path / "dnf-cache"
    synced_and_published(site)
    assert hpcos(site, "promote", "daily", "testing") == 0
    assert hpcos(site, "promote", "testing", "production", "--force", "--reason", "bootstrap") == 0
    production_log = (site.store / "environments" / "production.log").read_text()
    assert '"forced": true' in production_log and "bootstrap [gate overridden" in production_log

    # A new hpc-overlay build is published but waits for the normal path; the kernel fix does not wait.
    site.set_overlay("hpc-overlay", [])
    site.set_overlay("kernel-overlay", KERNEL_V2)
    assert hpcos(site, "publish", "kernel-overlay") == 0
    capsys.readouterr()
    assert hpcos(site, "fastpath", "hpc-overlay", "--reason", "x") == 2
    assert "not allowed the fast path" in capsys.readouterr().err
    assert hpcos(site, "fastpath", "kernel-overlay", "--reason", "CVE-2026-0001") == 0
    for env in ("testing", "production"):
        assert seen(site, env, cache / env) == {
            **DAILY1,
            HPC: nevras(HPC_OVERLAY),
            KERNEL: nevras(KERNEL_V2),
        }
        last = json.loads((site.store / "environments" / f"{env}.log").read_text().splitlines()[-1])
        assert last["action"] == "fastpath" and "CVE-2026-0001" in last["reason"]


def test_partial_sync_links_the_other_repositories(site, tmp_path):
    assert hpcos(site, "sync") == 0
    first = current(site, "daily")
    site.set_upstream("base", BASE_DAY2)
    assert hpcos(site, "sync", "--mirror", "base") == 0
    snapshot = site.store / "snapshots" / current(site, "daily")
    assert (snapshot / TOOLS_REPO).is_symlink() and not (snapshot / BASE).is_symlink()
    assert os.readlink(snapshot / TOOLS_REPO) == f"../{first}/{TOOLS_REPO}"
    assert seen(site, "daily", tmp_path / "cache") == DAILY2


def test_retention_keeps_last_n_and_everything_still_needed(site, tmp_path):
    assert hpcos(site, "sync") == 0
    syncs = [current(site, "daily")]  # holds tools-el9-x86_64 for every later partial sync
    for day in range(6):
        site.set_upstream("base", BASE_DAY2 if day % 2 else BASE_DAY1)
        assert hpcos(site, "sync", "--mirror", "base") == 0
        syncs.append(current(site, "daily"))
        if day == 0:
            assert hpcos(site, "promote", "daily", "testing") == 0
            testing = current(site, "testing")
    layout = StoreLayout(site.store)
    kept = {p.name for p in layout.snapshots.iterdir()}
    # keep_snapshots: 3 (the last three syncs), plus testing's snapshot and the snapshots its links
    # point into, plus the very first sync, which every later daily snapshot links tools from.
    assert kept == {syncs[0], syncs[1], testing, *syncs[-3:]}
    assert seen(site, "testing", tmp_path / "cache") == DAILY1
    assert seen(site, "daily", tmp_path / "cache2") == DAILY2
    # Content of deleted snapshots went too: every stored RPM is still linked from a snapshot.
    assert all(p.stat().st_nlink >= 2 for p in layout.content.rglob("*.rpm"))
    assert len(list(layout.content.rglob("*.rpm"))) == len(mirrored(BASE_DAY1 + BASE_DAY2 + TOOLS))


def test_bad_input_gets_one_line_errors(site, tmp_path, capsys):
    assert hpcos(site, "status", "testing", "--id") == 2
    assert "points at nothing" in capsys.readouterr().err
    assert hpcos(site, "diff", "testing", "nosuch") == 2
    assert (
        "'testing' is neither an environment with a snapshot nor a snapshot id"
        in capsys.readouterr().err
    )
    assert hpcos(site, "sync", "--mirror", "nosuch") == 2
    assert "unknown mirror 'nosuch'; expected one of: base, tools" in capsys.readouterr().err
    assert hpcos(site, "promote", "daily", "production") == 2
    assert "'production' is promoted from 'testing', not from 'daily'" in capsys.readouterr().err
    assert hpcos(site, "promote", "testing", "production", "--force") == 2
    assert "--force needs --reason" in capsys.readouterr().err
    assert hpcos(site, "publish", "hpc-overlay") == 2
    assert "has no built packages yet" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert hpcos(site, "record-run", str(bad)) == 2
    assert "not an hpcos results file" in capsys.readouterr().err
    run_results(bad, "", "passed", "n9")
    assert hpcos(site, "record-run", str(bad)) == 2
    assert "HPCOS_TESTING_SNAPSHOT" in capsys.readouterr().err
