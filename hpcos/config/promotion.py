"""Branch status, gated promotion (testing -> production) and merge-back (production -> testing).

Promotion merges into production exactly the testing commit the last nightly run on the testing
snapshot recorded (``config_commits`` in the nightly record), never whatever testing points at
now: production gets what the test cluster ran.  Each promotion is prepared for every repository
first -- fetch, gate, ``git merge-tree`` (conflicts reported by file), the merge commit object,
validation of that commit -- and only when all are ready are the branches moved, each by a plain
push (refused if someone pushed meanwhile) and ``update-ref`` with the old value.  Nothing is ever
half-merged: no index, no work tree, no MERGE_HEAD.

Merge-back brings production's hot-fixes (made during an outage) into testing the same way,
without the gate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from hpcos.config import validation as checks
from hpcos.config.git import Commit
from hpcos.config.repositories import Repository
from hpcos.core.errors import UserError
from hpcos.core.store_layout import StoreLayout
from hpcos.repo import nightly
from hpcos.repo.environments import Environments
from hpcos.repo.promotion import GateClosed

log = logging.getLogger("hpcos.config")


class MergeConflict(UserError):
    def __init__(self, repo: str, into: str, files: list[str]):
        self.repo, self.files = repo, files
        super().__init__(
            f"config repository {repo}: merging into {into} conflicts in "
            f"{', '.join(files)}; nothing was changed (resolve on the branches and retry)"
        )


class ValidationFailed(UserError):
    pass


@dataclass
class BranchStatus:
    repository: str
    kind: str
    url: str
    testing: str
    production: str
    testing_head: str
    production_head: str
    to_promote: list[Commit]  # on testing, not yet in production
    hot_fixes: list[Commit]  # on production, not yet in testing
    validation: checks.Validation | None  # recorded for the testing head, if any

    def as_dict(self) -> dict:
        v = self.validation
        return {
            "repository": self.repository,
            "kind": self.kind,
            "url": self.url,
            "testing": {"branch": self.testing, "head": self.testing_head},
            "production": {"branch": self.production, "head": self.production_head},
            "to_promote": [c.__dict__ for c in self.to_promote],
            "hot_fixes": [c.__dict__ for c in self.hot_fixes],
            "validation": None
            if v is None
            else {
                "commit": v.commit,
                "ok": v.ok,
                "changes": v.changes,
                "summary": v.summary(),
                "checked": v.checked,
            },
        }


def status(repo: Repository, fetch: bool = True) -> BranchStatus:
    if fetch:
        repo.fetch()
    git = repo.git
    testing, production = repo.branch_ref("testing"), repo.branch_ref("production")
    for which, ref in (("testing", testing), ("production", production)):
        if not git.has(ref):
            raise UserError(
                f"config repository {repo.name}: no branch {repo.branch(which)!r} in {repo.spec.url}"
            )
    head = git.rev(testing)
    return BranchStatus(
        repo.name,
        repo.spec.kind,
        repo.spec.url,
        repo.spec.testing,
        repo.spec.production,
        head,
        git.rev(production),
        git.commits(production, testing),
        git.commits(testing, production),
        checks.recorded(repo, head),
    )


@dataclass
class Prepared:
    """A merge ready to publish: the commit object exists, no ref has moved."""

    repo: Repository
    into: str  # "production" or "testing"
    old: str
    new: str | None  # None: nothing to merge
    merged: str  # the commit brought in
    validation: checks.Validation | None = None
    commits: list[Commit] = field(default_factory=list)

    def describe(self) -> str:
        branch = self.repo.branch(self.into)
        if self.new is None:
            return f"{self.repo.name}: {branch} already has {self.merged[:12]}; nothing to merge"
        extra = f"; {self.validation.summary()}" if self.validation else ""
        return f"{self.repo.name}: {branch} {self.old[:12]} -> {self.new[:12]} ({len(self.commits)} commit(s){extra})"


def _gate_run(layout: StoreLayout, force: bool) -> tuple[nightly.NightlyRecord | None, str]:
    """The nightly run the gate reads (the last one the harness recorded on the testing snapshot) and why
    it fails, if it does.  An imported results file never names the commits to merge."""
    snapshot = Environments(layout).environment("testing").current()
    runs = [
        r
        for r in nightly.records(layout)
        if r.from_harness and (snapshot is None or r.testing_snapshot == snapshot)
    ]
    run = runs[-1] if runs else None
    if run is None:
        where = f"testing snapshot {snapshot}" if snapshot else "any testing snapshot"
        return None, f"no nightly run has been recorded by the harness for {where}"
    head = f"the last nightly run on testing snapshot {run.testing_snapshot} ({run.run_id})"
    problem = nightly.signature_problem(layout, run)
    if problem:
        return run, f"{head}: {problem}"
    if not run.passed:
        return run, f"{head} {run.verdict}"
    return run, ""


def _prepare(repo: Repository, into: str, commit: str, message: str) -> Prepared:
    git = repo.git
    old = git.rev(repo.branch_ref(into))
    if git.is_ancestor(commit, old):
        return Prepared(repo, into, old, None, commit)
    merge = git.merge_tree(old, commit)
    if not merge.clean:
        raise MergeConflict(repo.name, repo.branch(into), merge.conflicts)
    new = git.commit_tree(merge.tree, [old, commit], message)
    return Prepared(repo, into, old, new, commit, commits=git.commits(old, commit))


def _publish(prepared: list[Prepared]) -> None:
    for p in prepared:
        if p.new is None:
            continue
        p.repo.publish(p.into, p.new, p.old)
        log.info("%s: %s %s -> %s", p.repo.name, p.repo.branch(p.into), p.old[:12], p.new[:12])


def prepare_promotion(
    repos: list[Repository],
    layout: StoreLayout,
    reason: str,
    force: bool = False,
    report: Callable[[checks.Validation], None] | None = None,
) -> list[Prepared]:
    """Every check of a promotion, for every repository, before anything is written.

    ``report`` receives each validation (the CLI files it with the tracker)."""
    if force and not reason.strip():
        raise UserError(
            "--force needs --reason TEXT: an override of the gate is recorded with its reason"
        )
    run, closed = _gate_run(layout, force)
    prepared = []
    for repo in repos:
        repo.fetch()
        commit = run.config_commits.get(repo.name) if run else None
        why = closed or (
            ""
            if commit
            else f"the nightly run {run.run_id} did not record which {repo.spec.testing} "
            f"commit of {repo.name} the test cluster ran"
        )
        if why and not force:
            raise GateClosed(
                f"refusing to promote {repo.name}: {why}; override with --force --reason TEXT"
            )
        if why:
            commit = repo.git.rev(repo.branch_ref("testing"))
            log.warning(
                "%s: gate overridden (%s); promoting %s head %s",
                repo.name,
                why,
                repo.spec.testing,
                commit[:12],
            )
        if not repo.git.has(commit) or not repo.git.is_ancestor(commit, repo.branch_ref("testing")):
            raise UserError(
                f"config repository {repo.name}: the tested commit {commit[:12]} is not on "
                f"{repo.spec.testing} any more (rewritten history?); nothing was changed"
            )
        lines = [
            f"Promote {repo.spec.testing} into {repo.spec.production}: {reason.strip() or 'no reason given'}",
            "",
            f"Testing snapshot: {run.testing_snapshot if run else 'none'}",
            f"Nightly run: {f'{run.run_id} ({run.verdict})' if run else 'none'}",
            f"Tested commit: {commit}",
        ]
        if why:
            lines.append(f"Gate overridden: {why}")
        one = _prepare(repo, "production", commit, "\n".join(lines) + "\n")
        if one.new is not None:
            one.validation = checks.validate(repo, one.new, production=one.old, tested=commit)
            checks.record(repo, one.validation)
            if report:
                report(one.validation)
            if not one.validation.ok:
                failed = one.validation.failures()[0]
                raise ValidationFailed(
                    f"refusing to promote {repo.name}: {failed.name} failed on the merge of "
                    f"{commit[:12]}; nothing was changed:\n{failed.output[-1500:]}"
                )
        prepared.append(one)
    return prepared


def promote(
    repos: list[Repository],
    layout: StoreLayout,
    reason: str,
    force: bool = False,
    report: Callable[[checks.Validation], None] | None = None,
) -> list[Prepared]:
    prepared = prepare_promotion(repos, layout, reason, force, report)
    _publish(prepared)
    return prepared


def publish(prepared: list[Prepared]) -> None:
    """Move the branches of a prepared promotion (``hpcos repo promote --with-config``: after the packages)."""
    _publish(prepared)


def merge_back(repos: list[Repository], reason: str) -> list[Prepared]:
    """Production's hot-fixes into testing: a merge commit per repository, all checked before any is written."""
    prepared = []
    for repo in repos:
        repo.fetch()
        head = repo.git.rev(repo.branch_ref("production"))
        message = (
            f"Merge back {repo.spec.production} hot-fixes into {repo.spec.testing}: "
            f"{reason.strip() or 'no reason given'}\n\nProduction commit: {head}\n"
        )
        prepared.append(_prepare(repo, "testing", head, message))
    _publish(prepared)
    return prepared


def validate_testing(
    repo: Repository, report: Callable[[checks.Validation], None] | None = None, fetch: bool = True
) -> checks.Validation:
    """Validate the testing branch's head (the job on every push to testing) and record it."""
    if fetch:
        repo.fetch()
    git = repo.git
    result = checks.validate(
        repo, git.rev(repo.branch_ref("testing")), production=git.rev(repo.branch_ref("production"))
    )
    checks.record(repo, result)
    if report:
        report(result)
    return result
