"""A real four-node Slurm on one host: one slurmctld and four slurmd (``slurmd -N n1`` ... ``-N n4``),
each on its own port, each in a mount namespace of its own where the shared spool path is its node's
spool (pmix puts its sockets there, at the same path on every node, as on a real cluster).
Everything is private to one tmp dir and stopped by pid file (see support.slurm_fixture).

Ranks report the node they run on through ``SLURMD_NODENAME`` (all four share this host's hostname).
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_tool

from support.slurm_conf import write_slurm_conf
from support.slurm_fixture import _node_line, _stop, start_munged
from support.sshd_fixture import free_port

START_TIMEOUT = 30
NODES = ["n1", "n2", "n3", "n4"]


@dataclass
class SlurmCluster:
    directory: Path
    conf: Path
    nodes: list[str]

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def scontrol(self, *args: str) -> None:
        subprocess.run(
            ["scontrol", *args],
            env={**os.environ, **self.env},
            check=True,
            capture_output=True,
            timeout=30,
        )

    def drain(self, node: str, reason: str) -> None:
        self.scontrol("update", f"nodename={node}", "state=drain", f"reason={reason}")

    def resume(self, node: str) -> None:
        self.scontrol("update", f"nodename={node}", "state=resume")

    def profile_yaml(self, *, command_timeout: float = 60, mpi_timeout: float = 120) -> str:
        """A slurm profile over n[1-4]: pmix for Open MPI, pmi2 for MPICH (with pmix MPICH runs
        N single-rank jobs).  Open MPI keeps its shared-memory transport: the four "nodes" share one
        address, on which its TCP transport hangs between them."""
        return (
            f"name: slurm4\nlauncher: slurm\nnodes: 'n[1-4]'\nnode_class: slurm4\n"
            f"timeouts: {{command: {command_timeout}, mpi: {mpi_timeout}}}\n"
            "slurm: {partition: hpcos, time_limit: '00:05:00'}\n"
            "mpi:\n"
            "  openmpi: {mpicc: mpicc.openmpi, mpirun: [mpirun.openmpi], srun_mpi: pmix}\n"
            "  mpich: {mpicc: mpicc.mpich, mpirun: [mpiexec.mpich], srun_mpi: pmi2}\n"
            "infiniband: {expected: false}\n"
        )

    def wait_until(self, wanted: set[str], nodes: list[str]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        states: dict[str, str] = {}
        while True:
            out = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%N %t"],
                env={**os.environ, **self.env},
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout
            states = dict(line.split() for line in out.splitlines() if line.strip())
            if all(states.get(n) in wanted for n in nodes):
                return
            if time.monotonic() > deadline:
                logs = "\n".join(
                    p.read_text()[-1500:] for p in (self.directory / "log").glob("*.log")
                )
                pytest.fail(
                    f"slurm nodes not {wanted} after {START_TIMEOUT} s: {states}\n{logs}",
                    pytrace=False,
                )
            time.sleep(0.2)


def start_slurm_cluster(d: Path) -> SlurmCluster:
    for tool in ("slurmctld", "slurmd", "srun", "sinfo", "scontrol", "scancel"):
        require_tool(tool, "slurm-wlm")
    require_tool("unshare", "util-linux")
    if os.geteuid() != 0:
        pytest.skip("four slurmd with a mount namespace each need root")
    for sub in ("state", "log", "spool/cur", *(f"spool/{n}" for n in NODES)):
        (d / sub).mkdir(parents=True)
    socket_path = start_munged(d)
    line, _, _ = _node_line()
    hardware = " ".join(
        f
        for f in line.split()
        if f.split("=")[0]
        in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
    )
    node_lines = "".join(
        f"NodeName={n} NodeHostname=localhost NodeAddr=127.0.0.1 Port={free_port()} {hardware} "
        f"RealMemory=1000 State=UNKNOWN\n"
        for n in NODES
    )
    conf = write_slurm_conf(
        d,
        cluster="hpcos-four",
        controller=socket.gethostname(),
        munge_socket=socket_path,
        nodes=node_lines,
        partition="PartitionName=hpcos Nodes=n[1-4] Default=YES MaxTime=INFINITE State=UP",
        spool=str(d / "spool" / "cur"),
        extra=f"TmpFS={d / 'spool' / 'cur'}\n",
    )
    cluster = SlurmCluster(d, conf, list(NODES))
    env = {**os.environ, **cluster.env}
    subprocess.run(["slurmctld"], env=env, check=True, capture_output=True, timeout=30)
    for node in NODES:
        # Each slurmd sees its own spool at the shared path (pmix: same path on every node).
        script = (
            f"mount --bind {shlex.quote(str(d / 'spool' / node))} {shlex.quote(str(d / 'spool' / 'cur'))} "
            f"&& exec slurmd -N {node}"
        )
        subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            env=env,
            check=True,
            capture_output=True,
            timeout=30,
        )
    cluster.wait_until({"idle"}, NODES)
    return cluster


def stop_slurm_cluster(cluster: SlurmCluster) -> None:
    d = cluster.directory
    _stop([*(d / f"slurmd-{n}.pid" for n in cluster.nodes), d / "slurmctld.pid", d / "munged.pid"])


@pytest.fixture
def slurm_cluster(tmp_path) -> SlurmCluster:
    cluster = None
    try:
        cluster = start_slurm_cluster(tmp_path)
        yield cluster
    finally:
        if cluster is not None:
            stop_slurm_cluster(cluster)
        else:  # a start that failed half-way: stop whatever wrote its pid file
            _stop(
                [
                    *tmp_path.glob("slurmd-*.pid"),
                    tmp_path / "slurmctld.pid",
                    tmp_path / "munged.pid",
                ]
            )
