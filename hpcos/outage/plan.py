"""The outage plan for promoting testing to production: what changes, the tasks and how long they take,
the risks, how to roll back, and who owns what.

The seed's production phase: "From the testing phase, we know what tasks need to be completed on the
production cluster during an outage and how long they should be expected to take", and "the
differences between the test cluster and production cluster configuration will help to define the
highest risks".  So every duration here comes from the last ``hpcos deploy`` of this very snapshot
on the test cluster, scaled to production by node count and batch size with the assumptions
written out, and every deviation of the inventory diff is a risk.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from hpcos.cluster.profiles import Profile
from hpcos.cluster.schedulers import slurm
from hpcos.core.errors import UserError
from hpcos.inventory import collect
from hpcos.inventory.diff import KINDS, diff
from hpcos.repo import deployments, errata, nightly
from hpcos.repo import diff as repo_diff
from hpcos.repo.environments import Environments
from hpcos.repo.repodata import read_packages
from hpcos.repo.snapshots import SnapshotStore
from hpcos.rpms.evr import Evr
from hpcos.site import Site

log = logging.getLogger("hpcos.outage")

# The outage's tasks in order: deploy's per-node tasks, then the integration tests on production.
DEPLOY_TASKS = deployments.TASKS
POST_OUTAGE = "post-outage integration tests"
DEFAULT_BATCH = 32


@dataclass
class PackageChange:
    repo: str
    package: str  # name.arch
    old: str  # EVRs before ("" when added)
    new: str  # EVRs after ("" when removed)
    changelog: list[errata.ChangelogEntry] = field(default_factory=list)
    advisories: list[errata.Advisory] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "added" if not self.old else "removed" if not self.new else "updated"


@dataclass
class TaskEstimate:
    task: str
    test_nodes: int  # how many test nodes the duration was measured on (0: no measurement)
    test_median: float | None  # seconds per node on the test cluster
    test_max: float | None
    production_seconds: float | None  # the whole task across production, batches included

    @property
    def known(self) -> bool:
        return self.production_seconds is not None


@dataclass
class Risk:
    kind: str  # a class of hpcos.inventory.diff.KINDS, or "ticket", "gate", "measurement"
    text: str


@dataclass
class OutagePlan:
    created: str
    window_start: str | None
    testing_snapshot: str
    production_snapshot: str | None
    test_cluster: str
    production_cluster: str
    production_nodes: int
    batch_size: int
    changes: list[PackageChange]
    patches: list[dict[str, str]]
    config_changes: list[str]
    tasks: list[TaskEstimate]
    assumptions: list[str]
    risks: list[Risk]
    rollback: list[str]
    owners: dict[str, list[str]]  # overlay -> "package: owner"
    deploy_id: str | None = None
    # Node-hours out of service, outage against rolling (``cost_lines``): the line management reads.
    cost: list[str] = field(default_factory=list)
    # Who accepted which risks, when (``hpcos outage accept``): {"by", "when", "risks": [texts]}.
    acceptance: dict = field(default_factory=dict)

    def unaccepted_risks(self) -> list[str]:
        """The plan's risks no named person accepted (all of them before ``hpcos outage accept``)."""
        accepted = set(self.acceptance.get("risks", [])) if self.acceptance.get("by") else set()
        return [f"{r.kind}: {r.text}" for r in self.risks if f"{r.kind}: {r.text}" not in accepted]

    @property
    def window_seconds(self) -> float | None:
        # The .repo file and the download happen before the window, while the nodes still run jobs.
        inside = [t for t in self.tasks if t.task not in deployments.IN_SERVICE_TASKS]
        if not all(t.known for t in inside):
            return None
        return sum(t.production_seconds or 0.0 for t in inside)

    @property
    def before_window_seconds(self) -> float | None:
        """The in-service tasks (the .repo file, the packages downloaded), done before the drain."""
        before = [t for t in self.tasks if t.task in deployments.IN_SERVICE_TASKS]
        if not before or not all(t.known for t in before):
            return None
        return sum(t.production_seconds or 0.0 for t in before)

    @property
    def window_end(self) -> str | None:
        if self.window_start is None or self.window_seconds is None:
            return None
        start = datetime.fromisoformat(self.window_start)
        return (start + timedelta(seconds=self.window_seconds)).isoformat(timespec="minutes")

    def to_json(self) -> str:
        # Compact, not pretty-printed: a 20,000-package plan writes and reads back in a fraction of the time.
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> OutagePlan:
        data = json.loads(text)

        def change(c: dict) -> PackageChange:
            return PackageChange(
                **{
                    **c,
                    "changelog": [errata.ChangelogEntry(**e) for e in c["changelog"]],
                    "advisories": [
                        errata.Advisory(**{**a, "references": tuple(a["references"])})
                        for a in c["advisories"]
                    ],
                }
            )

        data["changes"] = [change(c) for c in data["changes"]]
        data["tasks"] = [TaskEstimate(**task) for task in data["tasks"]]
        data["risks"] = [Risk(**risk) for risk in data["risks"]]
        return cls(**data)

    @property
    def security_advisories(self) -> list[errata.Advisory]:
        seen = {a.id: a for c in self.changes for a in c.advisories if a.kind == "security"}
        return sorted(seen.values(), key=lambda a: a.id)


def package_changes(
    site: Site, old_env: str, new_env: str
) -> tuple[list[PackageChange], str, str | None]:
    """Every package that differs between production and testing, with changelog and advisories."""
    layout = site.layout
    new = repo_diff.resolve(layout, new_env)
    current = Environments(layout).environment(old_env).current()
    if current is None:
        old = None
        per_repo = {
            entry: repo_diff.RepoDiff(
                added=[r.nevra for r in read_packages(new.entry_dir(entry))], status="added"
            )
            for entry in new.entries
        }
    else:
        old = SnapshotStore(layout.snapshots).get(current)
        per_repo = repo_diff.diff(old, new)
    changes: list[PackageChange] = []
    for entry, result in per_repo.items():
        had = _newest(old.entry_dir(entry)) if old is not None and entry in old.entries else {}
        has = _newest(new.entry_dir(entry)) if result.added or result.removed else {}
        repo_changes = [
            PackageChange(entry, key, before, after) for key, before, after in result.updated
        ]
        for nevra in result.added:
            # A newer build beside the older one (kept in the overlay): an update of what production runs.
            key = _name_arch(nevra)
            repo_changes.append(
                PackageChange(entry, key, _evr_text(had[key]) if key in had else "", _evr(nevra))
            )
        # An older build dropped while the package stays: the nodes' package does not change.
        repo_changes += [
            PackageChange(entry, _name_arch(nevra), _evr(nevra), "")
            for nevra in result.removed
            if _name_arch(nevra) not in has
        ]
        wanted = {c.package: c.new.split(", ")[-1] for c in repo_changes if c.new}
        logs = errata.changelogs(new.entry_dir(entry), wanted)
        for change in repo_changes:
            change.changelog = logs.get(change.package, [])
        changes.extend(repo_changes)
    wanted = {c.package: c.new.split(", ")[-1] for c in changes if c.new}
    found = errata.advisories([new.entry_dir(e) for e in new.entries], wanted)
    for change in changes:
        change.advisories = found.get(change.package, [])
    changes.sort(key=lambda c: (not c.advisories, c.repo, c.package))
    return changes, new.id, old.id if old else None


def _name_arch(nevra: str) -> str:
    # name-epoch:version-release.arch -> name.arch
    head, _, arch = nevra.rpartition(".")
    name = head.rsplit("-", 2)[0]
    return f"{name}.{arch}"


def _newest(directory) -> dict[str, Evr]:
    """name.arch -> the newest EVR in a repository: what dnf installs from it."""
    newest: dict[str, Evr] = {}
    for package in read_packages(directory):
        evr = Evr.parse(package.evr)
        key = f"{package.name}.{package.arch}"
        if key not in newest or evr > newest[key]:
            newest[key] = evr
    return newest


def _evr_text(evr: Evr) -> str:
    return f"{evr.epoch}:{evr.version}-{evr.release}"  # as the snapshots' diff writes EVRs


def _evr(nevra: str) -> str:
    head = nevra.rpartition(".")[0]
    name = head.rsplit("-", 2)[0]
    return head[len(name) + 1 :]


def estimate_tasks(
    records: list[deployments.DeploymentRecord],
    production_nodes: int,
    batch_size: int,
    tests_seconds: float | None,
) -> tuple[list[TaskEstimate], list[str], str | None]:
    """Per task: the test cluster's per-node durations of the last deploy, scaled to production.

    Within a batch the nodes work in parallel, so a batch takes as long as its slowest node: the test
    cluster's slowest node is taken as every production batch's duration."""
    assumptions = [
        f"production is updated in {math.ceil(production_nodes / batch_size)} batches of at most {batch_size} "
        f"nodes ({production_nodes} nodes), batches one after another, the nodes of a batch in parallel",
        "a batch takes as long as the slowest test node took for each task (the slowest is kept, not the median: "
        "a batch waits for its last node)",
        "jobs are stopped for the outage, so draining does not wait for running jobs",
        f"{' and '.join(deployments.IN_SERVICE_TASKS)} run before the window, while the nodes still run jobs: "
        "the window holds only the install from the nodes' cache",
    ]
    record = records[-1] if records else None
    batches = math.ceil(production_nodes / batch_size) if production_nodes else 0
    tasks = []
    for task in DEPLOY_TASKS:
        seconds = [
            n.durations[task]
            for n in (record.nodes.values() if record else [])
            if task in n.durations
        ]
        if seconds:
            tasks.append(
                TaskEstimate(
                    task,
                    len(seconds),
                    statistics.median(seconds),
                    max(seconds),
                    max(seconds) * batches,
                )
            )
        elif record is not None and task == "reboot":
            # No node needed a reboot on the test cluster: nor will production, for the same packages.
            tasks.append(TaskEstimate(task, 0, 0.0, 0.0, 0.0))
        else:
            tasks.append(TaskEstimate(task, 0, None, None, None))
    tasks.append(
        TaskEstimate(
            POST_OUTAGE,
            1 if tests_seconds is not None else 0,
            tests_seconds,
            tests_seconds,
            tests_seconds,
        )
    )
    if tests_seconds is not None:
        assumptions.append(
            "the post-outage integration tests take as long on production as the last complete "
            "nightly run of this snapshot took on the test cluster"
        )
    return tasks, assumptions, record.deploy_id if record else None


def build_plan(
    site: Site,
    test: Profile,
    production: Profile,
    *,
    batch_size: int | None = None,
    window_start: datetime | None = None,
    source: str = "testing",
    dest: str = "production",
    test_measured: collect.Measured | None = None,
    production_measured: collect.Measured | None = None,
) -> OutagePlan:
    spec_set = site.specs
    layout = site.layout
    changes, testing_id, production_id = package_changes(site, dest, source)
    batch = batch_size or DEFAULT_BATCH
    if batch < 1:
        raise UserError(f"--batch-size {batch}: expected at least 1")
    # The nodes the rollout will touch: the profile's node set (hpcos deploy --cluster deploys exactly
    # these); an inventory that declares more (a class with ``count:``) is stated, not counted.
    production_nodes = len(production.node_set)
    declared = production.inventory.total_nodes
    records = [
        r
        for r in deployments.records(layout)
        if r.snapshot == testing_id and r.cluster == test.name
    ]
    tasks, assumptions, deploy_id = estimate_tasks(
        records, production_nodes, batch, _tests_seconds(site, testing_id)
    )
    risks = [
        Risk(KINDS[d.kind], d.line.split(": ", 1)[1])
        for d in diff(test, production, test_measured, production_measured)
    ]
    if not records:
        risks.insert(
            0,
            Risk(
                "measurement",
                f"snapshot {testing_id} was never deployed on {test.name}: "
                "task durations are unknown and the procedure was not practised",
            ),
        )
    else:
        failed = records[-1].failed_nodes
        if failed:
            risks.insert(
                0,
                Risk(
                    "measurement",
                    f"the deploy of {testing_id} on {test.name} left "
                    f"{len(failed)} node(s) unverified: {', '.join(failed)}",
                ),
            )
    if declared and declared != production_nodes:
        assumptions.append(
            f"the rollout touches the {production_nodes} nodes of profile {production.name} "
            f"({production.node_set}); its inventory declares {declared} nodes: the other "
            f"{declared - production_nodes} are not in the node set and are not updated"
        )
    risks += _ticket_risks(site)
    risks += _gate_risks(site, source, dest, testing_id)
    risks += _out_of_service_risks(site, test)
    return OutagePlan(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        window_start=window_start.isoformat(timespec="minutes") if window_start else None,
        testing_snapshot=testing_id,
        production_snapshot=production_id,
        test_cluster=test.name,
        production_cluster=production.name,
        production_nodes=production_nodes,
        batch_size=batch,
        changes=changes,
        patches=_patches(spec_set),
        config_changes=config_changes(site),
        tasks=tasks,
        assumptions=assumptions,
        risks=risks,
        rollback=_rollback(dest, production, production_id, changes),
        owners=_owners(spec_set),
        deploy_id=deploy_id,
        cost=cost_lines(layout, test.name, production_nodes, batch, tasks)
        + jobs_lines(production, window_start),
    )


def config_changes(site: Site) -> list[str]:
    """One line per commit the configuration repositories' testing branches hold that production does
    not, and per production hot-fix not yet merged back (what `hpcos config status` shows)."""
    if not site.specs.site.config.repositories:
        return []
    from hpcos.config.promotion import status
    from hpcos.config.repositories import repositories

    lines = []
    for repo in repositories(site.specs, site.layout):
        branch = status(repo)
        lines += [
            f"{repo.name} ({branch.kind}): {c.short} {c.subject} ({c.author})"
            for c in branch.to_promote
        ]
        lines += [
            f"{repo.name} ({branch.kind}): production hot-fix not yet merged back: {c.short} {c.subject}"
            for c in branch.hot_fixes
        ]
    return lines


def cost_lines(
    layout, test_cluster: str, nodes: int, batch: int, tasks: list[TaskEstimate]
) -> list[str]:
    """Node-hours out of service for the production nodes: as an outage (every node out for the whole
    window) and as a rolling update (each node out for its own reboot, the mean measured per node by the
    test cluster's last ``--rolling`` deployment)."""
    inside = [
        t for t in tasks if t.task not in deployments.IN_SERVICE_TASKS and t.task != POST_OUTAGE
    ]
    lines = []
    if inside and all(t.known for t in inside):
        window = sum(t.production_seconds or 0.0 for t in inside)
        lines.append(
            f"outage: {nodes} nodes x {window / 3600:.2f} h window (deploy tasks) = "
            f"{nodes * window / 3600:,.1f} node-hours out of service; every running job is stopped"
        )
    rolling = [
        r
        for r in deployments.records(layout)
        if r.mode == "rolling" and r.cluster == test_cluster and r.verified_nodes
    ]
    if rolling:
        per_node = statistics.mean(
            rolling[-1].nodes[n].out_of_service_seconds for n in rolling[-1].verified_nodes
        )
        lines.append(
            f"rolling (hpcos deploy --rolling): {nodes} nodes x {per_node:.1f} s per node (measured, "
            f"deployment {rolling[-1].deploy_id}) = {nodes * per_node / 3600:,.2f} node-hours out of "
            f"service; no job is stopped (each node waits for its own jobs, at most {batch} rebooting "
            f"at once)"
        )
    else:
        lines.append(
            f"rolling: not measured ({test_cluster} has no verified `hpcos deploy --rolling` record)"
        )
    return lines


def jobs_lines(production: Profile, window_start: datetime | None) -> list[str]:
    """The users' jobs the update touches, from production's Slurm now: those an outage would stop (still
    running at the window start, by their time limits) and how long a rolling update waits for them."""
    if production.deploy.drain != "slurm":
        return [f"jobs: not known ({production.name} has deploy.drain: none, no scheduler to ask)"]
    try:
        jobs = slurm.running_jobs(production.node_set)
    except slurm.SlurmFailed as exc:
        return [f"jobs: not known ({exc})"]
    if not jobs:
        return [f"jobs: none running on {production.name}'s nodes now"]
    start = (window_start or datetime.now()).astimezone()
    stopped = [j for j in jobs if j.ends is None or j.ends > start]
    when = f"at the window start ({window_start:%Y-%m-%d %H:%M})" if window_start else "now"
    held = sum(j.nodes for j in stopped)
    lines = [
        f"jobs: {len(jobs)} running on {production.name}'s nodes now; an outage {when} stops "
        f"{len(stopped)} of them ({held} nodes' work)"
    ]
    ends = [j.ends for j in jobs if j.ends is not None]
    if len(ends) < len(jobs):
        lines.append(
            "jobs: rolling waits for each node's jobs; some have no time limit, so a node may wait "
            "until its job ends or deploy.drain_timeout"
        )
    else:
        lines.append(
            f"jobs: rolling stops none; the last running job's time limit ends {max(ends):%Y-%m-%d %H:%M}, "
            "the latest its node waits"
        )
    return lines


def _partial(run: nightly.NightlyRecord) -> bool:
    """A run the harness itself recorded as less than what it collected: narrowed (test paths, --lf) or
    with tests deselected (-k).  Its time is not the suite's, and its few tests do not define the suite."""
    if not run.from_harness:
        return False
    ran = {test for test, *_rest in run.results}
    return bool(run.narrowed) or any(test not in ran for test, *_rest in run.collected)


def _tests_seconds(site: Site, snapshot_id: str) -> float | None:
    """How long the last complete nightly run of this snapshot took (its results' start and finish).
    Complete: it ran every test any run of this snapshot ran (a rerun of four tests is not the suite)."""
    runs = [
        r
        for r in nightly.records(site.layout)
        if r.testing_snapshot == snapshot_id
        and r.started
        and r.finished
        and not r.invalid
        and not _partial(r)
    ]
    suite = {test for r in runs for test, *_rest in r.results}
    runs = [r for r in runs if {test for test, *_rest in r.results} >= suite]
    if not runs:
        return None
    try:
        return (
            datetime.fromisoformat(runs[-1].finished) - datetime.fromisoformat(runs[-1].started)
        ).total_seconds()
    except (TypeError, ValueError):
        return None


def _ticket_risks(site: Site) -> list[Risk]:
    from hpcos.tickets.state import TicketState

    path = site.layout.ticket_state
    if not path.exists():
        return []
    state = TicketState(path)
    try:
        return [
            Risk("ticket", f"open ticket #{ticket} ({test_id})")
            for _key, test_id, ticket, _streak in state.open_tickets()
        ]
    finally:
        state.close()


def _out_of_service_risks(site: Site, test: Profile) -> list[Risk]:
    """Test-cluster nodes out of service: the gate did not require them, so the snapshot is untested there."""
    from hpcos.repo import out_of_service

    out = out_of_service.out_at(site.layout, test.name)
    return (
        [
            Risk(
                "gate",
                f"not tested on test-cluster node(s) out of service: {out_of_service.describe(out)}",
            )
        ]
        if out
        else []
    )


def _gate_risks(site: Site, source: str, dest: str, snapshot_id: str) -> list[Risk]:
    risks = []
    envs = Environments(site.layout)
    for name in (source, dest):
        for record in envs.environment(name).records():
            if record.forced and record.snapshot == snapshot_id:
                risks.append(
                    Risk(
                        "gate",
                        f"{name} took {snapshot_id} with the gate overridden by {record.user} "
                        f"on {record.time}: {record.reason}",
                    )
                )
    return risks


def _patches(spec_set) -> list[dict[str, str]]:
    return [
        {
            "package": package.name,
            "overlay": package.overlay,
            "patch": patch.file,
            "reason": patch.reason,
            "upstream": patch.upstream or "",
            "owner": package.owner,
        }
        for package in spec_set.packages.values()
        for patch in package.patches
    ]


def _owners(spec_set) -> dict[str, list[str]]:
    owners: dict[str, list[str]] = {}
    for package in sorted(spec_set.packages.values(), key=lambda p: p.name):
        owners.setdefault(package.overlay, []).append(f"{package.name}: {package.owner}")
    return owners


def _rollback(
    dest: str, production: Profile, previous: str | None, changes: list[PackageChange]
) -> list[str]:
    """What the rollback does, command by command, as ``hpcos deploy`` will do it on production."""
    if previous is None:
        return [
            f"{dest} pointed at nothing before this outage: there is no snapshot to return to; "
            "reinstall from the previous provisioning image"
        ]
    cluster, settings = production.name, production.deploy
    lines = [
        f"hpcos repo rollback {dest} --reason 'outage rollback'   # {dest} points at {previous} again",
        f"hpcos deploy {dest} --cluster {cluster}   # per batch of {settings.batch_size}: drain, dnf distro-sync "
        f"every node back to {previous}, reboot where the kernel or a reboot package changes, verify, resume",
    ]
    kernel = production.os_update.kernel_package
    for change in changes:
        if change.package.rsplit(".", 1)[0] != kernel or not change.old or not change.new:
            continue
        lines.append(
            f"#   kernel {change.new} -> {change.old}: dnf leaves the newer kernel installed and the boot "
            f"default (EL9 makes each new kernel the default), so the deploy sets the boot default back "
            f"({settings.set_boot_default.replace('{kernel}', '<' + change.old + '>')}), reboots every "
            f"node into it, removes kernel {change.new}, verifies the running kernel and resumes the "
            "verified nodes; a node that fails any step stays drained with the reason and gets a ticket"
        )
    lines.append(
        "hpcos test --cluster " + cluster + "   # the integration tests on the rolled-back cluster"
    )
    return lines
