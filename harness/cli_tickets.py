"""``hpcos tickets list|show ID|file RESULTS.json|flush``: the tickets side of the nightly run, by hand."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from hpcos import context
from hpcos.console import console
from hpcos.errors import UserError


def register(sub) -> None:
    tickets = sub.add_parser("tickets", help="file and list tickets for failing integration tests")
    actions = tickets.add_subparsers(dest="tickets_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="tickets hpcos tracks (and the local tracker's tickets), queue size")
    listing.add_argument("--all", action="store_true", help="include closed tickets")
    listing.set_defaults(func=_list)

    filing = actions.add_parser("file", help="file tickets from a saved results file")
    filing.add_argument("results", metavar="RESULTS.json")
    filing.add_argument("--dry-run", action="store_true", help="print what would be filed, send nothing")
    filing.add_argument("--backend", help="override site.yaml's tracker.backend")
    filing.set_defaults(func=_file)

    showing = actions.add_parser("show", help="one ticket of the local tracker: description and comments")
    showing.add_argument("ticket", metavar="ID")
    showing.set_defaults(func=_show)

    flushing = actions.add_parser("flush", help="send the tickets queued while the tracker was unreachable")
    flushing.set_defaults(func=_flush)


def _session(args):
    from harness.tickets.session import TicketSession

    spec_set = context.specs(args)
    spec = spec_set.site.tracker
    if getattr(args, "backend", None):
        from harness.tickets.backends import BACKENDS

        if args.backend not in BACKENDS:
            raise UserError(f"--backend {args.backend!r}: expected one of {', '.join(BACKENDS)}")
        spec = spec.model_copy(update={"backend": args.backend})
    return TicketSession(spec, context.store_root(args, spec_set))


def _read_results(path: str):
    from harness.results import RunResults

    try:
        return RunResults.read(path)
    except FileNotFoundError as exc:
        raise UserError(f"{path}: results file not found") from exc
    except (json.JSONDecodeError, ValueError, TypeError) as exc:
        raise UserError(f"{path}: not an hpcos results file: {exc}") from exc


def _file(args) -> int:
    from harness.tickets.session import describe, progress_bar

    run = _read_results(args.results)
    with _session(args) as session:
        if args.dry_run:
            print(describe(session.plan(run)))
            return 0
        with progress_bar() as progress:
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
    from harness.tickets.session import summarise

    for line in outcome.done:
        print(line)
    console.print(f"{what} ({session.spec.backend}): {summarise(outcome)}", markup=False)
    return 1 if outcome.error else 0


def _show(args) -> int:
    with _session(args) as session:
        if session.spec.backend != "local":
            raise UserError(f"`hpcos tickets show` reads the local tracker; this site uses {session.spec.backend}")
        found = session.backend.ticket(args.ticket) if args.ticket.isdigit() else None
        if found is None:
            raise UserError(f"no local ticket #{args.ticket}")
        summary, description, status = found
        print(f"#{args.ticket} [{status}] {summary}\n\n{description}")
        for number, text in enumerate(session.backend.comments(args.ticket), 1):
            print(f"--- comment {number}\n{text}")
    return 0


def _list(args) -> int:
    from harness.tickets.backends.local import LocalTracker

    with _session(args) as session:
        if session.spec.backend == "local":
            backend: LocalTracker = session.backend
            table = Table("id", "status", "comments", "updated", "summary", title="local tickets")
            for ticket_id, status, resolution, comments, updated, summary in backend.tickets(args.all):
                table.add_row(str(ticket_id), f"{status} {resolution}".strip(), str(comments),
                              updated, Text(summary))
        else:
            table = Table("ticket", "test", "passing runs", "fingerprint",
                          title=f"open {session.spec.backend} tickets hpcos tracks")
            for key, test_id, ticket, streak in session.state.open_tickets():
                table.add_row(f"#{ticket}", Text(test_id), str(streak), key)
        Console().print(table)  # the listing is the output: stdout
        console.print(f"queued, waiting for the tracker: {len(session.queue)}")
    return 0
