"""What a ticket says: summary, description and follow-up comments, rendered for each tracker's markup."""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from harness.results import RunResults, TestResult
from harness.tickets.grouping import FailureGroup

SUMMARY_MAX = 200  # below every tracker's limit (Jira and Bugzilla: 255)
ERROR_LINES = 15
MEASUREMENT_ROWS = 10
Block = tuple[str, str]  # ("text" | "pre", content)


def render(blocks: Iterable[Block], markup: str) -> str:
    """Trac wiki, Markdown (GitHub, GitLab), Jira wiki, Textile (Redmine) or plain text (Bugzilla)."""
    fences = {"trac": ("{{{", "}}}"), "markdown": ("```", "```"), "jira": ("{noformat}", "{noformat}"),
              "textile": ("<pre>", "</pre>")}
    out = []
    for kind, text in blocks:
        if kind == "pre":
            if markup in fences:
                start, end = fences[markup]
                out.append(f"{start}\n{text}\n{end}")
            else:
                out.append("\n".join("    " + line for line in text.splitlines()))
        else:
            out.append(text)
    return "\n\n".join(out) + "\n"


def summary(group: FailureGroup) -> str:
    fp = group.fingerprint
    count = len(group.nodes)
    where = f" on {count} node{'s' if count != 1 else ''}" if count else ""
    text = f"{fp.test_id}: {fp.failure_class}{where}: {fp.signature}"
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 3] + "..."


def marker(key: str) -> str:
    """The line that ties a ticket to its fingerprint where the tracker has no field for it."""
    return f"hpcos-fingerprint: {key}"


def reproduce_command(group: FailureGroup, run: RunResults) -> str:
    name = group.test_id.split("::", 1)[-1]
    words = ["hpcos", "test", "--cluster", run.cluster, "-k", name]
    if len(group.nodes):
        words += ["--nodes", str(group.nodes)]
    mpi = group.results[0].mpi
    if mpi:
        words += ["--mpi", mpi]
    return shlex.join(words)


def _measurement_rows(results: list[TestResult]) -> list[str]:
    rows = []
    for result in results:
        for m in result.measurements:
            if m.reference is None or m.reference.admits(m.value):
                continue
            lo, hi = m.reference.bounds()
            size = f" {m.size} B" if m.size is not None else ""
            bounds = f"[{'-inf' if lo is None else f'{lo:.4g}'}, {'+inf' if hi is None else f'{hi:.4g}'}]"
            rows.append(f"{result.node or '-'}: {m.metric}{size}: measured {m.value:.4g} {m.unit}, "
                        f"expected {m.reference.value:.4g} {m.unit} within {bounds}")
    if len(rows) > MEASUREMENT_ROWS:
        rows = rows[:MEASUREMENT_ROWS] + [f"... and {len(rows) - MEASUREMENT_ROWS} more"]
    return rows


def _error_lines(message: str) -> str:
    lines = [line for line in message.splitlines() if line.strip()]
    return "\n".join(lines[:ERROR_LINES])


def _run_lines(run: RunResults) -> list[str]:
    lines = [f"Run: {run.run_id} on cluster {run.cluster} (started {run.started})"]
    if run.testing_snapshot:
        lines.append(f"Testing snapshot: {run.testing_snapshot}")
    if run.build_url:
        lines.append(f"Jenkins build: {run.build_url}")
    return lines


def description(group: FailureGroup, run: RunResults, markup: str) -> str:
    fp = group.fingerprint
    first = group.results[0]
    nodes = group.nodes
    blocks: list[Block] = [
        ("text", f"Test: {fp.test_id}\nFailure class: {fp.failure_class}\n" + "\n".join(_run_lines(run))),
        ("text", f"Nodes ({len(nodes)}): {nodes}" if len(nodes) else "Nodes: none (node-less test)"),
    ]
    by_message = group.nodes_by_message()
    blocks.append(("pre", "\n".join(f"{count:>5}  {ns}  {line}" for line, ns, count in by_message[:20])))
    rows = _measurement_rows(group.results)
    if rows:
        blocks.append(("text", "Measured vs expected:"))
        blocks.append(("pre", "\n".join(rows)))
    blocks.append(("text", f"First error lines (from {first.node or 'the run'}):"))
    blocks.append(("pre", _error_lines(first.message) or "(no output)"))
    if run.versions:
        blocks.append(("text", "Versions in the testing repositories:"))
        blocks.append(("pre", "\n".join(f"{k}: {v}" for k, v in sorted(run.versions.items()))))
    blocks.append(("text", "Reproduce locally:"))
    commands = [reproduce_command(group, run)]
    if first.command:
        commands.append(f"# what ran on {first.node or 'the node'}:\n{first.command}")
    blocks.append(("pre", "\n".join(commands)))
    blocks.append(("text", f"{marker(group.key)} (fingerprint algorithm v{fp.version}; "
                           f"normalised line: {fp.signature})"))
    return render(blocks, markup)


def seen_again(group: FailureGroup, run: RunResults, markup: str) -> str:
    nodes = group.nodes
    blocks: list[Block] = [("text", f"Seen again in run {run.run_id} on {len(nodes)} node(s): {nodes or '-'}\n"
                                    + "\n".join(_run_lines(run)[1:]))]
    first = group.results[0]
    blocks.append(("pre", _error_lines(first.message) or "(no output)"))
    rows = _measurement_rows(group.results)
    if rows:
        blocks.append(("pre", "\n".join(rows)))
    return render(blocks, markup)


def passing(test_id: str, runs: int, run: RunResults, closing: bool, markup: str) -> str:
    text = f"{test_id} passed on all nodes for {runs} consecutive runs (last: {run.run_id})."
    if run.build_url:
        text += f"\nJenkins build: {run.build_url}"
    if closing:
        text += "\nClosing; hpcos reopens this ticket if the failure comes back."
    return render([("text", text)], markup)


def run_wide(groups: list[FailureGroup], run: RunResults, cap: str, markup: str) -> tuple[str, str]:
    """One ticket instead of hundreds when a run would exceed the caps (a broken repository...)."""
    nodes = sum(len(g.nodes) for g in groups)
    title = f"Run-wide failure: {len(groups)} new failure groups in run {run.run_id} ({cap})"
    table = "\n".join(f"{len(g.nodes):>5}  {g.test_id}  {g.fingerprint.failure_class}: {g.fingerprint.signature}"
                      for g in groups)
    blocks: list[Block] = [
        ("text", "\n".join(_run_lines(run))),
        ("text", f"This run would have filed {len(groups)} new tickets ({nodes} failing node results), "
                 f"more than allowed ({cap}). Something common is probably broken (repository, "
                 f"network, scheduler). New failure groups, by node count:"),
        ("pre", table),
    ]
    if run.versions:
        blocks.append(("pre", "\n".join(f"{k}: {v}" for k, v in sorted(run.versions.items()))))
    return title[:SUMMARY_MAX], render(blocks, markup)
