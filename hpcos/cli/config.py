"""``hpcos config status|promote|merge-back|validate|heads`` (see docs/configuration.md)."""

from __future__ import annotations

import json
from pathlib import Path

from hpcos.cli.console import console, emit
from hpcos.cli.repo import _stdout
from hpcos.repo.environments import checked_reason


def register(sub) -> None:
    config = sub.add_parser(
        "config",
        help="configuration management and monitoring repositories: status, "
        "promotion with the packages, merge-back, validation",
    )
    actions = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    def action(name, func, help):
        parser = actions.add_parser(name, help=help, description=help)
        parser.add_argument(
            "repositories",
            nargs="*",
            metavar="REPO",
            help="only these repositories (default: every one in site.yaml)",
        )
        parser.set_defaults(func=func)
        return parser

    p = action(
        "status",
        status_command,
        "per repository: commits on testing not in production, hot-fixes on "
        "production not in testing, the testing head's validation",
    )
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = action(
        "promote",
        promote_command,
        "merge the tested testing commit into production (gated by the "
        "nightly run, validated, conflicts refused)",
    )
    p.add_argument("--reason", default="", help="recorded in the merge commit")
    p.add_argument(
        "--force", action="store_true", help="override the nightly gate (needs --reason)"
    )
    p.add_argument(
        "--no-tickets", action="store_true", help="do not report the validation to the tracker"
    )

    p = action(
        "merge-back",
        merge_back_command,
        "merge production's hot-fixes into testing (after an outage)",
    )
    p.add_argument("--reason", default="", help="recorded in the merge commit")

    p = action(
        "validate",
        validate_command,
        "validate the testing branch's head per kind and record it (failures file tickets)",
    )
    p.add_argument("--no-tickets", action="store_true", help="do not report to the tracker")

    p = action(
        "heads",
        heads_command,
        "the testing branches' heads as JSON {repository: commit}: what the test "
        "cluster runs tonight (`hpcos repo record-run --config-heads FILE`)",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write the JSON here instead of stdout")


def _shown(text: str) -> str:
    """A commit's subject or author on a terminal: control characters (an escape sequence in a
    commit message) become '?'."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _repos(args):
    from hpcos.config.repositories import repositories

    return repositories(args.site.specs, args.site.layout, args.repositories or None)


def _reporter(args):
    if getattr(args, "no_tickets", False):
        return None
    from hpcos.config.validation import file_tickets

    def report(validation) -> None:
        done = file_tickets(
            validation, args.site.tracker(), args.site.store_root, args.site.environ
        )
        console.print(
            f"{validation.repository}: validation {validation.summary()}; tickets: {done}",
            markup=False,
            soft_wrap=True,
        )

    return report


def status_command(args) -> int:
    from hpcos.config.promotion import status

    states = [status(repo) for repo in _repos(args)]
    if args.json:
        emit(json.dumps({"repositories": [s.as_dict() for s in states]}, indent=2))
        return 0
    out = _stdout()
    for s in states:
        out.print(f"{s.repository} ({s.kind}) {s.url}", markup=False)
        out.print(
            f"  {s.testing} {s.testing_head[:12]}   {s.production} {s.production_head[:12]}",
            markup=False,
        )
        v = s.validation
        out.print(
            f"  validation of {s.testing_head[:12]}: "
            + (v.summary() if v else "none recorded (hpcos config validate)"),
            markup=False,
        )
        out.print(f"  on {s.testing}, not in {s.production} ({len(s.to_promote)}):", markup=False)
        for c in s.to_promote:
            out.print(
                f"    {c.short} {c.date[:10]} {_shown(c.author)}: {_shown(c.subject)}", markup=False
            )
        out.print(
            f"  hot-fixes on {s.production}, not in {s.testing} ({len(s.hot_fixes)}):", markup=False
        )
        for c in s.hot_fixes:
            out.print(
                f"    {c.short} {c.date[:10]} {_shown(c.author)}: {_shown(c.subject)}", markup=False
            )
    return 0


def promote_command(args) -> int:
    from hpcos.config.promotion import promote

    checked_reason(args.reason)  # it goes into the merge commit's message
    for prepared in promote(
        _repos(args), args.site.layout, args.reason, force=args.force, report=_reporter(args)
    ):
        console.print(prepared.describe(), markup=False, soft_wrap=True)
    return 0


def merge_back_command(args) -> int:
    from hpcos.config.promotion import merge_back

    checked_reason(args.reason)  # it goes into the merge commit's message
    for prepared in merge_back(_repos(args), args.reason):
        console.print(prepared.describe(), markup=False, soft_wrap=True)
    return 0


def validate_command(args) -> int:
    from hpcos.config.promotion import validate_testing

    failed = 0
    for repo in _repos(args):
        result = validate_testing(repo, report=_reporter(args))
        console.print(
            f"{repo.name} {result.commit[:12]}: {result.summary()}", markup=False, soft_wrap=True
        )
        for step in result.failures():
            console.print(
                f"--- {step.name}: {step.command}\n{step.output}", markup=False, soft_wrap=True
            )
        failed += not result.ok
    return 1 if failed else 0


def heads_command(args) -> int:
    from hpcos.config.repositories import repositories
    from hpcos.core.files import write_text_atomically

    heads = {}
    if (
        args.site.specs.site.config.repositories or args.repositories
    ):  # none configured: an empty record
        for repo in repositories(args.site.specs, args.site.layout, args.repositories or None):
            repo.fetch()
            heads[repo.name] = repo.git.rev(repo.branch_ref("testing"))
    text = json.dumps(heads, indent=2, sort_keys=True) + "\n"
    if args.output:
        write_text_atomically(Path(args.output), text)
    else:
        emit(text, end="")
    return 0


def with_config(args, promote_packages) -> int:
    """``hpcos repo promote testing production --with-config``: prepare the configuration promotion
    (every check, nothing written), promote the packages, then move the configuration branches."""
    from hpcos.config.promotion import prepare_promotion, publish
    from hpcos.config.repositories import repositories
    from hpcos.core.errors import UserError

    if (args.source, args.dest) != ("testing", "production"):
        raise UserError("--with-config goes with `hpcos repo promote testing production`")
    repos = repositories(args.site.specs, args.site.layout)
    prepared = prepare_promotion(
        repos, args.site.layout, args.reason, force=args.force, report=_reporter(args)
    )
    code = promote_packages()
    publish(prepared)
    for one in prepared:
        console.print(one.describe(), markup=False, soft_wrap=True)
    return code
