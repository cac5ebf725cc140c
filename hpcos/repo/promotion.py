"""Promotion: ``daily -> testing`` composes, ``testing -> production`` is gated, fast path, rollback.

- Promoting from the mirror environment composes a new snapshot: the mirror snapshot's repositories
  plus each overlay's latest published repositories, one symlink per repository.
- Promoting further moves the destination pointer to the very snapshot the source points at, so
  production runs exactly what the nightly tests ran.  A ``gate: nightly`` destination refuses unless
  a nightly run the harness recorded on that snapshot proves it (``hpcos.repo.gate``: the site's test
  cluster, every node of it in service deployed, verified and tested, the whole required suite
  passed, nothing failed, valid results); ``--force --reason`` overrides, recorded with who and why.
- The fast path replaces one overlay's repositories in every promoted environment at once.
- Rollback returns a pointer to where it pointed before its last change.

All of it runs under the store lock, so two promotions at once serialise.
"""

from __future__ import annotations

import logging

from hpcos.core.errors import UserError
from hpcos.core.store_layout import StoreLayout
from hpcos.repo import gate, repodata, retention
from hpcos.repo.environments import Environments, Pointer, Record, switch_together
from hpcos.repo.locking import store_lock
from hpcos.repo.snapshots import Snapshot, SnapshotStore
from hpcos.repo.sync import mirror_environment
from hpcos.site.specs import SpecSet

log = logging.getLogger("hpcos.repo")


class GateClosed(UserError):
    pass


def _environment(spec_set: SpecSet, name: str) -> None:
    if name not in spec_set.site.environments:
        raise UserError(
            f"unknown environment {name!r}; expected one of: "
            f"{', '.join(spec_set.site.environments)}"
        )


def _current(pointer: Pointer, store: SnapshotStore) -> Snapshot:
    snapshot_id = pointer.current()
    if snapshot_id is None:
        raise UserError(f"environment {pointer.name!r} points at nothing yet")
    return store.get(snapshot_id)


def _compose(
    store: SnapshotStore, envs: Environments, base: Snapshot, kind: str, overlays: list[str]
) -> Snapshot:
    """A new snapshot: ``base``'s repositories with ``overlays``' published repositories put on top."""
    layers = [base]
    for overlay in overlays:
        published = envs.published(overlay).current()
        if published:
            layers.append(store.get(published))
    staging = store.stage(kind)
    try:
        winners: dict[str, Snapshot] = {}
        for layer in layers:
            for name in layer.entries:
                winners[name] = layer
        for name, layer in sorted(winners.items()):
            staging.link_entry(name, layer)
        return staging.commit(layers=[s.id for s in layers])
    except BaseException:
        staging.drop()
        raise


def promote(
    spec_set: SpecSet,
    layout: StoreLayout,
    source: str,
    dest: str,
    force: bool = False,
    reason: str = "",
    wait: bool = True,
    site_profile: gate.SiteProfile | None = None,
) -> Record:
    """``site_profile``: the test cluster's profile (site.yaml ``harness.profile``) as the caller
    resolved it; a gated promotion refuses without it."""
    _environment(spec_set, source)
    _environment(spec_set, dest)
    expected = spec_set.site.environments[dest].source
    if expected != source:
        raise UserError(
            f"{dest!r} is promoted from {expected!r}, not from {source!r}"
            if expected
            else f"{dest!r} is the mirror environment: `hpcos repo sync` moves it"
        )
    if force and not reason.strip():
        raise UserError(
            "--force needs --reason TEXT: an override of the gate is recorded with its reason"
        )
    store = SnapshotStore(layout.snapshots)
    envs = Environments(layout)
    with store_lock(layout, f"repo promote {source} {dest}", wait=wait):
        store.clean_leftovers()
        envs.clean_leftovers()
        snapshot = _current(envs.environment(source), store)
        forced = False
        if spec_set.site.environments[dest].gate == "nightly":
            dest_id = envs.environment(dest).current()
            judged = gate.judge(
                spec_set, layout, snapshot, store.get(dest_id) if dest_id else None, site_profile
            )
            if judged.refusal:
                if not force:
                    raise GateClosed(
                        f"refusing to promote {source} to {dest}: {judged.refusal}; "
                        f"override with --force --reason TEXT"
                    )
                forced = True
                reason = f"{reason} [gate overridden: {judged.refusal}]"
            else:
                log.info("gate open: %s", judged.accepted)
                reason = f"{reason} [gate: {judged.accepted}]".strip()
        if source == mirror_environment(spec_set):
            snapshot = _compose(store, envs, snapshot, dest, sorted(spec_set.site.overlays))
        record = envs.environment(dest).switch(snapshot.id, "promote", reason=reason, forced=forced)
        retention.apply(spec_set, layout)
    log.info("%s -> %s (was %s)", dest, snapshot.id, record.previous or "nothing")
    return record


def fastpath(
    spec_set: SpecSet, layout: StoreLayout, overlay: str, reason: str, wait: bool = True
) -> list[Record]:
    """Put ``overlay``'s latest published repositories into every promoted environment at once."""
    if overlay not in spec_set.site.overlays:
        raise UserError(
            f"unknown overlay {overlay!r}; expected one of: {', '.join(sorted(spec_set.site.overlays))}"
        )
    if not spec_set.site.overlays[overlay].fastpath:
        raise UserError(
            f"overlay {overlay!r} is not allowed the fast path (site.yaml: overlays.{overlay}.fastpath)"
        )
    if not reason.strip():
        raise UserError("fastpath needs --reason TEXT (e.g. the CVE it fixes)")
    store = SnapshotStore(layout.snapshots)
    envs = Environments(layout)
    promoted = [name for name, env in spec_set.site.environments.items() if env.source is not None]
    with store_lock(layout, f"repo fastpath {overlay}", wait=wait):
        store.clean_leftovers()
        envs.clean_leftovers()
        published_id = envs.published(overlay).current()
        if published_id is None:
            raise UserError(
                f"overlay {overlay!r} has not been published yet (hpcos repo publish {overlay})"
            )
        published = store.get(published_id)
        bases = {name: _current(envs.environment(name), store) for name in promoted}
        if all(_carries(base, published) for base in bases.values()):
            # A build that failed publishes nothing: the fast path would move the pointers (and send the
            # nodes through an outage) for the very packages they already have.
            raise UserError(
                f"nothing new in {overlay}: {', '.join(promoted)} already carry its last published "
                f"build ({published.id}); did `hpcos build` and `hpcos repo publish {overlay}` succeed?"
            )
        # Every environment's new snapshot is committed first; then all pointers move as one journaled
        # transaction, so a kill never leaves testing and production on different kernels for good.
        moves = []
        for name in promoted:
            moves.append(
                (envs.environment(name), _compose(store, envs, bases[name], name, [overlay]).id)
            )
        records = switch_together(moves, "fastpath", reason=f"{overlay}: {reason}")
        for record, (pointer, _) in zip(records, moves, strict=True):
            log.info("%s -> %s (%s fast path)", pointer.name, record.snapshot, overlay)
        retention.apply(spec_set, layout)
    return records


def _carries(snapshot: Snapshot, published: Snapshot) -> bool:
    """Whether ``snapshot`` has exactly the packages of every repository of ``published`` (the same
    directories, or a republished copy with the same NEVRAs)."""
    for name, holder in published.entries.items():
        if snapshot.entries.get(name) == holder:
            continue
        if name not in snapshot.entries or _nevras(snapshot, name) != _nevras(published, name):
            return False
    return True


def _nevras(snapshot: Snapshot, entry: str) -> set[tuple]:
    return {
        (p.name, p.epoch, p.version, p.release, p.arch)
        for p in repodata.read_packages(snapshot.entry_dir(entry))
    }


def rollback(
    spec_set: SpecSet, layout: StoreLayout, env: str, reason: str = "", wait: bool = True
) -> Record:
    _environment(spec_set, env)
    envs = Environments(layout)
    with store_lock(layout, f"repo rollback {env}", wait=wait):
        completed = envs.clean_leftovers()
        pointer = envs.environment(env)
        finished = [r for p, r in completed if p.path == pointer.path and r.action == "rollback"]
        if finished:
            # The killed rollback this command repeats had switched the pointer already: it is done now,
            # and rolling back once more would go a step further than the operator asked.
            log.info("%s -> %s (the interrupted rollback, completed)", env, finished[-1].snapshot)
            return finished[-1]
        previous = pointer.previous()
        if previous is None:
            raise UserError(f"environment {env!r} has no previous snapshot to roll back to")
        SnapshotStore(layout.snapshots).get(previous)
        record = pointer.switch(previous, "rollback", reason=reason)
    log.info("%s -> %s (rolled back from %s)", env, previous, record.previous)
    return record
