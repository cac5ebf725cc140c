"""``hpcos repo sync|publish|promote|fastpath|rollback|diff|status|client-config|record-run``
(see docs/repositories.md)."""

from __future__ import annotations

import json
import logging
import re
import sys
from dataclasses import asdict
from pathlib import Path

from ClusterShell.NodeSet import NodeSet, NodeSetParseError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hpcos.cli.console import console, emit, stdout_console
from hpcos.cluster.profiles import load_profile
from hpcos.core.errors import UserError
from hpcos.core.files import file_digest, write_text_atomically
from hpcos.core.store_files import BadStoreFile, read_bytes_limited
from hpcos.core.store_layout import StoreLayout
from hpcos.repo import client_config, diff, gate, nightly, out_of_service, promotion, publish, sync
from hpcos.repo.environments import Environments, checked_reason
from hpcos.repo.snapshots import SnapshotStore


def _stdout() -> Console:
    """Results go to stdout; piped into a file or a Jenkins log, tables keep their ids unwrapped."""
    # No markup: snapshot ids, reasons and run ids are user text, and "[/x]" in one must print as itself.
    return stdout_console(soft_wrap=True, width=None if sys.stdout.isatty() else 250)


def register(sub) -> None:
    repo = sub.add_parser(
        "repo", help="mirror, snapshot, promote and roll back the site's repositories"
    )
    actions = repo.add_subparsers(dest="repo_command", metavar="ACTION", required=True)

    def action(name, func, help, locks=True):
        parser = actions.add_parser(name, help=help, description=help)
        if locks:
            parser.add_argument(
                "--no-wait",
                action="store_true",
                help="fail at once if another repository change holds the lock",
            )
        parser.set_defaults(func=func)
        return parser

    p = action(
        "sync",
        sync_command,
        "mirror upstream (minus overlaid packages and excludes) into a new "
        "snapshot and move the daily pointer to it",
    )
    p.add_argument(
        "--mirror", action="append", metavar="NAME", help="only this mirror (repeatable)"
    )
    p.add_argument("--target", action="append", metavar="T", help="only this target (repeatable)")

    p = action(
        "publish",
        publish_command,
        "snapshot an overlay's working repositories so promotions pick them up",
    )
    p.add_argument("overlay")
    p.add_argument("--reason", default="")

    p = action(
        "promote",
        promote_command,
        "promote daily to testing (composes base + overlays) or "
        "testing to production (gated by the nightly run)",
    )
    p.add_argument("source")
    p.add_argument("dest")
    p.add_argument(
        "--force", action="store_true", help="override the nightly gate (needs --reason)"
    )
    p.add_argument("--reason", default="")
    p.add_argument(
        "--with-config",
        action="store_true",
        help="testing -> production: also promote the configuration repositories (hpcos config promote)",
    )

    p = action(
        "fastpath",
        fastpath_command,
        "security fast path: put one overlay's latest published "
        "packages into testing and production at once",
    )
    p.add_argument("overlay")
    p.add_argument("--reason", required=True)
    p.add_argument(
        "--deploy",
        metavar="PROFILE",
        help="then deploy production onto this cluster profile (as "
        "`hpcos deploy production --cluster PROFILE`); without it "
        "the command prints that next command",
    )

    p = action(
        "rollback", rollback_command, "return an environment to the snapshot it pointed at before"
    )
    p.add_argument("env")
    p.add_argument("--reason", default="")

    p = action(
        "diff", diff_command, "NEVRAs added, removed and updated per repository", locks=False
    )
    p.add_argument("a", help="environment or snapshot id")
    p.add_argument("b", help="environment or snapshot id")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = action("status", status_command, "show every environment, or one in detail", locks=False)
    p.add_argument("env", nargs="?")
    p.add_argument("--id", action="store_true", help="print only the snapshot id ENV points at")
    p.add_argument(
        "--json", action="store_true", help="every pointer as one JSON document on stdout"
    )

    p = action(
        "client-config",
        client_config_command,
        "write the dnf .repo file (or kickstart repo lines) that puts a node on an environment",
        locks=False,
    )
    p.add_argument("env")
    p.add_argument("--target", help="the node's target (default: the site's only one)")
    p.add_argument(
        "--url",
        help="where the web server serves the environments, e.g. "
        "https://repo.example.org/hpcos (default: file:// of the store)",
    )
    p.add_argument(
        "--snapshots-url",
        help="where it serves the snapshots, e.g. https://repo.example.org/hpcos-snapshots",
    )
    p.add_argument(
        "--pin", action="store_true", help="point at the snapshot ENV names now, not at the pointer"
    )
    p.add_argument("--gpgkey", help="URL of the key that signs the overlay packages")
    p.add_argument("--no-gpgcheck", action="store_true", help="for unsigned test repositories only")
    p.add_argument(
        "--kickstart", action="store_true", help="kickstart `repo` lines instead of a .repo file"
    )
    p.add_argument("-o", "--output", type=Path, help="write here instead of stdout")

    p = action(
        "record-run",
        record_run_command,
        "add a results file to the nightly records: the file the harness "
        "recorded is confirmed (and gets the config commits), any other is imported and cannot open the "
        "production gate",
        locks=False,
    )
    p.add_argument("results", type=Path)
    p.add_argument(
        "--config-commit",
        action="append",
        default=[],
        metavar="REPO=COMMIT",
        help="the testing commit of a configuration repository the test cluster ran (repeatable)",
    )
    p.add_argument(
        "--config-heads",
        type=Path,
        metavar="FILE",
        help="the same for every repository: the JSON `hpcos config heads -o FILE` wrote before the run",
    )

    p = action(
        "out-of-service",
        out_of_service_command,
        "record nodes of the test cluster as out of service "
        "(with a reason) or back in service; the gate does not require nodes out of service when a run "
        "starts, and names them",
        locks=False,
    )
    p.add_argument(
        "nodes",
        nargs="?",
        metavar="NODESET",
        help="ClusterShell node set (none: list the nodes out)",
    )
    p.add_argument("--reason", default="", help="the fault or ticket (required to take nodes out)")
    p.add_argument("--back", action="store_true", help="the nodes are back in service")


def _change(run):
    """A command that changes the store: ``run(spec_set, layout, args)`` with the site loaded."""

    def command(args) -> int:
        if getattr(args, "reason", None):
            checked_reason(args.reason)  # recorded and shown by `repo status`: one printable line
        run(args.site.specs, args.site.layout, args)
        return 0

    return command


def _layout(args) -> StoreLayout:
    return args.site.layout


sync_command = _change(
    lambda s, layout, a: sync.sync(s, layout, a.mirror, a.target, wait=not a.no_wait)
)
publish_command = _change(
    lambda s, layout, a: publish.publish(s, layout, a.overlay, reason=a.reason, wait=not a.no_wait)
)


def _promote_packages(args) -> int:
    specs = args.site.specs
    gated = (
        args.dest in specs.site.environments
        and specs.site.environments[args.dest].gate == "nightly"
    )
    promotion.promote(
        specs,
        args.site.layout,
        args.source,
        args.dest,
        force=args.force,
        reason=args.reason,
        wait=not args.no_wait,
        site_profile=site_profile(args.site) if gated else None,
    )
    return 0


def promote_command(args) -> int:
    if not args.with_config:
        return _promote_packages(args)
    from hpcos.cli.config import with_config

    # Every configuration check (gate, conflicts, validation) before the packages move; the
    # configuration branches move after them.
    return with_config(args, lambda: _promote_packages(args))


def site_profile(site) -> gate.SiteProfile | None:
    """The test cluster's profile (site.yaml ``harness.profile``) by name and content, resolved as
    ``hpcos test`` resolves it; None (and the gate refuses) when it cannot be read."""
    try:
        argument = site.specs.site.harness.profile
        path = site.profile_path(argument)
        profile = load_profile(path)
        return gate.SiteProfile(
            profile.name, file_digest(path), nodes=profile.nodes, argument=str(argument)
        )
    except (UserError, OSError) as exc:
        logging.getLogger("hpcos.repo").warning("site.yaml harness.profile: %s", exc)
        return None


def fastpath_command(args) -> int:
    """The pointers move (or nothing, when the overlay has nothing new); then production is deployed,
    or the exact command that deploys it is the last line."""
    import shlex

    checked_reason(args.reason)  # recorded and shown: one printable line, as every --reason
    specs = args.site.specs
    promotion.fastpath(specs, args.site.layout, args.overlay, args.reason, wait=not args.no_wait)
    promoted = [name for name, env in specs.site.environments.items() if env.source is not None]
    dest = next(
        (name for name in promoted if specs.site.environments[name].gate == "nightly"), promoted[-1]
    )
    if args.deploy:
        from hpcos.cli.deploy import deploy_cluster

        record = deploy_cluster(args.site, dest, args.deploy)
        return 0 if not record.failed_nodes else 1
    cluster = specs.site.harness.production_profile or "PROFILE"
    logging.getLogger("hpcos.repo").info(
        "next, to put it on the nodes: hpcos deploy %s --cluster %s", dest, shlex.quote(cluster)
    )
    return 0


rollback_command = _change(
    lambda s, layout, a: promotion.rollback(s, layout, a.env, reason=a.reason, wait=not a.no_wait)
)


def client_config_command(args) -> int:
    from hpcos.site.credentials import checked_url

    for option, url in (
        ("--url", args.url),
        ("--snapshots-url", args.snapshots_url),
        ("--gpgkey", args.gpgkey),
    ):
        if url is not None:
            checked_url(url, option, schemes=("http", "https", "file"))
    found = client_config.sections(
        args.site.specs,
        _layout(args),
        args.env,
        target=args.target,
        environments_url=args.url,
        snapshots_url=args.snapshots_url,
        pinned=args.pin,
        gpgcheck=not args.no_gpgcheck,
        overlay_gpgkey=args.gpgkey,
    )
    text = (
        client_config.kickstart(found)
        if args.kickstart
        else client_config.repo_file(
            found,
            header=f"hpcos: environment {args.env} of site {args.site.specs.site.name}; "
            "written by `hpcos repo client-config`",
        )
    )
    if args.output:
        write_text_atomically(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


def record_run_command(args) -> int:
    pairs = [item.partition("=")[::2] for item in args.config_commit]
    if args.config_heads:
        try:
            raw = read_bytes_limited(args.config_heads, what="config heads file", follow=True)
            heads = json.loads(raw.decode("utf-8"))
        except (OSError, ValueError, RecursionError, BadStoreFile) as exc:
            raise UserError(
                f"--config-heads {args.config_heads}: not a JSON file of `hpcos config heads`: "
                f"{exc}"
            ) from None
        pairs += list(heads.items()) if isinstance(heads, dict) else [("", heads)]
    commits = {}
    for name, commit in pairs:
        if (
            not name
            or not isinstance(commit, str)
            or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit)
        ):
            raise UserError(
                f"config commit {name}={commit!r}: expected REPO=COMMIT with a full commit id"
            )
        commits[name] = commit
    record = nightly.record_run(_layout(args), args.results, config_commits=commits)
    how = (
        "recorded by the harness, signature verified"
        if record.from_harness
        else "recorded as imported: it feeds reports and tickets, and cannot open the production gate"
    )
    console.print(
        f"run {record.run_id} on testing snapshot {record.testing_snapshot}: {record.verdict}; {how}",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    return 0


def out_of_service_command(args) -> int:
    checked_reason(args.reason)  # shown by the gate and `repo status`: one printable line
    profile = site_profile(args.site)
    if profile is None:
        raise UserError("site.yaml harness.profile: the test cluster's profile cannot be read")
    layout = _layout(args)
    if args.nodes:
        outside = (
            NodeSet(args.nodes) - NodeSet(profile.nodes) if _nodeset(args.nodes) else NodeSet()
        )
        if outside:
            raise UserError(f"{outside} not in profile {profile.name!r} ({profile.nodes})")
        change = out_of_service.mark(
            layout, profile.name, args.nodes, args.reason, out=not args.back
        )
        console.print(
            f"{change.nodes}: {'out of' if change.out else 'back in'} service on {profile.name} "
            f"since {change.when} ({change.reason or 'no reason given'}, by {change.user})",
            markup=False,
            highlight=False,
        )
        return 0
    out = out_of_service.out_at(layout, profile.name)
    _stdout().print(
        f"out of service on {profile.name}: {out_of_service.describe(out) if out else 'none'}"
    )
    return 0


def _nodeset(text: str) -> bool:
    try:
        NodeSet(text)
    except NodeSetParseError as exc:
        raise UserError(f"node set {text!r}: {exc}") from None
    return True


def diff_command(args) -> int:
    layout = _layout(args)
    a, b = diff.resolve(layout, args.a), diff.resolve(layout, args.b)
    changes = diff.diff(a, b)
    out = _stdout()
    if args.json:
        emit(
            json.dumps(
                {
                    "from": a.id,
                    "to": b.id,
                    "repositories": {k: asdict(v) for k, v in changes.items()},
                },
                indent=2,
                sort_keys=True,
            )
        )
        return 0
    out.print(f"{args.a} ({a.id}) -> {args.b} ({b.id})")
    if not changes:
        out.print("no differences")
    for entry, change in changes.items():
        label = {"added": " (new repository)", "removed": " (repository removed)"}.get(
            change.status, ""
        )
        out.print(Text(entry, style="bold") + Text(label))
        for nevra in change.added:
            out.print(f"  + {nevra}")
        for nevra in change.removed:
            out.print(f"  - {nevra}")
        for key, old, new in change.updated:
            out.print(f"  ~ {key} {old} -> {new}")
    return 0


def status_command(args) -> int:
    layout = _layout(args)
    envs = Environments(layout)
    if args.id:
        if not args.env:
            raise UserError("status --id needs an environment: hpcos repo status testing --id")
        snapshot_id = envs.environment(args.env).current()
        if snapshot_id is None:
            raise UserError(f"environment {args.env!r} points at nothing (store {layout.root})")
        emit(snapshot_id)
        return 0
    if args.env and not args.json:
        return _status_one(args.site, layout, envs, args.env)
    columns = ("pointer", "snapshot", "since", "by", "action", "reason", "nightly")
    rows = []
    for pointer in envs.all_pointers():
        records = pointer.records()
        last = records[-1] if records else None
        current = pointer.current()
        run = nightly.last_run_on(layout, current) if current else None
        is_overlay = pointer.directory != layout.environments
        name = f"published/{pointer.name}" if is_overlay else pointer.name
        if args.env and name != args.env:
            continue
        rows.append(
            (
                name,
                current,
                last.time if last else None,
                last.user if last else None,
                last.action if last else None,
                last.reason if last else None,
                run.verdict if run else None,
            )
        )
    if args.json:
        emit(
            json.dumps(
                {
                    "store": str(layout.root),
                    "pointers": [dict(zip(columns, r, strict=True)) for r in rows],
                },
                indent=2,
            )
        )
        return 0
    table = Table(*columns)
    for row in rows:
        table.add_row(
            *(Text(str(v)) if v is not None else ("-" if i == 1 else "") for i, v in enumerate(row))
        )
    out = _stdout()
    if not table.rows:
        out.print(f"no environments yet in {layout.root} (run `hpcos repo sync`)")
        return 0
    out.print(table)
    return 0


def _status_one(site, layout: StoreLayout, envs: Environments, name: str) -> int:
    pointer = envs.environment(name)
    current = pointer.current()
    if current is None:
        raise UserError(f"environment {name!r} points at nothing (store {layout.root})")
    snapshot = SnapshotStore(layout.snapshots).get(current)
    out = _stdout()
    out.print(
        Text(name, style="bold")
        + Text(f" -> {snapshot.id}  (previous: {pointer.previous() or '-'})")
    )
    run = nightly.last_run_on(layout, snapshot.id)
    out.print(
        f"last nightly run on it: {f'{run.run_id} {run.verdict}' if run else 'none recorded'}"
    )
    for dest, env in site.specs.site.environments.items():
        if env.source == name and env.gate == "nightly":
            # What `promote NAME DEST` would say now: the run it judges, and why it is closed.
            dest_id = envs.environment(dest).current()
            store = SnapshotStore(layout.snapshots)
            judged = gate.judge(
                site.specs,
                layout,
                snapshot,
                store.get(dest_id) if dest_id else None,
                site_profile(site),
            )
            out.print(
                f"gate to {dest}: "
                + (
                    f"open: {judged.accepted}"
                    if not judged.refusal
                    else f"closed: {judged.refusal}"
                )
            )
    repos = Table("repository", "from snapshot", "baseurl (file://)")
    for entry, holder in sorted(snapshot.entries.items()):
        repos.add_row(entry, holder, f"file://{pointer.path}/{entry}")
    out.print(repos)
    history = Table("time", "action", "snapshot", "by", "reason", title="record (latest last)")
    for record in pointer.records()[-10:]:
        history.add_row(
            record.time,
            record.action + (" (forced)" if record.forced else ""),
            record.snapshot,
            record.user,
            record.reason,
        )
    out.print(history)
    return 0
