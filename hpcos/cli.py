"""``hpcos``: one command whose subcommands read like the process (see README.md).

Each group of subcommands lives beside the code it drives and registers itself here; this module
only parses the common options and turns user errors into one-line messages.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hpcos import __version__
from hpcos.errors import UserError

# Each subcommand and the module that provides ``register(subparsers)`` for it; a subcommand sets
# ``func(args) -> exit code``.  Only the module of the command being run is imported: the spec model
# alone takes a third of a second to import, which every `hpcos test` on every node would pay.
COMMANDS = {
    "specs": "jobs.cli_specs",  # hpcos specs check|schema
    "jobs": "jobs.cli_jobs",  # hpcos jobs render|yaml|update|diff
    "build": "jobs.cli_build",  # hpcos build PKG
    "repo": "jobs.cli_repo",  # hpcos repo sync|publish|promote|rollback|diff|status|fastpath|record-run
    "test": "harness.cli_test",  # hpcos test
    "tickets": "harness.cli_tickets",  # hpcos tickets list|show|file|flush
    "perf": "harness.cli_perf",  # hpcos perf accept|history|record
    "report": "harness.cli_perf",  # hpcos report RUN
}


def _command_in(argv: list[str]) -> str | None:
    """The subcommand named in ``argv``, if any, without building the full parser."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--specs")
    pre.add_argument("--store")
    pre.add_argument("command", nargs="?")
    known, _ = pre.parse_known_args(argv)
    return known.command


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for ``command`` alone when it is known, else for every command (help, typos)."""
    parser = argparse.ArgumentParser(
        prog="hpcos", description="Keep your own Linux OS on an HPC cluster: build, test, promote."
    )
    parser.add_argument("--version", action="version", version=f"hpcos {__version__}")
    parser.add_argument("--specs", metavar="DIR",
                        help="overlay specs directory (default: $HPCOS_SPECS or ./overlay_specs)")
    parser.add_argument("--store", metavar="DIR",
                        help="repository and state store (default: $HPCOS_STORE or site.yaml store.root)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = [COMMANDS[command]] if command in COMMANDS else COMMANDS.values()
    for name in dict.fromkeys(modules):
        importlib.import_module(name).register(sub)
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """``argv`` as ``main`` reads it; a mistake exits 2 with argparse's message (SystemExit)."""
    parser = build_parser(_command_in(argv))
    args, extra = parser.parse_known_args(argv)
    # A command that wraps another tool (``hpcos test`` -> pytest) takes the arguments it does not know.
    if extra and not hasattr(args, "passthrough"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.passthrough = [*args.passthrough, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else list(argv))
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"hpcos: {exc}" if "\n" not in str(exc) else f"hpcos: errors:\n{exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hpcos: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
