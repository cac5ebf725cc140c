"""``hpcos jobs render|yaml|update|diff``: the site's Jenkins jobs, from the specs."""

from __future__ import annotations

import sys
from pathlib import Path

from hpcos.cli.console import console, progress_bar
from hpcos.cli.options import COUNT


def register(sub) -> None:
    jobs = sub.add_parser(
        "jobs", help="generate the site's Jenkins jobs and keep Jenkins in step with them"
    )
    cmds = jobs.add_subparsers(dest="jobs_command", metavar="SUBCOMMAND", required=True)

    render = cmds.add_parser(
        "render", help="write each job's Jenkins XML to DIR/<folder>/<job>/config.xml"
    )
    render.add_argument("-o", "--output", metavar="DIR", required=True, type=Path)
    render.set_defaults(func=_render)

    yaml_cmd = cmds.add_parser(
        "yaml", help="print the JJB YAML (templates and the site's project) for jenkins-jobs"
    )
    yaml_cmd.set_defaults(func=_yaml)

    for name, helptext in (
        ("update", "create or reconfigure the jobs whose live config differs"),
        ("diff", "show how the live jobs differ from the specs, without changing anything"),
    ):
        cmd = cmds.add_parser(name, help=helptext)
        cmd.add_argument("--url", help="Jenkins URL (default: site.yaml jenkins.url)")
        cmd.add_argument(
            "--workers",
            type=COUNT,
            default=16,
            metavar="N",
            help="live configs read concurrently (default: 16)",
        )
        cmd.add_argument(
            "--prune",
            action="store_true",
            help="also delete hpcos-managed jobs of this site that the specs no longer define"
            if name == "update"
            else "also list the managed jobs that --prune would delete",
        )
        cmd.set_defaults(func=_update if name == "update" else _diff)


def _render(args) -> int:
    from hpcos.cli.specs import check_suite
    from jobs.job_definitions import project
    from jobs.render import render

    # A spec whose tests the gate can never find would render jobs that build what never reaches production.
    check_suite(args.site)
    jobs = render(project(args.site.specs), out_dir=args.output)
    console.print(f"wrote {len(jobs)} jobs to {args.output}")
    return 0


def _yaml(args) -> int:
    from jobs.job_definitions import jjb_yaml

    sys.stdout.write(jjb_yaml(args.site.specs))
    return 0


def _sync(args, write: bool) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from jobs import jenkins_sync
    from jobs.job_definitions import project
    from jobs.rendered import RenderCache, render_key
    from jobs.xml_normalise import DigestCache

    spec_set = args.site.specs
    url = args.url or spec_set.site.jenkins.url
    connection = jenkins_sync.connect(url, args.site.credentials("jenkins", url))
    jobs_data = project(spec_set)
    folder = spec_set.site.jenkins.folder
    cache = RenderCache(args.site.cache_file("render", str(spec_set.root)))
    digests = DigestCache(args.site.cache_file("jenkins", url))
    key = render_key(jobs_data)
    jobs = cache.load(key)
    with ThreadPoolExecutor(max_workers=1) as background:
        if jobs is None:
            from jobs.render import render, render_pool

            # Jenkins is read while the jobs render; the render workers fork before the reading threads start.
            with render_pool(jobs_data) as pool:
                live = background.submit(
                    jenkins_sync.read_live, connection, [folder], args.workers, digests
                )
                with console.status(f"rendering the jobs and reading {connection.url}"):
                    jobs = render(jobs_data, pool=pool, digests=True)
                    live_state = live.result()
            cache.save(key, jobs)
        else:
            with console.status(f"reading {connection.url} (jobs unchanged since the last render)"):
                live_state = jenkins_sync.read_live(connection, [folder], args.workers, digests)
        with progress_bar("writing to Jenkins") as progress:
            report = jenkins_sync.sync(
                connection,
                jobs,
                site=spec_set.site.name,
                write=write,
                prune=args.prune,
                workers=args.workers,
                live=live_state,
                progress=progress,
                digests=digests,
            )
    if not write:
        for diff in report.diffs:
            sys.stdout.write(diff)
    print_report(report, write=write)
    return 1 if report.failed else 0


def _update(args) -> int:
    return _sync(args, write=True)


def _diff(args) -> int:
    return _sync(args, write=False)


def print_report(report, write: bool) -> None:
    def names(items):
        shown = ", ".join(items[:5])
        return shown + (f" and {len(items) - 5} more" if len(items) > 5 else "")

    if write:
        for label, items in (
            ("created", report.created),
            ("updated", report.updated),
            ("deleted", report.deleted),
        ):
            if items:
                console.print(f"{label} {len(items)}: {names(items)}", markup=False)
        console.print(f"unchanged {len(report.unchanged)}")
        for name, message in report.failed.items():
            console.print(f"failed {name}: {message}", markup=False, style="red")
        if report.failed:
            console.print(
                f"not attempted {len(report.not_attempted)}: {names(report.not_attempted)}",
                markup=False,
            )
            console.print(
                "run `hpcos jobs update` again to finish: every job is compared with Jenkins again"
            )
    else:
        console.print(
            f"{len(report.not_attempted)} to change, {len(report.unchanged)} unchanged on {report.url}",
            markup=False,
        )
