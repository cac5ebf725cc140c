"""The one slurm.conf writer of the test fixtures: everything private to one directory (state, spool,
logs, pid files), munge through a private socket, no cgroups, no accounting (the DESIGN recipe that
starts on a plain Debian 12 host).  Each fixture says only what differs: its nodes and partition."""

from __future__ import annotations

from pathlib import Path

from support.sshd_fixture import free_port


def write_slurm_conf(d: Path, *, cluster: str, controller: str, munge_socket: Path, nodes: str, partition: str,
                     spool: str, slurmd_pid: str = "slurmd-%n.pid", slurmd_log: str = "slurmd-%n.log",
                     extra: str = "") -> Path:
    """``d/slurm.conf``; ``nodes`` are the NodeName lines, ``partition`` the PartitionName line, ``spool``
    the SlurmdSpoolDir (``%n`` for one per node), ``extra`` further lines (a SlurmdPort, TmpFS, ...)."""
    conf = d / "slurm.conf"
    conf.write_text(f"""ClusterName={cluster}
SlurmctldHost={controller}
SlurmctldPort={free_port()}
{extra}AuthType=auth/munge
AuthInfo=socket={munge_socket}
SlurmUser=root
StateSaveLocation={d / 'state'}
SlurmdSpoolDir={spool}
SlurmctldPidFile={d / 'slurmctld.pid'}
SlurmdPidFile={d / slurmd_pid}
SlurmctldLogFile={d / 'log' / 'slurmctld.log'}
SlurmdLogFile={d / 'log' / slurmd_log}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
MailProg=/bin/true
ReturnToService=2
{nodes.rstrip()}
{partition}
""")
    return conf
