"""A real single-node Slurm (slurmctld + slurmd + munged), private to one tmp dir (see docs/architecture.md, "Testing").

Started once per test session in well under a second; every daemon is stopped by its pid file.
Commands reach it through ``SLURM_CONF`` (``LocalSlurm.env``).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_tool

from hpcos.demo.cluster import stop_pids
from support.slurm_conf import write_slurm_conf
from support.sshd_fixture import free_port

START_TIMEOUT = 30
STOP_GRACE = 1.0


@dataclass
class LocalSlurm:
    directory: Path
    conf: Path
    node: str
    cpus: int

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def profile_yaml(self, command_timeout: float = 30, mpi_timeout: float = 60) -> str:
        """A slurm cluster profile for this node, with both MPI stacks."""
        return (
            f"name: local-slurm\nlauncher: slurm\nnodes: {self.node}\nnode_class: workstation\n"
            f"timeouts: {{command: {command_timeout}, mpi: {mpi_timeout}}}\n"
            "slurm: {time_limit: '00:05:00'}\n"
            "mpi:\n"
            "  openmpi: {mpicc: mpicc.openmpi, mpirun: [mpirun.openmpi, --oversubscribe], srun_mpi: pmix}\n"
            "  mpich: {mpicc: mpicc.mpich, mpirun: [mpiexec.mpich], srun_mpi: pmi2}\n"
        )


def _node_line() -> tuple[str, str, int]:
    out = subprocess.run(
        ["slurmd", "-C"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    line = out.splitlines()[0]
    fields = dict(part.split("=", 1) for part in line.split())
    return line, fields["NodeName"], int(fields["CPUs"])


def _stop(pid_files: list[Path]) -> None:
    """TERM every daemon at once; slurmctld may take seconds to save state it will never need: KILL it."""
    stop_pids(pid_files, grace=STOP_GRACE)


def start_munged(d: Path, threads: int | None = None) -> Path:
    """munged with its own key and socket under ``d`` (pid file ``d/munged.pid``); the socket path.
    ``threads``: more than munged's default for hundreds of slurmd (bench/slurm_scale.py)."""
    munged = require_tool("munged", "munge")
    run_dir = d / "run"
    run_dir.mkdir(mode=0o755)
    run_dir.chmod(0o755)  # munged refuses a socket directory others cannot search
    (d / "log").mkdir(exist_ok=True)
    key = d / "munge.key"
    subprocess.run(
        ["dd", "if=/dev/urandom", f"of={key}", "bs=1024", "count=1"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    key.chmod(0o400)
    socket_path = run_dir / "munge.socket"
    subprocess.run(
        [
            munged,
            f"--socket={socket_path}",
            f"--key-file={key}",
            f"--pid-file={d / 'munged.pid'}",
            f"--log-file={d / 'log' / 'munged.log'}",
            f"--seed-file={d / 'munge.seed'}",
            "--force",
            *([f"--num-threads={threads}"] if threads else []),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return socket_path


@pytest.fixture(scope="session")
def local_slurm(tmp_path_factory) -> LocalSlurm:
    for tool in ("slurmctld", "slurmd", "srun", "sbatch", "sinfo", "scancel"):
        require_tool(tool, "slurm-wlm")
    d = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "log"):
        (d / sub).mkdir()
    try:
        yield from _local_slurm(d)
    finally:
        # Whatever started, also when the start failed half-way: munged first of all, which would
        # otherwise outlive the suite.
        _stop([d / f"{daemon}.pid" for daemon in ("slurmd", "slurmctld", "munged")])


def _local_slurm(d: Path):
    socket_path = start_munged(d)
    node_line, node, cpus = _node_line()
    conf = write_slurm_conf(
        d,
        cluster="hpcos-test",
        controller=node,
        munge_socket=socket_path,
        nodes=f"{node_line} State=UNKNOWN",
        partition=f"PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP",
        spool=str(d / "spool"),
        slurmd_pid="slurmd.pid",
        slurmd_log="slurmd.log",
        extra=f"SlurmdPort={free_port()}\n",
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    slurm = LocalSlurm(d, conf, node, cpus)
    for daemon in ("slurmctld", "slurmd"):
        subprocess.run([daemon], env=env, check=True, capture_output=True, timeout=30)
    deadline = time.monotonic() + START_TIMEOUT
    state = ""
    while state not in ("idle", "mixed"):
        if time.monotonic() > deadline:
            logs = "\n".join(p.read_text()[-2000:] for p in (d / "log").glob("slurm*.log"))
            pytest.fail(
                f"slurm node not idle after {START_TIMEOUT} s (state {state!r}):\n{logs}",
                pytrace=False,
            )
        time.sleep(0.1)
        state = subprocess.run(
            ["sinfo", "-h", "-n", node, "-o", "%t"],
            env=env,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    yield slurm
