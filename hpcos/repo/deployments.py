"""Deployment records: which snapshot ``hpcos deploy`` put on which node, whether it was verified, and
how long each task took there.

One JSON file per deployment under ``StoreLayout.deployments``, rewritten (by rename) after every
batch, so a deployment that is killed half-way still shows what it did.  Two readers: the production
gate (was the tested snapshot verified on every node a run tested, on the same cluster profile?) and
the outage plan (how long does each task take per node?).  Written by ``hpcos.deploy``; kept here so
the gate reads them without importing anything above the repository layer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hpcos.core.files import write_text_atomically
from hpcos.core.store_files import BadStoreFile, dataclass_from, move_aside, read_json
from hpcos.core.store_layout import StoreLayout

# The tasks of the procedure, in order; per node, each has a duration in seconds once it ran.  The
# first ones run while the node is still in service (its jobs go on); the rest are time out of service.
TASKS = ("repo_file", "download", "drain", "distro_sync", "reboot", "verify", "resume")
# ``jobs`` (rolling updates only): from Slurm's reboot request until the node's running jobs ended.
IN_SERVICE_TASKS = ("repo_file", "download", "jobs")
ROLLING_TASKS = ("repo_file", "download", "jobs", "reboot", "verify", "resume")


@dataclass
class NodeDeployment:
    node: str
    verified: bool = False
    # Why the node was left drained (one line), empty when verified.
    reason: str = ""
    rebooted: bool = False
    kernel: str = ""  # the running kernel found by the verify task
    durations: dict[str, float] = field(default_factory=dict)  # task -> seconds
    # Not touched at all: the rollout stopped (canary or failure budget) before the node's batch.
    skipped: bool = False

    @property
    def in_service_seconds(self) -> float:
        """Work done while the node still ran jobs (the pinned .repo, the packages downloaded)."""
        return round(sum(v for k, v in self.durations.items() if k in IN_SERVICE_TASKS), 3)

    @property
    def out_of_service_seconds(self) -> float:
        """From the drain (waiting for running jobs included) until the node is back in service."""
        return round(sum(v for k, v in self.durations.items() if k not in IN_SERVICE_TASKS), 3)


@dataclass
class DeploymentRecord:
    deploy_id: str
    environment: str
    snapshot: str
    cluster: str  # the profile's name
    profile_sha256: str  # the profile file's content, so a renamed or edited profile is told apart
    started: str
    batch_size: int
    user: str = ""
    finished: str = ""  # empty while the deployment runs (or when it was killed)
    # Why the rollout stopped before its last batch (the canary failed, the failure budget was spent).
    stopped: str = ""
    rollback: str = ""  # the command that puts the touched nodes back on the snapshot they had
    mode: str = "batches"  # "batches" (drained by hpcos) or "rolling" (Slurm's reboot machinery)
    nodes: dict[str, NodeDeployment] = field(default_factory=dict)

    @property
    def verified_nodes(self) -> list[str]:
        return sorted(n for n, d in self.nodes.items() if d.verified)

    @property
    def failed_nodes(self) -> list[str]:
        return sorted(n for n, d in self.nodes.items() if not d.verified)

    @property
    def skipped_nodes(self) -> list[str]:
        return sorted(n for n, d in self.nodes.items() if d.skipped)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict, where: str = "deployment record") -> DeploymentRecord:
        """A record read back from the store, validated field by field (``BadStoreFile`` when not one)."""
        record = dataclass_from(cls, data, where)
        record.nodes = {
            name: dataclass_from(NodeDeployment, node, where) for name, node in record.nodes.items()
        }
        return record


def _path(layout: StoreLayout, deploy_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in deploy_id)
    return layout.deployments / f"{safe}.json"


def write(layout: StoreLayout, record: DeploymentRecord) -> Path:
    layout.deployments.mkdir(parents=True, exist_ok=True)
    path = _path(layout, record.deploy_id)
    write_text_atomically(path, record.to_json())
    return path


def records(layout: StoreLayout) -> list[DeploymentRecord]:
    """Every deployment recorded, oldest first."""
    if not layout.deployments.is_dir():
        return []
    found = []
    for path in layout.deployments.glob("*.json"):
        try:
            found.append(
                DeploymentRecord.from_dict(read_json(path, what="deployment record"), str(path))
            )
        except BadStoreFile as exc:
            move_aside(path, layout.quarantine, f"deployment records: {exc}")
        except FileNotFoundError:
            continue
    return sorted(found, key=lambda r: (r.started, r.deploy_id))


def node_states(
    layout: StoreLayout, cluster: str, profile_sha256: str, before: datetime | None = None
) -> dict[str, tuple[str, bool]]:
    """Per node of this cluster profile: the snapshot its latest deployment (finished ``before``, when
    given) targeted and whether it was verified.  A later deployment to a node replaces what an earlier
    one proved about it."""
    state: dict[str, tuple[str, bool]] = {}
    for record in records(layout):
        if record.cluster != cluster or record.profile_sha256 != profile_sha256:
            continue
        if before is not None and (not record.finished or parse_time(record.finished) > before):
            continue
        for name, node in record.nodes.items():
            state[name] = (record.snapshot, node.verified)
    return state


def parse_time(text: str) -> datetime:
    """An ISO 8601 time as written here and by the harness; naive times are taken as UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
