"""The outage plan (and, after the outage, its actuals) as a page for developers, management and operators."""

from __future__ import annotations

from hpcos.outage.document import Bullets, Code, Document, Heading, Para, Table
from hpcos.outage.plan import OutagePlan, TaskEstimate

CHANGELOG_LINES = 3


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return (
        f"{hours} h {minutes:02d} min"
        if hours
        else f"{minutes} min {secs:02d} s"
        if minutes
        else f"{secs} s"
    )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def plan_document(plan: OutagePlan) -> Document:
    doc = Document(f"Outage plan: {plan.testing_snapshot} to {plan.production_cluster}")
    window = duration(plan.window_seconds)
    when = (
        f"from {plan.window_start} to {plan.window_end}"
        if plan.window_end
        else f"starting {plan.window_start}"
        if plan.window_start
        else "window not yet scheduled"
    )
    doc.add(
        Table(
            ["", ""],
            [
                ["testing snapshot (to install)", plan.testing_snapshot],
                ["production now", plan.production_snapshot or "nothing"],
                [
                    "production cluster",
                    f"{plan.production_cluster}: {plan.production_nodes} nodes, batches of {plan.batch_size}",
                ],
                [
                    "measured on",
                    f"{plan.test_cluster}"
                    + (f" (deploy {plan.deploy_id})" if plan.deploy_id else ""),
                ],
                ["window", f"{window}, {when}"],
                [
                    "before the window",
                    f"{duration(plan.before_window_seconds)} (the .repo file and the packages "
                    "downloaded while the nodes still run jobs)",
                ],
                [
                    "package changes",
                    f"{len(plan.changes)}, {len(plan.security_advisories)} security advisories",
                ],
                ["risks", str(len(plan.risks))],
                ["plan written", plan.created],
            ],
        )
    )

    doc.add(Heading(1, "What changes"))
    if plan.security_advisories:
        doc.add(
            Heading(2, "Security advisories fixed"),
            Table(
                ["advisory", "severity", "title", "references"],
                [
                    [a.id, a.severity, a.title, ", ".join(a.references)]
                    for a in plan.security_advisories
                ],
            ),
        )
    doc.add(Heading(2, "Packages"))
    if plan.changes:
        rows = []
        for change in plan.changes:
            log = " / ".join(
                f"{e.date} {e.text.splitlines()[0] if e.text else ''}"
                for e in change.changelog[:CHANGELOG_LINES]
            )
            rows.append(
                [
                    change.repo,
                    change.package,
                    change.old or "-",
                    change.new or "-",
                    ", ".join(a.id for a in change.advisories),
                    log,
                ]
            )
        doc.add(
            Table(
                [
                    "repository",
                    "package",
                    "production",
                    "testing",
                    "advisories",
                    "newest changelog entries",
                ],
                rows,
            )
        )
    else:
        doc.add(Para("No package differs between production and testing."))
    doc.add(Heading(2, "Configuration changes"))
    doc.add(
        Bullets(plan.config_changes)
        if plan.config_changes
        else Para("No configuration-management or monitoring change waits on the testing branches.")
    )
    doc.add(Heading(2, "Site patches carried by the overlays"))
    doc.add(
        Table(
            ["package", "overlay", "patch", "why", "upstream", "owner"],
            [
                [
                    p["package"],
                    p["overlay"],
                    p["patch"],
                    p["reason"],
                    p["upstream"] or "-",
                    p["owner"],
                ]
                for p in plan.patches
            ],
        )
        if plan.patches
        else Para("None.")
    )

    doc.add(Heading(1, "Tasks"))
    doc.add(
        Table(
            [
                "#",
                "task",
                "test nodes measured",
                "per node on test (median / slowest)",
                "planned on production",
            ],
            [
                [
                    str(i),
                    t.task,
                    str(t.test_nodes),
                    f"{_seconds(t.test_median)} / {_seconds(t.test_max)}",
                    duration(t.production_seconds),
                ]
                for i, t in enumerate(plan.tasks, 1)
            ],
        )
    )
    doc.add(Para(f"Total window: {window}."))
    if plan.cost:
        doc.add(Heading(2, "Cost"), Bullets(plan.cost))
    doc.add(Heading(2, "Assumptions"), Bullets(plan.assumptions))

    doc.add(Heading(1, "Risks"))
    doc.add(
        Table(["class", "risk"], [[r.kind, r.text] for r in plan.risks])
        if plan.risks
        else Para("No deviation between the clusters, no open ticket, no overridden gate.")
    )

    doc.add(Heading(1, "Risk acceptance"))
    if plan.acceptance.get("by"):
        doc.add(
            Para(
                f"Accepted by {plan.acceptance['by']} on {plan.acceptance['when']}: the "
                f"{len(plan.acceptance['risks'])} risks below."
            ),
            Bullets(plan.acceptance["risks"]),
        )
    else:
        doc.add(
            Para(
                "Not accepted yet: `hpcos outage accept --by NAME` records who accepts these risks; "
                "`hpcos outage run` refuses the plan until then (or --force --reason)."
            )
        )
    doc.add(Heading(1, "Rollback"), Code("\n".join(plan.rollback)))
    doc.add(
        Heading(1, "Owners"),
        Table(
            ["overlay", "packages and owners"],
            [[o, "; ".join(p)] for o, p in sorted(plan.owners.items())],
        ),
    )
    return doc


def actuals_document(
    plan: OutagePlan, actual: dict[str, float], run_id: str, failed: list[str], tickets: list[str]
) -> Document:
    """What the outage took against what was planned, per task: appended to the plan's page."""
    rows = []
    planned_total = actual_total = 0.0
    for task in plan.tasks:
        seconds = actual.get(task.task)
        rows.append(
            [task.task, duration(task.production_seconds), duration(seconds), _delta(task, seconds)]
        )
        planned_total += task.production_seconds or 0
        actual_total += seconds or 0
    rows.append(["total", duration(planned_total), duration(actual_total), ""])
    doc = Document(f"Outage {run_id}: actuals")
    doc.add(
        Heading(1, f"Outage {run_id}: planned against actual"),
        Table(["task", "planned", "actual", "difference"], rows),
    )
    doc.add(
        Heading(2, "Nodes that failed"),
        Bullets(failed) if failed else Para("None: every node was verified."),
    )
    if tickets:
        doc.add(Heading(2, "Tickets filed"), Bullets(tickets))
    return doc


def _delta(task: TaskEstimate, seconds: float | None) -> str:
    if seconds is None or task.production_seconds is None:
        return ""
    diff = seconds - task.production_seconds
    return f"{'+' if diff >= 0 else '-'}{duration(abs(diff))}"
