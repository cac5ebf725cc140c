"""The git operations configuration promotion needs, on a bare repository, through the one runner.

Plain ``git`` (not a library): exactly the behaviour the site's own git has, and ``merge-tree
--write-tree`` (git >= 2.38) merges without an index or a work tree, so a conflict is found before
anything is written and nothing is ever left half-merged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hpcos.core import runner
from hpcos.core.errors import UserError

GIT_TIMEOUT = 300  # a clone or fetch of a large control repository over a slow link
# No prompts (a missing credential fails at once instead of waiting on a terminal in Jenkins), no
# user or system config that could add hooks or rewrite URLs behind the site's back.
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}
# Commits hpcos writes name it as their committer; the author is whoever runs the command.
IDENTITY = {"GIT_COMMITTER_NAME": "hpcos", "GIT_COMMITTER_EMAIL": "hpcos@localhost"}


class GitError(UserError):
    """A git command failed; the message quotes git's own words."""


@dataclass(frozen=True)
class Commit:
    sha: str
    author: str
    date: str
    subject: str

    @property
    def short(self) -> str:
        return self.sha[:12]


@dataclass(frozen=True)
class MergeTree:
    """What merging two commits would give, computed without touching any ref or work tree."""

    tree: str
    conflicts: list[str]

    @property
    def clean(self) -> bool:
        return not self.conflicts


class Git:
    """One repository (bare or not) at ``path``."""

    def __init__(self, path: Path, author: str | None = None):
        self.path = Path(path)
        self.author = author

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = GIT_TIMEOUT,
        env: dict[str, str] | None = None,
    ) -> runner.ProcessResult:
        done = runner.run(
            ["git", "-C", str(self.path), *args], timeout=timeout, env={**GIT_ENV, **(env or {})}
        )
        if check and (done.exit_code != 0 or done.timed_out):
            why = "timed out" if done.timed_out else f"exit {done.exit_code}"
            raise GitError(
                f"git {' '.join(args[:2])} in {self.path} {why}: "
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )
        return done

    def rev(self, ref: str) -> str:
        return self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").stdout.strip()

    def has(self, ref: str) -> bool:
        return (
            self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False).exit_code
            == 0
        )

    def is_ancestor(self, a: str, b: str) -> bool:
        done = self.run("merge-base", "--is-ancestor", a, b, check=False)
        if done.exit_code not in (0, 1):
            raise GitError(f"git merge-base in {self.path}: {done.stderr.strip()}")
        return done.exit_code == 0

    def commits(self, exclude: str, include: str) -> list[Commit]:
        """Commits reachable from ``include`` and not from ``exclude``, newest first, merges left out
        (a promotion or merge-back commit carries no change of its own)."""
        done = self.run(
            "log", "--no-merges", "--format=%H%x1f%an%x1f%aI%x1f%s", f"{exclude}..{include}", "--"
        )
        return [
            Commit(*line.split("\x1f", 3))
            for line in done.stdout.splitlines()
            if line.count("\x1f") == 3
        ]

    def merge_tree(self, ours: str, theirs: str) -> MergeTree:
        """``git merge-tree --write-tree``: rc 0 clean, rc 1 conflicts (tree id, then the paths)."""
        done = self.run(
            "merge-tree", "--write-tree", "--name-only", "--no-messages", ours, theirs, check=False
        )
        if done.exit_code not in (0, 1):
            raise GitError(f"git merge-tree {ours} {theirs} in {self.path}: {done.stderr.strip()}")
        lines = done.stdout.splitlines()
        if not lines or not re.fullmatch(r"[0-9a-f]{40,64}", lines[0]):
            raise GitError(f"git merge-tree in {self.path} printed no tree: {done.stdout[:200]!r}")
        return MergeTree(lines[0], sorted(dict.fromkeys(line for line in lines[1:] if line)))

    def commit_tree(self, tree: str, parents: list[str], message: str) -> str:
        """A commit object for ``tree``; no ref moves (an unreferenced object is harmless)."""
        env = dict(IDENTITY)
        if self.author:
            env.update(GIT_AUTHOR_NAME=self.author, GIT_AUTHOR_EMAIL=f"{self.author}@localhost")
        else:
            env.update(GIT_AUTHOR_NAME="hpcos", GIT_AUTHOR_EMAIL="hpcos@localhost")
        argv = ["commit-tree", tree]
        for parent in parents:
            argv += ["-p", parent]
        done = runner.run(
            ["git", "-C", str(self.path), *argv, "-F", "-"],
            timeout=GIT_TIMEOUT,
            env={**GIT_ENV, **env},
            input=message.encode(),
        )
        if done.exit_code != 0:
            raise GitError(f"git commit-tree in {self.path}: {done.stderr.strip()}")
        return done.stdout.strip()

    def update_ref(self, ref: str, new: str, old: str) -> None:
        """Move ``ref`` to ``new`` only if it still is at ``old`` (someone else's change is never lost)."""
        self.run("update-ref", ref, new, old)

    def message(self, ref: str) -> str:
        return self.run("log", "-1", "--format=%B", ref).stdout

    def parents(self, ref: str) -> list[str]:
        return self.run("log", "-1", "--format=%P", ref).stdout.split()
