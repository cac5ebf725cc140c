"""Slurm as the cluster's scheduler: which nodes can take a job (the pre-flight), and taking nodes
out of service and putting them back (drain and resume).

``scontrol update nodename=SET state=drain reason=...`` stops new jobs at once; running jobs go on
until they end (state ``draining``), then the node is ``drained``.  The deployment waits for exactly
``drained`` (``drained*`` is a node that stopped answering) within the profile's bound.  A node that
fails its deployment stays drained with the reason set to why, so ``sinfo -R`` tells the next
administrator.  With ``drain: none`` (a cluster without Slurm) every call here does nothing.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime

from ClusterShell.NodeSet import NodeSet

from hpcos.core import runner
from hpcos.core.errors import UserError

log = logging.getLogger("hpcos.cluster")

COMMAND_TIMEOUT = 60
# Node states in which a job can start (with others' jobs beside it or after them); every other state
# (drained, draining, down, fail, maint, reserved, future, unknown...) keeps the node out of the run.
USABLE_STATES = frozenset({"idle", "mixed", "allocated", "completing", "planned"})
POLL = 0.25  # seconds between two sinfo calls while waiting


class SlurmFailed(UserError):
    pass


def _scontrol(*args: str) -> None:
    done = runner.run(["scontrol", *args], timeout=COMMAND_TIMEOUT)
    if done.exit_code != 0 or done.timed_out:
        why = done.stderr.strip() or done.stdout.strip() or f"exit {done.exit_code}"
        raise SlurmFailed(f"scontrol {' '.join(args[:2])}: {why}")


def states(nodes: NodeSet) -> dict[str, str]:
    """Each node's state as ``sinfo`` prints it (``idle``, ``draining``, ``drained``, ``drained*``)."""
    done = runner.run(
        ["sinfo", "-h", "-N", "-n", str(nodes), "-o", "%N|%T"], timeout=COMMAND_TIMEOUT
    )
    if done.exit_code != 0 or done.timed_out:
        raise SlurmFailed(f"sinfo -n {nodes}: {done.stderr.strip() or f'exit {done.exit_code}'}")
    found = {}
    for line in done.stdout.splitlines():
        node, _, state = line.strip().partition("|")
        if node:
            found[node] = state
    return found


def unavailable(nodes: NodeSet, partition: str | None, timeout: float) -> dict[str, str]:
    """The pre-flight under Slurm: drained, down, failed, ... nodes with Slurm's reason (``sinfo``)."""
    argv = ["sinfo", "--noheader", "--Node", f"--nodes={nodes}", "--format=%N|%T|%E"]
    if partition:
        argv.append(f"--partition={partition}")
    done = runner.run(argv, timeout=timeout)
    if done.exit_code != 0 or done.timed_out:
        log.warning(
            "pre-flight: sinfo failed (exit %s), assuming every node is up: %s",
            done.exit_code,
            done.stderr.strip()[:500],
        )
        return {}
    return node_problems(done.stdout, nodes)


def node_problems(sinfo: str, nodes: NodeSet) -> dict[str, str]:
    """node -> ``STATE: reason`` for the nodes of ``nodes`` that ``sinfo -N -o %N|%T|%E`` shows unable to
    take a job, or does not list at all."""
    problems: dict[str, str] = {}
    listed: set[str] = set()
    for line in sinfo.splitlines():
        name, _, rest = line.strip().partition("|")
        state, _, reason = rest.partition("|")
        if not name or name not in nodes:
            continue
        listed.add(name)
        # "idle*" is a node slurmctld cannot reach; "~" powered down, "#" powering up, "!" pending power down.
        base = state.strip().rstrip("*~#!%$@^-").lower()
        if base in USABLE_STATES and not state.strip().endswith(("*", "~", "#", "!", "%")):
            continue
        why = reason.strip() if reason.strip() and reason.strip() != "none" else "no reason given"
        problems.setdefault(
            name, f"{base or 'unknown'}{' (not responding)' if state.endswith('*') else ''}: {why}"
        )
    for node in nodes:
        if node not in listed:
            problems[node] = "unknown to Slurm: sinfo lists no such node"
    return problems


def drain(nodes: NodeSet, reason: str, timeout: float) -> dict[str, float | str]:
    """Drain ``nodes`` and wait until each is drained: per node the seconds it took, or why not."""
    started = time.monotonic()
    _scontrol("update", f"nodename={nodes}", "state=drain", f"reason={one_line(reason)}")
    outcome: dict[str, float | str] = {}
    waiting = NodeSet(nodes)
    while waiting:
        now = states(waiting)
        for node in list(waiting):
            if now.get(node) == "drained":
                outcome[node] = time.monotonic() - started
                waiting.remove(node)
        if waiting and time.monotonic() - started > timeout:
            for node in waiting:
                outcome[node] = (
                    f"not drained after {timeout:g} s (state {now.get(node, 'unknown')})"
                )
            break
        if waiting:
            time.sleep(POLL)
    return outcome


def resume(nodes: NodeSet) -> None:
    _scontrol("update", f"nodename={nodes}", "state=resume")


def keep_drained(nodes: NodeSet, reason: str) -> None:
    """Leave ``nodes`` drained, the reason saying why the deployment left them so."""
    _scontrol("update", f"nodename={nodes}", "state=drain", f"reason={one_line(reason)}")


def reboot_asap(nodes: NodeSet, reason: str) -> None:
    """Slurm's own rolling reboot: each node takes no new job, is rebooted (the site's RebootProgram)
    once its running jobs ended, and comes back DOWN, so that what rebooted it can check it before it
    takes jobs again (``resume``)."""
    _scontrol("reboot", "ASAP", "nextstate=DOWN", f"reason={one_line(reason)}", str(nodes))


def cancel_reboot(nodes: NodeSet) -> None:
    _scontrol("cancel_reboot", str(nodes))


def reservation_name(deploy_id: str, batch: int) -> str:
    return (
        "hpcos-deploy-"
        + "".join(c if c.isalnum() or c in "-_." else "_" for c in deploy_id)
        + f"-b{batch}"
    )


def reserve(nodes: NodeSet, name: str, user: str) -> None:
    """A maintenance reservation of ``nodes`` for ``user`` alone: users' jobs stay off the nodes while
    the deploying user's ``srun --reservation`` runs there.  No end: if the deployment dies, the nodes
    stay out of service (as drained nodes would) until an administrator deletes the reservation."""
    _scontrol(
        "create",
        "reservation",
        f"reservationname={name}",
        "starttime=now",
        "duration=UNLIMITED",
        f"nodes={nodes}",
        f"users={user}",
        "flags=maint,ignore_jobs",
    )


def release(name: str) -> None:
    _scontrol("delete", f"reservationname={name}")


# squeue's job ids: plain, array (123_4) and heterogeneous (123+0) jobs.
_JOB_ID = re.compile(r"[0-9]+(?:[_+][0-9]+)?")


@dataclass(frozen=True)
class RunningJob:
    """A job running on some of the nodes, as ``squeue`` sees it."""

    job_id: str
    nodes: int  # how many nodes it holds
    ends: datetime | None  # when its time limit ends it (local time); None: no limit


def running_jobs(nodes: NodeSet) -> list[RunningJob]:
    """The jobs running (or completing) on any of ``nodes``, every user's."""
    done = runner.run(
        [
            "squeue",
            "--noheader",
            "--states=RUNNING,COMPLETING",
            f"--nodelist={nodes}",
            "--format=%i|%D|%e",
        ],
        timeout=COMMAND_TIMEOUT,
    )
    if done.exit_code != 0 or done.timed_out:
        raise SlurmFailed(
            f"squeue --nodelist={nodes}: {one_line(done.stderr) or f'exit {done.exit_code}'}"
        )
    jobs = []
    for line in done.stdout.splitlines():
        job_id, _, rest = line.strip().partition("|")
        count, _, end = rest.partition("|")
        if not _JOB_ID.fullmatch(job_id) or not (count.isascii() and count.isdigit()):
            continue  # not a job line (squeue's own notices go to stderr; be sure)
        try:
            ends = datetime.fromisoformat(end).astimezone()
        except ValueError:
            ends = None  # NONE, Unknown: no time limit
        jobs.append(RunningJob(job_id, int(count), ends))
    return jobs


def one_line(text: str, limit: int = 200) -> str:
    """Node output made fit for a Slurm reason, a record and a terminal: one line, no control characters."""
    flat = " ".join("".join(c if c.isprintable() or c.isspace() else "?" for c in text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
