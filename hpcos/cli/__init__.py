"""``hpcos``: one command whose subcommands read like the process (see README.md).

The top layer: it parses the command line, builds the one ``Site`` the command works on, sets up
where library log lines go (stderr, secrets masked), runs the command, and turns every user-facing
error into one line and an exit code.  Nothing below this package reads argparse namespaces or
prints for people.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sqlite3
import sys

from hpcos import __version__
from hpcos.cli.console import console, emit, install_log_handler
from hpcos.core.errors import HpcosError, UserError, store_problem
from hpcos.site import Site

# Each subcommand and the module of hpcos.cli that provides ``register(subparsers)`` for it; a
# subcommand sets ``func(args) -> exit code``.  Only the module of the command being run is imported:
# the spec model alone takes a third of a second to import, which every `hpcos test` on every node
# would pay.
COMMANDS = {
    "specs": "hpcos.cli.specs",  # hpcos specs check|schema
    "jobs": "hpcos.cli.jobs",  # hpcos jobs render|yaml|update|diff
    "build": "hpcos.cli.build",  # hpcos build PKG
    "repo": "hpcos.cli.repo",  # hpcos repo sync|publish|promote|rollback|diff|status|fastpath|record-run
    "test": "hpcos.cli.test",  # hpcos test
    "deploy": "hpcos.cli.deploy",  # hpcos deploy ENV --cluster PROFILE
    "tickets": "hpcos.cli.tickets",  # hpcos tickets list|show|file|flush
    "perf": "hpcos.cli.perf",  # hpcos perf accept|history|record
    "report": "hpcos.cli.perf",  # hpcos report RUN
    "inventory": "hpcos.cli.inventory",  # hpcos inventory collect|diff
    "outage": "hpcos.cli.outage",  # hpcos outage plan|run|report
    "config": "hpcos.cli.config",  # hpcos config status|promote|merge-back|validate|heads
    "check": "hpcos.cli.check",  # hpcos check CHECK --cluster P --node N (a Nagios plugin)
    "monitoring": "hpcos.cli.monitoring",  # hpcos monitoring config --cluster P
    "probes": "hpcos.cli.probes",  # hpcos probes build-osu SRC --mpi STACK
    "store": "hpcos.cli.store",  # hpcos store backup|restore DIR
    "demo": "hpcos.cli.demo",  # hpcos demo: the cycle on a simulated site, from the shipped files
}

# Every error's exit code is its family's, in the one table: hpcos.core.errors.FAMILIES.
INTERRUPTED = 130


def _site_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """--specs/--store, accepted before the subcommand and after it (``hpcos specs check --specs DIR``).
    After it they are SUPPRESSed by default, so an absent one does not undo one given before."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--specs",
        metavar="DIR",
        default=default,
        help="overlay specs directory (default: $HPCOS_SPECS or ./overlay_specs)",
    )
    parser.add_argument(
        "--store",
        metavar="DIR",
        default=default,
        help="repository and state store (default: $HPCOS_STORE, site.yaml store.root if "
        "writable, else ~/.local/state/hpcos/store)",
    )


class _SubParsers(argparse._SubParsersAction):
    """Every subcommand (and sub-subcommand) parser gets the site options too."""

    def add_parser(self, name, **kwargs):
        parser = super().add_parser(name, **kwargs)
        _site_options(parser, suppress=True)
        parser.register("action", "parsers", _SubParsers)
        return parser


def _command_in(argv: list[str]) -> str | None:
    """The subcommand named in ``argv``, if any, without building the full parser."""
    pre = argparse.ArgumentParser(add_help=False)
    _site_options(pre, suppress=False)
    pre.add_argument("command", nargs="?")
    known, _ = pre.parse_known_args(argv)
    return known.command


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for ``command`` alone when it is known, else for every command (help, typos)."""
    parser = argparse.ArgumentParser(
        prog="hpcos", description="Keep your own Linux OS on an HPC cluster: build, test, promote."
    )
    parser.register("action", "parsers", _SubParsers)
    parser.add_argument("--version", action="version", version=f"hpcos {__version__}")
    _site_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = [COMMANDS[command]] if command in COMMANDS else COMMANDS.values()
    for name in dict.fromkeys(modules):
        importlib.import_module(name).register(sub)
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """``argv`` as ``main`` reads it; a mistake exits 2 with argparse's message (SystemExit)."""
    command = _command_in(argv)
    parser = build_parser(command)
    # A command with its own way of saying a usage mistake (``hpcos check``: UNKNOWN, exit 3, as a
    # Nagios plugin must) says it for the options argparse does not know too.
    usage_error = (
        getattr(importlib.import_module(COMMANDS[command]), "usage_error", None)
        if command in COMMANDS
        else None
    )
    if usage_error is not None:
        parser.error = usage_error  # type: ignore[method-assign]
    args, extra = parser.parse_known_args(argv)
    # A command that wraps another tool (``hpcos test`` -> pytest) takes the arguments it does not know.
    if extra and not hasattr(args, "passthrough"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.passthrough = [*args.passthrough, *extra]
    return args


class PathError(UserError):
    """A path given to hpcos that the operating system refuses (not a directory, no such place, denied)."""


# What the operating system says about a path a person chose; other errnos stay bugs, with a traceback.
_PATH_ERRNOS = frozenset(
    {
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ENOENT,
        errno.EACCES,
        errno.EPERM,
        errno.EEXIST,
        errno.ELOOP,
        errno.ENAMETOOLONG,
        errno.EINVAL,
        errno.ENXIO,
        errno.ENODEV,
    }
)


def path_problem(exc: BaseException) -> PathError | None:
    if isinstance(exc, OSError) and exc.errno in _PATH_ERRNOS and exc.filename:
        return PathError(f"{exc.filename}: {exc.strerror}")
    return None


def report_error(exc: HpcosError) -> None:
    text = str(exc)
    emit(f"hpcos: {text}" if "\n" not in text else f"hpcos: errors:\n{text}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else list(argv))
    args.own_process = argv is None  # the process is this command (not a test calling main)
    args.site = Site.from_options(args.specs, args.store)
    install_log_handler(args.site.environ)
    try:
        return int(args.func(args) or 0)
    except HpcosError as exc:
        report_error(exc)
        return exc.exit_code
    except (OSError, sqlite3.Error) as exc:
        # A full or read-only store is the environment's problem, said in one line; so is a path a person
        # gave that cannot be written or read (-o naming a file where a directory goes, /proc); anything
        # else is a bug.
        problem = store_problem(exc) or path_problem(exc)
        if problem is None:
            raise
        report_error(problem)
        return problem.exit_code
    except KeyboardInterrupt:
        emit("hpcos: interrupted", file=sys.stderr)
        return INTERRUPTED
    finally:
        for notice in args.site.notices:
            console.print(f"note: {notice}", markup=False, soft_wrap=True)
        logging.getLogger("hpcos").handlers.clear()


if __name__ == "__main__":
    sys.exit(main())
