"""A deployment's outcome as a run of results, so failed deploys file tickets as failed tests do.

The seed: "other tickets include deployment and re-install issues".  Each node of a deployment is one
result of the test ``deploy/ENV``: passed when it was verified, an error with the reason it was left
drained otherwise.  The ticket lifecycle (``hpcos.tickets``) then does what it does for a night's
failures: one ticket per cause with the node set it hit (node names do not split a cause), a comment
when the cause comes back, and the ticket closed after ``close_after_passing_runs`` clean deployments.
"""

from __future__ import annotations

import logging

from hpcos.repo.deployments import DeploymentRecord
from hpcos.results.model import RunResults, TestResult
from hpcos.site import Site

log = logging.getLogger("hpcos.deploy")


def test_id(env: str) -> str:
    return f"deploy/{env}"


def as_run(record: DeploymentRecord) -> RunResults:
    """Per node, passed or the error that left it drained.  The cause is the message's first line
    (what the tickets group on); the snapshot, which changes every time, comes after it."""
    results = []
    for name, node in sorted(record.nodes.items()):
        if node.verified:
            results.append(TestResult(test_id(record.environment), name, "passed"))
            continue
        if node.skipped:  # the rollout stopped before it: nothing failed there
            results.append(
                TestResult(test_id(record.environment), name, "skipped", message=record.stopped)
            )
            continue
        stopped = f"\nThe rollout {record.stopped}." if record.stopped else ""
        rollback = (
            f"\nRollback of the nodes it touched: {record.rollback}" if record.rollback else ""
        )
        results.append(
            TestResult(
                test_id(record.environment),
                name,
                "error",
                failure_class="error",
                message=f"{node.reason or 'not deployed'}\n(hpcos deploy {record.environment} of snapshot "
                f"{record.snapshot} on cluster {record.cluster}, deployment {record.deploy_id}){stopped}"
                f"{rollback}",
                rerun=f"hpcos deploy {record.environment} --cluster {record.cluster} --nodes {name}",
            )
        )
    return RunResults(
        run_id=record.deploy_id,
        cluster=record.cluster,
        started=record.started,
        finished=record.finished,
        testing_snapshot=record.snapshot,
        profile_sha256=record.profile_sha256,
        results=results,
    )


def file_tickets(site: Site, record: DeploymentRecord, backend: str | None = None) -> list[str]:
    """File the deployment's failures (and close what its verified nodes fixed) on the site's tracker,
    or ``backend``; one line per action taken.  A tracker problem is a warning: the deployment's own
    outcome stands, and what could not be sent waits in the queue."""
    from hpcos.tickets.session import TicketSession

    with TicketSession(site.tracker(backend), site.store_root, dict(site.environ)) as session:
        _decided, outcome = session.file(as_run(record))
    if outcome.error:
        log.warning("tickets: %s (queued: %d)", outcome.error, outcome.queued)
    for line in outcome.done:
        log.info("ticket %s", line)
    return list(outcome.done)
