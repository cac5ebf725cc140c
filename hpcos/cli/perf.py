"""``hpcos perf accept|history|record`` and ``hpcos report``: the results store from the command line."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from hpcos.cli.console import console, stdout_console
from hpcos.cli.options import MESSAGE_SIZE
from hpcos.core.errors import UserError


def _store(args):
    from hpcos.perf.store import ResultsStore

    path = _results_db(args)
    if not path.exists() and args.perf_command != "record":
        raise UserError(
            f"{path}: no results database yet (record a run first: hpcos perf record RESULTS.json)"
        )
    return ResultsStore(path)


def _accept(args) -> int:
    from hpcos.perf.store import UnknownRun

    try:
        count = _store(args).accept(args.run)
    except UnknownRun:
        raise UserError(
            f"run {args.run!r} is not in {_results_db(args)} (see hpcos perf history)"
        ) from None
    console.print(f"run {args.run} accepted as a baseline ({count} measurements)")
    return 0


def _history(args) -> int:
    from hpcos.perf.charts import trend_chart

    store = _store(args)
    rows = store.series_of_test(
        args.test, metric=args.metric, size=args.size, node_class=args.node_class
    )
    if not rows:
        raise UserError(
            f"no measurements of {args.test!r} match (metric={args.metric}, size={args.size}, "
            f"node class={args.node_class})"
        )
    table = Table(title=f"history of {args.test}")
    for column in (
        "run",
        "time",
        "node",
        "MPI",
        "metric",
        "size",
        "median",
        "samples",
        "accepted",
        "verdict",
    ):
        table.add_column(column)
    for m in rows:
        table.add_row(
            m.run_id,
            m.time,
            m.node or "-",
            m.mpi or "-",
            m.metric,
            "" if m.size is None else str(m.size),
            f"{m.value:.4g} {m.unit}",
            str(len(m.samples)),
            "yes" if m.accepted else "",
            m.verdict or "",
        )
    stdout_console(width=200).print(table)  # the table is the command's output: stdout
    if args.chart:
        series = {(m.metric, m.size) for m in rows}
        if len(series) > 1:
            raise UserError(
                f"--chart needs one series; pick one with --metric/--size "
                f"(found {sorted(series, key=str)})"
            )
        path = trend_chart(rows, args.chart, f"{args.test} {rows[0].metric}")
        console.print(f"chart: {path}")
    return 0


def _read_results(path: str):
    from hpcos.results.model import RunResults

    return RunResults.read(path)  # validated: every problem is one line naming the file and field


def _record(args) -> int:
    from hpcos.perf.judge import judge_run

    run = _read_results(args.results)
    judgements = judge_run(_store(args), run, args.node_class or run.cluster)
    noteworthy = [
        j
        for j in judgements
        if j.assessment.verdict not in ("ok", "no baseline", "within reference")
    ]
    console.print(f"recorded run {run.run_id}: {len(judgements)} measurements")
    for j in noteworthy:
        console.print(
            f"  {j.assessment.verdict}: {j.result.test_id} {j.result.node or ''} {j.measurement.metric}: "
            f"{j.assessment.describe(j.measurement.unit)}",
            markup=False,
            highlight=False,
        )
    return 0


def _report(args) -> int:
    from hpcos.perf.report import read_package_changes, render_report
    from hpcos.perf.store import UnknownRun

    changes = None
    if args.package_changes:
        try:
            changes = read_package_changes(args.package_changes)
        except OSError as exc:
            raise UserError(f"{args.package_changes}: {exc.strerror}") from None
    args.perf_command = "report"
    run_id = args.run
    if (
        run_id.endswith(".json") and Path(run_id).is_file()
    ):  # the nightly job has the results file at hand
        run_id = _read_results(run_id).run_id
    try:
        files = render_report(
            _store(args), run_id, args.output, changes, gate_notes=_gate_notes(args, run_id)
        )
    except UnknownRun:
        raise UserError(f"run {args.run!r} is not in {_results_db(args)}") from None
    console.print(f"report: {files.page} ({len(files.charts)} charts, {len(files.csvs)} CSV files)")
    return 0


def _gate_notes(args, run_id: str) -> list[str]:
    """How the production gate sees this run: recorded by the harness or imported, and every promotion of
    its snapshot that overrode the gate (who, when, why)."""
    from hpcos.repo import nightly
    from hpcos.repo.environments import Environments

    layout = args.site.layout
    notes, snapshots = [], set()
    for record in nightly.records(layout):
        if record.run_id == run_id:
            snapshots.add(record.testing_snapshot)
            notes.append(
                f"run {run_id}: "
                + (
                    "recorded by the harness (signed): counts for the production gate"
                    if record.from_harness
                    else f"imported by record-run ({record.imported_why}): does not count "
                    f"for the production gate"
                )
            )
    envs = Environments(layout)
    for pointer in envs.all_pointers():
        for change in pointer.records():
            if change.forced and change.snapshot in snapshots:
                notes.append(
                    f"risk: {pointer.name} took {change.snapshot} with the gate overridden by {change.user} "
                    f"on {change.time}: {change.reason}"
                )
    return notes


def register(sub) -> None:
    perf = sub.add_parser("perf", help="performance history and baselines")
    perf_sub = perf.add_subparsers(dest="perf_command", metavar="SUBCOMMAND", required=True)

    def with_db(parser):
        parser.add_argument(
            "--db", metavar="FILE", help="results database (default: the store's results_db)"
        )
        return parser

    p = with_db(perf_sub.add_parser("accept", help="make a run part of the baselines"))
    p.add_argument("run", metavar="RUN")
    p.set_defaults(func=_accept)

    p = with_db(perf_sub.add_parser("history", help="the measurements of one test over time"))
    p.add_argument("test", metavar="TEST", help="test id, or a substring of it")
    p.add_argument("--metric")
    p.add_argument("--size", type=MESSAGE_SIZE)
    p.add_argument("--node-class")
    p.add_argument("--chart", metavar="PNG", help="also draw the series as a trend chart")
    p.set_defaults(func=_history)

    p = with_db(
        perf_sub.add_parser("record", help="store a results file's measurements and judge them")
    )
    p.add_argument("results", metavar="RESULTS.json")
    p.add_argument("--node-class", help="node class of the run's nodes (default: the cluster name)")
    p.set_defaults(func=_record)

    p = with_db(
        sub.add_parser(
            "report", help="static HTML report of a run, with CSV files for Jenkins' Plot plugin"
        )
    )
    p.add_argument("run", metavar="RUN", help="run id, or the run's results JSON file")
    p.add_argument("-o", "--output", required=True, metavar="DIR")
    p.add_argument(
        "--package-changes", metavar="FILE", help="output of `hpcos repo diff` (JSON or text lines)"
    )
    p.set_defaults(func=_report)


def _results_db(args) -> Path:
    """--db; else the site's results database (site.yaml's harness.results_db under the store)."""
    if getattr(args, "db", None):
        return Path(args.db)
    try:
        return args.site.results_db
    except UserError as exc:
        raise UserError(
            f"cannot find the results database: pass --db FILE or --store DIR ({exc})"
        ) from None
