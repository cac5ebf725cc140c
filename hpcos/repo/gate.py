"""The production gate: does a nightly run prove that the testing snapshot works on the test cluster?

A run counts only if all of these hold, checked in this order (the first that fails is the one-line
reason the promotion is refused with):

1. its results file validated (known outcomes, the results schema);
2. it ran on the site's test cluster: ``site.yaml`` ``harness.profile``, same name and same content
   (sha256 of the profile file), so neither a developer's ``--cluster local`` run nor a run with an
   edited profile counts;
3. it tested at least one node, and no test of it failed;
4. ``hpcos deploy`` put this very snapshot on every node the run tested, and verified it there
   (installed NEVRAs and running kernel), before the run;
5. every test that a changed package names in its spec's ``tests:`` (pytest ``-k`` expressions;
   changed = its binary packages differ between the destination's snapshot and this one) ran and
   passed on every node the run tested -- a skipped or deselected required test does not count.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from ClusterShell.NodeSet import NodeSet, NodeSetParseError

from hpcos.core.budgets import node_set_problem
from hpcos.core.store_layout import StoreLayout
from hpcos.repo import deployments, diff
from hpcos.repo.nightly import NightlyRecord
from hpcos.repo.snapshots import Snapshot
from hpcos.site.specs import Package, SpecSet


@dataclass(frozen=True)
class SiteProfile:
    """The test cluster's profile as the site names it (``harness.profile``), resolved by the caller."""

    name: str
    sha256: str


def refusal(spec_set: SpecSet, layout: StoreLayout, snapshot: Snapshot, dest: Snapshot | None,
            run: NightlyRecord | None, site_profile: SiteProfile | None) -> str | None:
    """Why ``run`` does not let ``snapshot`` replace ``dest``, in one line; None when it does."""
    if run is None:
        return f"no nightly run has been recorded for snapshot {snapshot.id}"
    head = f"the last nightly run on snapshot {snapshot.id} ({run.run_id})"
    if run.invalid:
        return f"{head}: its results file did not validate: {run.invalid}"
    if site_profile is None:
        return "the site's test cluster profile (site.yaml harness.profile) could not be read"
    if run.cluster != site_profile.name or run.profile_sha256 != site_profile.sha256:
        what = (f"profile {run.cluster!r}" if run.cluster != site_profile.name
                else f"a different version of profile {run.cluster!r} (sha256 {_short(run.profile_sha256)})")
        return (f"{head} ran on {what}, not on the site's test cluster {site_profile.name!r} "
                f"(sha256 {_short(site_profile.sha256)})")
    if not run.passed:
        return f"{head} {run.verdict}"
    tested = run.tested_nodes()
    if not tested:
        return f"{head} tested no node"
    unverified = _unverified(layout, run, snapshot.id, tested, site_profile)
    if unverified:
        return f"{head}: {unverified}"
    missing = _required_tests_missing(spec_set, snapshot, dest, run, tested)
    if missing:
        return f"{head}: {missing}"
    return None


def _short(sha256: str) -> str:
    return sha256[:12] if sha256 else "unknown"


def _unverified(layout: StoreLayout, run: NightlyRecord, snapshot_id: str, tested: NodeSet,
                site_profile: SiteProfile) -> str:
    states = deployments.node_states(layout, site_profile.name, site_profile.sha256,
                                     before=deployments.parse_time(run.started) if run.started else None)
    never, other, failed = NodeSet(), NodeSet(), NodeSet()
    for node in tested:
        state = states.get(node)
        if state is None:
            never.add(node)
        elif state[0] != snapshot_id:
            other.add(node)
        elif not state[1]:
            failed.add(node)
    parts = []
    if never:
        parts.append(f"{never} never had snapshot {snapshot_id} deployed")
    if other:
        parts.append(f"{other} had another snapshot deployed last")
    if failed:
        parts.append(f"the deployment of {snapshot_id} was not verified on {failed} (hpcos deploy left it drained)")
    return "; ".join(parts)


def changed_packages(spec_set: SpecSet, snapshot: Snapshot, dest: Snapshot | None) -> list[Package]:
    """Spec packages whose binary packages differ between ``dest`` and ``snapshot`` (all of them when
    ``dest`` has no snapshot yet)."""
    if dest is None:
        return sorted(spec_set.packages.values(), key=lambda p: p.name)
    names: set[str] = set()
    for change in diff.diff(dest, snapshot).values():
        for nevra in (*change.added, *change.removed):
            names.add(nevra.rsplit("-", 2)[0])
        for key, _old, _new in change.updated:
            names.add(key.rsplit(".", 1)[0])
    return [p for p in sorted(spec_set.packages.values(), key=lambda p: p.name)
            if any(fnmatch.fnmatchcase(n, glob) for n in names for glob in p.replaced_globs)]


def matches(expression: str, test_id: str) -> bool:
    """Whether a pytest ``-k`` expression selects ``test_id`` (case-insensitive substring match of
    each name against the parts of the node id, as ``-k`` matches keywords)."""
    from _pytest.mark.expression import Expression

    parts = [p.lower() for p in test_id.replace("::", "/").replace("[", "/").rstrip("]").split("/") if p]
    parts += [p.removesuffix(".py") for p in parts]
    return Expression.compile(expression).evaluate(lambda name, **_: any(name.lower() in p for p in parts))


def _required_tests_missing(spec_set: SpecSet, snapshot: Snapshot, dest: Snapshot | None,
                            run: NightlyRecord, tested: NodeSet) -> str:
    for package in changed_packages(spec_set, snapshot, dest):
        for expression in package.tests:
            selected = [r for r in run.results if matches(expression, r[0])]
            passed_on = NodeSet()
            for test_id, node, outcome in selected:
                if outcome != "passed":
                    return (f"{test_id} on {node or 'no node'} {outcome}, and changed package {package.name} "
                            f"requires it (tests: {expression!r})")
                passed_on.update(_nodes(node, tested))
            if not selected:
                return f"no test matching {expression!r} ran, and changed package {package.name} requires it"
            missing = tested - passed_on
            if missing:
                return (f"tests matching {expression!r} did not run on {missing}, and changed package "
                        f"{package.name} requires them there")
    return ""


def _nodes(node: str | None, tested: NodeSet) -> NodeSet:
    if node is None or node_set_problem(node) is not None:
        return NodeSet()
    try:
        return NodeSet(node)
    except NodeSetParseError:
        return NodeSet()
