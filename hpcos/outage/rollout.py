"""``hpcos outage run``: the production rollout of a plan, with the procedure practised nightly on the
test cluster (``hpcos.deploy``), and what each task actually took against what was planned.

It refuses a plan whose snapshot production does not point at (promote first, through the gate), and
one whose promotion overrode the gate unless the operator overrides again with a reason.  Every node
that fails is left drained by the deploy and gets a ticket, as a failing nightly test does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hpcos.cluster.profiles import Profile
from hpcos.core.errors import UserError
from hpcos.core.files import write_text_atomically
from hpcos.core.store_files import BadStoreFile, dataclass_from, move_aside, read_json
from hpcos.deploy import failures
from hpcos.deploy.procedure import deploy
from hpcos.outage.plan import POST_OUTAGE, OutagePlan
from hpcos.repo import deployments
from hpcos.repo.environments import Environments
from hpcos.site import Site

log = logging.getLogger("hpcos.outage")


@dataclass
class Actuals:
    run_id: str
    snapshot: str
    cluster: str
    started: str
    finished: str
    deploy_id: str
    tasks: dict[str, float]  # task -> seconds across the whole cluster
    failed: dict[str, str]  # node -> reason
    tests_exit: int | None = None  # the post-outage integration tests' exit code; None: not run
    tickets: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Actuals:
        return cls(**json.loads(text))


def task_times(record: deployments.DeploymentRecord) -> dict[str, float]:
    """Per task, what it took across the cluster: batch after batch, each as long as its slowest node
    (the plan's model, now with the measured numbers)."""
    nodes = list(record.nodes.values())
    size = max(1, record.batch_size)
    batches = [nodes[i : i + size] for i in range(0, len(nodes), size)]
    times: dict[str, float] = {}
    for task in deployments.TASKS:
        spans = [max((n.durations.get(task, 0.0) for n in batch), default=0.0) for batch in batches]
        if any(task in n.durations for n in nodes):
            times[task] = sum(spans)
    return times


def check_ready(site: Site, plan: OutagePlan, env: str, force_reason: str | None) -> None:
    pointer = Environments(site.layout).environment(env)
    current = pointer.current()
    if current != plan.testing_snapshot:
        raise UserError(
            f"the plan installs {plan.testing_snapshot} but {env} points at {current or 'nothing'}: "
            f"promote first (hpcos repo promote testing {env}), or plan again"
        )
    last = next((r for r in reversed(pointer.records()) if r.snapshot == current), None)
    if last is not None and last.forced and not force_reason:
        raise UserError(
            f"{env} took {current} with the gate overridden ({last.reason}); the rollout needs "
            "--force --reason TEXT too"
        )
    unaccepted = plan.unaccepted_risks()
    if unaccepted and not force_reason:
        raise UserError(
            f"{len(unaccepted)} risk(s) of the plan were not accepted by a named person (first: "
            f"{unaccepted[0]}): `hpcos outage accept --by NAME`, or --force --reason TEXT"
        )
    if unaccepted:
        log.warning(
            "rolling out with %d unaccepted risk(s), forced: %s", len(unaccepted), force_reason
        )


def file_node_tickets(site: Site, record: deployments.DeploymentRecord) -> list[str]:
    """A ticket per cause of the nodes the rollout could not deploy, as ``hpcos deploy`` files them."""
    if not record.failed_nodes:
        return []
    return failures.file_tickets(site, record)


def run(
    site: Site,
    plan: OutagePlan,
    production: Profile,
    profile_file: Path,
    *,
    env: str = "production",
    batch_size: int | None = None,
    post_tests: Callable[[], int] | None = None,
    force_reason: str | None = None,
) -> Actuals:
    check_ready(site, plan, env, force_reason)
    started = datetime.now(UTC)
    record = deploy(
        site.specs,
        site.layout,
        env,
        production,
        profile_file,
        batch_size=batch_size or plan.batch_size,
        snapshot_id=plan.testing_snapshot,
    )
    tasks = task_times(record)
    tests_exit = None
    if post_tests is not None:
        began = datetime.now(UTC)
        tests_exit = post_tests()
        tasks[POST_OUTAGE] = (datetime.now(UTC) - began).total_seconds()
    actuals = Actuals(
        run_id=f"outage-{record.deploy_id}",
        snapshot=plan.testing_snapshot,
        cluster=production.name,
        started=started.isoformat(timespec="seconds"),
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        deploy_id=record.deploy_id,
        tasks=tasks,
        failed={n: record.nodes[n].reason for n in record.failed_nodes},
        tests_exit=tests_exit,
    )
    actuals.tickets = file_node_tickets(site, record)
    save(site, actuals)
    planned = plan.window_seconds
    log.info(
        "outage %s: %s planned, %s taken; %d node(s) failed",
        actuals.run_id,
        "unknown" if planned is None else f"{planned:.0f} s",
        f"{sum(tasks.values()):.0f} s",
        len(actuals.failed),
    )
    return actuals


def save(site: Site, actuals: Actuals) -> Path:
    directory = site.layout.outages / actuals.snapshot
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"actuals-{actuals.deploy_id}.json"
    write_text_atomically(path, actuals.to_json())
    return path


def latest(site: Site, snapshot: str) -> Actuals | None:
    """The newest actuals recorded for ``snapshot``; one that hpcos did not write is moved to the
    quarantine (one line) and the one before it counts."""
    for path in sorted((site.layout.outages / snapshot).glob("actuals-*.json"), reverse=True):
        try:
            return dataclass_from(Actuals, read_json(path, what="outage actuals"), str(path))
        except BadStoreFile as exc:
            move_aside(path, site.layout.quarantine, f"outage actuals: {exc}")
        except FileNotFoundError:
            continue
    return None
