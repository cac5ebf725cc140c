"""A hung dnf and a hung confirming rerun die at their timeouts, with every process they started.

The hanging programs are real processes (shell scripts that fork a grandchild and never return), put
where hpcos looks for dnf and for the rerun's interpreter."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import process_alive

from harness import plugin_perf
from hpcos.core.errors import UserError
from hpcos.repo import mirror
from hpcos.results.model import TestResult

HANG = """#!/bin/sh
# A grandchild that keeps our output open, then we hang too: the worst case for a naive timeout.
sh -c 'echo $$ >> {pids}; exec sleep 300' &
echo $$ >> {pids}
echo "pretending to download"
exec sleep 300
"""


def hanging_program(path: Path, pids: Path) -> Path:
    path.write_text(HANG.format(pids=pids))
    path.chmod(0o755)
    return path


def wait_all_gone(pids: Path) -> list[int]:
    recorded = [int(p) for p in pids.read_text().split()]
    deadline = time.monotonic() + 5
    while [p for p in recorded if process_alive(p)] and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in recorded if process_alive(p)]


def test_a_hung_dnf_reposync_is_killed_with_its_tree(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pids = tmp_path / "pids"
    hanging_program(bin_dir / "dnf", pids)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setattr(mirror, "REPOSYNC_TIMEOUT", 2.0)
    job = mirror.MirrorJob(
        mirror="baseos",
        target="el9-x86_64",
        url="file:///nowhere",
        release=9,
        arches=["x86_64"],
        excludes=[],
    )
    started = time.monotonic()
    with pytest.raises(UserError, match="timed out after 2 s; process tree killed"):
        mirror.reposync(job, tmp_path / "dest", tmp_path / "cache")
    assert time.monotonic() - started < 2 + 4 + 2
    assert len(pids.read_text().split()) == 2
    assert wait_all_gone(pids) == []


def test_a_hung_confirming_rerun_is_killed_with_its_tree(tmp_path, monkeypatch):
    pids = tmp_path / "pids"
    monkeypatch.setattr(
        plugin_perf.sys, "executable", str(hanging_program(tmp_path / "python", pids))
    )
    suspect = TestResult(
        test_id="integration_tests/test_mpi.py::test_pingpong",
        node=None,
        mpi="openmpi",
        outcome="passed",
        duration=1.0,
        rerun="hpcos test --cluster local -k test_pingpong --mpi openmpi",
    )
    started = time.monotonic()
    assert plugin_perf.rerun_by_command([suspect], timeout=2.0) == {}
    assert time.monotonic() - started < 2 + 4 + 2
    assert wait_all_gone(pids) == []
