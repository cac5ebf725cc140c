"""``hpcos repo publish OVERLAY``: freeze an overlay's working repositories into a snapshot.

``hpcos build`` keeps changing ``StoreLayout.overlay_repo(overlay, target)``; promotion must only
ever see a finished, immutable copy, so publish hard-links the working RPMs (through the content
store) into a new snapshot with its own metadata and moves the overlay's ``published`` pointer.
"""

from __future__ import annotations

import logging
from pathlib import Path

from filelock import FileLock

from hpcos.core import runner
from hpcos.core.errors import UserError
from hpcos.core.files import file_digest
from hpcos.core.store_layout import StoreLayout
from hpcos.repo import repodata, retention
from hpcos.repo.content_store import ContentStore
from hpcos.repo.environments import Environments
from hpcos.repo.locking import store_lock
from hpcos.repo.snapshots import Snapshot, SnapshotStore
from hpcos.site.specs import SpecSet

log = logging.getLogger("hpcos.repo")
LOCK_TIMEOUT = 1800
DIGEST_TIMEOUT = 120


def overlay_entry(overlay: str, target: str) -> str:
    return f"{overlay}-{target}"


def publish(spec_set: SpecSet, layout: StoreLayout, overlay: str, reason: str = "", wait: bool = True) -> Snapshot:
    if overlay not in spec_set.site.overlays:
        raise UserError(f"unknown overlay {overlay!r}; expected one of: {', '.join(sorted(spec_set.site.overlays))}")
    working = {t: layout.overlay_repo(overlay, t) for t in spec_set.site.targets}
    working = {t: path for t, path in working.items() if any(path.rglob("*.rpm"))}
    if not working:
        raise UserError(f"overlay {overlay!r} has no built packages yet under {layout.root / 'overlays' / overlay} "
                        f"(run `hpcos build PKG --target T` first)")
    store = SnapshotStore(layout.snapshots)
    store.clean_leftovers()
    content = ContentStore(layout.content)
    staging = store.stage(overlay)
    layout.locks.mkdir(parents=True, exist_ok=True)
    try:
        for target, source in sorted(working.items()):
            entry = staging.new_entry(overlay_entry(overlay, target))
            # The build's own lock: no RPM is half-copied into the working repository while it is frozen.
            with FileLock(str(layout.overlay_repo_lock(overlay, target)), timeout=LOCK_TIMEOUT):
                _freeze(source, entry / "Packages", content)
            repodata.create(entry)
        envs = Environments(layout)
        pointer = envs.published(overlay)
        with store_lock(layout, f"repo publish {overlay}", wait=wait):
            envs.clean_leftovers()
            snapshot = staging.commit(overlay=overlay)
            pointer.switch(snapshot.id, "publish", reason=reason or f"published {', '.join(sorted(working))}")
            retention.apply(spec_set, layout)
    except BaseException:
        staging.drop()
        raise
    log.info("published %s -> %s", overlay, snapshot.id)
    return snapshot


def _freeze(source: Path, packages_dir: Path, content: ContentStore) -> None:
    packages_dir.mkdir()
    seen: set[str] = set()
    for rpm in sorted(source.rglob("*.rpm")):
        if rpm.name.endswith(".src.rpm") or rpm.name.startswith(".") or rpm.name in seen:
            continue
        seen.add(rpm.name)
        _check_digests(rpm)
        content.link_into(rpm, file_digest(rpm), packages_dir / rpm.name)


def _check_digests(path: Path) -> None:
    """``rpm -K --nosignature``: a truncated or altered package never enters a snapshot."""
    done = runner.run(["rpm", "-K", "--nosignature", str(path)], timeout=DIGEST_TIMEOUT)
    if done.exit_code != 0:
        said = (done.stdout + done.stderr).strip().splitlines()
        raise UserError(f"{path}: digests do not verify (rpm -K: {said[-1] if said else done.exit_code}); "
                        f"rebuild it (hpcos build) before publishing")
