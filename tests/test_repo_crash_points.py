"""SIGKILL at the store's dangerous moments, then the operator's retry.

Unlike ``test_repo_crash.py`` (kills at random points), each run here is stopped exactly at one
moment by a failpoint (``hpcos.core.failpoints``: the real process SIGSTOPs itself there) and then
SIGKILLed: a pointer switched but its record not written, the first of the fast path's two switches
done, an RPM half-copied into the working repository.  Then the command is run again, as an operator
would, and the store must be in the state the operator asked for.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support.rpm_repo_fixtures import BASE_DAY2, KERNEL_V1, KERNEL_V2, TARGET, make_site, nevras
from test_repo_lifecycle import HPC, KERNEL, hpcos, rpm_factory, synced_and_published  # noqa: F401

from hpcos.cli import main
from hpcos.core import failpoints
from hpcos.core.store_layout import StoreLayout
from hpcos.rebuild.publish import publish
from hpcos.repo import repodata
from hpcos.repo.environments import JOURNAL, Environments


def killed_at(failpoint: str, work) -> None:
    """Run ``work()`` in a forked process that stops at ``failpoint``; SIGKILL it there."""
    pid = os.fork()
    if pid == 0:  # the child: quiet, and never back into pytest
        code = 1
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.environ.update(failpoints.enable(failpoint))
            code = work() or 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 120
    while True:
        done, status = os.waitpid(pid, os.WNOHANG | os.WUNTRACED)
        if done and os.WIFSTOPPED(status):
            break
        assert not done, f"the run ended (status {status}) without reaching failpoint {failpoint}"
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"failpoint {failpoint} not reached in 120 s")
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def records(site, env: str) -> list[dict]:
    log = site.store / "environments" / f"{env}.log"
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def pointing_at(site, env: str) -> str:
    return os.path.basename(os.readlink(site.store / "environments" / env))


def packages(site, env: str, entry: str) -> set[str]:
    return {p.nevra for p in repodata.read_packages(site.store / "environments" / env / entry)}


def test_rollback_killed_between_switch_and_record_is_recovered_as_the_rollback(
    rpm_factory,  # noqa: F811
    tmp_path,
):
    site = synced_and_published(make_site(rpm_factory, tmp_path))
    assert hpcos(site, "promote", "daily", "testing") == 0
    good = pointing_at(site, "testing")
    site.set_upstream("base", BASE_DAY2)
    assert hpcos(site, "sync") == 0 and hpcos(site, "promote", "daily", "testing") == 0
    bad = pointing_at(site, "testing")
    assert good != bad

    killed_at(
        "switch:rollback:testing:pointed",
        lambda: main(site.argv("rollback", "testing", "--reason", "bad day-2 update")),
    )
    assert pointing_at(site, "testing") == good and records(site, "testing")[-1]["snapshot"] == bad

    # The operator runs the rollback again: it finds its interrupted self done and goes no further.
    assert hpcos(site, "rollback", "testing", "--reason", "bad day-2 update") == 0
    assert pointing_at(site, "testing") == good
    last = records(site, "testing")[-1]
    assert (last["action"], last["snapshot"], last["previous"], last["reason"]) == (
        "rollback",
        good,
        bad,
        "bad day-2 update",
    )
    assert not (site.store / "environments" / JOURNAL).exists()
    # And the record tells the truth: the bad snapshot is the one a further promotion would replace.
    assert Environments(StoreLayout(site.store)).environment("testing").history()[-1] == good


@pytest.mark.parametrize("moment", ["switch:journaled", "switch:fastpath:testing:pointed"])
def test_fastpath_killed_between_its_switches_is_completed_for_both(rpm_factory, tmp_path, moment):  # noqa: F811
    site = synced_and_published(make_site(rpm_factory, tmp_path))
    assert hpcos(site, "promote", "daily", "testing") == 0
    assert (
        hpcos(site, "promote", "testing", "production", "--force", "--reason", "first rollout") == 0
    )
    site.set_overlay("kernel-overlay", KERNEL_V2)
    assert hpcos(site, "publish", "kernel-overlay") == 0

    killed_at(
        moment, lambda: main(site.argv("fastpath", "kernel-overlay", "--reason", "CVE-2026-0001"))
    )
    if moment.endswith(
        "pointed"
    ):  # the dangerous moment: testing on the new kernel, production not
        assert packages(site, "testing", KERNEL) == nevras(KERNEL_V2)
        assert packages(site, "production", KERNEL) == nevras(KERNEL_V1)

    # Any next command that changes the store completes the transaction first (here an unrelated
    # publish): production joins testing on the new kernel, each with its fastpath record.
    assert hpcos(site, "publish", "hpc-overlay") == 0
    for env in ("testing", "production"):
        assert packages(site, env, KERNEL) == nevras(KERNEL_V2), env
        assert records(site, env)[-1]["action"] == "fastpath"
        assert records(site, env)[-1]["reason"] == "kernel-overlay: CVE-2026-0001"
    # The operator's retry then finds both environments where it asked for them: nothing new to move.
    assert hpcos(site, "fastpath", "kernel-overlay", "--reason", "CVE-2026-0001") == 2
    for env in ("testing", "production"):
        assert packages(site, env, KERNEL) == nevras(KERNEL_V2), env
        assert records(site, env)[-1]["action"] == "fastpath"
        assert pointing_at(site, env) == records(site, env)[-1]["snapshot"]
    assert not (site.store / "environments" / JOURNAL).exists()


def test_build_killed_while_copying_into_the_overlay_leaves_no_truncated_rpm(rpm_factory, tmp_path):  # noqa: F811
    site = synced_and_published(make_site(rpm_factory, tmp_path))
    layout = StoreLayout(site.store)
    repo = layout.overlay_repo("kernel-overlay", TARGET)
    built = [rpm_factory.path(KERNEL_V2[0])]
    log = tmp_path / "publish.log"

    killed_at(
        "publish:copied",
        lambda: publish(built, layout, "kernel-overlay", TARGET, keep=3, log=log) and 0,
    )
    in_view = [p for p in repo.rglob("*.rpm") if not p.name.startswith(".")]
    assert KERNEL_V2[0].filename not in {p.name for p in in_view}, (
        "the half-copied package is not in view"
    )
    assert list(repo.glob(".partial-*")), "the kill landed mid-copy"
    assert digests_ok(in_view)

    # The retried build publishes whole packages, and `repo publish` freezes only verified ones.
    publish(built, layout, "kernel-overlay", TARGET, keep=3, log=log)
    assert not list(repo.glob(".partial-*"))
    assert hpcos(site, "publish", "kernel-overlay") == 0
    published = site.store / "environments" / "published" / "kernel-overlay" / KERNEL / "Packages"
    assert KERNEL_V2[0].filename in {p.name for p in published.glob("*.rpm")}
    assert digests_ok(list(published.glob("*.rpm")))


def digests_ok(rpms: list[Path]) -> bool:
    checked = subprocess.run(
        ["rpm", "-K", "--nosignature", *map(str, rpms)], capture_output=True, text=True, timeout=60
    )
    return bool(rpms) and checked.returncode == 0


def test_repo_publish_refuses_a_package_whose_digests_do_not_verify(rpm_factory, tmp_path, capsys):  # noqa: F811
    site = synced_and_published(make_site(rpm_factory, tmp_path))
    before = os.readlink(site.store / "environments" / "published" / "kernel-overlay")
    repo = StoreLayout(site.store).overlay_repo("kernel-overlay", TARGET)
    whole = rpm_factory.path(KERNEL_V2[0]).read_bytes()
    truncated = repo / "Packages" / KERNEL_V2[0].filename
    truncated.write_bytes(whole[: len(whole) * 2 // 3])  # what a copy killed by an older hpcos left
    capsys.readouterr()
    assert hpcos(site, "publish", "kernel-overlay") == 2
    err = capsys.readouterr().err
    assert f"{truncated}: digests do not verify" in err and err.count("\n") == 1
    assert os.readlink(site.store / "environments" / "published" / "kernel-overlay") == before
    assert not [p for p in (site.store / "snapshots").iterdir() if p.name.startswith(".tmp-")]
