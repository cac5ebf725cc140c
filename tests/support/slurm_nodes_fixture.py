"""A real Slurm with several node names on this one host: one slurmctld, one ``slurmd -N NAME`` per node.

For the deployment tests, which drain and resume simulated nodes by name (the single-node fixture,
support/slurm_fixture.py, has only this host's name).  No MPI runs on these nodes, so the per-node
spool needs no bind mount (RECIPES: pmix with several slurmd).  Every daemon is stopped by its pid file.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_tool

from support.slurm_conf import write_slurm_conf
from support.slurm_fixture import _stop, start_munged
from support.sshd_fixture import free_port

START_TIMEOUT = 30


@dataclass
class SlurmNodes:
    directory: Path
    conf: Path
    nodes: list[str]

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def sinfo(self) -> dict[str, tuple[str, str]]:
        """Each node's (state, reason) as sinfo prints them."""
        out = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N|%T|%E"],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        found = {}
        for line in out.splitlines():
            node, state, reason = line.split("|", 2)
            found[node] = (state, reason)
        return found

    def wait_idle(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = self.sinfo()
            if all(states.get(n, ("",))[0] == "idle" for n in self.nodes):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"slurm nodes not idle after {timeout} s: {states}", pytrace=False)
            time.sleep(0.1)

    def resume_all(self) -> None:
        """Put every node back to idle (between tests)."""
        for node, (state, _reason) in self.sinfo().items():
            if state.startswith(("drain", "down")):
                subprocess.run(
                    ["scontrol", "update", f"nodename={node}", "state=resume"],
                    env={**os.environ, **self.env},
                    capture_output=True,
                    timeout=30,
                )
        self.wait_idle()


def start_slurm_nodes(
    d: Path,
    nodes: list[str],
    partition: str = "debug",
    *,
    munge_threads: int | None = None,
    extra_conf: str = "",
) -> SlurmNodes:
    """The daemons of ``nodes``; a start that fails half-way stops what it started (munged first).
    ``munge_threads`` and ``extra_conf`` (slurm.conf lines) for many nodes (bench/slurm_scale.py):
    munged needs more threads than its default for hundreds of slurmd."""
    try:
        return _start_slurm_nodes(d, nodes, partition, munge_threads, extra_conf)
    except BaseException:
        _stop([*d.glob("slurmd-*.pid"), d / "slurmctld.pid", d / "munged.pid"])
        raise


def _start_slurm_nodes(
    d: Path, nodes: list[str], partition: str, munge_threads: int | None, extra_conf: str
) -> SlurmNodes:
    for tool in ("slurmctld", "slurmd", "sinfo", "scontrol"):
        require_tool(tool, "slurm-wlm")
    for sub in ("state", "spool", "log"):
        (d / sub).mkdir(parents=True)
    socket_path = start_munged(d, threads=munge_threads)
    host = subprocess.run(
        ["hostname", "-s"], capture_output=True, text=True, timeout=10
    ).stdout.strip()
    node_lines = "".join(
        f"NodeName={n} NodeHostname=localhost NodeAddr=127.0.0.1 Port={free_port()} CPUs=1 "
        f"RealMemory=100 State=UNKNOWN\n"
        for n in nodes
    )
    conf = write_slurm_conf(
        d,
        cluster="hpcos-deploy",
        controller=f"{host}(127.0.0.1)",
        munge_socket=socket_path,
        nodes=node_lines,
        partition=f"PartitionName={partition} Nodes={','.join(nodes)} Default=YES MaxTime=INFINITE "
        "State=UP",
        spool=f"{d / 'spool'}/%n",
        extra=extra_conf,
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    slurm = SlurmNodes(d, conf, nodes)
    subprocess.run(["slurmctld"], env=env, check=True, capture_output=True, timeout=30)
    for node in nodes:
        (d / "spool" / node).mkdir()
        subprocess.run(["slurmd", "-N", node], env=env, check=True, capture_output=True, timeout=30)
    return slurm


def stop_slurm_nodes(slurm: SlurmNodes) -> None:
    d = slurm.directory
    _stop([*(d / f"slurmd-{n}.pid" for n in slurm.nodes), d / "slurmctld.pid", d / "munged.pid"])


@pytest.fixture(scope="session")
def slurm_nodes(tmp_path_factory) -> SlurmNodes:
    slurm = start_slurm_nodes(
        tmp_path_factory.mktemp("slurm-nodes"), [f"node{i}" for i in range(1, 5)]
    )
    try:
        slurm.wait_idle()
        yield slurm
    finally:
        stop_slurm_nodes(slurm)
