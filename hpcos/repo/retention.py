"""Keep the last N snapshots (``site.store.keep_snapshots``); never delete one still needed.

Needed: every pointer's current snapshot and the one a rollback would return to, and every snapshot
whose directories a kept snapshot links to.  Content no remaining snapshot links to goes too.
Runs under the store lock (callers hold it).
"""

from __future__ import annotations

from hpcos.core.store_layout import StoreLayout
from hpcos.repo.environments import Environments
from hpcos.repo.snapshots import SnapshotStore
from hpcos.rpms.content_store import ContentStore
from hpcos.site.specs import SpecSet


def needed_by_pointers(layout: StoreLayout) -> set[str]:
    needed = set()
    for pointer in Environments(layout).all_pointers():
        needed.update(s for s in (pointer.current(), pointer.previous()) if s)
    return needed


def apply(spec_set: SpecSet, layout: StoreLayout, sweep_content: bool = False) -> list[str]:
    """Delete what retention allows; returns the deleted snapshot ids.

    Content is swept when a snapshot went, or when asked (sync: it also removes partial copies a
    killed run left).  Sweeping stats every stored RPM, so promotions only pay for it when they
    free something -- and always after their pointer switch.
    """
    store = SnapshotStore(layout.snapshots)
    snapshots = store.all()
    by_id = {s.id: s for s in snapshots}
    keep = {s.id for s in snapshots[-spec_set.site.store.keep_snapshots :]} | needed_by_pointers(
        layout
    )
    pending = list(keep)
    while pending:
        snapshot = by_id.get(pending.pop())
        for ref in snapshot.references if snapshot else ():
            if ref not in keep:
                keep.add(ref)
                pending.append(ref)
    deleted = [s.id for s in snapshots if s.id not in keep]
    for snapshot_id in deleted:
        store.delete(snapshot_id)
    if deleted or sweep_content:
        ContentStore(layout.content).collect_garbage()
    return deleted
