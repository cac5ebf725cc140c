"""The site: one object that knows where everything of this installation lives.

A command builds it once from ``--specs``/``--store``, ``$HPCOS_SPECS``/``$HPCOS_STORE`` and
``site.yaml``; the pytest plugins build it once in ``pytest_configure`` and keep it in the config
stash.  Everything below the command line takes the ``Site`` (or plain values taken from it), so
there is one rule for each of: where the specs are, where the store is, where the results database
is, which tracker tickets go to, and where credentials come from.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from hpcos.core.errors import UserError
from hpcos.core.store_layout import StoreLayout

if (
    TYPE_CHECKING
):  # the spec model costs a third of a second to import; only commands that read it pay
    from hpcos.cluster.profiles import Profile
    from hpcos.site.specs import SpecSet, Tracker

DEFAULT_SPECS = "overlay_specs"
SPECS_VARIABLE = "HPCOS_SPECS"
STORE_VARIABLE = "HPCOS_STORE"


def personal_store(environ: Mapping[str, str]) -> Path:
    """Where a developer's own store goes when the site's is not theirs to write: their XDG state
    directory, so local runs on a shared machine never mix into the site's store or each other's."""
    state = environ.get("XDG_STATE_HOME") or str(
        Path(environ.get("HOME") or Path.home()) / ".local" / "state"
    )
    return Path(state) / "hpcos" / "store"


def personal_cache(environ: Mapping[str, str]) -> Path:
    """The user's cache directory for hpcos (XDG): what can be recomputed, never what must be kept."""
    cache = environ.get("XDG_CACHE_HOME") or str(
        Path(environ.get("HOME") or Path.home()) / ".cache"
    )
    return Path(cache) / "hpcos"


def _writable(path: Path) -> bool:
    """Whether this user can create or write ``path`` (its nearest existing ancestor decides)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return os.access(candidate, os.W_OK | os.X_OK)
    return False


@dataclass
class Site:
    """The installation a command works on.  Paths are absolute from the moment it is built, so a
    relative ``--store`` means the same directory in every step, whatever directory a step runs in."""

    specs_dir: Path
    store_override: Path | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    notices: list[str] = field(default_factory=list)
    """Things worth one line to the person running the command (the CLI prints them)."""

    @classmethod
    def from_options(
        cls,
        specs: str | Path | None = None,
        store: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Site:
        env = os.environ if environ is None else environ
        specs_dir = Path(specs or env.get(SPECS_VARIABLE) or DEFAULT_SPECS).absolute()
        explicit = store or env.get(STORE_VARIABLE)
        return cls(specs_dir, Path(explicit).absolute() if explicit else None, env)

    @cached_property
    def specs(self) -> SpecSet:
        """The spec set, loaded on first use (raises ``InvalidInput`` naming file, line and field)."""
        from hpcos.site.specs import load_specs

        return load_specs(self.specs_dir)

    @cached_property
    def store_root(self) -> Path:
        """``--store``, then ``$HPCOS_STORE``, then site.yaml's ``store.root`` when this user can
        write it; otherwise the user's personal store, said once in ``notices``."""
        if self.store_override is not None:
            return self.store_override
        configured = Path(self.specs.site.store.root)
        if not configured.is_absolute():
            configured = (self.specs_dir.parent / configured).absolute()
        if _writable(configured):
            return configured
        personal = personal_store(self.environ).absolute()
        self.notices.append(
            f"store: {configured} is not writable by this user; using {personal} "
            f"(--store or ${STORE_VARIABLE} to choose)"
        )
        return personal

    @cached_property
    def layout(self) -> StoreLayout:
        """The store's paths, checked once: no kernel file system, no symlinked store folder."""
        return StoreLayout(self.store_root).check()

    @cached_property
    def results_db(self) -> Path:
        """site.yaml's ``harness.results_db`` under the store; the layout's default when there are
        no specs at hand but the store was named."""
        try:
            relative = self.specs.site.harness.results_db
        except UserError:
            if self.store_override is None:
                raise
            return self.layout.results_db
        return self.store_root / relative

    def cache_file(self, kind: str, key: str) -> Path:
        """A per-user cache file for ``kind`` ("jenkins", ...) and ``key`` (a URL): hashed into the name,
        so a URL with user info never becomes a file name."""
        return (
            personal_cache(self.environ)
            / kind
            / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")
        )

    def profile_path(self, name: str, root: Path | None = None) -> Path:
        """The one profile lookup, for every command and the harness: the file ``--cluster NAME`` means.

        A path (``.yaml``, or with a ``/``) that does not exist from here is taken relative to the
        repository holding the specs, as site.yaml's ``harness.profile`` is: the nightly Jenkins job
        passes that value from its own workspace.  A name is looked up in ``root``'s (default: the current
        directory's) ``integration_tests/clusters`` and ``clusters``, then among the profiles hpcos ships."""
        from hpcos.cluster.profiles import is_profile_path, profile_path
        from hpcos.core.shipped import SUITE_NAME, profiles_dir

        path = Path(name)
        if is_profile_path(name):
            if not path.is_absolute() and not path.exists():
                candidate = self.specs_dir.resolve().parent / path
                if candidate.is_file():
                    return candidate
            return path
        base = Path.cwd() if root is None else root
        dirs = [base / SUITE_NAME / "clusters", base / "clusters", profiles_dir().resolve()]
        return profile_path(name, list(dict.fromkeys(dirs)))

    def profile(self, name: str, root: Path | None = None) -> Profile:
        """The validated profile ``name`` means (``profile_path``); errors name file, line and field."""
        from hpcos.cluster.profiles import load_profile

        return load_profile(self.profile_path(name, root))

    def tracker(self, backend: str | None = None) -> Tracker:
        """site.yaml's tracker, or the same settings sent to another ``backend``."""
        spec = self.specs.site.tracker
        return spec.model_copy(update={"backend": backend}) if backend else spec

    @cached_property
    def secrets(self) -> list[str]:
        """Every secret of every credential source that can be listed: the credential variables' values
        and every ~/.netrc password, whichever host it is for.  What hpcos writes is masked for all of them."""
        from hpcos.site.credentials import known_secrets

        return known_secrets(self.environ)

    def credentials(self, service: str, url: str | None):
        """The one credential rule (environment, then netrc, then keyring); see ``credentials``."""
        from hpcos.site.credentials import resolve

        return resolve(service, url, self.environ)
