"""What a ticket says: summary, description and follow-up comments, rendered for each tracker's markup."""

from __future__ import annotations

import hashlib
import html
import re
import shlex
from collections.abc import Iterable

from ClusterShell.NodeSet import NodeSet, NodeSetParseError

from hpcos.cluster.launchers.base import blamed_hosts
from hpcos.results.model import RunResults, TestResult
from hpcos.tickets.fingerprint import PERF_CLASS, TIMEOUT_CLASS
from hpcos.tickets.grouping import FailureGroup, short_test

SUMMARY_MAX = 200  # below every tracker's limit (Jira and Bugzilla: 255)
ERROR_LINES = 15
MEASUREMENT_ROWS = 10
# ("text", paragraph) | ("pre", preformatted text) | ("fields", [(label, value), ...])
Block = tuple[str, "str | list[tuple[str, str]]"]
# Node output is untrusted: each markup gets a block it cannot break out of (``quote_block``) and
# inline values (test ids, node sets, run ids) that render as code, never as links, images or macros.
_ZWSP = "\u200b"  # splits a closing token without changing what a reader sees


def _backtick_fence(text: str, least: int) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(least, longest + 1)


def quote_block(text: str, markup: str) -> str:
    """``text`` as preformatted text that no line of it can end early."""
    if (
        markup == "trac"
    ):  # {{{ ... }}} nests in Trac: neutralise both so the block ends where we say
        body = text.replace("{{{", "{" + _ZWSP + "{{").replace("}}}", "}" + _ZWSP + "}}")
        return f"{{{{{{\n{body}\n}}}}}}"
    if markup == "markdown":
        fence = _backtick_fence(text, 3)
        return f"{fence}text\n{text}\n{fence}"
    if markup == "jira":
        return (
            "{noformat}\n"
            + re.sub(r"(?i)\{noformat", "{" + _ZWSP + "noformat", text)
            + "\n{noformat}"
        )
    if markup == "textile":  # Redmine: <pre> with its content HTML-escaped
        return f"<pre>\n{html.escape(text, quote=False)}\n</pre>"
    return "\n".join("    " + line for line in text.splitlines())


_JIRA_SPECIAL = re.compile(r"([\\{}\[\]*_+\-^~|!?#])")


def quote_inline(value: str, markup: str) -> str:
    """One value (test id, node set, run id) as inline code for ``markup``; links stay links."""
    value = " ".join(value.split())
    if value.startswith(("http://", "https://")) and not re.search(r"[\s\[\]<>{}|`'\"]", value):
        return value
    if markup == "trac":
        if "`" not in value:
            return f"`{value}`"
        return "{{{" + value.replace("}}}", "}" + _ZWSP + "}}") + "}}}"
    if markup == "markdown":
        fence = _backtick_fence(value, 1)
        pad = " " if value.startswith("`") or value.endswith("`") else ""
        return f"{fence}{pad}{value}{pad}{fence}"
    if markup == "jira":
        return "{{" + _JIRA_SPECIAL.sub(r"\\\1", value) + "}}"
    if markup == "textile":
        return f"<code>{html.escape(value)}</code>"
    return value


_FIELD_PREFIX = {"trac": " * ", "markdown": "- ", "jira": "* ", "textile": "* "}


def _field(label: str, value: str, markup: str) -> str:
    if markup not in _FIELD_PREFIX:
        return f"{label}: {value}"
    return f"{_FIELD_PREFIX[markup]}{label}: {quote_inline(value, markup)}"


def render(blocks: Iterable[Block], markup: str) -> str:
    """Trac wiki, Markdown (GitHub, GitLab), Jira wiki, Textile (Redmine) or plain text (Bugzilla)."""
    out = []
    for kind, body in blocks:
        if kind == "fields":
            out.append("\n".join(_field(label, value, markup) for label, value in body))
        elif kind == "pre":
            out.append(quote_block(body, markup))
        else:
            out.append(body)
    return "\n\n".join(out) + "\n"


def cut(text: str, limit: int = SUMMARY_MAX) -> str:
    """``text`` on one line, cut at a word boundary to at most ``limit`` characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[: limit - 3]
    if " " in head[limit // 2 :]:
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(" ,;:-") + "..."


NODES_SHOWN = 40  # a folded node set longer than this is shown as a count


def _scope(group: FailureGroup) -> str:
    tests = group.tests
    kind = "MPI tests" if group.stacks else "tests"
    one = len(tests) == 1
    who = short_test(tests[0]) if one else f"{len(tests)} {kind}"
    verb = {PERF_CLASS: ("regresses", "regress"), TIMEOUT_CLASS: ("times out", "time out")}.get(
        group.fingerprint.failure_class, ("fails", "fail")
    )[0 if one else 1]
    nodes = group.nodes
    if not len(nodes):
        return f"{who} {verb}"
    shown = str(nodes)
    where = shown if len(shown) <= NODES_SHOWN else f"{len(nodes)} nodes"
    return f"{who} {verb} on {where}"


def _perf_reason(group: FailureGroup) -> str:
    metrics = []
    for result in group.results:
        for m in result.measurements:
            if (
                m.reference is not None
                and not m.reference.admits(m.value)
                and m.metric not in metrics
            ):
                metrics.append(m.metric)
    return f"{', '.join(metrics) or 'measurements'} outside the profile's reference"


# What differs from launch to launch and means nothing to a reader: MPICH's abort code, Open MPI's
# job ids, PIDs, addresses.
_RANDOM = [
    (re.compile(r"\bAbort\(\d+\)"), "Abort"),
    (re.compile(r"\[\[\d+,\d+\],\d+\]\s*"), ""),
    (re.compile(r"\s*\((?:pid|PID) \d+\)|\b(?:pid|PID)[ =:]\d+\s*"), " "),
    (re.compile(r"=0x[0-9a-fA-F]+"), "=..."),
    (re.compile(r"\s+at address 0x[0-9a-fA-F]+"), ""),
]


def reason(group: FailureGroup) -> str:
    if group.fingerprint.failure_class == PERF_CLASS:
        return _perf_reason(group)
    line = re.sub(r"^(?:Failed|ERROR|Error):\s*", "", group.reason())
    for pattern, replacement in _RANDOM:
        line = pattern.sub(replacement, line)
    line = " ".join(line.split())
    if not line or (
        group.fingerprint.failure_class == TIMEOUT_CLASS and line.startswith("timed out after")
    ):
        return group.fingerprint.signature or group.fingerprint.failure_class
    return line


def summary(group: FailureGroup) -> str:
    """``[openmpi] 4 MPI tests fail on node[001-016]: At least one pair of MPI processes ...``"""
    stacks = f"[{','.join(group.stacks)}] " if group.stacks else ""
    return cut(f"{stacks}{_scope(group)}: {reason(group)}")


def marker(key: str) -> str:
    """The line that ties a ticket to its fingerprint where the tracker has no field for it."""
    return f"hpcos-fingerprint: {key}"


def run_marker(run_id: str, key: str, kind: str) -> str:
    """The line that says "this run already told this ticket": read back before a change is sent
    again (``TrackerBackend.has_marker``).  Hex only, so no markup changes it."""
    digest = hashlib.sha256(f"{run_id}\x1f{key}\x1f{kind}".encode()).hexdigest()[:16]
    return f"hpcos-run: {digest}"


def _cluster_argument(results: list[TestResult], run: RunResults) -> str:
    """The ``--cluster`` the run was started with (a profile path outside integration_tests/clusters/
    does not resolve by its name), as the harness wrote it into each failure's rerun command."""
    for result in results:
        argv = shlex.split(result.rerun) if result.rerun else []
        if "--cluster" in argv[:-1]:
            return argv[argv.index("--cluster") + 1]
    return run.cluster


REPRODUCE_SHOWN = 8


def reproduce_commands(group: FailureGroup, run: RunResults) -> list[str]:
    """One ``hpcos test`` per (test, stack) of the group, each naming its own ``--mpi``."""
    commands = []
    for test, stack, nodes, _count in group.matrix()[:REPRODUCE_SHOWN]:
        results = [r for r in group.results if r.test_id == test and (r.mpi or "") == stack]
        env = _night_env(results)
        words = [f"{k}={v}" for k, v in env.items()]
        words += [
            "hpcos",
            "test",
            "--cluster",
            _cluster_argument(results, run),
            "-k",
            short_test(test),
        ]
        if len(nodes):
            words += ["--nodes", str(nodes)]
        if stack:
            words += ["--mpi", stack]
        commands.append(shlex.join(words))
    return commands


def _night_env(results: list[TestResult]) -> dict[str, str]:
    """The variables the night's environment gave the job (not the profile): a reproduction sets them."""
    env: dict[str, str] = {}
    for result in results:
        for name, value in result.env.items():
            env.setdefault(name, value)
    return env


def _environment(group: FailureGroup) -> str:
    """The MPI/UCX/OFI/PSM/LD_* variables the jobs ran with, and where each came from."""
    night = _night_env(group.results)
    profile: dict[str, str] = {}
    for result in group.results:
        for name, value in result.profile_env.items():
            profile.setdefault(name, value)
    lines = [f"{k}={v}  (the night's environment)" for k, v in night.items()]
    lines += [f"{k}={v}  (the profile's MPI stack)" for k, v in profile.items()]
    return "\n".join(lines)


def _rank_stacks(group: FailureGroup, limit: int = 60) -> str:
    """Where a hung job's ranks were before the kill (the harness's look, ``hpcos.core.stacks``)."""
    for result in group.results:
        text = result.message
        at = text.find("--- where the ranks were before the kill\n")
        if at >= 0:
            body = text[at:].split("\n", 1)[1]
            end = re.search(r"^--- (?:stderr|stdout)\b", body, re.MULTILINE)
            lines = (body[: end.start()] if end else body).rstrip().splitlines()
            more = (
                [f"... ({len(lines) - limit} more lines in the results)"]
                if len(lines) > limit
                else []
            )
            return f"{short_test(result.test_id)} on {result.node}:\n" + "\n".join(
                lines[:limit] + more
            )
    return ""


def reproduce_command(group: FailureGroup, run: RunResults) -> str:
    return reproduce_commands(group, run)[0]


def _measurement_rows(results: list[TestResult]) -> list[str]:
    rows = []
    for result in results:
        for m in result.measurements:
            if m.reference is None or m.reference.admits(m.value):
                continue
            lo, hi = m.reference.bounds()
            size = f" {m.size} B" if m.size is not None else ""
            bounds = f"[{'-inf' if lo is None else f'{lo:.4g}'}, {'+inf' if hi is None else f'{hi:.4g}'}]"
            rows.append(
                f"{result.node or '-'}: {m.metric}{size}: measured {m.value:.4g} {m.unit}, "
                f"expected {m.reference.value:.4g} {m.unit} within {bounds}"
            )
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
    return (
        (f"Nodes ({len(nodes)})", str(nodes)) if len(nodes) else ("Nodes", "none (node-less test)")
    )


MATRIX_ROWS = 30


def _matrix(group: FailureGroup) -> str:
    rows = group.matrix()
    lines = [
        f"{count:>5}  {stack or '-':<8}  {nodes or '-'}  {test}"
        for test, stack, nodes, count in rows[:MATRIX_ROWS]
    ]
    if len(rows) > MATRIX_ROWS:
        lines.append(f"... and {len(rows) - MATRIX_ROWS} more")
    return "\n".join(lines)


def _blamed(group: FailureGroup) -> str:
    names: set[str] = set()
    for result in group.results:
        try:
            names.update(blamed_hosts(result.message))
        except NodeSetParseError:
            continue
    return str(NodeSet.fromlist(sorted(names))) if names else ""


def description(group: FailureGroup, run: RunResults, markup: str) -> str:
    fp = group.fingerprint
    first = group.results[0]
    tests = group.tests
    fields = [
        (
            "Tests" if len(tests) > 1 else "Test",
            ", ".join(short_test(t) for t in tests[:10])
            + (f" and {len(tests) - 10} more" if len(tests) > 10 else ""),
        ),
        ("MPI stacks", ", ".join(group.stacks) or "none"),
        ("Failure class", fp.failure_class),
        _nodes_field(group.nodes),
        *_run_fields(run),
    ]
    blamed = _blamed(group)
    if blamed:  # a bisected job: the node it fails on alone comes first
        fields.insert(0, ("Node to blame (the job fails there alone)", blamed))
    blocks: list[Block] = [
        ("text", "Reason (the most informative line of the failures' output):"),
        ("pre", reason(group)),
        ("fields", fields),
        ("text", "Failing results by test and MPI stack (count, stack, nodes, test):"),
        ("pre", _matrix(group)),
    ]
    if group.joined:
        blocks.append(("text", "Grouped with this cause (evidence from the same run):"))
        blocks.append(
            (
                "pre",
                "\n".join(f"grouped with {reason(group)!r} because {why}" for why in group.joined),
            )
        )
    stacks = _rank_stacks(group)
    if stacks:
        blocks.append(("text", "Where the ranks were when the timeout struck (before the kill):"))
        blocks.append(("pre", stacks))
    environment = _environment(group)
    if environment:
        blocks.append(
            ("text", "The jobs' environment (MPI, UCX, OFI, PSM, LD_* variables; secrets masked):")
        )
        blocks.append(("pre", environment))
    by_message = group.nodes_by_message()
    if len(by_message) > 1 or by_message[0][0] != reason(group):
        blocks.append(("text", "Reason lines as printed (count, nodes, line):"))
        blocks.append(
            (
                "pre",
                "\n".join(
                    f"{count:>5}  {ns or '-'}  {line}" for line, ns, count in by_message[:20]
                ),
            )
        )
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
    commands = reproduce_commands(group, run)
    if first.command:
        commands.append(f"# what ran on {first.node or 'the node'}:\n{first.command}")
    blocks.append(("pre", "\n".join(commands)))
    blocks.append(
        (
            "fields",
            [
                ("Normalised reason", fp.signature or fp.failure_class),
                ("Grouped by", "test" if fp.by_test else "root cause across tests"),
                ("Fingerprint algorithm", f"v{fp.version}"),
            ],
        )
    )
    blocks.append(("text", marker(group.key)))
    blocks.append(("text", run_marker(run.run_id, group.key, "report")))
    return render(blocks, markup)


def seen_again(group: FailureGroup, run: RunResults, markup: str) -> str:
    nodes = group.nodes
    tests = group.tests
    blocks: list[Block] = [
        (
            "text",
            f"Seen again in run {quote_inline(run.run_id, markup)} on {len(nodes)} node(s), "
            f"{len(tests)} test(s):",
        ),
        ("fields", [_nodes_field(nodes), *_run_fields(run, first=False)]),
        ("pre", _matrix(group)),
    ]
    first = group.results[0]
    blocks.append(("pre", _error_lines(first.message) or "(no output)"))
    if group.joined:
        blocks.append(("pre", "\n".join(f"grouped here because {why}" for why in group.joined)))
    stacks = _rank_stacks(group)
    if stacks:
        blocks.append(("pre", stacks))
    rows = _measurement_rows(group.results)
    if rows:
        blocks.append(("pre", "\n".join(rows)))
    blocks.append(("text", run_marker(run.run_id, group.key, "report")))
    return render(blocks, markup)


def passing(
    tests: list[str], runs: int, run: RunResults, closing: bool, markup: str, key: str = ""
) -> str:
    text = f"Passed on all nodes for {runs} consecutive runs (last: {quote_inline(run.run_id, markup)})."
    if closing:
        text += " Closing; hpcos reopens this ticket if the failure comes back."
    fields = [
        ("Tests" if len(tests) > 1 else "Test", ", ".join(short_test(t) for t in tests)),
        *_run_fields(run, first=False),
    ]
    return render(
        [("text", text), ("fields", fields), ("text", run_marker(run.run_id, key, "resolve"))],
        markup,
    )


def carried_over(ticket_ref: str, key: str, markup: str) -> str:
    """Closing a ticket of an earlier fingerprint version whose failure now belongs to another ticket."""
    return render(
        [
            (
                "text",
                f"hpcos now groups failures by root cause (fingerprint v{key.split('-')[1][1:]}); "
                f"this failure continues in {ticket_ref}. Closing as a duplicate.",
            )
        ],
        markup,
    )


def run_wide(
    groups: list[FailureGroup], run: RunResults, cap: str, markup: str, key: str = "run-wide"
) -> tuple[str, str]:
    """One ticket instead of hundreds when a run would exceed the caps (a broken repository...)."""
    nodes = sum(len(g.nodes) for g in groups)
    title = f"Run-wide failure: {len(groups)} new failure groups in run {run.run_id} ({cap})"
    table = "\n".join(
        f"{len(g.nodes):>5}  {', '.join(short_test(t) for t in g.tests)}  "
        f"{g.fingerprint.failure_class}: {reason(g)}"
        for g in groups
    )
    blocks: list[Block] = [
        ("fields", _run_fields(run)),
        (
            "text",
            f"This run would have filed {len(groups)} new tickets ({nodes} failing node results), "
            f"more than allowed ({cap}). Something common is probably broken (repository, "
            f"network, scheduler). New failure groups, by node count:",
        ),
        ("pre", table),
    ]
    if run.versions:
        blocks.append(("pre", "\n".join(f"{k}: {v}" for k, v in sorted(run.versions.items()))))
    blocks.append(("text", run_marker(run.run_id, key, "report")))
    return cut(title), render(blocks, markup)
