"""``hpcos inventory collect|show|diff``: what each cluster is made of, and how test and production differ."""

from __future__ import annotations

import json
from dataclasses import asdict

from rich.table import Table
from rich.text import Text

from hpcos.cli.console import console, emit, stdout_console


def register(sub) -> None:
    inventory = sub.add_parser(
        "inventory",
        help="measure the clusters' node classes and list how test and production differ",
    )
    actions = inventory.add_subparsers(dest="inventory_command", metavar="ACTION", required=True)
    collect = actions.add_parser(
        "collect",
        help="measure every node of the profile's inventory classes "
        "(uname, lscpu, ibv_devinfo, rpm) and keep it in the store",
    )
    collect.add_argument("--cluster", metavar="PROFILE", required=True)
    collect.add_argument("--json", action="store_true", help="print what was measured as JSON")
    collect.set_defaults(func=_collect)
    diff = actions.add_parser(
        "diff", help="every deviation of production from the test cluster, classed as risks"
    )
    diff.add_argument("test", metavar="TEST_PROFILE")
    diff.add_argument("production", metavar="PRODUCTION_PROFILE")
    diff.add_argument("--json", action="store_true")
    diff.set_defaults(func=_diff)


def _collect(args) -> int:
    from hpcos.inventory import collect

    profile = args.site.profile(args.cluster)
    measured = collect.collect(profile)
    path = collect.save(measured, args.site.layout.inventories)
    if args.json:
        emit(measured.to_json())
        return 0
    table = Table(
        "class",
        "nodes",
        "fact",
        "value",
        "on",
        title=f"{profile.name}: measured {measured.collected}",
    )
    for name, seen in measured.classes.items():
        for fact, values in sorted(seen.facts.items()):
            for value, nodes in sorted(values.items()):
                table.add_row(Text(name), Text(seen.nodes), Text(fact), Text(value), Text(nodes))
        if seen.unreachable:
            table.add_row(Text(name), Text(seen.nodes), "not measured", "", Text(seen.unreachable))
    stdout_console(soft_wrap=True).print(table)  # node names and states are not markup
    console.print(f"inventory kept in {path}", markup=False)
    return 0


def _diff(args) -> int:
    from hpcos.inventory import collect
    from hpcos.inventory.diff import KINDS, diff

    test, production = args.site.profile(args.test), args.site.profile(args.production)
    directory = args.site.layout.inventories
    deviations = diff(
        test,
        production,
        collect.load(directory, test.name),
        collect.load(directory, production.name),
    )
    if args.json:
        emit(json.dumps([{**asdict(d), "class": KINDS[d.kind]} for d in deviations], indent=2))
        return 0
    for deviation in deviations:
        emit(deviation.line)
    console.print(
        f"{len(deviations)} deviations of {production.name} from {test.name}", markup=False
    )
    return 0
