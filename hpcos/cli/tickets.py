"""``hpcos tickets list|show ID|file RESULTS.json|flush``: the tickets side of the nightly run, by hand."""

from __future__ import annotations

import json
import re

from rich.table import Table
from rich.text import Text

from hpcos.cli.console import console, emit, progress_bar, stdout_console
from hpcos.core.errors import UserError


def register(sub) -> None:
    tickets = sub.add_parser("tickets", help="file and list tickets for failing integration tests")
    actions = tickets.add_subparsers(dest="tickets_command", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list", help="tickets hpcos tracks (and the local tracker's tickets), queue size"
    )
    listing.add_argument("--all", action="store_true", help="include closed tickets")
    listing.add_argument(
        "--json", action="store_true", help="one JSON document on stdout instead of a table"
    )
    listing.set_defaults(func=_list)

    filing = actions.add_parser("file", help="file tickets from a saved results file")
    filing.add_argument("results", metavar="RESULTS.json")
    filing.add_argument(
        "--dry-run", action="store_true", help="print what would be filed, send nothing"
    )
    filing.add_argument("--backend", help="override site.yaml's tracker.backend")
    filing.set_defaults(func=_file)

    showing = actions.add_parser(
        "show", help="one ticket of the local tracker: description and comments"
    )
    showing.add_argument("ticket", metavar="ID")
    showing.set_defaults(func=_show)

    flushing = actions.add_parser(
        "flush", help="send the tickets queued while the tracker was unreachable"
    )
    flushing.set_defaults(func=_flush)


def _session(args):
    from hpcos.tickets.session import TicketSession

    backend = getattr(args, "backend", None)
    if backend:
        from hpcos.tickets.backends import BACKENDS

        if backend not in BACKENDS:
            raise UserError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    return TicketSession(args.site.tracker(backend), args.site.store_root, args.site.environ)


def _read_results(path: str):
    from hpcos.results.model import RunResults

    return RunResults.read(path)  # validated: every problem is one line naming the file and field


def _file(args) -> int:
    from hpcos.tickets.session import describe

    run = _read_results(args.results)
    with _session(args) as session:
        if args.dry_run:
            emit(describe(session.plan(run)))
            return 0
        with progress_bar("filing tickets") as progress:
            _, outcome = session.file(run, progress)
        return _report("tickets", session, outcome)


def _flush(args) -> int:
    with _session(args) as session:
        if not len(session.queue):
            console.print("queue empty")
            return 0
        return _report("flush", session, session.flush())


def _report(what: str, session, outcome) -> int:
    """Each action on stdout, the summary on stderr; exit 1 when the tracker failed (tickets queued)."""
    from hpcos.tickets.session import summarise

    for line in outcome.done:
        emit(line)
    console.print(f"{what} ({session.spec.backend}): {summarise(outcome)}", markup=False)
    return 1 if outcome.error else 0


# ESC sequences (CSI "ESC [ ... final", OSC "ESC ] ... BEL/ST", two-byte ESC x), then every other C0/C1
# control but newline and tab: node output in a ticket must not move the cursor, retitle the terminal
# or hide text when `hpcos tickets show` prints it.
_TERMINAL_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?"
    r"|\x9b[0-?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)


def printable(text: str) -> str:
    """``text`` without terminal control sequences (carriage returns too: they overwrite lines)."""
    return _TERMINAL_CONTROL.sub("", text)


def _show(args) -> int:
    with _session(args) as session:
        if session.spec.backend != "local":
            raise UserError(
                f"`hpcos tickets show` reads the local tracker; this site uses {session.spec.backend}"
            )
        # ASCII digits within SQLite's integer: str.isdigit() also takes '²' and '١', and a longer
        # number overflows the query.
        ascii_id = re.fullmatch(r"[0-9]{1,18}", args.ticket)
        found = session.backend.ticket(args.ticket) if ascii_id else None
        if found is None:
            raise UserError(f"no local ticket #{args.ticket}")
        summary, description, status = found
        emit(printable(f"#{args.ticket} [{status}] {summary}\n\n{description}"))
        for number, text in enumerate(session.backend.comments(args.ticket), 1):
            emit(printable(f"--- comment {number}\n{text}"))
    return 0


def _list(args) -> int:
    from hpcos.tickets.backends.local import LocalTracker

    with _session(args) as session:
        if session.spec.backend == "local":
            backend: LocalTracker = session.backend
            columns = ("id", "status", "comments", "updated", "summary")
            rows = [
                (ticket_id, f"{status} {resolution}".strip(), comments, updated, summary)
                for ticket_id, status, resolution, comments, updated, summary in backend.tickets(
                    args.all
                )
            ]
            title = "local tickets"
        else:
            columns = ("ticket", "test", "passing_runs", "fingerprint")
            rows = [
                (ticket, test_id, streak, key)
                for key, test_id, ticket, streak in session.state.open_tickets()
            ]
            title = f"open {session.spec.backend} tickets hpcos tracks"
        if args.json:
            emit(
                json.dumps(
                    {
                        "backend": session.spec.backend,
                        "queued": len(session.queue),
                        "tickets": [dict(zip(columns, row, strict=True)) for row in rows],
                    },
                    indent=2,
                )
            )
            return 0
        table = Table(*(c.replace("_", " ") for c in columns), title=title)
        for row in rows:
            table.add_row(*(Text(printable(str(value))) for value in row))
        stdout_console().print(table)  # the listing is the output: stdout
        console.print(f"queued, waiting for the tracker: {len(session.queue)}")
    return 0
