"""The site's overlay specs: ``overlay_specs/site.yaml`` plus one YAML per overlay package.

This is the first link of the chain spec -> model -> job definition -> XML -> Jenkins, and the model
that the rebuild and repository steps read.  Every check reports file:line and field
(``hpcos.sourced_yaml``); all errors of all files are collected before anything is raised.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from hpcos import sourced_yaml
from hpcos.sourced_yaml import InputError, InvalidInput, SourcedDoc

SITE_FILE = "site.yaml"
PATCH_DIR = "patches"

# RPM's own rule is loose; these are the names Fedora's packaging guidelines accept, which is what
# a site overlay package should look like (and what survives createrepo_c, dnf and Jenkins job names).
RPM_NAME = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"
RpmName = Annotated[str, StringConstraints(pattern=RPM_NAME)]
# The site tag goes into Release after the upstream release (1.el9 -> 1.el9.hpc1); see jobs/release.py.
ReleaseTag = Annotated[str, StringConstraints(pattern=r"^\.[A-Za-z][A-Za-z0-9_]*$")]
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")]


class Strict(BaseModel):
    # Unknown keys are errors: JJB itself silently ignores a misspelled component, so we must not.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(Strict):
    """A build target: distribution release and architecture, and the mock config that builds it."""

    release: int = Field(ge=7, le=10)
    arch: Literal["x86_64", "aarch64", "ppc64le"]
    mock_config: str


class Mirror(Strict):
    """An upstream repository mirrored daily. ``{release}`` and ``{arch}`` expand per target."""

    url: str
    exclude: list[str] = []
    gpgkey: str | None = None

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, url: str) -> str:
        if not re.match(r"^(https?|file)://", url):
            raise ValueError("expected an http://, https:// or file:// URL")
        return url


class Overlay(Strict):
    description: str
    # An overlay that may skip the testing phase (the seed's security fast path for the kernel).
    fastpath: bool = False


class Environment(Strict):
    """A promotion environment; ``source`` is where it is promoted from (none for the daily mirror)."""

    source: str | None = None
    # "nightly": promotion into this environment needs a passing nightly run on the source snapshot.
    gate: Literal["none", "nightly"] = "none"
    schedule: str | None = None


class Jenkins(Strict):
    url: str
    folder: Identifier
    build_label: str
    test_label: str
    publish_label: str = "master"
    # Credentials never live here: HPCOS_JENKINS_USER / HPCOS_JENKINS_TOKEN or ~/.netrc.


class Tracker(Strict):
    backend: Literal["local", "trac", "bugzilla", "jira", "github", "gitlab", "redmine"] = "local"
    url: str | None = None
    project: str | None = None
    component: str | None = None
    # Local backend's SQLite file, relative to the store root unless absolute.
    path: str = "tickets.sqlite"
    max_new_per_run: int = Field(default=10, ge=1)
    max_new_per_day: int = Field(default=30, ge=1)
    close_after_passing_runs: int = Field(default=3, ge=1)
    close: bool = True
    # A failure that comes back after its ticket was closed: what to do, by the tracker's status or
    # resolution word (case-insensitive, e.g. {wontfix: ignore, duplicate: new}); otherwise `recurrence`.
    # "new" files a new ticket that references the old one (also used where the tracker cannot reopen).
    recurrence: Literal["reopen", "new", "ignore"] = "reopen"
    recurrence_by_status: dict[str, Literal["reopen", "new", "ignore"]] = {}
    # Where the fingerprint lives: Trac custom field name, Redmine custom field id; others use labels
    # (GitHub, GitLab, Jira) or the status whiteboard (Bugzilla).
    fingerprint_field: str = "fingerprint"
    # Status/resolution words used to close and reopen (Trac/Bugzilla resolution, Jira transition,
    # Redmine status); the backend's usual default when unset.
    close_status: str | None = None
    reopen_status: str | None = None
    issue_type: str = "Bug"  # Jira issue type; Trac ticket type "defect" when unset there
    # Extra fields set on every new ticket (e.g. Bugzilla `version`, Trac `milestone`).
    fields: dict[str, str] = {}
    timeout: float = Field(default=30.0, gt=0)
    # Trac only: the stock web UI, or the XML-RPC plugin where the site runs a Python 3 build of it.
    trac_transport: Literal["web", "xmlrpc"] = "web"
    # Credentials never live here: HPCOS_TRACKER_USER / HPCOS_TRACKER_PASSWORD (or _TOKEN), netrc, keyring.


class Store(Strict):
    # Where snapshots, environments, overlay repositories, queues and the results database live.
    root: str
    keep_snapshots: int = Field(default=14, ge=1)
    keep_builds: int = Field(default=3, ge=1)


class Harness(Strict):
    profile: str
    results_db: str = "results.sqlite"


class Site(Strict):
    name: Identifier
    store: Store
    targets: dict[Identifier, Target]
    mirrors: dict[Identifier, Mirror]
    # Site-wide excludes on top of what the overlays replace (globs on binary package names).
    exclude: list[str] = []
    overlays: dict[Identifier, Overlay]
    environments: dict[Identifier, Environment]
    jenkins: Jenkins
    tracker: Tracker = Tracker()
    harness: Harness

    @model_validator(mode="after")
    def _environment_chain(self) -> Site:
        for name, env in self.environments.items():
            if env.source is not None and env.source not in self.environments:
                raise ValueError(f"environment {name!r} promotes from unknown environment {env.source!r}")
        return self


class Upstream(Strict):
    """Where the SRPM comes from: the mirrored base repository, a URL, or a local path (exactly one)."""

    mirror: str | None = None
    # Source package name in the mirror when it differs from the overlay package name.
    srpm_name: RpmName | None = None
    srpm_url: str | None = None
    srpm_path: str | None = None
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    gpgkey: str | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> Upstream:
        given = [k for k in ("mirror", "srpm_url", "srpm_path") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"expected exactly one of mirror, srpm_url, srpm_path; found {given or 'none'}")
        return self


class Patch(Strict):
    file: str
    reason: Annotated[str, StringConstraints(min_length=10)]
    upstream: str | None = None


class Package(Strict):
    name: RpmName
    overlay: str
    upstream: Upstream
    release_tag: ReleaseTag
    targets: list[str] = Field(min_length=1)
    builder: Literal["mock", "rpmbuild"] = "mock"
    # Per-target mock config overriding the site's (e.g. one that also enables a devel repo).
    mock_config: dict[str, str] = {}
    owner: str
    patches: list[Patch] = []
    # Binary packages this overlay replaces in the base mirror (globs); default: NAME and NAME-*.
    replaces: list[str] = []
    # Integration tests (pytest -k expressions) that must pass after this package changes.
    tests: list[str] = Field(min_length=1)
    # Poll the mirror for a newer upstream build (cron spec for the Jenkins trigger).
    poll: str = "H 3 * * *"

    @property
    def replaced_globs(self) -> list[str]:
        return self.replaces or [self.name, f"{self.name}-*"]


@dataclass
class SpecSet:
    """A validated site: the one object the rest of hpcos reads specs through."""

    root: Path
    site: Site
    packages: dict[str, Package]
    docs: dict[str, SourcedDoc] = field(default_factory=dict)

    def patch_path(self, package: Package, patch: Patch) -> Path:
        return self.root / PATCH_DIR / package.name / patch.file

    def mirror_excludes(self, mirror: str) -> list[str]:
        """Globs left out of a mirror: the site's, the mirror's, and every overlaid package's."""
        globs = list(self.site.exclude) + list(self.site.mirrors[mirror].exclude)
        for package in self.packages.values():
            globs.extend(package.replaced_globs)
        return list(dict.fromkeys(globs))

    def is_excluded(self, mirror: str, binary_name: str) -> bool:
        return any(fnmatch.fnmatchcase(binary_name, glob) for glob in self.mirror_excludes(mirror))

    def mock_config(self, package: Package, target: str) -> str:
        return package.mock_config.get(target) or self.site.targets[target].mock_config

    def overlay_packages(self, overlay: str) -> list[Package]:
        return [p for p in self.packages.values() if p.overlay == overlay]


def load_specs(root: str | Path) -> SpecSet:
    """Load and check ``root/site.yaml`` and every other ``root/*.yaml``; raise InvalidInput with all errors."""
    root = Path(root)
    display_root = root.parent
    errors: list[InputError] = []
    docs: dict[str, SourcedDoc] = {}

    def parse(path: Path, model):
        try:
            doc = sourced_yaml.load(path, display_root)
            docs[str(path)] = doc
            return doc, sourced_yaml.validate(model, doc)
        except InvalidInput as exc:
            errors.extend(exc.errors)
            return None, None

    if not (root / SITE_FILE).is_file():
        raise InvalidInput([InputError(str(root / SITE_FILE), 0, "", "site file not found")])
    _, site = parse(root / SITE_FILE, Site)

    packages: dict[str, Package] = {}
    package_docs: dict[str, SourcedDoc] = {}
    for path in sorted(root.glob("*.yaml")):
        if path.name == SITE_FILE:
            continue
        doc, package = parse(path, Package)
        if package is None:
            continue
        if package.name in packages:
            errors.append(doc.error(("name",), f"package {package.name!r} is also defined in "
                                                f"{package_docs[package.name].name}"))
            continue
        packages[package.name] = package
        package_docs[package.name] = doc

    if site is not None:
        for name, package in packages.items():
            errors.extend(_cross_check(root, site, package, package_docs[name]))
    if errors:
        raise InvalidInput(errors)
    return SpecSet(root=root, site=site, packages=packages, docs=docs)


def _cross_check(root: Path, site: Site, package: Package, doc: SourcedDoc) -> list[InputError]:
    """Checks that need the site and the file system, not just one file."""
    errors = []

    def unknown(loc, what, value, known):
        errors.append(doc.error(loc, f"unknown {what} {value!r}; expected one of: {', '.join(sorted(known))}"))

    if package.overlay not in site.overlays:
        unknown(("overlay",), "overlay", package.overlay, site.overlays)
    if package.upstream.mirror and package.upstream.mirror not in site.mirrors:
        unknown(("upstream", "mirror"), "mirror", package.upstream.mirror, site.mirrors)
    for i, target in enumerate(package.targets):
        if target not in site.targets:
            unknown(("targets", i), "target", target, site.targets)
    for target in package.mock_config:
        if target not in package.targets:
            unknown(("mock_config", target), "target", target, package.targets)
    patch_root = (root / PATCH_DIR / package.name).resolve()
    specs_root = root.resolve()
    for i, patch in enumerate(package.patches):
        path = (patch_root / patch.file).resolve()
        if not path.is_relative_to(specs_root):
            errors.append(doc.error(("patches", i, "file"), f"patch path leaves the specs tree: {patch.file!r}"))
        elif not path.is_file():
            errors.append(doc.error(("patches", i, "file"),
                                    f"patch file not found: {path.relative_to(specs_root.parent)}"))
    return errors
