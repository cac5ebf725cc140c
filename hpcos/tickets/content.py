"""What a ticket says: summary, description and follow-up comments, rendered for each tracker's markup."""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from hpcos.results.model import RunResults, TestResult
from hpcos.tickets.grouping import FailureGroup

SUMMARY_MAX = 200  # below every tracker's limit (Jira and Bugzilla: 255)
ERROR_LINES = 15
MEASUREMENT_ROWS = 10
# ("text", paragraph) | ("pre", preformatted text) | ("fields", [(label, value), ...])
Block = tuple[str, "str | list[tuple[str, str]]"]
_FENCES = {"trac": ("{{{", "}}}"), "markdown": ("```", "```"), "jira": ("{noformat}", "{noformat}"),
           "textile": ("<pre>", "</pre>")}
# Values (test ids, node sets) are shown as inline code so that no markup reads ``node[001-300]`` as
# a link or ``test_x_y`` as emphasis; the bullet keeps one field per line where newlines would join.
_FIELD = {"trac": " * {label}: `{value}`", "markdown": "- {label}: `{value}`", "jira": "* {label}: {{{{{value}}}}}",
          "textile": "* {label}: @{value}@"}


def _field(label: str, value: str, markup: str) -> str:
    if markup not in _FIELD:
        return f"{label}: {value}"
    if value.startswith(("http://", "https://")):  # links stay links
        return _FIELD[markup].split(":", 1)[0].format(label=label) + f": {value}"
    return _FIELD[markup].format(label=label, value=value)


def render(blocks: Iterable[Block], markup: str) -> str:
    """Trac wiki, Markdown (GitHub, GitLab), Jira wiki, Textile (Redmine) or plain text (Bugzilla)."""
    out = []
    for kind, body in blocks:
        if kind == "fields":
            out.append("\n".join(_field(label, value, markup) for label, value in body))
        elif kind == "pre" and markup in _FENCES:
            start, end = _FENCES[markup]
            out.append(f"{start}\n{body}\n{end}")
        elif kind == "pre":
            out.append("\n".join("    " + line for line in body.splitlines()))
        else:
            out.append(body)
    return "\n\n".join(out) + "\n"


def summary(group: FailureGroup) -> str:
    fp = group.fingerprint
    count = len(group.nodes)
    where = f" on {count} node{'s' if count != 1 else ''}" if count else ""
    # The raw line of the most common variant: the normalised signature is for grouping, and reads
    # like "testing has <n>-<n>.<host>" in a tracker's list.
    line = group.nodes_by_message()[0][0] if group.results else fp.signature
    text = f"{fp.test_id}: {fp.failure_class}{where}: {line}"
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 3] + "..."


def marker(key: str) -> str:
    """The line that ties a ticket to its fingerprint where the tracker has no field for it."""
    return f"hpcos-fingerprint: {key}"


def _cluster_argument(group: FailureGroup, run: RunResults) -> str:
    """The ``--cluster`` the run was started with (a profile path outside integration_tests/clusters/
    does not resolve by its name), as the harness wrote it into each failure's rerun command."""
    for result in group.results:
        argv = shlex.split(result.rerun) if result.rerun else []
        if "--cluster" in argv[:-1]:
            return argv[argv.index("--cluster") + 1]
    return run.cluster


def reproduce_command(group: FailureGroup, run: RunResults) -> str:
    name = group.test_id.split("::", 1)[-1]
    words = ["hpcos", "test", "--cluster", _cluster_argument(group, run), "-k", name]
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


def _run_fields(run: RunResults, first: bool = True) -> list[tuple[str, str]]:
    fields = [("Run", f"{run.run_id} on {run.cluster}, started {run.started}")] if first else []
    if run.testing_snapshot:
        fields.append(("Testing snapshot", run.testing_snapshot))
    if run.build_url:
        fields.append(("Jenkins build", run.build_url))
    return fields


def _nodes_field(nodes) -> tuple[str, str]:
    return (f"Nodes ({len(nodes)})", str(nodes)) if len(nodes) else ("Nodes", "none (node-less test)")


def description(group: FailureGroup, run: RunResults, markup: str) -> str:
    fp = group.fingerprint
    first = group.results[0]
    nodes = group.nodes
    blocks: list[Block] = [("fields", [("Test", fp.test_id), ("Failure class", fp.failure_class),
                                        _nodes_field(nodes), *_run_fields(run)])]
    by_message = group.nodes_by_message()
    blocks.append(("text", "Failing results by first error line (count, nodes, line as printed):"))
    blocks.append(("pre", "\n".join(f"{count:>5}  {ns}  {line}" for line, ns, count in by_message[:20])))
    rows = _measurement_rows(group.results)
    if rows:
        blocks.append(("text", "Measured vs expected:"))
        blocks.append(("pre", "\n".join(rows)))
    blocks.append(("text", f"First error lines (from {first.node or 'the run'}):"))
    blocks.append(("pre", _error_lines(first.message) or "(no output)"))
    if run.versions:
        blocks.append(("text", "Versions under test (kernel and MPI launchers on the first node):"))
        blocks.append(("pre", "\n".join(f"{k}: {v}" for k, v in sorted(run.versions.items()))))
    blocks.append(("text", "Reproduce locally:"))
    commands = [reproduce_command(group, run)]
    if first.command:
        commands.append(f"# what ran on {first.node or 'the node'}:\n{first.command}")
    blocks.append(("pre", "\n".join(commands)))
    blocks.append(("fields", [("Normalised error line", fp.signature),
                              ("Fingerprint algorithm", f"v{fp.version}")]))
    blocks.append(("text", marker(group.key)))
    return render(blocks, markup)


def seen_again(group: FailureGroup, run: RunResults, markup: str) -> str:
    nodes = group.nodes
    blocks: list[Block] = [("text", f"Seen again in run {run.run_id} on {len(nodes)} node(s):"),
                           ("fields", [_nodes_field(nodes), *_run_fields(run, first=False)])]
    first = group.results[0]
    blocks.append(("pre", _error_lines(first.message) or "(no output)"))
    rows = _measurement_rows(group.results)
    if rows:
        blocks.append(("pre", "\n".join(rows)))
    return render(blocks, markup)


def passing(test_id: str, runs: int, run: RunResults, closing: bool, markup: str) -> str:
    text = f"Passed on all nodes for {runs} consecutive runs (last: {run.run_id})."
    if closing:
        text += " Closing; hpcos reopens this ticket if the failure comes back."
    return render([("text", text), ("fields", [("Test", test_id), *_run_fields(run, first=False)])], markup)


def run_wide(groups: list[FailureGroup], run: RunResults, cap: str, markup: str) -> tuple[str, str]:
    """One ticket instead of hundreds when a run would exceed the caps (a broken repository...)."""
    nodes = sum(len(g.nodes) for g in groups)
    title = f"Run-wide failure: {len(groups)} new failure groups in run {run.run_id} ({cap})"
    table = "\n".join(f"{len(g.nodes):>5}  {g.test_id}  {g.fingerprint.failure_class}: {g.fingerprint.signature}"
                      for g in groups)
    blocks: list[Block] = [
        ("fields", _run_fields(run)),
        ("text", f"This run would have filed {len(groups)} new tickets ({nodes} failing node results), "
                 f"more than allowed ({cap}). Something common is probably broken (repository, "
                 f"network, scheduler). New failure groups, by node count:"),
        ("pre", table),
    ]
    if run.versions:
        blocks.append(("pre", "\n".join(f"{k}: {v}" for k, v in sorted(run.versions.items()))))
    return title[:SUMMARY_MAX], render(blocks, markup)
