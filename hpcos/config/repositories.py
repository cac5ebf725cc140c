"""The site's configuration repositories as hpcos holds them: a bare mirror of each under the store.

Every command starts by fetching the two branches from the site's repository (the URL in
``site.yaml``), works on the mirror without a work tree, and publishes a promotion or merge-back
with a plain (never forced) push: if someone pushed to the branch meanwhile, the push is refused
and nothing changes.
"""

from __future__ import annotations

import getpass
import logging
from dataclasses import dataclass
from pathlib import Path

from hpcos.config.git import Git, GitError
from hpcos.core.errors import UserError
from hpcos.core.store_layout import StoreLayout
from hpcos.site.specs import ConfigRepository, SpecSet

log = logging.getLogger("hpcos.config")


@dataclass
class Repository:
    name: str
    spec: ConfigRepository
    directory: Path  # store/config/NAME: the mirror and the validation records

    @property
    def mirror(self) -> Path:
        return self.directory / "mirror.git"

    @property
    def validations(self) -> Path:
        return self.directory / "validations"

    @property
    def git(self) -> Git:
        return Git(self.mirror, author=_user())

    def branch_ref(self, which: str) -> str:
        return f"refs/heads/{self.branch(which)}"

    def branch(self, which: str) -> str:
        return {"testing": self.spec.testing, "production": self.spec.production}[which]

    def fetch(self) -> None:
        """Bring the mirror's two branches to where the site's repository has them."""
        if not (self.mirror / "HEAD").is_file():
            self.directory.mkdir(parents=True, exist_ok=True)
            done = Git(self.directory).run(
                "init", "--quiet", "--bare", str(self.mirror), check=False
            )
            if done.exit_code != 0:
                raise GitError(f"git init {self.mirror}: {done.stderr.strip()}")
            self.git.run("remote", "add", "origin", self.spec.url)
        self.git.run("remote", "set-url", "origin", self.spec.url)
        refspecs = [
            f"+refs/heads/{b}:refs/heads/{b}" for b in (self.spec.testing, self.spec.production)
        ]
        done = self.git.run("fetch", "--quiet", "--no-tags", "origin", *refspecs, check=False)
        if done.exit_code != 0 or done.timed_out:
            raise GitError(
                f"config repository {self.name}: cannot fetch {self.spec.testing} and "
                f"{self.spec.production} from {self.spec.url}: {_first_line(done.stderr)}"
            )

    def publish(self, which: str, new: str, old: str) -> None:
        """Push ``new`` to the branch (a fast-forward of ``old``), then move the mirror's ref."""
        branch = self.branch(which)
        done = self.git.run(
            "push", "--quiet", "--porcelain", "origin", f"{new}:refs/heads/{branch}", check=False
        )
        if done.exit_code != 0 or done.timed_out:
            raise GitError(
                f"config repository {self.name}: push to {branch} refused, nothing changed "
                f"(did someone push to it meanwhile? run the command again): "
                f"{(done.stderr or done.stdout).strip()[-1000:]}"
            )
        self.git.update_ref(self.branch_ref(which), new, old)


def _first_line(text: str) -> str:
    """git's own reason, one line (ssh and git add advice lines after it)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:500] if lines else "no message from git"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "hpcos"


def repositories(
    spec_set: SpecSet, layout: StoreLayout, names: list[str] | None = None
) -> list[Repository]:
    """The site's configuration repositories, or the ``names`` ones (each must exist)."""
    configured = spec_set.site.config.repositories
    if not configured:
        raise UserError(
            "site.yaml names no configuration repositories (config.repositories); "
            "see docs/configuration.md"
        )
    unknown = [n for n in names or [] if n not in configured]
    if unknown:
        raise UserError(
            f"unknown configuration repository {unknown[0]!r}; expected one of: "
            f"{', '.join(sorted(configured))}"
        )
    return [
        Repository(name, configured[name], layout.config_repos / name)
        for name in (names or sorted(configured))
    ]
