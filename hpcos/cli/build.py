"""``hpcos build PKG --target T``: what the generated rebuild jobs run (see docs/rebuild.md).

A failed build files a ticket to the package's owner (one per package, target and failure class;
a comment per later failure; closed by the next good build).

Exit codes: 0 built and published (or, with --check-upstream, the overlay is current); 1 the build
failed (classified, nothing published); 2 a user or configuration error; 3 with --check-upstream,
a rebuild is due.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hpcos.cli.console import console, emit
from hpcos.core.errors import UserError
from hpcos.core.store_layout import StoreLayout


def register(sub) -> None:
    p = sub.add_parser(
        "build",
        help="patch an upstream SRPM, rebuild it, publish it to its overlay repository",
        description=__doc__,
    )
    p.add_argument(
        "package", metavar="PKG", help="overlay package name (a YAML file in the specs directory)"
    )
    p.add_argument(
        "--target", "-t", metavar="T", help="build target from site.yaml (e.g. el9-x86_64)"
    )
    p.add_argument(
        "--builder",
        choices=("mock", "rpmbuild"),
        help="default: the package's builder; rpmbuild where mock is not installed",
    )
    p.add_argument(
        "--junit", metavar="FILE", type=Path, help="write a JUnit XML result for Jenkins"
    )
    p.add_argument(
        "--source-repo",
        metavar="URL",
        help="repository holding the base SRPM (default: the daily mirror in the store)",
    )
    p.add_argument(
        "--sign-key",
        metavar="KEY",
        default=os.environ.get("HPCOS_RPM_SIGN_KEY"),
        help="sign published RPMs with this GnuPG key (default: $HPCOS_RPM_SIGN_KEY, "
        "else site.yaml signing.key_id)",
    )
    p.add_argument(
        "--allow-foreign-host",
        action="store_true",
        help="let rpmbuild build a target of another distribution or architecture than this host's: "
        "a test build, never published",
    )
    p.add_argument(
        "--no-tickets",
        action="store_true",
        help="do not file a failed build to the package owner's ticket (nor close it on success)",
    )
    action = p.add_mutually_exclusive_group()
    action.add_argument(
        "--check-upstream",
        action="store_true",
        help="exit 3 when the base mirror has a newer build than the overlay's last one",
    )
    action.add_argument(
        "--export-patches",
        metavar="DIR",
        type=Path,
        help="write the site patches with reason and upstream-bug headers, and stop",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    spec_set = args.site.specs
    package = spec_set.packages.get(args.package)
    if package is None:
        raise UserError(
            f"unknown package {args.package!r}; known: {', '.join(sorted(spec_set.packages)) or 'none'}"
            f" (in {spec_set.root})"
        )
    if args.export_patches:
        from hpcos.rebuild.export import export_patches

        for path in export_patches(spec_set, package, args.export_patches):
            emit(path)
        return 0
    if not args.target:
        raise UserError("--target is required (one of: " + ", ".join(package.targets) + ")")
    if args.target not in package.targets:
        raise UserError(
            f"{package.name} is not built for target {args.target!r}; its targets: "
            f"{', '.join(package.targets)}"
        )
    layout = args.site.layout
    if args.check_upstream:
        return _check_upstream(args, spec_set, package, layout)
    return _build(args, spec_set, package, layout)


def _check_upstream(args, spec_set, package, layout: StoreLayout) -> int:
    from hpcos.rebuild import source, upstream_check

    repos = source.base_repos(spec_set, package, args.target, layout, args.source_repo)
    # Beside, not inside, the per-build directories, which hold one directory per build only.
    log = layout.build_dir(package.name, args.target).parent / f"check-upstream-{args.target}.log"
    status = upstream_check.check(
        package,
        repos,
        layout.overlay_repo(package.overlay, args.target),
        spec_set.site.targets[args.target].release,
        log,
        site_inputs=upstream_check.current_inputs(spec_set, package),
    )
    emit(status.describe(package.name))
    return upstream_check.REBUILD_DUE if status.rebuild_due else 0


def _build(args, spec_set, package, layout: StoreLayout) -> int:
    from hpcos.rebuild import build_tickets, builders, junit, pipeline
    from hpcos.rpms import signing

    kind = args.builder or builders.default_builder_kind(package)
    if kind != package.builder and not args.builder:
        console.print(f"note: mock is not installed here; building {package.name} with rpmbuild")
    builder = builders.make_builder(
        kind, spec_set, package, args.target, layout, args.allow_foreign_host
    )
    signer = signing.Signer.from_site(
        spec_set.site, args.sign_key, None if spec_set.site.signing else os.environ.get("GNUPGHOME")
    )
    report = pipeline.run_build(
        spec_set, package, args.target, layout, builder, args.source_repo, signer
    )
    if args.junit:
        junit.write(args.junit, package.name, args.target, report.stages)
    if not args.no_tickets and not report.test_build:
        # The owner hears of a failed build; the next good one closes the ticket (the tickets logger says so).
        build_tickets.file_build(
            args.site.tracker(),
            args.site.store_root,
            package,
            args.target,
            report.build_dir.name,
            report.failure,
            str(report.error) if report.error else None,
            report.build_dir,
            args.site.environ,
        )
    if report.error:
        raise report.error
    if report.failure:
        emit(
            f"hpcos: {package.name} {args.target}: {report.failure.summary} (logs: {report.build_dir})",
            file=sys.stderr,
        )
        return 1
    if report.test_build:
        emit(
            f"hpcos: {package.name} {args.target}: test build on a foreign host, not published "
            f"(RPMs in {report.build_dir / 'result'})",
            file=sys.stderr,
        )
        return 0
    for path in report.published.added:
        emit(path)
    return 0
