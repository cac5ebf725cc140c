"""``hpcos outage plan|accept|run|report``: the production outage's plan, and what it actually took (docs/outage.md)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from hpcos.cli.console import console, emit
from hpcos.cli.options import COUNT
from hpcos.core.errors import UserError
from hpcos.core.store_files import read_bytes_limited
from hpcos.repo.environments import checked_reason

# A plan of 20,000 package changes with their changelogs is tens of MiB; /dev/zero is not a plan.
PLAN_BUDGET = 512 * 1024 * 1024


def register(sub) -> None:
    outage = sub.add_parser(
        "outage",
        help="plan the production outage (changes, tasks, durations, risks, "
        "rollback) and record what it took",
    )
    actions = outage.add_subparsers(dest="outage_command", metavar="ACTION", required=True)
    plan = actions.add_parser(
        "plan",
        help="write the plan for promoting testing to production: Markdown, HTML, "
        "JSON, and the site's wiki page",
    )
    plan.add_argument(
        "--window",
        metavar="START",
        help="when the outage starts (ISO date and time, e.g. "
        "2026-12-08T08:00): the plan gives the end",
    )
    plan.add_argument(
        "--production",
        metavar="PROFILE",
        help="production cluster profile (default: site.yaml harness.production_profile)",
    )
    plan.add_argument(
        "--cluster",
        metavar="PROFILE",
        help="test cluster profile (default: site.yaml harness.profile)",
    )
    plan.add_argument(
        "--batch-size",
        type=COUNT,
        metavar="N",
        help="most production nodes out at once (default: the production profile's, else 32)",
    )
    plan.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="DIR",
        help="also write plan.md, plan.html and plan.json here",
    )
    plan.add_argument("--no-wiki", action="store_true", help="do not write the wiki page")
    plan.set_defaults(func=_plan)

    run = actions.add_parser(
        "run",
        help="roll the plan out on production: deploy in batches, post-outage tests, "
        "a ticket per failed node, actual against planned times",
    )
    run.add_argument(
        "--plan",
        type=Path,
        metavar="PLAN.json",
        help="written by `hpcos outage plan` (default: the store's plan for production's snapshot)",
    )
    run.add_argument("--production", metavar="PROFILE")
    run.add_argument("--batch-size", type=COUNT, metavar="N", help="default: the plan's")
    run.add_argument(
        "--no-tests", action="store_true", help="skip the post-outage integration tests"
    )
    run.add_argument(
        "-m",
        dest="marks",
        metavar="MARKS",
        help="only the post-outage tests with these marks (pytest -m), e.g. 'node or mpi'",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="roll out a snapshot whose promotion overrode the gate, "
        "or a plan whose risks nobody accepted",
    )
    run.add_argument("--reason", default="")
    run.set_defaults(func=_run)

    accept = actions.add_parser(
        "accept",
        help="record who accepts the plan's risks (required before `outage run`) "
        "and put it on the plan's page",
    )
    accept.add_argument(
        "--plan", type=Path, metavar="PLAN.json", help="default: as for `outage run`"
    )
    accept.add_argument(
        "--by", required=True, metavar="NAME", help="the person accepting the risks"
    )
    accept.set_defaults(func=_accept)

    report = actions.add_parser(
        "report", help="append the last rollout's actual times to the plan's wiki page"
    )
    report.add_argument(
        "--plan", type=Path, metavar="PLAN.json", help="default: as for `outage run`"
    )
    report.set_defaults(func=_report)


def _profiles(args):
    spec = args.site.specs.site.harness
    production = args.production or spec.production_profile
    if not production:
        raise UserError(
            "no production profile: pass --production PROFILE or set harness.production_profile in "
            "site.yaml"
        )
    return args.site.profile(args.cluster or spec.profile), args.site.profile(production)


def _window(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"--window {text!r}: expected an ISO date and time such as 2026-12-08T08:00"
        ) from None


def _plan(args) -> int:
    from hpcos.inventory import collect
    from hpcos.outage import publish
    from hpcos.outage.plan import build_plan

    test, production = _profiles(args)
    site = args.site
    directory = site.layout.inventories
    batch = args.batch_size or production.deploy.batch_size
    with console.status("reading the snapshots' metadata and the configuration branches"):
        plan = build_plan(
            site,
            test,
            production,
            batch_size=batch,
            window_start=_window(args.window),
            test_measured=collect.load(directory, test.name),
            production_measured=collect.load(directory, production.name),
        )
    files = publish.write_files(
        plan, *filter(None, (args.output, site.layout.outages / plan.testing_snapshot))
    )
    emit(files["markdown"].read_text(encoding="utf-8"))
    where = [str(files["html"])]
    if not args.no_wiki:
        page = publish.to_wiki(site, plan)
        if page:
            where.append(page)
    console.print(
        f"outage plan for {plan.testing_snapshot}: {len(plan.changes)} package changes, "
        f"{len(plan.risks)} risks, window {publish.window_text(plan)}; written to {', '.join(where)}",
        markup=False,
        soft_wrap=True,
    )
    return 0


def _load_plan(path: Path | None, site=None):
    return _load_plan_at(path, site)[0]


def _load_plan_at(path: Path | None, site=None):
    from hpcos.outage.plan import OutagePlan
    from hpcos.repo.environments import Environments

    if path is None:
        current = Environments(site.layout).environment("production").current()
        if current is None:
            raise UserError("production points at nothing: pass --plan PLAN.json")
        path = site.layout.outages / current / "plan.json"
    try:
        return OutagePlan.from_json(
            read_bytes_limited(path, PLAN_BUDGET, "plan", follow=True).decode("utf-8")
        ), path
    except FileNotFoundError:
        raise UserError(
            f"{path}: no such plan (hpcos outage plan writes STORE/outages/SNAPSHOT/plan.json)"
        ) from None
    except (OSError, ValueError, TypeError, KeyError, RecursionError) as exc:
        raise UserError(
            f"{path}: not a plan written by hpcos outage plan ({' '.join(str(exc).split())[:200]})"
        ) from None


def _post_tests(args, profile_file: Path, results: Path):
    """The integration tests on production, as a child `hpcos test` (its own session, killed on timeout)."""
    import sys

    from hpcos.core import runner

    def run_them() -> int:
        argv = [
            sys.executable,
            "-m",
            "hpcos.cli",
            "test",
            "--specs",
            str(args.site.specs_dir),
            "--store",
            str(args.site.store_root),
            "--cluster",
            str(profile_file),
            "--results",
            str(results),
        ]
        if args.marks:
            argv += ["-m", args.marks]
        done = runner.run(
            argv, timeout=6 * 3600, on_line=lambda line: console.print(line, markup=False)
        )
        return done.exit_code

    return run_them


def _run(args) -> int:
    from hpcos.cluster.profiles import load_profile
    from hpcos.outage import rollout

    if args.force and not args.reason:
        raise UserError("--force needs --reason")
    checked_reason(args.reason)  # recorded with the rollout and put on the wiki page
    plan = _load_plan(args.plan, args.site)
    name = (
        args.production
        or args.site.specs.site.harness.production_profile
        or plan.production_cluster
    )
    path = args.site.profile_path(name)
    production = load_profile(path)
    if production.name != plan.production_cluster:
        raise UserError(
            f"{path} is cluster {production.name!r}, but the plan was made for "
            f"{plan.production_cluster!r}: pass --production with that cluster's profile"
        )
    results = args.site.layout.outages / plan.testing_snapshot / "post-outage-results.json"
    actuals = rollout.run(
        args.site,
        plan,
        production,
        path,
        batch_size=args.batch_size,
        post_tests=None if args.no_tests else _post_tests(args, path, results),
        force_reason=args.reason if args.force else None,
    )
    for line in actuals.tickets:
        emit(line)
    failed = bool(actuals.failed) or bool(actuals.tests_exit)
    console.print(
        f"outage {actuals.run_id}: {len(actuals.failed)} node(s) failed"
        + (
            f", post-outage tests exit {actuals.tests_exit}"
            if actuals.tests_exit is not None
            else ""
        )
        + "; `hpcos outage report` puts the actuals on the wiki page",
        markup=False,
    )
    return 1 if failed else 0


def _accept(args) -> int:
    from datetime import UTC

    from hpcos.outage import publish

    plan, path = _load_plan_at(args.plan, args.site)
    by = " ".join(args.by.split())  # one line; the page escapes it like every other value
    if not by or not by.isprintable():
        raise UserError("--by: expected the name of the person accepting the risks")
    plan.acceptance = {
        "by": by,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "risks": [f"{r.kind}: {r.text}" for r in plan.risks],
    }
    store_copy = args.site.layout.outages / plan.testing_snapshot
    publish.write_files(plan, *dict.fromkeys([path.parent, store_copy]))
    page = publish.to_wiki(args.site, plan)
    console.print(
        f"{len(plan.risks)} risk(s) of the plan for {plan.testing_snapshot} accepted by {by}"
        + (f"; on {page}" if page else ""),
        markup=False,
    )
    return 0


def _report(args) -> int:
    from hpcos.outage import publish, rollout
    from hpcos.outage.document import to_markdown
    from hpcos.outage.page import actuals_document

    plan = _load_plan(args.plan, args.site)
    actuals = rollout.latest(args.site, plan.testing_snapshot)
    if actuals is None:
        raise UserError(
            f"no rollout of {plan.testing_snapshot} recorded yet: run `hpcos outage run` first"
        )
    doc = actuals_document(
        plan,
        actuals.tasks,
        actuals.run_id,
        [f"{node}: {reason}" for node, reason in sorted(actuals.failed.items())],
        actuals.tickets,
    )
    emit(to_markdown(doc))
    page = publish.append_to_wiki(args.site, plan, doc)
    if page:
        console.print(f"actuals appended to {page}", markup=False)
    return 0
