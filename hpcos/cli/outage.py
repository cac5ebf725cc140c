"""``hpcos outage plan|report``: the production outage's plan, and what it actually took (docs/outage.md)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from hpcos.cli.console import console
from hpcos.core.errors import UserError


def register(sub) -> None:
    outage = sub.add_parser("outage", help="plan the production outage (changes, tasks, durations, risks, "
                                           "rollback) and record what it took")
    actions = outage.add_subparsers(dest="outage_command", metavar="ACTION", required=True)
    plan = actions.add_parser("plan", help="write the plan for promoting testing to production: Markdown, HTML, "
                                           "JSON, and the site's wiki page")
    plan.add_argument("--window", metavar="START", help="when the outage starts (ISO date and time, e.g. "
                                                        "2026-12-08T08:00): the plan gives the end")
    plan.add_argument("--production", metavar="PROFILE", help="production cluster profile (default: site.yaml "
                                                              "harness.production_profile)")
    plan.add_argument("--cluster", metavar="PROFILE", help="test cluster profile (default: site.yaml harness.profile)")
    plan.add_argument("--batch-size", type=int, metavar="N", help="most production nodes out at once (default: "
                                                                   "the production profile's, else 32)")
    plan.add_argument("-o", "--output", type=Path, metavar="DIR", help="also write plan.md, plan.html and "
                                                                       "plan.json here")
    plan.add_argument("--no-wiki", action="store_true", help="do not write the wiki page")
    plan.set_defaults(func=_plan)


def _profiles(args):
    from hpcos.cli.inventory import load_named_profile

    spec = args.site.specs.site.harness
    production = args.production or spec.production_profile
    if not production:
        raise UserError("no production profile: pass --production PROFILE or set harness.production_profile in "
                        "site.yaml")
    return load_named_profile(args.cluster or spec.profile), load_named_profile(production)


def _window(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--window {text!r}: expected an ISO date and time such as 2026-12-08T08:00") from None


def _plan(args) -> int:
    from hpcos.inventory import collect
    from hpcos.outage import publish
    from hpcos.outage.plan import build_plan

    test, production = _profiles(args)
    site = args.site
    directory = site.layout.inventories
    batch = args.batch_size or getattr(getattr(production, "deploy", None), "batch_size", None)
    with console.status("reading the snapshots' metadata and the configuration branches"):
        plan = build_plan(site, test, production, batch_size=batch, window_start=_window(args.window),
                          test_measured=collect.load(directory, test.name),
                          production_measured=collect.load(directory, production.name))
    files = publish.write_files(plan, site.layout.outages / plan.testing_snapshot)
    if args.output:
        files = publish.write_files(plan, args.output)
    print(files["markdown"].read_text(encoding="utf-8"))
    where = [str(files["html"])]
    if not args.no_wiki:
        page = publish.to_wiki(site, plan)
        if page:
            where.append(page)
    console.print(f"outage plan for {plan.testing_snapshot}: {len(plan.changes)} package changes, "
                  f"{len(plan.risks)} risks, window {publish.window_text(plan)}; written to {', '.join(where)}",
                  markup=False, soft_wrap=True)
    return 0
