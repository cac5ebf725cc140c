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

# Modules that each provide ``register(subparsers)``; a subcommand sets ``func(args) -> exit code``.
COMMAND_MODULES = [
    "jobs.cli_specs",  # hpcos specs check|schema
    "jobs.cli_jobs",  # hpcos jobs render|yaml|update|diff
    "jobs.cli_build",  # hpcos build PKG
    "jobs.cli_repo",  # hpcos repo sync|promote|rollback|diff|status|fastpath
    "harness.cli_test",  # hpcos test
    "harness.cli_tickets",  # hpcos tickets list|file|flush
    "harness.cli_perf",  # hpcos perf ..., hpcos report
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpcos", description="Keep your own Linux OS on an HPC cluster: build, test, promote."
    )
    parser.add_argument("--version", action="version", version=f"hpcos {__version__}")
    parser.add_argument("--specs", metavar="DIR",
                        help="overlay specs directory (default: $HPCOS_SPECS or ./overlay_specs)")
    parser.add_argument("--store", metavar="DIR",
                        help="repository and state store (default: $HPCOS_STORE or site.yaml store.root)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # A command that wraps another tool (``hpcos test`` -> pytest) takes the arguments it does not know.
    if extra and not hasattr(args, "passthrough"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.passthrough = [*args.passthrough, *extra]
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
