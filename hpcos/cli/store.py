"""``hpcos store backup DIR`` and ``hpcos store restore DIR`` (see docs/backup.md)."""

from __future__ import annotations

from pathlib import Path

from hpcos.cli.console import emit


def register(sub) -> None:
    store = sub.add_parser(
        "store", help="back up the store, or restore a backup into an empty store"
    )
    actions = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    p = actions.add_parser(
        "backup",
        help="a consistent copy of the whole store (taken under its locks, "
        "while nightly work may run) into DIR",
    )
    p.add_argument(
        "directory", metavar="DIR", type=Path, help="where the archive and its manifest go"
    )
    p.set_defaults(func=backup_command)
    p = actions.add_parser(
        "restore",
        help="restore the newest complete backup in DIR into the store "
        "(--store), which must be empty or absent",
    )
    p.add_argument(
        "directory", metavar="DIR", type=Path, help="the directory `hpcos store backup` wrote"
    )
    p.set_defaults(func=restore_command)


def backup_command(args) -> int:
    from hpcos.repo import backup

    manifest = backup.backup(args.site.layout, args.directory)
    emit(
        f"{args.directory.absolute() / manifest.archive} ({manifest.members} entries, "
        f"{manifest.size / 2**20:.1f} MiB, sha256 {manifest.sha256})"
    )
    return 0


def restore_command(args) -> int:
    from hpcos.repo import backup

    manifest = backup.restore(args.site.layout, args.directory)
    emit(
        f"restored {args.site.layout.root} from {manifest.archive} (taken {manifest.created}, "
        f"{manifest.members} entries)"
    )
    return 0
