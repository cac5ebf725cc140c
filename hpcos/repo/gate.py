"""The production gate: does a nightly run prove that the testing snapshot works on the test cluster?

Which run is judged: only runs the harness recorded and signed itself count (``hpcos.repo.nightly``);
a results file handed to ``record-run`` that the harness did not record is imported and never opens
the gate.  The newest signed run on the snapshot is judged; it opens the gate only if it passes every
check below.  A failing run is never superseded by a later run that is not itself complete and
verified: the refusal then names the failing run and why the later one does not count.

A run counts only if all of these hold, checked in this order (the first that fails is the one-line
reason the promotion is refused with, together with the command that would supply the missing proof):

1. its record verifies against the site key, and its results file validated;
2. it ran on the site's test cluster: ``site.yaml`` ``harness.profile``, same name and same content
   (sha256 of the profile file);
3. no test of it failed, and something passed;
4. it tested every node of that profile, except nodes recorded out of service (with a reason) before
   the run started (``hpcos repo out-of-service``);
5. ``hpcos deploy`` put this very snapshot on each of those nodes, and verified it there, before the run;
6. it collected the whole suite (no test paths, ``--ignore`` or ``--lf`` narrowing what pytest
   collects);
7. every required test passed on every required node -- the site's list (``harness.required_tests``,
   pytest ``-k`` expressions; default every test the run collected) plus each changed package's
   ``tests:`` (changed = its binary packages differ between the destination's snapshot and this one).
   A deselected or skipped required test is not a pass; the first few are named.
"""

from __future__ import annotations

import fnmatch
import shlex
from dataclasses import dataclass

from ClusterShell.NodeSet import NodeSet

from hpcos.core.store_layout import StoreLayout
from hpcos.repo import deployments, diff, nightly, out_of_service
from hpcos.repo.nightly import NightlyRecord
from hpcos.repo.snapshots import Snapshot
from hpcos.site.specs import Package, SpecSet

NAMED = 5  # required tests named in a refusal


@dataclass(frozen=True)
class SiteProfile:
    """The test cluster's profile as the site names it (``harness.profile``), resolved by the caller."""

    name: str
    sha256: str
    nodes: str = ""  # every node of the profile (a ClusterShell node set)
    argument: str = ""  # how site.yaml names it, for the commands a refusal suggests

    @property
    def cluster_argument(self) -> str:
        return shlex.quote(self.argument or self.name)


@dataclass(frozen=True)
class Judgement:
    """The run the gate judged (None when there is none), and why the gate stays closed (empty when it
    opens) or what it accepted."""

    run: NightlyRecord | None
    refusal: str
    accepted: str = ""


def judge(
    spec_set: SpecSet,
    layout: StoreLayout,
    snapshot: Snapshot,
    dest: Snapshot | None,
    site_profile: SiteProfile | None,
) -> Judgement:
    runs = nightly.runs_on(layout, snapshot.id)
    signed = [r for r in runs if r.from_harness]
    rerun = _test_command(snapshot.id, site_profile)
    if not signed:
        if runs:
            last = runs[-1]
            return Judgement(
                last,
                f"no run on snapshot {snapshot.id} was recorded by the harness; run {last.run_id} "
                f"was imported by `hpcos repo record-run` ({last.imported_why}) and cannot open "
                f"the gate: run the nightly tests, which record themselves: `{rerun}`",
            )
        return Judgement(
            None, f"no nightly run has been recorded for snapshot {snapshot.id}: `{rerun}`"
        )
    for run in reversed(signed):
        problem = nightly.signature_problem(layout, run)
        if problem:
            return Judgement(
                run,
                f"run {run.run_id} on snapshot {snapshot.id}: {problem}; rerun the nightly "
                f"tests: `{rerun}`",
            )
    newest = signed[-1]
    why = _refusal(spec_set, layout, snapshot, dest, newest, site_profile)
    if not why:
        return Judgement(newest, "", _accepted(layout, newest, site_profile))
    failing = next((r for r in reversed(signed) if not r.passed), None)
    if failing is not None and failing is not newest:
        return Judgement(
            failing,
            f"the nightly run {failing.run_id} on snapshot {snapshot.id} {failing.verdict}; "
            f"the later run {newest.run_id} does not supersede it, as it is not complete and "
            f"verified: {why}",
        )
    return Judgement(newest, f"the nightly run {newest.run_id} on snapshot {snapshot.id}: {why}")


def refusal(
    spec_set: SpecSet,
    layout: StoreLayout,
    snapshot: Snapshot,
    dest: Snapshot | None,
    site_profile: SiteProfile | None,
) -> str | None:
    """Why the gate does not let ``snapshot`` replace ``dest``, in one line; None when it does."""
    return judge(spec_set, layout, snapshot, dest, site_profile).refusal or None


def _test_command(snapshot_id: str, site_profile: SiteProfile | None) -> str:
    """The nightly tests on every node of the test cluster; they record themselves for the gate."""
    cluster = site_profile.cluster_argument if site_profile else "PROFILE"
    return f"HPCOS_TESTING_SNAPSHOT={shlex.quote(snapshot_id)} hpcos test --cluster {cluster} --results results.json"


def _required_nodes(
    layout: StoreLayout, run: NightlyRecord, site_profile: SiteProfile
) -> tuple[NodeSet, dict]:
    out = out_of_service.out_at(
        layout, site_profile.name, deployments.parse_time(run.started) if run.started else None
    )
    return NodeSet(site_profile.nodes) - NodeSet.fromlist(out), out


def _accepted(layout: StoreLayout, run: NightlyRecord, site_profile: SiteProfile | None) -> str:
    assert site_profile is not None  # a run without it is refused
    required, out = _required_nodes(layout, run, site_profile)
    text = (
        f"run {run.run_id} (finished {run.finished}) passed on {required}, the whole required suite"
    )
    return text + (f"; out of service, not tested: {out_of_service.describe(out)}" if out else "")


def _refusal(
    spec_set: SpecSet,
    layout: StoreLayout,
    snapshot: Snapshot,
    dest: Snapshot | None,
    run: NightlyRecord,
    site_profile: SiteProfile | None,
) -> str:
    rerun = _test_command(snapshot.id, site_profile)
    if run.invalid:
        return f"its results file did not validate: {run.invalid}"
    if site_profile is None:
        return "the site's test cluster profile (site.yaml harness.profile) could not be read"
    if run.cluster != site_profile.name or run.profile_sha256 != site_profile.sha256:
        what = (
            f"profile {run.cluster!r}"
            if run.cluster != site_profile.name
            else f"a different version of profile {run.cluster!r} (sha256 {_short(run.profile_sha256)})"
        )
        return (
            f"it ran on {what}, not on the site's test cluster {site_profile.name!r} "
            f"(sha256 {_short(site_profile.sha256)}): `{rerun}`"
        )
    if not run.passed:
        return f"it {run.outcome}"
    required, _out = _required_nodes(layout, run, site_profile)
    untested = required - run.tested_nodes()
    if untested:
        verb = "was" if len(untested) == 1 else "were"
        return (
            f"{untested} {verb} not tested (the run selected {run.nodes or run.tested_nodes()}): run the whole "
            f"suite on every node in service (`{rerun}`), or, for a node that cannot be, record it out of "
            f"service before that run: `hpcos repo out-of-service {shlex.quote(str(untested))} --reason TEXT`"
        )
    unverified = _unverified(layout, run, snapshot.id, required, site_profile)
    if unverified:
        return unverified
    if run.narrowed:
        return f"it did not collect the whole suite ({run.narrowed}): `{rerun}`"
    missing = _required_tests_missing(spec_set, snapshot, dest, run, required, site_profile)
    if missing:
        return f"{missing}: `{rerun}`"
    return ""


def _short(sha256: str) -> str:
    return sha256[:12] if sha256 else "unknown"


def _unverified(
    layout: StoreLayout,
    run: NightlyRecord,
    snapshot_id: str,
    required: NodeSet,
    site_profile: SiteProfile,
) -> str:
    states = deployments.node_states(
        layout,
        site_profile.name,
        site_profile.sha256,
        before=deployments.parse_time(run.started) if run.started else None,
    )
    never, other, failed = NodeSet(), NodeSet(), NodeSet()
    for node in required:
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
        parts.append(
            f"the deployment of {snapshot_id} was not verified on {failed} (hpcos deploy left it drained)"
        )
    if not parts:
        return ""
    nodes = never | other | failed
    return (
        f"{'; '.join(parts)} before the run: `hpcos deploy testing --cluster {site_profile.cluster_argument} "
        f"--nodes {shlex.quote(str(nodes))}`, then the nightly tests again, or, for a node that cannot take "
        f"it, `hpcos repo out-of-service {shlex.quote(str(nodes))} --reason TEXT` before them"
    )


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
    return [
        p
        for p in sorted(spec_set.packages.values(), key=lambda p: p.name)
        if any(fnmatch.fnmatchcase(n, glob) for n in names for glob in p.replaced_globs)
    ]


def selectable_id(test_id: str, mpi: str | None) -> str:
    """The id ``tests:`` and ``required_tests`` expressions are matched on: a collected test's id
    without its node, with its MPI stack as the parameter pytest's node id carries
    (``test_pingpong[openmpi]``).  One id for the gate and ``hpcos specs check`` (harness/suite.py)."""
    if not mpi or f"[{mpi}" in test_id or f"-{mpi}]" in test_id:
        return test_id
    return f"{test_id[:-1]}-{mpi}]" if test_id.endswith("]") else f"{test_id}[{mpi}]"


def matches(expression: str, test_id: str) -> bool:
    """Whether a pytest ``-k`` expression selects ``test_id``, as ``-k`` matches on the full id: each
    name is a case-insensitive substring of a directory, the module file, or a ``::`` part of the id
    with its parameters (``test_rank_count[mpich]``)."""
    from _pytest.mark.expression import Expression

    path, *names = test_id.split("::")
    parts = [p.lower() for p in (*path.split("/"), *names) if p]
    return Expression.compile(expression).evaluate(
        lambda name, **_: any(name.lower() in p for p in parts)
    )


def _required_tests_missing(
    spec_set: SpecSet,
    snapshot: Snapshot,
    dest: Snapshot | None,
    run: NightlyRecord,
    required_nodes: NodeSet,
    site_profile: SiteProfile,
) -> str:
    site_list = spec_set.site.harness.required_tests
    items = [(t, n, m) for t, n, m in run.collected if n is None or n in required_nodes]
    why: dict[tuple, str] = {}
    for item in items:
        if site_list is None:
            why.setdefault(item, "")
        elif any(matches(e, selectable_id(item[0], item[2])) for e in site_list):
            why.setdefault(item, "")
    for package in changed_packages(spec_set, snapshot, dest):
        for expression in package.tests:
            selected = [
                item for item in items if matches(expression, selectable_id(item[0], item[2]))
            ]
            if not selected:
                return (
                    f"changed package {package.name} requires tests matching {expression!r}, and the suite "
                    f"collects none on profile {site_profile.name!r}"
                )
            for item in selected:
                why.setdefault(item, f"changed package {package.name} requires it")
    outcomes: dict[tuple, list[tuple[str | None, str]]] = {}
    for test_id, node, outcome, *mpi in run.results:
        outcomes.setdefault((test_id, mpi[0] if mpi else None), []).append((node, outcome))
    missing = []
    for (test_id, node, mpi), reason in why.items():
        found = [o for n, o in outcomes.get((test_id, mpi), []) if node is None or n == node]
        if found and all(o == "passed" for o in found):
            continue
        state = "deselected or not run" if not found else next(o for o in found if o != "passed")
        where = f" on {node}" if node else ""
        stack = (
            f" [{mpi}]" if mpi and f"[{mpi}" not in test_id and f"-{mpi}]" not in test_id else ""
        )
        missing.append(f"{test_id}{stack}{where} {state}" + (f" ({reason})" if reason else ""))
    if not missing:
        return ""
    more = f" (first {NAMED} of {len(missing)})" if len(missing) > NAMED else ""
    return f"{len(missing)} required test(s) did not pass{more}: {'; '.join(missing[:NAMED])}"
