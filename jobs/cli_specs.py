"""``hpcos specs check|schema``."""

from __future__ import annotations

import json

from hpcos import context
from hpcos.console import console


def register(sub) -> None:
    specs = sub.add_parser("specs", help="validate the overlay specs or print their JSON Schema")
    specs_sub = specs.add_subparsers(dest="specs_command", metavar="ACTION", required=True)
    check = specs_sub.add_parser("check", help="validate site.yaml and every package spec")
    check.set_defaults(func=check_command)
    schema = specs_sub.add_parser("schema", help="print a JSON Schema for site.yaml or a package spec")
    schema.add_argument("kind", choices=["site", "package"])
    schema.set_defaults(func=schema_command)


def check_command(args) -> int:
    spec_set = context.specs(args)
    console.print(f"{spec_set.root}: site {spec_set.site.name!r} and "
                  f"{len(spec_set.packages)} overlay packages are valid")
    return 0


def schema_command(args) -> int:
    from jobs.specs import Package, Site

    model = Site if args.kind == "site" else Package
    print(json.dumps(model.model_json_schema(), indent=2))
    return 0
