"""``hpcos specs check|schema``."""

from __future__ import annotations

import json
import sys

from hpcos.cli.console import console, emit
from hpcos.core.sourced_yaml import InvalidInput
from hpcos.site.specs import SITE_FILE

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def register(sub) -> None:
    specs = sub.add_parser("specs", help="validate the overlay specs or print their JSON Schema")
    specs_sub = specs.add_subparsers(dest="specs_command", metavar="ACTION", required=True)
    check = specs_sub.add_parser("check", help="validate site.yaml and every package spec")
    check.set_defaults(func=check_command)
    schema = specs_sub.add_parser(
        "schema", help="print a JSON Schema for site.yaml or a package spec"
    )
    schema.add_argument("kind", choices=["site", "package"])
    schema.set_defaults(func=schema_command)


def check_suite(site) -> None:
    """Refuse ``tests:`` expressions that select no test of the suite the site's test cluster runs
    (collected with pytest on ``harness.profile``, every parameter included): the production gate
    matches the same expressions against the same ids (``hpcos.repo.gate.matches``)."""
    from harness.suite import collect, unselected
    from hpcos.cli.test import suite_dir

    spec_set = site.specs
    profile = site.profile_path(str(spec_set.site.harness.profile))
    if not profile.is_file():
        doc = spec_set.docs[str(spec_set.root / SITE_FILE)]
        raise InvalidInput(
            [
                doc.error(
                    ("harness", "profile"), f"expected a cluster profile file; found no {profile}"
                )
            ]
        )
    errors = unselected(spec_set, collect(suite_dir(), profile), profile)
    if errors:
        raise InvalidInput(errors)


def check_command(args) -> int:
    try:
        spec_set = args.site.specs
        check_suite(args.site)
    except InvalidInput as exc:
        # One `file:line: field: message` line per error, the form editors and CI logs link to.
        for error in exc.errors:
            emit(error, file=sys.stderr)
        count = len(exc.errors)
        emit(
            f"hpcos: {count} error{'s' if count != 1 else ''} in {args.site.specs_dir}",
            file=sys.stderr,
        )
        return InvalidInput.exit_code
    console.print(
        f"{spec_set.root}: site {spec_set.site.name!r} and "
        f"{len(spec_set.packages)} overlay packages are valid; every tests: expression selects a test "
        f"of the suite",
        soft_wrap=True,
    )
    return 0


def schema(kind: str) -> dict:
    """JSON Schema of ``site.yaml`` (kind "site") or of a package spec (kind "package")."""
    from hpcos.site.specs import Package, SiteSpec

    model = SiteSpec if kind == "site" else Package
    return {"$schema": SCHEMA_DIALECT, **model.model_json_schema()}


def schema_command(args) -> int:
    emit(json.dumps(schema(args.kind), indent=2))
    return 0
