"""``hpcos repo sync``: mirror upstream into a new snapshot and move the mirror environment (``daily``) to it.

The download and metadata work happens outside the store lock in a staging directory, so a long
sync never holds up a security fast path; only the final rename and pointer switch take the lock.
A partial sync (``--mirror``/``--target``) links the other repositories from the current snapshot.
"""

from __future__ import annotations

import logging

from hpcos.core.errors import UserError
from hpcos.core.store_layout import StoreLayout
from hpcos.repo import mirror, retention
from hpcos.repo.environments import Environments
from hpcos.repo.locking import store_lock
from hpcos.repo.snapshots import Snapshot, SnapshotStore
from hpcos.rpms.content_store import ContentStore
from hpcos.site.specs import SpecSet

log = logging.getLogger("hpcos.repo")


def mirror_environment(spec_set: SpecSet) -> str:
    """The environment that sync moves: the one promoted from nowhere."""
    roots = [name for name, env in spec_set.site.environments.items() if env.source is None]
    if len(roots) != 1:
        raise UserError(
            f"site.yaml: environments: expected exactly one environment without a source "
            f"(the daily mirror); found {roots or 'none'}"
        )
    return roots[0]


def sync(
    spec_set: SpecSet,
    layout: StoreLayout,
    mirrors: list[str] | None = None,
    targets: list[str] | None = None,
    wait: bool = True,
) -> Snapshot:
    jobs = mirror.plan(spec_set, mirrors, targets)
    store = SnapshotStore(layout.snapshots)
    envs = Environments(layout)
    pointer = envs.environment(mirror_environment(spec_set))
    store.clean_leftovers()
    before = pointer.current()
    base = store.get(before) if before and store.exists(before) else None
    staging = store.stage("sync")
    try:
        for job in jobs:
            previous_entry = (
                base.entry_dir(job.entry) if base and job.entry in base.entries else None
            )
            mirror.sync_entry(
                job,
                layout,
                ContentStore(layout.content),
                staging.new_entry(job.entry),
                previous_entry,
            )
        with store_lock(layout, f"repo sync -> {pointer.name}", wait=wait):
            envs.clean_leftovers()
            current = pointer.current()
            if current:
                # Whatever the pointer holds now (another sync may have committed meanwhile).
                latest = store.get(current)
                for name in sorted(set(latest.entries) - set(staging.entries)):
                    staging.link_entry(name, latest)
            snapshot = staging.commit(
                mirrors=sorted({j.mirror for j in jobs}), targets=sorted({j.target for j in jobs})
            )
            pointer.switch(snapshot.id, "sync", reason=f"synced {', '.join(j.entry for j in jobs)}")
            retention.apply(spec_set, layout, sweep_content=True)
    except BaseException:
        staging.drop()
        raise
    log.info("%s -> %s", pointer.name, snapshot.id)
    return snapshot
