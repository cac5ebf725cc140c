"""``hpcos deploy ENV --cluster PROFILE``: put the snapshot ENV names on the nodes, prove it, record it.

The procedure an administrator follows in an outage, written once and practised nightly on the test
cluster.  Nodes go in batches of at most ``deploy.batch_size`` (the most nodes out of service at
once); for each batch:

  repo_file  write the ``.repo`` file pinned to the snapshot (``hpcos repo client-config --pin``)
  download   ``dnf --downloadonly distro-sync`` into the node's dnf cache, while its jobs still run
  drain      take the nodes out of Slurm, wait until running jobs ended (bounded)
  distro_sync  ``dnf -C distro-sync`` from that cache to exactly the snapshot (upgrades and downgrades)
  reboot     when the kernel or a ``reboot_packages`` package changed, or the running kernel is not
             the snapshot's: the profile's reboot command, then wait for a new boot id (bounded)
  verify     every installed package the snapshot carries is at the snapshot's EVR; the running
             kernel is the snapshot's newest
  resume     back into Slurm

A node that fails any task stays drained, the Slurm reason saying why, and takes no further task;
the rest of its batch goes on.  The rollout then stops when it should: the first batch is the canary
(``deploy.canary`` nodes), and any failure there touches no further node; after it, more failed nodes
than ``deploy.max_failures`` (a count or a percentage) stop it likewise.  The summary says what was
done, what was not, and the command that puts the touched nodes back (the record keeps it too).
Every task is timed per node and the record
(``hpcos.repo.deployments``) is rewritten after each batch: the production gate reads which nodes
were verified, the outage plan reads the durations.
"""

from __future__ import annotations

import getpass
import logging
import math
import os
import secrets
import shlex
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ClusterShell.NodeSet import NodeSet
from filelock import FileLock, Timeout

from hpcos.cluster.launchers import CommandResult, Launcher, launcher_for
from hpcos.cluster.profiles import Profile
from hpcos.cluster.schedulers import slurm as scheduler
from hpcos.core.errors import UserError
from hpcos.core.files import file_digest
from hpcos.core.store_layout import StoreLayout
from hpcos.repo import client_config, deployments
from hpcos.repo import node_packages as expectations
from hpcos.repo.deployments import DeploymentRecord, NodeDeployment
from hpcos.repo.environments import Environments
from hpcos.site.specs import SpecSet

log = logging.getLogger("hpcos.deploy")

BOOT_POLL = 0.5  # seconds between two "is it back?" probes after a reboot


@dataclass
class Deployment:
    """Everything one deployment needs, resolved before the first node is touched."""

    env: str
    profile: Profile
    launcher: Launcher
    nodes: NodeSet
    batch_size: int
    repo_text: str
    expected: expectations.Expected
    releasever: str
    record: DeploymentRecord
    layout: StoreLayout
    cluster_ref: str = ""

    # -- commands, per node (``{node}`` and ``{root}`` expand, quoted) --------------------------------

    def root(self, node: str) -> str:
        return self.profile.deploy.root.replace("{node}", node)

    def expand(self, template: str, node: str, kernel: str = "") -> str:
        return (
            template.replace("{root}", shlex.quote(self.root(node)))
            .replace("{node}", shlex.quote(node))
            .replace("{kernel}", shlex.quote(kernel))
        )

    def rpm_query(self, node: str) -> list[str]:
        root = self.root(node)
        return [
            "rpm",
            *(["--root", root] if root != "/" else []),
            "-qa",
            "--qf",
            expectations.RPM_QUERY_FORMAT,
        ]

    def download(self, node: str) -> list[str]:
        root = self.root(node)
        extra = [f"--installroot={root}", f"--releasever={self.releasever}"] if root != "/" else []
        # --refresh: the metadata at a pinned URL never changes, but a cached copy from an earlier
        # snapshot of the same name must not answer for it.
        return ["dnf", "-y", "--refresh", *extra, "--downloadonly", "distro-sync"]

    def distro_sync(self, node: str) -> list[str]:
        root = self.root(node)
        extra = [f"--installroot={root}", f"--releasever={self.releasever}"] if root != "/" else []
        # -C: from the metadata and packages the download stage left in the node's cache, so the time
        # out of service holds no download (and the repository server sees no second wave).
        return ["dnf", "-y", "-C", *extra, "distro-sync"]

    def remove(self, node: str, packages: list[str]) -> list[str]:
        root = self.root(node)
        extra = [f"--installroot={root}", f"--releasever={self.releasever}"] if root != "/" else []
        # --noautoremove: only what is named goes (a kernel's leftover dependencies are the snapshot's).
        return ["dnf", "-y", *extra, "--noautoremove", "remove", *packages]

    def through_slurm(self) -> bool:
        """Whether the nodes are reached through Slurm itself (srun), which never starts on a drained node."""
        return self.profile.launcher == "slurm" and self.profile.deploy.drain == "slurm"

    def write_repo_file(self, node: str) -> str:
        return _write_file(
            os.path.normpath(self.root(node) + "/" + self.profile.deploy.repo_file), self.repo_text
        )

    def update_hook(self, node: str) -> str:
        """The command that leaves the node's update-at-reboot script: the site's RebootProgram runs it
        before the reboot (``--rolling``).  It removes itself first, so a later reboot does not run it
        again, and logs beside the node's other logs."""
        root = self.root(node)
        path = os.path.normpath(root + "/" + self.profile.deploy.update_at_reboot)
        logfile = os.path.normpath(root + "/var/log/hpcos-update-at-reboot.log")
        text = (
            f"#!/bin/sh\n# hpcos deploy {self.env}, snapshot {self.record.snapshot} "
            f"(deployment {self.record.deploy_id}):\n# run by the RebootProgram before this node reboots; "
            f"installs from the packages already in its dnf cache.\n"
            f"rm -f -- {shlex.quote(path)}\n"
            f"mkdir -p {shlex.quote(os.path.dirname(logfile))}\n"
            f"exec >> {shlex.quote(logfile)} 2>&1\n"
            f"{shlex.join(self.distro_sync(node))}\n"
        )
        return _write_file(path, text)

    # -- fan-out ---------------------------------------------------------------------------------------

    def on_nodes(
        self,
        command: Callable[[str], str | list[str]],
        nodes: NodeSet,
        timeout: float,
        launcher: Launcher | None = None,
    ) -> dict[str, CommandResult]:
        """Run ``command(node)`` on every node: one fan-out per distinct command line (all nodes at once
        on a real cluster, where ``root`` is the same everywhere), the fan-outs side by side."""
        launcher = launcher or self.launcher
        groups: dict[str, tuple[str | list[str], NodeSet]] = {}
        for node in nodes:
            cmd = command(node)
            key = cmd if isinstance(cmd, str) else shlex.join(cmd)
            groups.setdefault(key, (cmd, NodeSet()))[1].add(node)
        results: dict[str, CommandResult] = {}
        with ThreadPoolExecutor(max_workers=max(1, min(len(groups), self.batch_size))) as pool:
            futures = [
                pool.submit(launcher.run, cmd, group, timeout=timeout)
                for cmd, group in groups.values()
            ]
            for future in futures:
                results.update(future.result())
        return results


def _write_file(path: str, text: str) -> str:
    tmp = f"{path}.hpcos-tmp"
    return (
        f"mkdir -p {shlex.quote(os.path.dirname(path))} && printf %s {shlex.quote(text)} "
        f"> {shlex.quote(tmp)} && mv {shlex.quote(tmp)} {shlex.quote(path)}"
    )


def deploy(
    spec_set: SpecSet,
    layout: StoreLayout,
    env: str,
    profile: Profile,
    profile_file: Path,
    *,
    nodes: str | None = None,
    batch_size: int | None = None,
    snapshot_id: str | None = None,
    cluster_ref: str | None = None,
    rolling: bool = False,
) -> DeploymentRecord:
    """``cluster_ref``: how the user named the profile (``--cluster``), for the rollback command.
    ``rolling``: through Slurm's reboot machinery, without an outage (``_rolling_reboot``)."""
    if env not in spec_set.site.environments:
        raise UserError(
            f"unknown environment {env!r}; expected one of: {', '.join(spec_set.site.environments)}"
        )
    settings = profile.deploy
    if settings.launcher is not None:
        profile = profile.model_copy(update={"launcher": settings.launcher})
    if rolling and (settings.drain != "slurm" or profile.launcher == "slurm"):
        raise UserError(
            f"--rolling: profile {profile.name!r} needs deploy.drain: slurm (Slurm reboots the nodes) "
            "and a way in other than srun, which cannot start on a node Slurm keeps down for its "
            "reboot: set deploy.launcher (ssh) in the profile"
        )
    snapshot = client_config.snapshot_for(layout, env, snapshot_id)
    sections = client_config.sections(
        spec_set,
        layout,
        env,
        target=settings.target,
        pinned=True,
        snapshot_id=snapshot.id,
        environments_url=settings.environments_url,
        snapshots_url=settings.snapshots_url,
        gpgcheck=settings.gpgcheck,
        overlay_gpgkey=settings.gpgkey,
    )
    target = settings.target or next(iter(spec_set.site.targets))
    selected = profile.select_nodes(nodes)
    size = batch_size or settings.batch_size
    if size < 1:
        raise UserError(f"--batch-size {size}: expected at least 1")
    started = datetime.now(UTC)
    record = DeploymentRecord(
        deploy_id=f"{started:%Y%m%dT%H%M%SZ}-{env}-{secrets.token_hex(3)}",
        environment=env,
        snapshot=snapshot.id,
        cluster=profile.name,
        profile_sha256=file_digest(profile_file),
        started=started.isoformat(timespec="seconds"),
        batch_size=size,
        user=os.environ.get("BUILD_USER_ID") or getpass.getuser(),
        nodes={node: NodeDeployment(node) for node in selected},
        mode="rolling" if rolling else "batches",
    )
    plan = Deployment(
        env=env,
        profile=profile,
        launcher=launcher_for(profile),
        nodes=selected,
        batch_size=size,
        repo_text=client_config.repo_file(
            sections, header=f"hpcos deploy {env}: snapshot {snapshot.id}"
        ),
        expected=expectations.expected(snapshot, sections, profile.os_update.kernel_package),
        releasever=str(spec_set.site.targets[target].release),
        record=record,
        layout=layout,
    )
    plan.cluster_ref = cluster_ref or profile.name
    batches = split_batches(list(selected), size, settings.canary or size)
    # Two deployments on one cluster at once would each take their own batches out: refuse the second.
    layout.locks.mkdir(parents=True, exist_ok=True)
    # The profile's name is untrusted text: only safe characters reach the file name.
    lock_path = layout.locks / (
        "deploy-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in profile.name) + ".lock"
    )
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(
            f"another `hpcos deploy` on cluster {profile.name!r} is running ({lock_path})"
        ) from None
    try:
        return _run(plan, batches)
    finally:
        lock.release()


def split_batches(nodes: list[str], size: int, canary: int) -> list[NodeSet]:
    """The canary batch (``canary`` nodes), then batches of ``size``."""
    first = min(canary, len(nodes))
    rest = nodes[first:]
    return [
        b
        for b in [
            NodeSet.fromlist(nodes[:first]),
            *(NodeSet.fromlist(rest[i : i + size]) for i in range(0, len(rest), size)),
        ]
        if b
    ]


def stop_reason(record: DeploymentRecord, batch: NodeSet, number: int, budget: int) -> str:
    """Why the rollout must touch no further node after batch ``number``, or "" to go on."""
    failed_here = NodeSet.fromlist([n for n in batch if not record.nodes[n].verified])
    failed = [n for n in record.nodes.values() if not n.verified and not n.skipped and n.durations]
    if number == 1 and failed_here:
        return f"the canary batch {batch} failed on {failed_here}"
    if len(failed) > budget:
        return f"{len(failed)} failed nodes, more than deploy.max_failures allows ({budget})"
    return ""


def _run(plan: Deployment, batches: list[NodeSet]) -> DeploymentRecord:
    record, layout, selected, size = plan.record, plan.layout, plan.nodes, plan.batch_size
    snapshot_id = record.snapshot
    budget = plan.profile.deploy.failure_budget(len(selected))
    log.info(
        "deploying %s snapshot %s to %s (%d nodes, canary %s, then %d at a time, %d batches; "
        "stops after %d failed nodes)",
        plan.env,
        snapshot_id,
        selected,
        len(selected),
        batches[0],
        size,
        len(batches),
        budget + 1,
    )
    deployments.write(layout, record)
    for number, batch in enumerate(batches, 1):
        log.info(
            "batch %d/%d%s: %s", number, len(batches), " (canary)" if number == 1 else "", batch
        )
        _batch(plan, batch, number, ROLLING_STAGES if record.mode == "rolling" else STAGES)
        why = stop_reason(record, batch, number, budget)
        if why and number < len(batches):
            stop(
                record, why, number, len(batches), [b for later in batches[number:] for b in later]
            )
        record.rollback = rollback_command(plan)
        deployments.write(layout, record)
        if record.stopped:
            break
    record.finished = datetime.now(UTC).isoformat(timespec="seconds")
    deployments.write(layout, record)
    for line in summary(record):
        log.info("%s", line)
    return record


def stop(record: DeploymentRecord, why: str, number: int, total: int, untouched: list[str]) -> None:
    record.stopped = f"stopped after batch {number}/{total}: {why}"
    for name in untouched:
        record.nodes[name].skipped = True
        record.nodes[name].reason = "not touched: the rollout stopped"
    log.error("%s; %d nodes not touched", record.stopped, len(untouched))


def rollback_command(plan: Deployment) -> str:
    """``hpcos deploy`` of the snapshot the touched nodes ran before, onto those nodes: what this
    deployment's last verified records on the cluster say, else the environment's previous snapshot."""
    record = plan.record
    touched = [n for n, d in record.nodes.items() if d.durations]
    if not touched:
        return ""
    earlier = deployments.node_states(
        plan.layout,
        record.cluster,
        record.profile_sha256,
        before=deployments.parse_time(record.started),
    )
    known = {earlier[n][0] for n in touched if n in earlier and earlier[n][1]} - {record.snapshot}
    if len(known) == 1:
        previous = known.pop()
    else:
        history = Environments(plan.layout).environment(plan.env).history()
        previous = history[-2] if len(history) >= 2 and history[-1] == record.snapshot else ""
    if not previous:
        return ""
    return shlex.join(
        [
            "hpcos",
            "deploy",
            plan.env,
            "--cluster",
            plan.cluster_ref,
            "--snapshot",
            previous,
            "--nodes",
            str(NodeSet.fromlist(touched)),
        ]
    )


def summary(record: DeploymentRecord) -> list[str]:
    """What was done (verified nodes, failed ones grouped by reason), what was not, how to go back."""
    lines = []
    verified = NodeSet.fromlist(record.verified_nodes)
    if verified:
        lines.append(f"{verified}: verified on {record.snapshot} ({len(verified)} nodes)")
    by_reason: dict[tuple[str, str], NodeSet] = {}
    for name in record.failed_nodes:
        node = record.nodes[name]
        if node.skipped:
            continue
        where = (
            "left drained"
            if "drain" in node.durations
            else "failed before its drain, still in service"
        )
        by_reason.setdefault((where, node.reason or "not deployed"), NodeSet()).add(name)
    for (where, reason), nodes in sorted(by_reason.items(), key=lambda item: str(item[1])):
        lines.append(f"{nodes}: {where}: {reason}")
    skipped = NodeSet.fromlist(record.skipped_nodes)
    if skipped:
        lines.append(
            f"{skipped}: not touched, still in service on their earlier snapshot ({len(skipped)} nodes)"
        )
    if record.stopped:
        lines.append(f"rollout {record.stopped}")
    touched = NodeSet.fromlist([n for n, d in record.nodes.items() if d.durations])
    if touched and (record.stopped or record.failed_nodes):
        lines.append(
            f"rollback of {touched}: {record.rollback}"
            if record.rollback
            else f"rollback of {touched}: no earlier snapshot of these nodes is recorded: deploy the one they "
            f"ran with (hpcos deploy {record.environment} --snapshot ID --nodes {touched})"
        )
    return lines


@dataclass
class Batch:
    """One batch on its way through the stages: the nodes still in the running (``active``), what one
    stage leaves for a later one (the package lists around distro-sync decide the reboot), and how
    the nodes are reached while they are out of service (``launcher``; a maintenance reservation
    with Slurm)."""

    plan: Deployment
    nodes: NodeSet
    number: int = 1
    active: NodeSet = field(default_factory=NodeSet)
    before: dict[str, CommandResult] = field(default_factory=dict)
    after: dict[str, CommandResult] = field(default_factory=dict)
    launcher: Launcher = field(init=False)
    reservation: str | None = None
    drained: NodeSet = field(default_factory=NodeSet)  # the nodes this batch took out of service

    def __post_init__(self) -> None:
        self.active = NodeSet(self.nodes)
        self.launcher = self.plan.launcher

    def on_nodes(
        self, command: Callable[[str], str | list[str]], nodes: NodeSet, timeout: float
    ) -> dict[str, CommandResult]:
        return self.plan.on_nodes(command, nodes, timeout, self.launcher)

    def fail(self, node: str, reason: str) -> None:
        """The node takes no further stage; it stays drained, ``reason`` saying why."""
        self.plan.record.nodes[node].reason = scheduler.one_line(reason, limit=400)
        self.active.difference_update(node)
        log.warning("%s: %s", node, self.plan.record.nodes[node].reason)

    def why(self, result: CommandResult) -> str:
        """``_why``, and for a node the step could not reach, what the launcher knows of it now (Slurm's
        state and reason, an ssh probe's answer)."""
        text = _why(result)
        if (result.timed_out or result.unreachable) and result.node:
            try:
                state = self.launcher.unavailable(NodeSet(result.node)).get(result.node)
            except Exception as exc:  # the diagnosis must not hide the failure it explains
                state = f"its state could not be read: {exc}"
            if state:
                text += f"; {result.node} is {state}"
        return text

    def check(self, results: dict[str, CommandResult], what: str) -> dict[str, CommandResult]:
        for node, result in results.items():
            if not result.ok:
                self.fail(node, f"{what} failed: {self.why(result)}")
        return results


def _drain(b: Batch) -> None:
    """Out of Slurm, once running jobs ended.  When Slurm is also the way in (``launcher: slurm``), whose
    ``srun`` never starts on a drained node, the drained nodes go into a maintenance reservation for
    the deploying user and are resumed inside it: users' jobs stay off them, the deployment's steps
    run there (``srun --reservation``)."""
    plan, settings, record = b.plan, b.plan.profile.deploy, b.plan.record
    if settings.drain == "slurm":
        reason = f"hpcos deploy {plan.env} {record.snapshot}"
        b.drained = NodeSet(b.active)  # a node that failed before (the download) stays in service
        for node, outcome in scheduler.drain(b.active, reason, settings.drain_timeout).items():
            if isinstance(outcome, str):
                b.fail(node, outcome)
    log.info("  drained %s", b.active or "no node")
    if b.active and plan.through_slurm():
        name = scheduler.reservation_name(record.deploy_id, b.number)
        scheduler.reserve(b.active, name, record.user or getpass.getuser())
        b.reservation = name
        scheduler.resume(b.active)
        b.launcher = launcher_for(_in_reservation(plan.profile, name))
        log.info("  %s in maintenance reservation %s", b.active, name)


def _in_reservation(profile: Profile, reservation: str) -> Profile:
    """The profile whose srun lands in ``reservation``, with a time limit the deploy's longest step fits in
    (the profile's own limit is for test jobs)."""
    settings = profile.deploy
    longest = max(settings.dnf_timeout, settings.reboot_timeout, profile.timeouts.command)
    slurm = profile.slurm.model_copy(
        update={
            "extra_args": [*profile.slurm.extra_args, f"--reservation={reservation}"],
            "time_limit": str(math.ceil(longest / 60) + 1),
        }
    )
    return profile.model_copy(update={"slurm": slurm})


def _repo_file(b: Batch) -> None:
    b.check(
        b.on_nodes(b.plan.write_repo_file, b.active, b.plan.profile.timeouts.command),
        "writing the .repo file",
    )


def _download(b: Batch) -> None:
    """The snapshot's packages into the node's dnf cache while its jobs still run: the drained node
    then only installs."""
    b.check(
        b.on_nodes(b.plan.download, b.active, b.plan.profile.deploy.dnf_timeout),
        "dnf --downloadonly",
    )


def _distro_sync(b: Batch) -> None:
    """``dnf distro-sync``, with the package lists before and after: what changed decides the reboot."""
    plan, timeouts = b.plan, b.plan.profile.timeouts
    b.before = b.on_nodes(plan.rpm_query, b.active, timeouts.command)
    synced = b.on_nodes(plan.distro_sync, b.active, plan.profile.deploy.dnf_timeout)
    b.after = b.on_nodes(plan.rpm_query, b.active, timeouts.command)
    for node in list(b.active):
        bad = next((r for r in (b.before[node], synced[node], b.after[node]) if not r.ok), None)
        if bad is not None:
            b.fail(
                node,
                f"dnf distro-sync failed: {b.why(bad)}"
                if bad is synced[node]
                else f"rpm -qa failed: {b.why(bad)}",
            )
    log.info("  distro-sync done on %s", b.active or "no node")


def _reboot_where_needed(b: Batch) -> None:
    """Boot the snapshot's kernel: the boot default set to it (dnf left a newer one the default when the
    snapshot rolls the kernel back), a reboot where a reboot package changed or another kernel runs,
    then the kernels newer than the snapshot's removed (never the running one, so only after)."""
    plan, settings = b.plan, b.plan.profile.deploy
    kernels = b.check(
        b.on_nodes(
            lambda n: plan.expand(settings.running_kernel, n),
            b.active,
            plan.profile.timeouts.command,
        ),
        "reading the running kernel",
    )
    if plan.expected.kernel and b.active:
        _set_boot_default(b)
    needing = NodeSet()
    for node in b.active:
        changed = _changed_names(b.before[node].stdout, b.after[node].stdout)
        listed = changed & set(settings.reboot_packages)
        stale = plan.expected.kernel and kernels[node].stdout.strip() != plan.expected.kernel
        if listed or stale:
            needing.add(node)
            log.info(
                "  %s needs a reboot (%s)",
                node,
                ", ".join(sorted(listed))
                + (" changed" if listed else "")
                + ("; " if listed and stale else "")
                + ("kernel is not the snapshot's" if stale else ""),
            )
    if needing:
        _reboot(b, needing)
    if plan.expected.kernel and b.active:
        _remove_newer_kernels(b)


def _set_boot_default(b: Batch) -> None:
    """EL9 makes each newly installed kernel the boot default (kernel-install): after a rollback the
    default is the newer kernel the snapshot no longer has.  Set it to the snapshot's where it is not."""
    plan, settings, timeout = b.plan, b.plan.profile.deploy, b.plan.profile.timeouts.command
    kernel = plan.expected.kernel or ""
    current = b.check(
        b.on_nodes(lambda n: plan.expand(settings.boot_default, n), b.active, timeout),
        "reading the boot default",
    )
    wrong = NodeSet.fromlist([n for n in b.active if _boot_kernel(current[n].stdout) != kernel])
    if not wrong:
        return
    log.info(
        "  %s: boot default %s -> %s",
        wrong,
        ", ".join(sorted({_boot_kernel(current[n].stdout) or "none" for n in wrong})),
        kernel,
    )
    b.check(
        b.on_nodes(
            lambda n: plan.expand(settings.set_boot_default, n, kernel=kernel), wrong, timeout
        ),
        f"setting the boot default to {kernel}",
    )


def _boot_kernel(text: str) -> str:
    """``grubby --default-kernel`` prints ``/boot/vmlinuz-VERSION-RELEASE.ARCH``."""
    line = text.strip().splitlines()[-1] if text.strip() else ""
    return line.rsplit("vmlinuz-", 1)[1] if "vmlinuz-" in line else line


def _remove_newer_kernels(b: Batch) -> None:
    """Kernel packages newer than the snapshot's kernel that the snapshot does not carry (a rolled-back
    fast path left them): removed, so no later install or boot-default reset brings them back."""
    plan = b.plan
    newer: dict[str, list[str]] = {}
    for node in b.active:
        found = plan.expected.newer_install_only(expectations.parse_installed(b.after[node].stdout))
        if found:
            newer[node] = found
    if not newer:
        return
    for node, packages in sorted(newer.items()):
        log.info("  %s: removing %s (newer than the snapshot's kernel)", node, ", ".join(packages))
    nodes = NodeSet.fromlist(list(newer))
    b.check(
        b.on_nodes(lambda n: plan.remove(n, newer[n]), nodes, plan.profile.deploy.dnf_timeout),
        "removing the kernels newer than the snapshot's",
    )


def _verify(b: Batch) -> None:
    plan, settings, timeouts = b.plan, b.plan.profile.deploy, b.plan.profile.timeouts
    installed = b.on_nodes(plan.rpm_query, b.active, timeouts.command)
    running = b.on_nodes(
        lambda n: plan.expand(settings.running_kernel, n), b.active, timeouts.command
    )
    for node in list(b.active):
        bad = next((r for r in (installed[node], running[node]) if not r.ok), None)
        if bad is not None:
            b.fail(node, f"verify failed: {b.why(bad)}")
            continue
        kernel = running[node].stdout.strip()
        plan.record.nodes[node].kernel = kernel
        problems = plan.expected.problems(
            expectations.parse_installed(installed[node].stdout), kernel
        )
        if problems:
            b.fail(node, "verify: " + "; ".join(problems))
        else:
            plan.record.nodes[node].verified = True
    log.info("  verified %s", b.active or "no node")


def _resume(b: Batch) -> None:
    """The verified nodes go back into service; the others stay drained, their reason saying why."""
    record = b.plan.record
    if b.plan.profile.deploy.drain == "slurm":
        if b.active and b.reservation is None:
            scheduler.resume(b.active)
        for node in b.drained:
            if not record.nodes[node].verified:
                scheduler.keep_drained(NodeSet(node), f"hpcos deploy: {record.nodes[node].reason}")
        if (
            b.reservation is not None
        ):  # the failed nodes are drained again first: none slips into service
            scheduler.release(b.reservation)
            b.reservation = None
    if b.active:
        log.info("  resumed %s", b.active)


def _abandon(b: Batch, error: BaseException) -> None:
    """A stage raised (Slurm refused a command, the deployment was interrupted): no node of the batch
    that was not verified may go back into service through the end of its maintenance reservation."""
    record = b.plan.record
    unverified = NodeSet.fromlist([n for n in b.drained if not record.nodes[n].verified])
    for node in unverified:
        if not record.nodes[node].reason:
            record.nodes[node].reason = scheduler.one_line(
                f"deployment stopped: {error or type(error).__name__}"
            )
    if unverified:
        scheduler.keep_drained(unverified, f"hpcos deploy stopped: {error or type(error).__name__}")
    if b.reservation is not None:
        scheduler.release(b.reservation)
        b.reservation = None


# The procedure, in order: each stage acts on the batch's nodes still active (a node that failed a
# stage takes no further one); ``resume`` also runs when none is left, to keep the failed nodes drained.
STAGES: tuple[tuple[str, Callable[[Batch], None]], ...] = (
    ("repo_file", _repo_file),
    ("download", _download),
    ("drain", _drain),
    ("distro_sync", _distro_sync),
    ("reboot", _reboot_where_needed),
    ("verify", _verify),
    ("resume", _resume),
)
if (
    tuple(name for name, _ in STAGES) != deployments.TASKS
):  # the record and the plan name the same tasks
    raise ImportError("hpcos.deploy.procedure.STAGES and hpcos.repo.deployments.TASKS disagree")


def _batch(plan: Deployment, batch: NodeSet, number: int = 1, stages=STAGES) -> None:
    """Run the stages on one batch, each timed here: every node that entered a stage is charged the
    stage's wall time (the nodes of a batch wait for its slowest one), unless the stage timed each
    node itself (the rolling reboot, where each node goes when its own jobs end)."""
    b = Batch(plan, batch, number)
    try:
        for name, stage in stages:
            entered = NodeSet(b.active)
            if not entered and name != "resume":
                continue
            started = time.monotonic()
            stage(b)
            spent = round(time.monotonic() - started, 3)
            for node in entered:
                plan.record.nodes[node].durations.setdefault(name, spent)
    except BaseException as error:
        if b.reservation is not None:
            _abandon(b, error)
        raise


def _rolling_reboot(b: Batch) -> None:
    """Slurm reboots each node once its running jobs ended (``scontrol reboot ASAP nextstate=DOWN``); the
    site's RebootProgram runs the update-at-reboot script hpcos left (the install from the node's
    cache) and reboots.  hpcos waits for each node's new boot id and for Slurm to see it back (DOWN,
    until ``verify`` and ``resume``).  Per node: ``jobs`` the wait for its jobs (still in service),
    ``reboot`` from then until it was back."""
    plan, settings, record = b.plan, b.plan.profile.deploy, b.plan.record
    timeout = plan.profile.timeouts.command
    b.check(b.on_nodes(plan.update_hook, b.active, timeout), "writing the update-at-reboot script")
    boot_ids = b.check(
        b.on_nodes(lambda n: plan.expand(settings.boot_id, n), b.active, timeout),
        "reading the boot id",
    )
    if not b.active:
        return
    started = time.monotonic()
    b.drained = NodeSet(b.active)
    scheduler.reboot_asap(b.active, f"hpcos deploy {plan.env} {record.snapshot}")
    log.info("  Slurm reboots %s as their jobs end", b.active)
    jobs_ended: dict[str, float] = {}
    waiting = NodeSet(b.active)
    while waiting:
        now, states = time.monotonic(), scheduler.states(waiting)
        for node in waiting:
            if node not in jobs_ended and not states.get(node, "").startswith(BUSY_STATES):
                jobs_ended[node] = now
        candidates = NodeSet.fromlist(
            [n for n in waiting if n in jobs_ended and _back_in_slurm(states.get(n, ""))]
        )
        if candidates:
            probes = b.on_nodes(lambda n: plan.expand(settings.boot_id, n), candidates, timeout)
            for node, probe in probes.items():
                if (
                    probe.ok
                    and probe.stdout.strip()
                    and probe.stdout.strip() != boot_ids[node].stdout.strip()
                ):
                    record.nodes[node].rebooted = True
                    record.nodes[node].durations["jobs"] = round(jobs_ended[node] - started, 3)
                    record.nodes[node].durations["reboot"] = round(
                        time.monotonic() - jobs_ended[node], 3
                    )
                    waiting.remove(node)
                    log.info(
                        "  %s back after %.1f s out of service",
                        node,
                        record.nodes[node].durations["reboot"],
                    )
        for node in list(waiting):
            if node not in jobs_ended and now - started > settings.drain_timeout:
                b.fail(
                    node,
                    f"its jobs did not end within {settings.drain_timeout:g} s of the reboot request",
                )
            elif node in jobs_ended and now - jobs_ended[node] > settings.reboot_timeout:
                b.fail(
                    node,
                    f"did not come back within {settings.reboot_timeout:g} s of the reboot "
                    f"(Slurm state {states.get(node, 'unknown')})",
                )
            else:
                continue
            waiting.remove(node)
            record.nodes[node].durations.setdefault(
                "jobs", round(jobs_ended.get(node, now) - started, 3)
            )
        if waiting:
            time.sleep(BOOT_POLL)
    stuck = NodeSet.fromlist([n for n in b.drained if n not in b.active])
    if stuck:  # no reboot may come later and put it back into service unchecked
        try:
            scheduler.cancel_reboot(stuck)
        except scheduler.SlurmFailed as exc:
            log.warning("  %s: %s", stuck, exc)


# sinfo states of a node still running the jobs it had when the reboot was asked ("draining@").
BUSY_STATES = ("draining", "mixed", "allocated", "completing")


def _back_in_slurm(state: str) -> bool:
    """The node registered again after its reboot: no reboot flag (``@`` asked, ``^`` issued), not
    "not responding" (``*``), not "reboot"."""
    return (
        bool(state)
        and not state.startswith("reboot")
        and not state.endswith(("@", "^", "*", "#", "~"))
    )


def _reboot(b: Batch, nodes: NodeSet) -> None:
    plan = b.plan
    settings, record, timeout = plan.profile.deploy, plan.record, plan.profile.timeouts.command
    started = time.monotonic()
    boot_ids = b.on_nodes(lambda n: plan.expand(settings.boot_id, n), nodes, timeout)
    for node in list(nodes):
        if not boot_ids[node].ok:
            b.fail(node, f"reading the boot id failed: {b.why(boot_ids[node])}")
            nodes.remove(node)
    if not nodes:
        return
    log.info("  rebooting %s", nodes)
    # The connection may well drop under the reboot command: its exit status says nothing.
    b.on_nodes(lambda n: plan.expand(settings.reboot, n), nodes, timeout)
    waiting = NodeSet(nodes)
    last: dict[str, CommandResult] = {}
    while waiting:
        # Each probe is bounded by what is left of the reboot's bound, so a node that never answers
        # (srun pending on a node that is down) still ends the wait on time.
        left = max(1.0, settings.reboot_timeout - (time.monotonic() - started))
        last = b.on_nodes(lambda n: plan.expand(settings.boot_id, n), waiting, min(timeout, left))
        for node, result in last.items():
            if (
                result.ok
                and result.stdout.strip()
                and result.stdout.strip() != boot_ids[node].stdout.strip()
            ):
                record.nodes[node].rebooted = True
                waiting.remove(node)
        if waiting and time.monotonic() - started > settings.reboot_timeout:
            for node in waiting:
                probe = last.get(node)
                said = (
                    "" if probe is None or probe.ok else f" (reading its boot id: {b.why(probe)})"
                )
                b.fail(
                    node,
                    f"did not come back within {settings.reboot_timeout:g} s of the reboot{said}",
                )
            return
        if waiting:
            time.sleep(BOOT_POLL)
    log.info("  %s back after %.1f s", nodes, time.monotonic() - started)


def _changed_names(before: str, after: str) -> set[str]:
    old, new = expectations.parse_installed(before), expectations.parse_installed(after)
    return {
        key.rsplit(".", 1)[0] for key in old.keys() | new.keys() if old.get(key) != new.get(key)
    }


def _why(result: CommandResult) -> str:
    """The tool's own words in one line: its error lines, else its last line."""
    if result.unreachable:
        return "node unreachable"
    if result.timed_out:
        # srun says "queued and waiting for resources" and, once the step starts, "has been allocated
        # resources": without the second line the command never ran on the node.
        if (
            "queued and waiting for resources" in result.stderr
            and "allocated resources" not in result.stderr
        ):
            said = next(
                (
                    line.strip()
                    for line in result.stderr.splitlines()
                    if line.startswith("srun: ") and "queued and waiting" not in line
                ),
                "",
            )
            return f"srun never started there within {result.duration:.0f} s" + (
                f" ({said.removeprefix('srun: ')})" if said else ""
            )
        return f"timed out after {result.duration:.0f} s"
    lines = [
        line.strip() for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip()
    ]
    errors = [
        line
        for line in lines
        if line.lower().startswith(("error", "file ", "problem", "  - ")) or "conflicts" in line
    ]
    text = " ".join((errors or lines[-1:])[:3])
    return f"exit {result.exit_code}: {text}" if text else f"exit {result.exit_code}"


# ``--rolling``: no drain by hpcos; Slurm takes each node out when its jobs end (``_rolling_reboot``).
ROLLING_STAGES: tuple[tuple[str, Callable[[Batch], None]], ...] = (
    ("repo_file", _repo_file),
    ("download", _download),
    ("reboot", _rolling_reboot),
    ("verify", _verify),
    ("resume", _resume),
)
