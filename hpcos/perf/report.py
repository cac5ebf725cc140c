"""``hpcos report RUN -o DIR``: one static HTML page per nightly run, plus CSV files for Jenkins' Plot plugin.

Everything comes from the results store (the run's outcomes, measurements and verdicts as the
perf plugin recorded them) and, when the caller passes it, the package changes from production
(``hpcos repo diff`` output): this module does not reach into the repository code.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
from ClusterShell.NodeSet import NodeSet

from hpcos.core.errors import UserError
from hpcos.core.store_files import BadStoreFile, read_bytes_limited
from hpcos.perf.baselines import baseline_for
from hpcos.perf.charts import chart_path, trend_chart
from hpcos.perf.decision import FAILING
from hpcos.perf.statistics import noise_floor
from hpcos.perf.store import ResultsStore, SeriesKey, StoredMeasurement
from hpcos.perf.style import CSS

NOTEWORTHY = (*FAILING, "not confirmed", "suspect")
TREND_RUNS = 30


@dataclass(frozen=True)
class ReportFiles:
    page: Path
    charts: list[Path]
    csvs: list[Path]


def read_package_changes(path: str | Path) -> list[dict[str, str]] | list[str]:
    """The output of ``hpcos repo diff production testing``, saved by the caller.

    ``--json`` output becomes one row per package change; the text output, or any other JSON
    list, is shown as it is.
    """
    # Untrusted like any file a person names: a regular file within a budget, UTF-8, and a JSON
    # diff of the right shape (a FIFO, /dev/zero or a list where a NEVRA goes ended in a traceback).
    try:
        raw = read_bytes_limited(Path(path), what="package changes file", follow=True)
        text = raw.decode("utf-8")
    except BadStoreFile as exc:
        raise UserError(f"--package-changes {exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(
            f"--package-changes {path}: expected UTF-8 text; found byte 0x{raw[exc.start]:02x}"
        ) from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise UserError(f"--package-changes {path}: JSON nested too deeply") from None
    except json.JSONDecodeError:
        return [line for line in text.splitlines() if line.strip()]
    if isinstance(data, dict) and isinstance(data.get("repositories"), dict):
        if not _is_repo_diff(data["repositories"]):
            raise UserError(
                f"--package-changes {path}: not the output of `hpcos repo diff --json` (each "
                "repository's added and removed are lists of NEVRAs, updated of [name, from, to])"
            )
        return _repo_diff_rows(data)
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, list)), [])
    return [d if isinstance(d, dict) else str(d) for d in data]


def _is_repo_diff(repositories: dict) -> bool:
    def strings(items, length=None) -> bool:
        return isinstance(items, list) and all(
            isinstance(i, str)
            if length is None
            else isinstance(i, list) and len(i) == length and all(isinstance(x, str) for x in i)
            for i in items
        )

    return all(
        isinstance(change, dict)
        and strings(change.get("added", []))
        and strings(change.get("removed", []))
        and strings(change.get("updated", []), 3)
        for change in repositories.values()
    )


def _repo_diff_rows(data: dict) -> list[dict[str, str]]:
    old, new = str(data.get("from", "from")), str(data.get("to", "to"))
    rows = []
    for repo, change in sorted(data["repositories"].items()):
        for nevra in change.get("added", []):
            rows.append(
                {"repository": repo, "change": "added", "package": nevra, old: "", new: nevra}
            )
        for nevra in change.get("removed", []):
            rows.append(
                {"repository": repo, "change": "removed", "package": nevra, old: nevra, new: ""}
            )
        for name, before, after in change.get("updated", []):
            rows.append(
                {"repository": repo, "change": "updated", "package": name, old: before, new: after}
            )
    return rows


def node_groups(results: list[dict]) -> tuple[list[str], list[tuple[str, dict[str, dict]]]]:
    """Tests (rows) and node groups (columns): nodes whose every cell is identical share one column."""
    tests = list(dict.fromkeys(r["test_id"] for r in results))
    cells: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in results:
        cells[r["node"] or "-"][r["test_id"]] = r
    by_signature: dict[tuple, list[str]] = defaultdict(list)
    for node, row in cells.items():
        signature = tuple(
            (row[t]["outcome"], row[t]["failure_class"]) if t in row else None for t in tests
        )
        by_signature[signature].append(node)
    groups = []
    for nodes in by_signature.values():
        named = [n for n in nodes if n != "-"]
        label = str(NodeSet.fromlist(named)) if named else "-"
        if named and "-" in nodes:
            label += ",-"
        groups.append((min(nodes), label, cells[nodes[0]]))
    return tests, [(label, cells) for _, label, cells in sorted(groups, key=lambda g: g[0])]


def _series_key(run: dict, m: StoredMeasurement) -> SeriesKey:
    return SeriesKey(run["cluster"], run["node_class"], m.test_id, m.metric, m.size)


def render_report(
    store: ResultsStore,
    run_id: str,
    out: str | Path,
    package_changes: list | None = None,
    baseline_runs: int = 10,
    gate_notes: list[str] | None = None,
) -> ReportFiles:
    """``gate_notes``: what the production gate knows of this run and its snapshot (provenance, forced
    promotions), one line each, as the caller read them from the store."""
    out = Path(out)
    (out / "charts").mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    run = store.run(run_id)
    results = store.results(run_id)
    measurements = store.run_measurements(run_id)

    charts: list[Path] = []
    regression_html = []
    for m in measurements:
        if m.verdict not in NOTEWORTHY:
            continue
        key = _series_key(run, m)
        baseline = baseline_for(store, key, mpi=m.mpi, before=run_id, runs=baseline_runs)
        floor = (
            noise_floor(baseline.run_medians, m.direction)
            if baseline and len(baseline.runs) > 1
            else None
        )
        series = [
            s
            for s in store.series(key, mpi=m.mpi, limit=TREND_RUNS * 4)
            if s.node in (m.node, None)
        ]
        chart = trend_chart(
            series,
            chart_path(out / "charts", m.test_id, m.node, m.metric, m.size),
            f"{m.test_id} {m.metric}"
            + (f" {m.size} B" if m.size is not None else "")
            + f" on {m.node}",
            baseline=float(np.median(baseline.pooled)) if baseline else None,
            noise_floor=floor,
            highlight_run=run_id,
        )
        charts.append(chart)
        regression_html.append(
            f'<div class="regression {escape(m.verdict)}"><h3>{escape(m.test_id)} &middot; {escape(m.node or "-")}'
            f" &middot; {escape(m.metric)}{f' {m.size} B' if m.size is not None else ''}"
            f' <span class="verdict">{escape(m.verdict)}</span></h3>'
            f'<p class="detail">{escape(m.detail or "")}</p>'
            f'<img src="charts/{escape(chart.name)}" alt="trend of {escape(m.metric)}" width="800"></div>'
        )

    csvs = _write_plot_csvs(out / "plots", measurements, results)
    tests, groups = node_groups(results)
    page = out / "index.html"
    page.write_text(
        _page(run, tests, groups, measurements, regression_html, package_changes, gate_notes or []),
        encoding="utf-8",
    )
    return ReportFiles(page, charts, csvs)


def _write_plot_csvs(
    directory: Path, measurements: list[StoredMeasurement], results: list[dict]
) -> list[Path]:
    """Jenkins Plot plugin CSVs: a header row of series labels, then one row of this build's values."""
    series: dict[str, dict[str, float]] = defaultdict(dict)
    for m in measurements:
        series[chart_path(directory, m.test_id, m.mpi, m.metric, m.size).stem][m.node or "-"] = (
            m.value
        )
    paths = []
    for name, values in sorted(series.items()):
        path = directory / f"{name}.csv"
        _write_csv(path, list(values), [values[k] for k in values])
        paths.append(path)
    counts = {
        o: sum(r["outcome"] == o for r in results) for o in ("passed", "failed", "error", "skipped")
    }
    counts["performance regressions"] = sum(m.verdict == "regression" for m in measurements)
    summary = directory / "summary.csv"
    _write_csv(summary, list(counts), list(counts.values()))
    return [*paths, summary]


def _write_csv(path: Path, header: list[str], row: list) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerow(row)


def _page(
    run: dict,
    tests: list[str],
    groups,
    measurements,
    regression_html: list[str],
    package_changes: list | None,
    gate_notes: list[str],
) -> str:
    title = f"hpcos nightly report: {run['run_id']}"
    failed = sum(
        1 for _, cells in groups for c in cells.values() if c["outcome"] in ("failed", "error")
    )
    regressions = sum(m.verdict == "regression" for m in measurements)
    head = (
        f"<p class='summary'><span>cluster {escape(run['cluster'])}</span>"
        f"<span>node class {escape(run['node_class'])}</span>"
        f"<span>testing snapshot {escape(run['testing_snapshot'] or '-')}</span>"
        f"<span id='failed-count'>{failed} failed cells</span>"
        f"<span id='regression-count'>{regressions} performance regressions</span></p>"
    )
    if run.get("build_url"):
        # Only a web address becomes a link: a javascript: or data: URL in a results file would run.
        url = run["build_url"]
        head += (
            f"<p><a href='{escape(url)}'>Jenkins build</a></p>"
            if re.match(r"(?i)^https?://", url)
            else f"<p>Jenkins build: {escape(url)}</p>"
        )

    matrix = ["<table id='matrix'><tr><th>test</th>"]
    matrix += [f"<th>{escape(label)}</th>" for label, _ in groups] + ["</tr>"]
    for test in tests:
        matrix.append(f"<tr><th>{escape(test)}</th>")
        for _, cells in groups:
            cell = cells.get(test)
            if cell is None:
                matrix.append("<td class='absent'></td>")
                continue
            text = cell["outcome"] + (
                f" ({cell['failure_class']})" if cell["failure_class"] else ""
            )
            matrix.append(
                f"<td class='{escape(cell['outcome'])}' title='{escape(cell['message'][:500])}'>"
                f"{escape(text)}</td>"
            )
        matrix.append("</tr>")
    matrix.append("</table>")

    perf = [
        "<table id='measurements'><tr><th>test</th><th>node</th><th>MPI</th><th>metric</th><th>size</th>"
        "<th>median</th><th>verdict</th><th>decision</th></tr>"
    ]
    for m in measurements:
        perf.append(
            f"<tr><td>{escape(m.test_id)}</td><td>{escape(m.node or '-')}</td><td>{escape(m.mpi or '-')}</td>"
            f"<td>{escape(m.metric)}</td><td>{'' if m.size is None else m.size}</td>"
            f"<td>{m.value:.4g} {escape(m.unit)}</td><td>{escape(m.verdict or '-')}</td>"
            f"<td>{escape(m.detail or '')}</td></tr>"
        )
    perf.append("</table>")

    versions = "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>"
        for k, v in sorted(run["versions"].items())
    )
    changes = _changes_html(package_changes)
    gate = (
        "<ul id='gate'>" + "".join(f"<li>{escape(note)}</li>" for note in gate_notes) + "</ul>"
        if gate_notes
        else ""
    )
    regressions_section = (
        "".join(regression_html) or "<p id='no-regressions'>No performance regression.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title><style>{CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
{head}
{gate}
<h2>Pass/fail matrix</h2>
<p>Tests by nodes; nodes with identical results share a column.</p>
{"".join(matrix)}
<h2 id="regressions">Performance regressions</h2>
{regressions_section}
<h2>Measurements</h2>
{"".join(perf)}
<h2>Versions under test</h2>
<table id="versions">{versions or "<tr><td>none recorded</td></tr>"}</table>
<h2>Package changes from production</h2>
{changes}
</body></html>
"""


def _changes_html(changes: list | None) -> str:
    if changes is None:
        return (
            "<p id='package-changes'>Not provided (pass <code>--package-changes FILE</code>).</p>"
        )
    if not changes:
        return "<p id='package-changes'>No package changes.</p>"
    if all(isinstance(c, dict) for c in changes):
        columns = list(dict.fromkeys(k for c in changes for k in c))
        rows = "".join(
            "<tr>" + "".join(f"<td>{escape(str(c.get(k, '')))}</td>" for k in columns) + "</tr>"
            for c in changes
        )
        return (
            f"<table id='package-changes'><tr>{''.join(f'<th>{escape(k)}</th>' for k in columns)}</tr>"
            f"{rows}</table>"
        )
    return "<pre id='package-changes'>" + escape("\n".join(str(c) for c in changes)) + "</pre>"
