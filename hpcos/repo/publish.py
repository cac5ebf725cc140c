"""``hpcos repo publish OVERLAY``: freeze an overlay's working repositories into a snapshot.

``hpcos build`` keeps changing ``StoreLayout.overlay_repo(overlay, target)``; promotion must only
ever see a finished, immutable copy, so publish hard-links the working RPMs (through the content
store) into a new snapshot with its own metadata and moves the overlay's ``published`` pointer.

Builds are immutable: an RPM whose file name (N-V-R.A) any snapshot already holds with other bytes is
refused, since nodes that installed the first would never see the second.  With a site key
(``site.yaml`` ``signing``) every RPM must be validly signed by it, and each entry's metadata gets
``repomd.xml.asc``.
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
from hpcos.repo.environments import Environments
from hpcos.repo.locking import store_lock
from hpcos.repo.snapshots import Snapshot, SnapshotStore
from hpcos.rpms import signing
from hpcos.rpms.content_store import ContentStore, held_with_other_content
from hpcos.site.specs import SpecSet

log = logging.getLogger("hpcos.repo")
LOCK_TIMEOUT = 1800
DIGEST_TIMEOUT = 120


def publish(
    spec_set: SpecSet, layout: StoreLayout, overlay: str, reason: str = "", wait: bool = True
) -> Snapshot:
    if overlay not in spec_set.site.overlays:
        raise UserError(
            f"unknown overlay {overlay!r}; expected one of: {', '.join(sorted(spec_set.site.overlays))}"
        )
    working = {t: layout.overlay_repo(overlay, t) for t in spec_set.site.targets}
    working = {t: path for t, path in working.items() if any(path.rglob("*.rpm"))}
    if not working:
        raise UserError(
            f"overlay {overlay!r} has no built packages yet under {layout.root / 'overlays' / overlay} "
            f"(run `hpcos build PKG --target T` first)"
        )
    store = SnapshotStore(layout.snapshots)
    store.clean_leftovers()
    signer = signing.Signer.from_site(spec_set.site)
    _check_immutable_and_signed(spec_set, layout, working, signer)
    content = ContentStore(layout.content)
    staging = store.stage(overlay)
    layout.locks.mkdir(parents=True, exist_ok=True)
    try:
        for target, source in sorted(working.items()):
            entry = staging.new_entry(layout.overlay_entry(overlay, target))
            # The build's own lock: no RPM is half-copied into the working repository while it is frozen.
            with FileLock(str(layout.overlay_repo_lock(overlay, target)), timeout=LOCK_TIMEOUT):
                _freeze(source, entry / "Packages", content)
            repodata.create(entry)
            if signer:
                signer.sign_metadata(entry, layout.root / "logs" / "publish-signing.log")
        envs = Environments(layout)
        pointer = envs.published(overlay)
        with store_lock(layout, f"repo publish {overlay}", wait=wait):
            envs.clean_leftovers()
            snapshot = staging.commit(overlay=overlay)
            pointer.switch(
                snapshot.id, "publish", reason=reason or f"published {', '.join(sorted(working))}"
            )
            retention.apply(spec_set, layout)
    except BaseException:
        staging.drop()
        raise
    log.info("published %s -> %s", overlay, snapshot.id)
    return snapshot


def _check_immutable_and_signed(
    spec_set: SpecSet, layout: StoreLayout, working: dict[str, Path], signer: signing.Signer | None
) -> None:
    """Before anything is staged: no RPM may take a name a snapshot holds with other bytes, and with
    a site key every RPM must carry a valid signature by it (an unsigned or tampered one is refused)."""
    rpms = sorted(
        p
        for source in working.values()
        for p in source.rglob("*.rpm")
        if not p.name.endswith(".src.rpm")
    )
    if signer:
        # First: a tampered package is refused as such, whatever its name.
        log_file = layout.root / "logs" / "publish-signing.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        key = signing.publish_public_key(signer, layout, spec_set.site.name, log_file)
        signing.refuse_unsigned(
            signing.verify(rpms, key, layout.root / "tmp", log_file),
            f"refusing to publish; signed by {signer.key} expected",
        )
    clashes = held_with_other_content(layout, {p.name: file_digest(p) for p in rpms})
    if clashes:
        raise UserError(
            f"refusing to publish a different build under an existing name: {', '.join(clashes)}; "
            "rebuild it (hpcos build gives a new build a new release) instead of replacing it"
        )


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
        raise UserError(
            f"{path}: digests do not verify (rpm -K: {said[-1] if said else done.exit_code}); "
            f"rebuild it (hpcos build) before publishing"
        )
