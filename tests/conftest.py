"""Shared fixtures for the project's own tests.

Real components are used wherever they can run here.  A missing system tool fails the test in CI
(where `.ci/run` must have installed it) and skips it on a laptop with a reason that says what to install.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(tool: str, debian_package: str) -> str:
    """Path of ``tool``; fail in CI, skip elsewhere, when it is missing."""
    path = shutil.which(tool) or next(
        (p for p in (f"/usr/sbin/{tool}", f"/sbin/{tool}") if os.access(p, os.X_OK)), None
    )
    if path:
        return path
    message = f"{tool} not found: apt-get install {debian_package} (or run `bash .ci/setup env` as root)"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture
def repo_root() -> Path:
    return REPO


# Real services started by fixtures: sshd on loopback, Slurm (one node, four nodes), network namespaces
# as nodes, a stock Trac, and the compiled MPI probes.
pytest_plugins = ["pytester", "support.trac_fixture", "support.sshd_fixture", "support.slurm_fixture",
                  "support.mpi_probe_fixture", "support.netns_fixture", "support.slurm_cluster_fixture"]


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (dead, not yet reaped by init) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/data/golden_jobs from the sample site instead of comparing")
