"""What puts a node on an environment: the dnf ``.repo`` file and the kickstart ``repo`` lines.

Every repository of the snapshot the environment's pointer names -- each mirror and each overlay,
for the node's target -- becomes one section.  Baseurls follow docs/repositories.md ("Serving the
environments"): ``<environments url>/<env>/<repository>/`` follows the pointer, so a node picks up
the next promotion with its next ``dnf`` run; ``<snapshots url>/<id>/<repository>/`` (pinned) keeps a
node on exactly the snapshot it was given, which is what ``hpcos deploy`` writes, so what a node
runs is what was verified and tested even if the pointer moves during the deployment.

A repository whose metadata ``hpcos repo publish`` signed (``repodata/repomd.xml.asc``) gets
``repo_gpgcheck=1`` when it has a key to check it with: the node trusts no package list the site did
not sign, not only no package.

Overlays get a better (lower) dnf ``priority`` than the mirrors: the mirror already leaves the
overlaid packages out, and the priority keeps the site's build winning even when an upstream
repository outside hpcos (or an older snapshot of the mirror) still carries the package.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpcos.core.errors import UserError
from hpcos.core.store_layout import StoreLayout
from hpcos.repo.environments import Environments
from hpcos.repo.snapshots import Snapshot, SnapshotStore
from hpcos.site.specs import SpecSet

OVERLAY_PRIORITY = 10
MIRROR_PRIORITY = 50  # dnf's default is 99: both win over a repository the node has from elsewhere
REPO_PREFIX = "hpcos"


@dataclass(frozen=True)
class RepoSection:
    repoid: str
    name: str
    baseurl: str
    priority: int
    gpgcheck: bool
    gpgkey: str | None
    # The repository's metadata is signed (``repodata/repomd.xml.asc``, written by ``hpcos repo publish``
    # with a site key): dnf verifies it with the section's key before trusting any package list.
    repo_gpgcheck: bool = False


def _ini_value(value: str) -> str:
    # A value from site.yaml or the command line must not start a new line (a new key or section).
    if any(c in value for c in "\r\n\0"):
        raise UserError(f"client-config: {value!r} contains a line break")
    return value


def snapshot_for(layout: StoreLayout, env: str, snapshot_id: str | None = None) -> Snapshot:
    store = SnapshotStore(layout.snapshots)
    if snapshot_id:
        return store.get(snapshot_id)
    current = Environments(layout).environment(env).current()
    if current is None:
        raise UserError(f"environment {env!r} points at nothing yet (store {layout.root})")
    return store.get(current)


def sections(
    spec_set: SpecSet,
    layout: StoreLayout,
    env: str,
    *,
    target: str | None = None,
    environments_url: str | None = None,
    snapshots_url: str | None = None,
    pinned: bool = False,
    snapshot_id: str | None = None,
    gpgcheck: bool = True,
    overlay_gpgkey: str | None = None,
) -> list[RepoSection]:
    """One section per mirror and overlay repository of ``env``'s snapshot for ``target``.

    ``environments_url``/``snapshots_url``: where the web server serves ``environments/`` and
    ``snapshots/`` (default: ``file://`` URLs of the store, for the repository host and tests)."""
    site = spec_set.site
    if env not in site.environments:
        raise UserError(
            f"unknown environment {env!r}; expected one of: {', '.join(site.environments)}"
        )
    if target is None:
        if len(site.targets) != 1:
            raise UserError(
                f"the site has several targets ({', '.join(site.targets)}): say which with --target"
            )
        target = next(iter(site.targets))
    if target not in site.targets:
        raise UserError(f"unknown target {target!r}; expected one of: {', '.join(site.targets)}")
    snapshot = snapshot_for(layout, env, snapshot_id)
    if pinned or snapshot_id:
        base = (snapshots_url or layout.snapshots.resolve().as_uri()).rstrip(
            "/"
        ) + f"/{snapshot.id}"
    else:
        base = (environments_url or layout.environments.resolve().as_uri()).rstrip("/") + f"/{env}"
    found = []
    for kind, names, priority in (
        ("overlay", site.overlays, OVERLAY_PRIORITY),
        ("mirror", site.mirrors, MIRROR_PRIORITY),
    ):
        for name in sorted(names):
            entry = f"{name}-{target}"
            if entry not in snapshot.entries:
                continue
            gpgkey = overlay_gpgkey if kind == "overlay" else site.mirrors[name].gpgkey
            signed = (snapshot.entry_dir(entry) / "repodata" / "repomd.xml.asc").is_file()
            found.append(
                RepoSection(
                    repoid=f"{REPO_PREFIX}-{entry}",
                    name=f"{site.name} {entry} ({env}, {kind})",
                    baseurl=_ini_value(f"{base}/{entry}/"),
                    priority=priority,
                    gpgcheck=gpgcheck,
                    gpgkey=_ini_value(gpgkey) if gpgkey else None,
                    # Without a key to check it with, dnf would refuse the repository outright.
                    repo_gpgcheck=gpgcheck and signed and bool(gpgkey),
                )
            )
    if not found:
        raise UserError(
            f"snapshot {snapshot.id} of {env!r} has no repository for target {target!r}"
        )
    return found


def repo_file(sections: list[RepoSection], header: str = "") -> str:
    """The dnf ``.repo`` file (``/etc/yum.repos.d/hpcos.repo``)."""
    lines = [f"# {line}" for line in header.splitlines()]
    for s in sections:
        lines += [
            "",
            f"[{s.repoid}]",
            f"name={_ini_value(s.name)}",
            f"baseurl={s.baseurl}",
            "enabled=1",
            f"priority={s.priority}",
            f"gpgcheck={int(s.gpgcheck)}",
            f"repo_gpgcheck={int(s.repo_gpgcheck)}",
            # A pointer switch changes repomd.xml under the same URL: never trust a cached copy.
            "metadata_expire=0",
            "skip_if_unavailable=0",
        ]
        if s.gpgkey:
            lines.append(f"gpgkey={s.gpgkey}")
    return "\n".join(lines).lstrip("\n") + "\n"


def kickstart(sections: list[RepoSection]) -> str:
    """Kickstart ``repo`` lines for provisioning (Cobbler, Warewulf, xCAT): ``--cost`` orders them as
    the priorities do, ``--install`` leaves the same repositories configured on the installed node."""
    return "".join(
        f"repo --name={s.repoid} --baseurl={s.baseurl} --cost={s.priority} --install\n"
        for s in sections
    )
