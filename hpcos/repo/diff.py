"""``hpcos repo diff A B``: NEVRAs added, removed and updated per repository between two snapshots.

A and B are environment names or snapshot ids.  Package lists come from each repository's own
primary metadata (repodata.read_packages), so a diff never opens an RPM.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from hpcos.core.errors import UserError
from hpcos.core.store_layout import StoreLayout
from hpcos.repo import repodata
from hpcos.repo.environments import Environments
from hpcos.repo.snapshots import Snapshot, SnapshotStore


@dataclass
class RepoDiff:
    added: list[str] = field(default_factory=list)  # NEVRAs
    removed: list[str] = field(default_factory=list)
    updated: list[tuple[str, str, str]] = field(
        default_factory=list
    )  # (name.arch, old EVRs, new EVRs)
    status: str = "changed"  # or "added" / "removed": the whole repository

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.updated)


def resolve(layout: StoreLayout, name: str) -> Snapshot:
    """An environment (or published overlay) name, else a snapshot id."""
    store = SnapshotStore(layout.snapshots)
    current = Environments(layout).environment(name).current()
    if current is None and not store.exists(name):
        raise UserError(
            f"{name!r} is neither an environment with a snapshot nor a snapshot id "
            f"(see `hpcos repo status`)"
        )
    return store.get(current or name)


def diff_packages(old: list[repodata.PackageRecord], new: list[repodata.PackageRecord]) -> RepoDiff:
    old_by = defaultdict(set)
    new_by = defaultdict(set)
    for p in old:
        old_by[f"{p.name}.{p.arch}"].add(p.evr)
    for p in new:
        new_by[f"{p.name}.{p.arch}"].add(p.evr)
    result = RepoDiff()
    for key in sorted(old_by.keys() | new_by.keys()):
        gone = old_by[key] - new_by[key]
        came = new_by[key] - old_by[key]
        name, arch = key.rsplit(".", 1)
        if gone and came:
            result.updated.append((key, ", ".join(sorted(gone)), ", ".join(sorted(came))))
        else:
            result.removed += [f"{name}-{evr}.{arch}" for evr in sorted(gone)]
            result.added += [f"{name}-{evr}.{arch}" for evr in sorted(came)]
    return result


def diff(a: Snapshot, b: Snapshot) -> dict[str, RepoDiff]:
    """Per repository entry, what changed from ``a`` to ``b``; unchanged repositories are left out."""
    out: dict[str, RepoDiff] = {}
    for entry in sorted(a.entries.keys() | b.entries.keys()):
        if a.entries.get(entry) == b.entries.get(entry):
            continue  # the very same immutable directory
        old = repodata.read_packages(a.entry_dir(entry)) if entry in a.entries else []
        new = repodata.read_packages(b.entry_dir(entry)) if entry in b.entries else []
        result = diff_packages(old, new)
        if entry not in a.entries:
            result.status = "added"
        elif entry not in b.entries:
            result.status = "removed"
        if not result.empty or result.status != "changed":
            out[entry] = result
    return out
