"""``hpcos deploy ENV --cluster PROFILE``: put the snapshot ENV names on the nodes, prove it, record it.

The procedure an administrator follows in an outage, written once and practised nightly on the test
cluster.  Nodes go in batches of at most ``deploy.batch_size`` (the most nodes out of service at
once); for each batch:

  drain      take the nodes out of Slurm, wait until running jobs ended (bounded)
  repo_file  write the ``.repo`` file pinned to the snapshot (``hpcos repo client-config --pin``)
  distro_sync  ``dnf distro-sync`` to exactly the snapshot (upgrades and downgrades)
  reboot     when the kernel or a ``reboot_packages`` package changed, or the running kernel is not
             the snapshot's: the profile's reboot command, then wait for a new boot id (bounded)
  verify     every installed package the snapshot carries is at the snapshot's EVR; the running
             kernel is the snapshot's newest
  resume     back into Slurm

A node that fails any task stays drained, the Slurm reason saying why, and takes no further task;
the rest of its batch and the later batches go on.  Every task is timed per node and the record
(``hpcos.repo.deployments``) is rewritten after each batch: the production gate reads which nodes
were verified, the outage plan reads the durations.
"""

from __future__ import annotations

import getpass
import logging
import os
import secrets
import shlex
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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

    # -- commands, per node (``{node}`` and ``{root}`` expand, quoted) --------------------------------

    def root(self, node: str) -> str:
        return self.profile.deploy.root.replace("{node}", node)

    def expand(self, template: str, node: str) -> str:
        return template.replace("{root}", shlex.quote(self.root(node))).replace("{node}", shlex.quote(node))

    def rpm_query(self, node: str) -> list[str]:
        root = self.root(node)
        return ["rpm", *(["--root", root] if root != "/" else []), "-qa", "--qf", expectations.RPM_QUERY_FORMAT]

    def distro_sync(self, node: str) -> list[str]:
        root = self.root(node)
        extra = [f"--installroot={root}", f"--releasever={self.releasever}"] if root != "/" else []
        # --refresh: the metadata at a pinned URL never changes, but a cached copy from an earlier
        # snapshot of the same name must not answer for it.
        return ["dnf", "-y", "--refresh", *extra, "distro-sync"]

    def write_repo_file(self, node: str) -> str:
        path = os.path.normpath(self.root(node) + "/" + self.profile.deploy.repo_file)
        tmp = f"{path}.hpcos-tmp"
        return (f"mkdir -p {shlex.quote(os.path.dirname(path))} && printf %s {shlex.quote(self.repo_text)} "
                f"> {shlex.quote(tmp)} && mv {shlex.quote(tmp)} {shlex.quote(path)}")

    # -- fan-out ---------------------------------------------------------------------------------------

    def on_nodes(self, command: Callable[[str], str | list[str]], nodes: NodeSet,
                 timeout: float) -> dict[str, CommandResult]:
        """Run ``command(node)`` on every node: one fan-out per distinct command line (all nodes at once
        on a real cluster, where ``root`` is the same everywhere), the fan-outs side by side."""
        groups: dict[str, tuple[str | list[str], NodeSet]] = {}
        for node in nodes:
            cmd = command(node)
            key = cmd if isinstance(cmd, str) else shlex.join(cmd)
            groups.setdefault(key, (cmd, NodeSet()))[1].add(node)
        results: dict[str, CommandResult] = {}
        with ThreadPoolExecutor(max_workers=max(1, min(len(groups), self.batch_size))) as pool:
            futures = [pool.submit(self.launcher.run, cmd, group, timeout=timeout) for cmd, group in groups.values()]
            for future in futures:
                results.update(future.result())
        return results


def deploy(spec_set: SpecSet, layout: StoreLayout, env: str, profile: Profile, profile_file: Path, *,
           nodes: str | None = None, batch_size: int | None = None, snapshot_id: str | None = None) -> DeploymentRecord:
    if env not in spec_set.site.environments:
        raise UserError(f"unknown environment {env!r}; expected one of: {', '.join(spec_set.site.environments)}")
    settings = profile.deploy
    snapshot = client_config.snapshot_for(layout, env, snapshot_id)
    sections = client_config.sections(spec_set, layout, env, target=settings.target, pinned=True,
                                      snapshot_id=snapshot.id, environments_url=settings.environments_url,
                                      snapshots_url=settings.snapshots_url, gpgcheck=settings.gpgcheck,
                                      overlay_gpgkey=settings.gpgkey)
    target = settings.target or next(iter(spec_set.site.targets))
    selected = profile.select_nodes(nodes)
    size = batch_size or settings.batch_size
    if size < 1:
        raise UserError(f"--batch-size {size}: expected at least 1")
    started = datetime.now(UTC)
    record = DeploymentRecord(
        deploy_id=f"{started:%Y%m%dT%H%M%SZ}-{env}-{secrets.token_hex(3)}", environment=env, snapshot=snapshot.id,
        cluster=profile.name, profile_sha256=file_digest(profile_file), started=started.isoformat(timespec="seconds"),
        batch_size=size, user=os.environ.get("BUILD_USER_ID") or getpass.getuser(),
        nodes={node: NodeDeployment(node) for node in selected})
    plan = Deployment(
        env=env, profile=profile, launcher=launcher_for(profile), nodes=selected, batch_size=size,
        repo_text=client_config.repo_file(sections, header=f"hpcos deploy {env}: snapshot {snapshot.id}"),
        expected=expectations.expected(snapshot, sections, profile.os_update.kernel_package),
        releasever=str(spec_set.site.targets[target].release), record=record, layout=layout)
    batches = [NodeSet.fromlist(list(selected)[i:i + size]) for i in range(0, len(selected), size)]
    # Two deployments on one cluster at once would each take their own batches out: refuse the second.
    layout.locks.mkdir(parents=True, exist_ok=True)
    # The profile's name is untrusted text: only safe characters reach the file name.
    lock_path = layout.locks / ("deploy-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in profile.name)
                                + ".lock")
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(f"another `hpcos deploy` on cluster {profile.name!r} is running ({lock_path})") from None
    try:
        return _run(plan, batches)
    finally:
        lock.release()


def _run(plan: Deployment, batches: list[NodeSet]) -> DeploymentRecord:
    record, layout, selected, size = plan.record, plan.layout, plan.nodes, plan.batch_size
    snapshot_id = record.snapshot
    log.info("deploying %s snapshot %s to %s (%d nodes, %d at a time, %d batches)", plan.env, snapshot_id, selected,
             len(selected), size, len(batches))
    deployments.write(layout, record)
    for number, batch in enumerate(batches, 1):
        log.info("batch %d/%d: %s", number, len(batches), batch)
        _batch(plan, batch)
        deployments.write(layout, record)
    record.finished = datetime.now(UTC).isoformat(timespec="seconds")
    deployments.write(layout, record)
    for line in summary(record):
        log.info("%s", line)
    return record


def summary(record: DeploymentRecord) -> list[str]:
    """One line per node set: the verified nodes, then the failed ones grouped by reason."""
    lines = []
    verified = NodeSet.fromlist(record.verified_nodes)
    if verified:
        lines.append(f"{verified}: verified on {record.snapshot} ({len(verified)} nodes)")
    by_reason: dict[str, NodeSet] = {}
    for name in record.failed_nodes:
        by_reason.setdefault(record.nodes[name].reason or "not deployed", NodeSet()).add(name)
    for reason, nodes in sorted(by_reason.items(), key=lambda item: str(item[1])):
        lines.append(f"{nodes}: left drained: {reason}")
    return lines


def _batch(plan: Deployment, batch: NodeSet) -> None:
    record, settings, timeouts = plan.record, plan.profile.deploy, plan.profile.timeouts
    active = NodeSet(batch)

    def fail(node: str, reason: str) -> None:
        record.nodes[node].reason = scheduler.one_line(reason, limit=400)
        active.difference_update(node)
        log.warning("%s: %s", node, record.nodes[node].reason)

    def timed(task: str, results: dict[str, CommandResult], what: str) -> dict[str, CommandResult]:
        for node, result in results.items():
            record.nodes[node].durations[task] = round(result.duration, 3)
            if not result.ok:
                fail(node, f"{what} failed: {_why(result)}")
        return results

    # drain
    if settings.drain == "slurm":
        reason = f"hpcos deploy {plan.env} {record.snapshot}"
        for node, outcome in scheduler.drain(batch, reason, settings.drain_timeout).items():
            if isinstance(outcome, str):
                fail(node, outcome)
            else:
                record.nodes[node].durations["drain"] = round(outcome, 3)
    else:
        for node in batch:
            record.nodes[node].durations["drain"] = 0.0
    log.info("  drained %s", active or "no node")

    # repo_file
    if active:
        timed("repo_file", plan.on_nodes(plan.write_repo_file, active, timeouts.command), "writing the .repo file")

    # distro_sync (with the package lists before and after: what changed decides the reboot)
    before: dict[str, CommandResult] = {}
    after: dict[str, CommandResult] = {}
    if active:
        before = plan.on_nodes(plan.rpm_query, active, timeouts.command)
        synced = plan.on_nodes(plan.distro_sync, active, settings.dnf_timeout)
        after = plan.on_nodes(plan.rpm_query, active, timeouts.command)
        for node in list(active):
            spent = before[node].duration + synced[node].duration + after[node].duration
            record.nodes[node].durations["distro_sync"] = round(spent, 3)
            bad = next((r for r in (before[node], synced[node], after[node]) if not r.ok), None)
            if bad is not None:
                fail(node, f"dnf distro-sync failed: {_why(bad)}" if bad is synced[node]
                     else f"rpm -qa failed: {_why(bad)}")
        log.info("  distro-sync done on %s", active or "no node")

    # reboot where needed
    if active:
        kernels = timed("reboot", plan.on_nodes(lambda n: plan.expand(settings.running_kernel, n), active,
                                                timeouts.command), "reading the running kernel")
        needing = NodeSet()
        for node in active:
            changed = _changed_names(before[node].stdout, after[node].stdout)
            listed = changed & set(settings.reboot_packages)
            stale = plan.expected.kernel and kernels[node].stdout.strip() != plan.expected.kernel
            if listed or stale:
                needing.add(node)
                log.info("  %s needs a reboot (%s)", node,
                         ", ".join(sorted(listed)) + (" changed" if listed else "")
                         + ("; " if listed and stale else "") + ("kernel is not the snapshot's" if stale else ""))
        if needing:
            _reboot(plan, needing, fail)

    # verify
    if active:
        started = time.monotonic()
        installed = plan.on_nodes(plan.rpm_query, active, timeouts.command)
        running = plan.on_nodes(lambda n: plan.expand(settings.running_kernel, n), active, timeouts.command)
        for node in list(active):
            record.nodes[node].durations["verify"] = round(installed[node].duration + running[node].duration, 3)
            bad = next((r for r in (installed[node], running[node]) if not r.ok), None)
            if bad is not None:
                fail(node, f"verify failed: {_why(bad)}")
                continue
            kernel = running[node].stdout.strip()
            record.nodes[node].kernel = kernel
            problems = plan.expected.problems(expectations.parse_installed(installed[node].stdout), kernel)
            if problems:
                fail(node, "verify: " + "; ".join(problems))
            else:
                record.nodes[node].verified = True
        log.info("  verified %s in %.1f s", active or "no node", time.monotonic() - started)

    # resume the verified nodes; the others stay drained, their reason saying why
    if settings.drain == "slurm":
        started = time.monotonic()
        if active:
            scheduler.resume(active)
        for node in batch:
            if record.nodes[node].verified:
                record.nodes[node].durations["resume"] = round(time.monotonic() - started, 3)
            else:
                scheduler.keep_drained(NodeSet(node), f"hpcos deploy: {record.nodes[node].reason}")
    else:
        for node in active:
            record.nodes[node].durations["resume"] = 0.0
    if active:
        log.info("  resumed %s", active)


def _reboot(plan: Deployment, nodes: NodeSet, fail: Callable[[str, str], None]) -> None:
    settings, record = plan.profile.deploy, plan.record
    started = time.monotonic()
    boot_ids = plan.on_nodes(lambda n: plan.expand(settings.boot_id, n), nodes, plan.profile.timeouts.command)
    for node in list(nodes):
        if not boot_ids[node].ok:
            fail(node, f"reading the boot id failed: {_why(boot_ids[node])}")
            nodes.remove(node)
    if not nodes:
        return
    log.info("  rebooting %s", nodes)
    # The connection may well drop under the reboot command: its exit status says nothing.
    plan.on_nodes(lambda n: plan.expand(settings.reboot, n), nodes, plan.profile.timeouts.command)
    waiting = NodeSet(nodes)
    while waiting:
        now = plan.on_nodes(lambda n: plan.expand(settings.boot_id, n), waiting, plan.profile.timeouts.command)
        for node, result in now.items():
            if result.ok and result.stdout.strip() and result.stdout.strip() != boot_ids[node].stdout.strip():
                record.nodes[node].rebooted = True
                record.nodes[node].durations["reboot"] = round(
                    record.nodes[node].durations.get("reboot", 0.0) + time.monotonic() - started, 3)
                waiting.remove(node)
        if waiting and time.monotonic() - started > settings.reboot_timeout:
            for node in waiting:
                record.nodes[node].durations["reboot"] = round(time.monotonic() - started, 3)
                fail(node, f"did not come back within {settings.reboot_timeout:g} s of the reboot")
            return
        if waiting:
            time.sleep(BOOT_POLL)
    log.info("  %s back after %.1f s", nodes, time.monotonic() - started)


def _changed_names(before: str, after: str) -> set[str]:
    old, new = expectations.parse_installed(before), expectations.parse_installed(after)
    return {key.rsplit(".", 1)[0] for key in old.keys() | new.keys() if old.get(key) != new.get(key)}


def _why(result: CommandResult) -> str:
    """The tool's own words in one line: its error lines, else its last line."""
    if result.unreachable:
        return "node unreachable"
    if result.timed_out:
        return f"timed out after {result.duration:.0f} s"
    lines = [line.strip() for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith(("error", "file ", "problem", "  - "))
              or "conflicts" in line]
    text = " ".join((errors or lines[-1:])[:3])
    return f"exit {result.exit_code}: {text}" if text else f"exit {result.exit_code}"
