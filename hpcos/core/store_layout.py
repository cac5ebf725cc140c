"""Where everything lives under the store root (``--store``, ``$HPCOS_STORE`` or ``site.yaml`` store.root).

One place names every path, so the build side, the repository side and the harness agree without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hpcos.core.store_files import BadStoreFile, refuse_symlinked

# The folders hpcos writes under the root; none may be a symbolic link (``check``).
FOLDERS = (
    "content",
    "snapshots",
    "environments",
    "environments/published",
    "nightly",
    "deployments",
    "tickets",
    "tickets/queue",
    "inventory",
    "outages",
    "config",
    "locks",
    "overlays",
    "builds",
    "quarantine",
    "downloads",
    "logs",
    "keys",
    "tmp",
)
# Kernel file systems: a store there is a typo, and writing into them can do harm.
_NOT_A_STORE = (Path("/proc"), Path("/sys"), Path("/dev"))


@dataclass(frozen=True)
class StoreLayout:
    root: Path

    @property
    def content(self) -> Path:
        """Content-addressed RPMs (by sha256); snapshots hard-link into it."""
        return self.root / "content"

    @property
    def snapshots(self) -> Path:
        """Immutable snapshots: ``snapshots/<id>/<repo>/`` (RPMs + repodata)."""
        return self.root / "snapshots"

    @property
    def environments(self) -> Path:
        """Environment pointers: ``environments/<env>`` symlinks to a snapshot, plus their records."""
        return self.root / "environments"

    def overlay_repo(self, overlay: str, target: str) -> Path:
        """The working overlay repository that ``hpcos build`` publishes into (RPMs + repodata)."""
        return self.root / "overlays" / overlay / target

    @staticmethod
    def overlay_entry(overlay: str, target: str) -> str:
        """The entry an overlay's repository for one target has in a snapshot: ``snapshots/<id>/<entry>/``."""
        return f"{overlay}-{target}"

    def overlay_repo_lock(self, overlay: str, target: str) -> Path:
        """The lock a build holds while it publishes into an overlay repository and ``repo publish``
        holds while it freezes it: a snapshot never takes an RPM that is still being copied."""
        return self.locks / f"overlay-{overlay}-{target}.lock"

    def build_dir(self, package: str, target: str) -> Path:
        """Per-build work areas and logs: ``builds/<package>/<target>/<build id>/``."""
        return self.root / "builds" / package / target

    @property
    def nightly_records(self) -> Path:
        """One record per nightly run: which testing snapshot it tested and whether it passed."""
        return self.root / "nightly"

    @property
    def run_signing_key(self) -> Path:
        """The run-signing HMAC key (mode 0600, in a 0700 directory): the harness signs the nightly runs it
        records with it and the production gate trusts only runs it verifies."""
        return self.root / "keys" / "nightly-hmac.key"

    @property
    def node_service(self) -> Path:
        """Nodes taken out of service (and back) with a reason, one JSON line each: the gate does not
        require a node that was out of service when a run started."""
        return self.root / "nodes" / "service.jsonl"

    @property
    def deployments(self) -> Path:
        """One record per ``hpcos deploy``: the snapshot, each node's verdict and every task's duration."""
        return self.root / "deployments"

    @property
    def ticket_queue(self) -> Path:
        """Tickets that could not be sent yet (tracker down); flushed on the next run."""
        return self.root / "tickets" / "queue"

    @property
    def ticket_queue_lock(self) -> Path:
        """The lock the ticket queue is changed under (and a backup copies it under)."""
        return self.ticket_queue / ".lock"

    @property
    def ticket_state(self) -> Path:
        """What hpcos remembers between runs about tickets: passing streaks, comments per run, caps."""
        return self.root / "tickets" / "state.sqlite"

    @property
    def results_db(self) -> Path:
        """Every measurement of every run (SQLite), for baselines and trends."""
        return self.root / "results.sqlite"

    @property
    def inventories(self) -> Path:
        """What ``hpcos inventory collect`` measured, one JSON per cluster profile."""
        return self.root / "inventory"

    @property
    def outages(self) -> Path:
        """One directory per outage plan: ``outages/<testing snapshot>/plan.json`` and its actuals."""
        return self.root / "outages"

    @property
    def config_repos(self) -> Path:
        """Configuration repositories: a bare mirror per repository and its validation records."""
        return self.root / "config"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def quarantine(self) -> Path:
        """Store files that failed validation, moved aside (``hpcos.core.store_files.move_aside``)."""
        return self.root / "quarantine"

    def check(self) -> StoreLayout:
        """Refuse a root that cannot be a store and store folders that are symbolic links (a link would
        send writes, and the content sweep's deletions, outside the store)."""
        resolved = self.root.resolve()
        if any(resolved == bad or bad in resolved.parents for bad in _NOT_A_STORE):
            raise BadStoreFile(
                f"store {self.root}: {resolved} is a kernel file system, not a place for a store"
            )
        if self.root.exists() and not self.root.is_dir():
            raise BadStoreFile(f"store {self.root}: not a directory")
        for folder in FOLDERS:
            refuse_symlinked(self.root / folder)
        return self
