"""A failed overlay build tells its owner, through the same ticket machinery as the nightly tests.

Each build is turned into a one-result run (``RunResults``) and filed with ``TicketSession``:

* test id ``build::<package>::<target>``; the first message line names the failure class and the
  owner, so the fingerprint groups by package, target and failure class (a second patch failure of
  the same package and target is the same ticket, a compile failure after it a new one);
* a later failure of the same kind is one "seen again" comment per build (the run id is the build's);
* a good build is a passing result for the same test id, and the tracker settings are used with
  ``close_after_passing_runs: 1``: the next good build closes the ticket.

The ticket is addressed to the package's ``owner`` (also in the text): Trac's ``owner`` field,
Bugzilla's ``assigned_to``; the other trackers show it in the ticket.
"""

from __future__ import annotations

import email.utils
import os
from datetime import UTC, datetime
from pathlib import Path

from hpcos.results.model import RunResults, TestResult
from hpcos.site.specs import Package
from hpcos.site.specs import Tracker as TrackerSpec

# The tracker field that assigns a ticket, where the tracker has one.
_OWNER_FIELD = {"trac": "owner", "bugzilla": "assigned_to"}


def test_id(package: str, target: str) -> str:
    return f"build::{package}::{target}"


def build_run(
    package: Package,
    target: str,
    build_id: str,
    failure=None,
    error: str | None = None,
    build_dir: Path | None = None,
) -> RunResults:
    """The build as a run of one test: failed with its class and details, or passed."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    run = RunResults(
        run_id=f"build-{package.name}-{target}-{build_id}",
        cluster="overlay-builds",
        started=now,
        finished=now,
        build_url=os.environ.get("BUILD_URL"),
    )
    if failure is None and error is None:
        run.results.append(TestResult(test_id(package.name, target), None, "passed"))
        return run
    kind = failure.kind.value if failure is not None else "error"
    summary = failure.summary if failure is not None else error
    # First line: what the fingerprint reads (it takes the first error-like line), the same for one class.
    lines = [
        f"{kind}: {package.name} for {target} failed to build (owner: {package.owner})",
        summary,
    ]
    if failure is not None:
        lines += failure.details
    if build_dir is not None:
        lines.append(f"logs: {build_dir}")
    command = f"hpcos build {package.name} --target {target}"
    run.results.append(
        TestResult(
            test_id(package.name, target),
            None,
            "failed",
            failure_class="error",
            message="\n".join(lines),
            command=command,
            rerun=command,
        )
    )
    return run


def tracker_for_builds(spec: TrackerSpec, package: Package) -> TrackerSpec:
    """The site's tracker settings for build tickets: closed by the next good build, assigned to the owner."""
    fields = dict(spec.fields)
    owner_field = _OWNER_FIELD.get(spec.backend)
    if owner_field:
        address = email.utils.parseaddr(package.owner)[1] or package.owner
        fields.setdefault(owner_field, address)
    return spec.model_copy(update={"close_after_passing_runs": 1, "close": True, "fields": fields})


def file_build(
    spec: TrackerSpec,
    store_root: Path,
    package: Package,
    target: str,
    build_id: str,
    failure=None,
    error: str | None = None,
    build_dir: Path | None = None,
    environ: dict[str, str] | None = None,
) -> list[str]:
    """File (or comment on, or close) the package's build ticket; returns what was done."""
    from hpcos.tickets.session import TicketSession

    run = build_run(package, target, build_id, failure, error, build_dir)
    with TicketSession(tracker_for_builds(spec, package), store_root, environ) as session:
        _, outcome = session.file(run)
    return outcome.done + (
        [f"tracker: {outcome.error}; {outcome.queued} queued"] if outcome.error else []
    )
