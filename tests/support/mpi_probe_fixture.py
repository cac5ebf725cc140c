"""The shared ping-pong probe (integration_tests/probes/pingpong.c) built with each stack's own mpicc."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import REPO, require_tool

STACKS = {"openmpi": ("mpicc.openmpi", "libopenmpi-dev"), "mpich": ("mpicc.mpich", "libmpich-dev")}


@pytest.fixture(scope="session")
def pingpong(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("probes")
    binaries = {}
    for stack, (mpicc, package) in STACKS.items():
        require_tool(mpicc, package)
        binaries[stack] = out / f"pingpong-{stack}"
        subprocess.run(
            [
                mpicc,
                "-O2",
                "-o",
                str(binaries[stack]),
                str(REPO / "integration_tests/probes/pingpong.c"),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    return binaries
