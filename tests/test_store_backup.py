"""``hpcos store backup`` / ``hpcos store restore`` with real processes, real rpmbuild, createrepo_c and dnf.

The backup is taken while a promotion runs: the promotion is a real ``hpcos repo promote`` stopped by
a failpoint right after it journaled its switch, holding the store lock; the backup, a real ``hpcos
store backup``, waits for it.  The promotion is let go, the backup completes, and the backup is
restored into a new, empty store, where every command a site runs works: ``repo status``, ``repo
diff``, ``tickets list``, a rollback and a promotion, and dnf reads the environments.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from support.rpm_repo_fixtures import (
    BASE_DAY2,
    HPC_OVERLAY,
    KERNEL_V1,
    RpmFactory,
    make_site,
    nevras,
    repoquery,
)

from hpcos.core import failpoints

HPCOS = str(Path(sys.executable).parent / "hpcos")


@pytest.fixture(scope="module")
def rpm_factory(tmp_path_factory) -> RpmFactory:
    return RpmFactory(tmp_path_factory.mktemp("rpmbuild"))


def hpcos(specs: Path, store: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [HPCOS, "--specs", str(specs), "--store", str(store), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def test_restore_of_a_backup_taken_during_a_promotion_gives_a_working_store(rpm_factory, tmp_path):
    site = make_site(rpm_factory, tmp_path / "site")
    specs, store = site.specs, site.store
    site.set_overlay("hpc-overlay", HPC_OVERLAY)
    site.set_overlay("kernel-overlay", KERNEL_V1)
    ok(hpcos(specs, store, "repo", "sync"))
    for overlay in ("hpc-overlay", "kernel-overlay"):
        ok(hpcos(specs, store, "repo", "publish", overlay))
    ok(hpcos(specs, store, "repo", "promote", "daily", "testing", "--reason", "first"))
    site.set_upstream("base", BASE_DAY2)
    ok(hpcos(specs, store, "repo", "sync"))

    # A promotion stopped, holding the store lock, between its journal and its switch.
    promotion = subprocess.Popen(
        [
            HPCOS,
            "--specs",
            str(specs),
            "--store",
            str(store),
            "repo",
            "promote",
            "daily",
            "testing",
            "--reason",
            "second",
        ],
        env={**os.environ, **failpoints.enable("switch:journaled")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    backups = tmp_path / "backups"
    backup = None
    try:
        deadline = time.monotonic() + 120
        while not stopped(promotion.pid):
            assert promotion.poll() is None and time.monotonic() < deadline, promotion.communicate()
            time.sleep(0.05)
        assert (store / "environments" / ".switches.json").exists()
        backup = subprocess.Popen(
            [HPCOS, "--specs", str(specs), "--store", str(store), "store", "backup", str(backups)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        waiting = backup.stderr.readline()
        assert "waiting for repo promote daily testing" in waiting, waiting
        assert not list(backups.glob("*.tar")), "no archive while the promotion holds the lock"
    finally:
        os.kill(promotion.pid, signal.SIGCONT)
        out, err = promotion.communicate(timeout=300)
        if backup is not None:
            backup_out, backup_err = backup.communicate(timeout=300)
    assert promotion.returncode == 0, err
    assert backup.returncode == 0, backup_err
    manifest = json.loads(next(backups.glob("hpcos-store-*.json")).read_text())
    assert backup_out.startswith(str(backups / manifest["archive"]))

    # Cheap: every RPM once in the archive, however many snapshots and the content store link it.
    with tarfile.open(backups / manifest["archive"]) as tar:
        rpms = [m for m in tar.getmembers() if m.name.endswith(".rpm")]
    assert [m for m in rpms if m.islnk()] and len([m for m in rpms if m.isfile()]) == len(
        {
            p.stat().st_ino
            for p in store.rglob("*.rpm")
            if p.is_file() and "downloads" not in p.parts
        }
    )

    restored = tmp_path / "restored"
    assert "restored" in ok(hpcos(specs, restored, "store", "restore", str(backups)))
    assert not (restored / "environments" / ".switches.json").exists(), (
        "the backup waited for the switch"
    )

    original = json.loads(ok(hpcos(specs, store, "repo", "status", "--json")))
    again = json.loads(ok(hpcos(specs, restored, "repo", "status", "--json")))
    assert again["pointers"] == original["pointers"]
    assert [p["reason"] for p in again["pointers"] if p["pointer"] == "testing"] == ["second"]
    diff = ok(hpcos(specs, restored, "repo", "diff", "daily", "testing", "--json"))
    assert diff == ok(hpcos(specs, store, "repo", "diff", "daily", "testing", "--json"))
    assert json.loads(diff)["repositories"], "daily and testing differ by the overlays"
    ok(hpcos(specs, restored, "tickets", "list"))
    ok(hpcos(specs, restored, "repo", "rollback", "testing", "--reason", "after restore"))
    ok(
        hpcos(
            specs,
            restored,
            "repo",
            "promote",
            "daily",
            "testing",
            "--reason",
            "promoted in the restored store",
        )
    )
    testing = restored / "environments" / "testing"
    hpc = repoquery(f"file://{testing}/hpc-overlay-el9-x86_64", tmp_path / "dnf-cache")
    assert hpc == nevras(HPC_OVERLAY)
    # The restored snapshots still share one copy of each RPM with the content store.
    assert all(p.stat().st_nlink >= 2 for p in (restored / "snapshots").rglob("*.rpm"))
    # The original store was not touched by any of it.
    assert (
        json.loads(ok(hpcos(specs, store, "repo", "status", "--json")))["pointers"]
        == original["pointers"]
    )


def test_restore_refuses_a_store_that_is_not_empty_and_a_damaged_backup(rpm_factory, tmp_path):
    site = make_site(rpm_factory, tmp_path / "site")
    ok(hpcos(site.specs, site.store, "repo", "sync"))
    backups = tmp_path / "backups"
    ok(hpcos(site.specs, site.store, "store", "backup", str(backups)))
    refused = hpcos(site.specs, site.store, "store", "restore", str(backups))
    assert (
        refused.returncode == 2
        and refused.stderr.count("\n") == 1
        and "is not empty" in refused.stderr
    )
    inside = hpcos(site.specs, site.store, "store", "backup", str(site.store / "b"))
    assert inside.returncode == 2 and "inside the store" in inside.stderr
    archive = next(backups.glob("*.tar"))
    with open(archive, "r+b") as f:
        f.seek(2048)
        f.write(b"damaged")
    damaged = hpcos(site.specs, tmp_path / "new", "store", "restore", str(backups))
    assert damaged.returncode == 2 and "does not match its manifest" in damaged.stderr
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())
