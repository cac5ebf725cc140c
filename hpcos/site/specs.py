"""The site's overlay specs: ``overlay_specs/site.yaml`` plus one YAML per overlay package.

This is the first link of the chain spec -> model -> job definition -> XML -> Jenkins, and the model
that the rebuild and repository steps read.  Every check reports file:line and field
(``hpcos.core.sourced_yaml``); all errors of all files are collected before anything is raised.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from hpcos.core import sourced_yaml
from hpcos.core.sourced_yaml import InputError, InvalidInput, SourcedDoc, described_pattern
from hpcos.core.text import printable
from hpcos.site.trackers import TRACKERS

SITE_FILE = "site.yaml"
PATCH_DIR = "patches"

# RPM's own rule is loose; these are the names Fedora's packaging guidelines accept, which is what
# a site overlay package should look like (and what survives createrepo_c, dnf and Jenkins job names).
RPM_NAME = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"
RpmName = described_pattern(RPM_NAME, "an RPM package name (letters, digits and . _ + -, not starting with "
                                      "a punctuation mark)")
# The site tag goes into Release after the upstream release (1.el9 -> 1.el9.hpc1); see jobs/release.py.
ReleaseTag = described_pattern(r"^\.[A-Za-z][A-Za-z0-9_]*$", "a release tag: a dot, a letter, then letters, "
                                                            "digits or _ (e.g. '.hpc1')")
Identifier = described_pattern(r"^[A-Za-z][A-Za-z0-9_.-]*$", "a name of letters, digits and _ . - starting "
                                                            "with a letter")
# fnmatch globs over binary package names, as dnf's excludepkgs takes them.
NameGlob = described_pattern(r"^[A-Za-z0-9._+*?\[\]-]+$", "a glob of RPM names (letters, digits, . _ + - "
                                                           "and the wildcards * ? [ ])")
Sha256 = described_pattern(r"^[0-9a-f]{64}$", "a SHA-256 digest (64 lower-case hex digits)")
# Placeholders that URLs and paths may use; they expand per build target.
PLACEHOLDERS = ("release", "arch", "target")
ARCHES = ("x86_64", "aarch64", "ppc64le")
CRON_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")

# Values below reach a Jenkins job's shell step, its node label or its trigger, a mock or rpm command
# line: each field has the narrowest pattern that still takes every real value, so that no spec can
# smuggle shell syntax, JJB braces or rpm macros through them (the jobs also quote and escape them).
# Jenkins cron: five fields of digits, H, H(a-b), names (MON, JAN), * / , - ; or one @-alias.
# A field is a list of items; an item is *, a number, a month or day name, or H / H(a-b), optionally a
# range and a step.  Any other word (a typo, "banana") is refused here, not by Jenkins at run time.
_CRON_NAMES = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|SUN|MON|TUE|WED|THU|FRI|SAT"
_CRON_ATOM = rf"(?:\*|H(?:\([0-9]{{1,2}}-[0-9]{{1,2}}\))?|[0-9]{{1,2}}|(?i:{_CRON_NAMES}))"
_CRON_ITEM = rf"{_CRON_ATOM}(?:-{_CRON_ATOM})?(?:/[0-9]{{1,2}})?"
_CRON_FIELD = rf"{_CRON_ITEM}(?:,{_CRON_ITEM})*"
CRON_SPEC = rf"^(?:{_CRON_FIELD}(?:[ \t]+{_CRON_FIELD}){{4}}|{'|'.join(CRON_ALIASES)})$"
CronSpec = described_pattern(CRON_SPEC, "a Jenkins cron spec: five fields like 'H 3 * * *' (digits, H, "
                                         "names and * / , - ( )), or @daily, @hourly, ...")
# A relative or absolute path as a shell word needs no quoting: no spaces, quotes, $, ; or braces.
SafePath = described_pattern(r"^[A-Za-z0-9_./+][A-Za-z0-9_./+-]*$",
                             "a path of letters, digits and _ . / + - (not starting with -)")
# The file's name goes into the spec's PatchNNNN: tag (after an hpcos- prefix): no % or spaces.  Where
# it leads (outside the specs directory?) is checked against the file system below.
PatchFile = described_pattern(r"^[A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)*$",
                              "a patch file name of letters, digits and _ . + - (subdirectories with /)")


def _no_control_characters(multi_line: bool):
    allowed = "\n\t" if multi_line else ""

    def check(text: str) -> str:
        # "Printable" is what str.isprintable() says: controls, bidi overrides, zero-width characters and
        # U+2028 are refused as well as escape sequences.
        bad = next((c for c in text if not c.isprintable() and c not in allowed), None)
        if bad is not None:
            raise ValueError(f"expected printable text without control characters; found {printable(bad)!r} "
                             f"in {printable(text)[:200]!r}")
        return text

    return AfterValidator(check)


# Free text (owners, reasons, descriptions): any printable text.  JJB braces and rpm % are escaped where
# the text is used (jobs.job_definitions, hpcos.rebuild.patching).
Text = Annotated[str, _no_control_characters(multi_line=True)]
OneLine = Annotated[str, _no_control_characters(multi_line=False)]


def _url_type(*schemes: str):
    def check(url: str) -> str:
        # file:///path (empty host) is the usual form for local repositories, as dnf and createrepo_c write it.
        if not re.match(rf"^({'|'.join(schemes)})://[^/\s]", url) and not (
                "file" in schemes and re.match(r"^file:///[^\s]", url)):
            raise ValueError(f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return url

    return Annotated[str, AfterValidator(check)]


WebUrl = _url_type("http", "https")
FetchUrl = _url_type("http", "https", "file")


def _check_pytest_expression(expression: str) -> str:
    # The same parser `pytest -k` uses, so a typo fails here rather than in the nightly run.
    from _pytest.mark.expression import Expression

    try:
        Expression.compile(expression)
    except Exception as exc:  # SyntaxError in pytest 9, ParseError before
        reason = getattr(exc, "msg", None) or getattr(exc, "message", None) or str(exc)
        raise ValueError(f"expected a pytest -k expression ({reason})") from None
    return expression


PytestExpression = Annotated[str, AfterValidator(_check_pytest_expression)]


class Strict(BaseModel):
    # Unknown keys are errors: JJB itself silently ignores a misspelled component, so we must not.
    # Attribute docstrings become the JSON Schema's descriptions, which editors show on hover.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


# A Jenkins label expression as a job's node: labels, && || ! and parentheses; no JJB braces.
JenkinsLabel = described_pattern(r"^[A-Za-z0-9_.:-]+(?:\s*(?:&&|\|\|)\s*!?\(?[A-Za-z0-9_.:-]+\)?)*$",
                                 "a Jenkins label or label expression (e.g. 'rpm-build && aarch64')")
# What rpmsign and gpg are given: no rpm macro (%), no newline, no shell quoting.
GpgKeyId = described_pattern(r"^[A-Za-z0-9@._+<> -]+$", "a GnuPG key id, fingerprint or user id (letters, "
                                                          "digits, @ . _ + < > - and spaces)")
GnupgHome = described_pattern(r"^/[A-Za-z0-9@._+/-]+$", "an absolute directory path (letters, digits, @ . _ + - /)")


class Target(Strict):
    """A build target: distribution release and architecture, and the mock config that builds it."""

    release: int = Field(ge=7, le=10)
    """Major release of the distribution (8 for EL8); ``{release}`` in URLs."""
    arch: Literal[ARCHES]
    """Architecture; ``{arch}`` in URLs."""
    mock_config: SafePath
    """Fedora mock config (``mock -r``) that builds for this target on the build hosts."""
    mock_repositories: Literal["config", "daily"] = "config"
    """Where mock installs the build root from: 'config', the mock config's own repositories (public
    mirrors); 'daily', the store's daily snapshot of this target's mirrors, in a config hpcos
    generates from mock_config (air-gapped, reproducible: the snapshot id is recorded per build)."""
    build_label: JenkinsLabel | None = None
    """Jenkins label (expression) of the agents that build this target; default: jenkins.build_labels
    for the target's arch, else '<jenkins.build_label> && <arch>'."""


class Signing(Strict):
    """The site's package signing key: the GnuPG home that holds it and which key.  Never the key
    itself, nor its passphrase (GnuPG's agent, or a passphrase-less build key)."""

    gnupg_home: GnupgHome
    """GnuPG home directory with the secret key, on the build and publishing hosts."""
    key_id: GpgKeyId
    """Key id, fingerprint or user id (e.g. 'rpm-signing@example.org')."""


class Mirror(Strict):
    """An upstream repository mirrored daily. ``{release}`` and ``{arch}`` expand per target."""

    url: FetchUrl
    """Repository base URL (http, https or file); may use {release}, {arch}, {target}."""
    source_url: FetchUrl | None = None
    """The matching source (SRPM) repository. Rebuilds fetch overlay SRPMs from it: the daily mirror
    leaves the overlaid packages out, and upstream keeps sources in a repository of their own."""
    exclude: list[NameGlob] = []
    """Globs of binary package names never mirrored from this repository."""
    gpgkey: str | None = None
    """Key that signs this repository's packages (and the SRPMs taken from it)."""


class Overlay(Strict):
    """A repository of the site's rebuilt packages, published and promoted on its own."""

    description: Text
    fastpath: bool = False
    """May skip the testing phase (the security fast path, meant for the kernel)."""


class Environment(Strict):
    """A promotion environment; ``source`` is where it is promoted from (none for the daily mirror)."""

    source: str | None = None
    """Environment this one is promoted from; none for the one the mirror sync fills."""
    gate: Literal["none", "nightly"] = "none"
    """'nightly': promotion needs a passing nightly run on the source's snapshot."""
    schedule: CronSpec | None = None
    """Jenkins cron spec for the automatic sync or promotion; none: by hand only."""


class Jenkins(Strict):
    """Where the generated jobs go. Credentials never live here: HPCOS_JENKINS_USER /
    HPCOS_JENKINS_TOKEN or ~/.netrc."""

    url: WebUrl
    folder: Identifier
    """Folder that holds every job hpcos manages."""
    build_label: JenkinsLabel
    """Node label of the RPM build hosts."""
    build_labels: dict[Literal[ARCHES], JenkinsLabel] = {}
    """Label (expression) of the build agents per architecture, e.g. {aarch64: rpm-build-arm}."""
    test_label: JenkinsLabel
    """Node label of the test cluster's front end (runs the nightly integration tests)."""
    publish_label: JenkinsLabel = "master"
    """Node label of the host that owns the repository store."""


class Tracker(Strict):
    backend: Literal[tuple(TRACKERS)] = "local"
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

    @field_validator("url")
    @classmethod
    def _usable_url(cls, url: str | None) -> str | None:
        """A URL every client library can use: http(s), a host, a port in 1-65535.  Refused here, in
        ``specs check``, rather than as a traceback at the end of a nightly run."""
        if url is None:
            return url
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError("needs a scheme, http:// or https://")
        if not parts.hostname:
            raise ValueError("names no host")
        try:
            port = parts.port
        except ValueError:
            port = -1
        if port is not None and not 1 <= port <= 65535:
            raise ValueError(f"port {parts.netloc.rsplit(':', 1)[-1]!r} is not a number in 1-65535")
        if any(c.isspace() for c in url):
            raise ValueError("contains white space")
        return url


class Store(Strict):
    """Where snapshots, environments, overlay repositories, queues and the results database live."""

    root: str
    """Store directory on the publishing host; --store or HPCOS_STORE override it."""
    keep_snapshots: int = Field(default=14, ge=1)
    keep_builds: int = Field(default=3, ge=1)


class Harness(Strict):
    profile: SafePath
    """Cluster profile of the test cluster, relative to the repository."""
    results_db: str = "results.sqlite"
    """Results database, relative to the store root unless absolute."""
    production_profile: str | None = None
    """Cluster profile of the production cluster (node classes, scale): what `hpcos outage` plans for."""


class Wiki(Strict):
    """Where `hpcos outage plan` writes the page developers, management and operators read and edit."""

    backend: Literal["trac", "directory", "none"] = "none"
    url: WebUrl | None = None
    """Trac's base URL (default: tracker.url when the tracker is Trac). Credentials as for the tracker."""
    path: str | None = None
    """Directory of Markdown pages, for backend: directory (relative to the store root unless absolute)."""
    page: described_pattern(r"^[A-Za-z0-9][A-Za-z0-9_./{}-]{0,200}$",
                            "a wiki page name such as Outages/{snapshot}") = "Outages/{snapshot}"
    """Page name; {snapshot} becomes the testing snapshot's id."""


def _check_branch(name: str) -> str:
    # Git branch names as `git check-ref-format --branch` accepts them, narrowed to what is also safe
    # on a command line and in a Jenkins job: no leading dash, no "..", no trailing "/" or ".lock".
    if (not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._/-]*", name) or ".." in name or "//" in name
            or name.endswith(("/", ".", ".lock"))):
        raise ValueError("expected a git branch name (letters, digits and . _ / -, no '..', not ending in / . "
                         "or .lock)")
    return name


def _check_repo_path(path: str) -> str:
    # A path inside the repository: relative, no "..", no leading dash.
    if not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9._/+-]*", path) or ".." in path.split("/"):
        raise ValueError("expected a relative path inside the repository (letters, digits and . _ / + -, no '..')")
    return path


GitBranch = Annotated[str, AfterValidator(_check_branch)]
RepoPath = Annotated[str, AfterValidator(_check_repo_path)]
CONFIG_KINDS = ("puppet", "ansible", "salt", "cfengine", "nagios", "generic")


def _check_git_url(url: str) -> str:
    # What git clones from: a URL with a scheme, scp-like user@host:path, or an absolute local path.
    # Never something git would read as an option (a leading dash), nor characters a shell, JJB's
    # {placeholders} or a Nagios/Jenkins field would read as syntax: a git URL needs none of them.
    if re.search(r"[{}'\"`$\\<>|;]", url):
        raise ValueError("expected a git URL without { } ' \" ` $ \\ < > | ; (none is needed in a URL)")
    if not (re.fullmatch(r"(https?|ssh|git|file)://[^\s]+", url)
            or re.fullmatch(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s-][^\s]*", url)
            or re.fullmatch(r"/[^\s]*", url)):
        raise ValueError("expected a git URL: https://, ssh://, git://, file://, user@host:path or an "
                         "absolute path")
    return url


GitUrl = Annotated[str, AfterValidator(_check_git_url)]


class ConfigRepository(Strict):
    """A configuration repository (configuration management or monitoring) promoted with the packages:
    changes go to its testing branch, are tested on the test cluster, and are merged into production."""

    url: GitUrl
    """Where the repository lives (credentials in ~/.netrc or the ssh agent, never here)."""
    kind: Literal[CONFIG_KINDS]
    """What it configures; decides how a change is validated before promotion (docs/configuration.md)."""
    testing: GitBranch = "testing"
    """Branch the test cluster runs."""
    production: GitBranch = "production"
    """Branch the production cluster runs."""
    entry: RepoPath | None = None
    """File validation starts from; default per kind: puppet manifests/site.pp, ansible site.yml,
    nagios nagios.cfg."""

    @model_validator(mode="after")
    def _two_branches(self) -> ConfigRepository:
        if self.testing == self.production:
            raise ValueError(f"expected different testing and production branches; found {self.testing!r} twice")
        return self


class Config(Strict):
    """Configuration repositories that move with the packages (``hpcos config``)."""

    repositories: dict[Identifier, ConfigRepository] = {}
    """By name; the name is used in commands, jobs and tickets."""


class SiteSpec(Strict):
    """``site.yaml``: what the site mirrors, rebuilds, promotes and tests."""

    name: Identifier
    store: Store
    targets: dict[Identifier, Target]
    """Build targets by name (e.g. el9-x86_64); packages list the ones they build for."""
    mirrors: dict[Identifier, Mirror]
    """Upstream repositories mirrored daily, by name."""
    exclude: list[NameGlob] = []
    """Globs of binary package names left out of every mirror, on top of what the overlays replace."""
    overlays: dict[Identifier, Overlay]
    environments: dict[Identifier, Environment]
    """Promotion environments (daily, testing, production), each naming its source."""
    jenkins: Jenkins
    tracker: Tracker = Tracker()
    harness: Harness
    wiki: Wiki = Wiki()
    config: Config = Config()
    """Configuration management and monitoring repositories promoted with the packages."""
    signing: Signing | None = None
    """Sign overlay RPMs and repository metadata; nodes then use gpgcheck and repo_gpgcheck."""


class Upstream(Strict):
    """Where the SRPM comes from: the mirrored base repository, a URL, or a local path (exactly one)."""

    mirror: str | None = None
    """Name of a site mirror whose source repository holds the SRPM."""
    srpm_name: RpmName | None = None
    """Source package name in the mirror when it differs from the overlay package's name."""
    srpm_url: FetchUrl | None = None
    """URL of the SRPM; may use {release}, {arch}, {target}."""
    srpm_path: str | None = None
    """Path of the SRPM, relative to the specs directory unless absolute; may use placeholders."""
    sha256: Sha256 | None = None
    """Expected SHA-256 of the SRPM from srpm_url or srpm_path."""
    gpgkey: str | None = None
    """Key that signs the SRPM (default: the mirror's)."""

    @model_validator(mode="after")
    def _exactly_one_source(self) -> Upstream:
        given = [k for k in UPSTREAM_SOURCES if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"expected exactly one of {', '.join(UPSTREAM_SOURCES)}; found "
                             f"{', '.join(given) or 'none'}")
        return self


UPSTREAM_SOURCES = ("mirror", "srpm_url", "srpm_path")


class Patch(Strict):
    """A site patch, applied in the order listed."""

    file: PatchFile
    """File name under patches/PACKAGE/ (a git format-patch or diff -u file)."""
    reason: Annotated[str, StringConstraints(min_length=10), _no_control_characters(multi_line=True)]
    """Why the site carries it: what breaks without it."""
    upstream: OneLine | None = None
    """Link to the upstream report, pull request or discussion."""


class Package(Strict):
    """One overlay package: ``overlay_specs/NAME.yaml``."""

    name: RpmName
    """Source package name; also the patch directory patches/NAME/."""
    overlay: str
    """Overlay repository (from site.yaml) the rebuilt packages are published into."""
    upstream: Upstream
    release_tag: ReleaseTag
    """Appended to the upstream Release (1.el9 -> 1.el9.hpc1) so a site build is told apart and updates
    cleanly when upstream moves on."""
    targets: list[str] = Field(min_length=1)
    """Site targets this package is built for."""
    builder: Literal["mock", "rpmbuild"] = "mock"
    mock_config: dict[str, SafePath] = {}
    """Per-target mock config overriding the site's (e.g. one with a bigger tmpfs)."""
    owner: OneLine
    """Who answers for this package: tickets about it are addressed here."""
    patches: list[Patch] = []
    replaces: list[NameGlob] = []
    """Globs of binary packages the overlay replaces, left out of every mirror; default: NAME, NAME-*."""
    tests: list[PytestExpression] = Field(min_length=1)
    """Integration tests (pytest -k expressions) that must pass after this package changes."""
    poll: CronSpec = "H 3 * * *"
    """Jenkins cron spec: when to look for a newer upstream build."""

    @property
    def replaced_globs(self) -> list[str]:
        return self.replaces or [self.name, f"{self.name}-*"]


@dataclass
class SpecSet:
    """A validated site: the one object the rest of hpcos reads specs through."""

    root: Path
    site: SiteSpec
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

    def expand(self, template: str, target: str) -> str:
        """A URL or path with ``{release}``, ``{arch}`` and ``{target}`` filled in for ``target``."""
        t = self.site.targets[target]
        return template.format(release=t.release, arch=t.arch, target=target)

    def mock_config(self, package: Package, target: str) -> str:
        return package.mock_config.get(target) or self.site.targets[target].mock_config

    def build_label(self, target: str) -> str:
        """The Jenkins label that routes a rebuild for ``target`` to agents of its architecture."""
        spec = self.site.targets[target]
        jenkins = self.site.jenkins
        return spec.build_label or jenkins.build_labels.get(spec.arch) or f"{jenkins.build_label} && {spec.arch}"

    def overlay_packages(self, overlay: str) -> list[Package]:
        return [p for p in self.packages.values() if p.overlay == overlay]


def load_specs(root: str | Path) -> SpecSet:
    """Load and check ``root/site.yaml`` and every other ``root/*.yaml``; raise InvalidInput with all errors.

    The checks that span files (an overlay named in a package exists in the site, ...) read the
    site's names from its raw data, so a mistake in site.yaml does not hide the packages' mistakes.
    """
    root = Path(root)
    display_root = root.parent
    if not (root / SITE_FILE).is_file():
        raise InvalidInput([InputError(str(root / SITE_FILE), 0, "", "site file not found")])
    errors: list[InputError] = []
    docs: dict[str, SourcedDoc] = {}

    site_doc, site = _parse(root / SITE_FILE, SiteSpec, display_root, errors)
    if site_doc is not None:
        docs[str(root / SITE_FILE)] = site_doc
        errors.extend(_not_reported(_site_checks(site_doc), errors))
    names = _SiteNames.of(site_doc.data if site_doc is not None else None)

    for path in sorted(root.glob("*.yml")):
        errors.append(InputError(str(path.relative_to(display_root)), 0, "",
                                 "not read: package specs are named NAME.yaml, not .yml"))

    packages: dict[str, Package] = {}
    first_doc: dict[str, SourcedDoc] = {}
    for path in sorted(root.glob("*.yaml")):
        if path.name == SITE_FILE:
            continue
        doc, package = _parse(path, Package, display_root, errors)
        if doc is None:
            continue
        docs[str(path)] = doc
        errors.extend(_not_reported(_package_checks(root, names, doc, _reported(errors, doc)), errors))
        name = doc.data.get("name") if isinstance(doc.data, dict) else None
        if isinstance(name, str) and name in first_doc:
            errors.append(doc.error(("name",), f"expected a package name not used before; found {name!r}, "
                                               f"already defined in {first_doc[name].name}"))
            continue
        if isinstance(name, str):
            first_doc[name] = doc
        if package is not None:
            packages[package.name] = package
    if errors:
        raise InvalidInput(errors)
    return SpecSet(root=root, site=site, packages=packages, docs=docs)


def _reported(errors: list[InputError], doc: SourcedDoc) -> set[str]:
    return {e.field for e in errors if e.file == doc.name}


def _not_reported(new: list[InputError], errors: list[InputError]) -> list[InputError]:
    """Cross-file checks say nothing more about a field the model already rejected."""
    seen = {(e.file, e.field) for e in errors}
    return [e for e in new if (e.file, e.field) not in seen]


def _parse(path: Path, model, display_root: Path, errors: list[InputError]):
    """(doc, validated model); (doc, None) when the model rejects it; (None, None) when it is not YAML."""
    try:
        doc = sourced_yaml.load(path, display_root)
    except InvalidInput as exc:
        errors.extend(exc.errors)
        return None, None
    errors.extend(sourced_yaml.strip_credentials(model, doc, _credential_advice))
    try:
        return doc, sourced_yaml.validate(model, doc)
    except InvalidInput as exc:
        errors.extend(exc.errors)
        return doc, None


def _credential_advice(loc) -> str:
    section = loc[0] if loc else ""
    if section == "jenkins":
        return ("give them as HPCOS_JENKINS_USER and HPCOS_JENKINS_TOKEN in the environment, "
                "or as a `machine` entry for the Jenkins host in ~/.netrc")
    if section == "tracker":
        return ("give them as HPCOS_TRACKER_USER and HPCOS_TRACKER_PASSWORD (or HPCOS_TRACKER_TOKEN) in the "
                "environment, or as a `machine` entry for the tracker host in ~/.netrc")
    return "give them as a `machine` entry for that host in ~/.netrc"


@dataclass(frozen=True)
class _SiteNames:
    """The names packages refer to, from site.yaml's raw data (valid or not).

    None where site.yaml has no usable section: then there is nothing to check against, and the
    site's own error says why.
    """

    overlays: dict | None
    mirrors: dict | None
    targets: dict | None

    @classmethod
    def of(cls, data) -> _SiteNames:
        def names(key) -> dict | None:
            value = _section(data, key)
            return {str(k): _mapping(v) for k, v in value.items()} if isinstance(value, dict) else None

        return cls(names("overlays"), names("mirrors"), names("targets"))


def _section(data, *path):
    """``data[path...]`` when every step has the expected shape, else None (the model reports shapes)."""
    for key in path:
        if isinstance(key, int):
            data = data[key] if isinstance(data, list) and key < len(data) else None
        else:
            data = data.get(key) if isinstance(data, dict) else None
    return data


def _one_of(found: str, known) -> str:
    known = sorted(map(str, known))
    message = f"expected one of: {', '.join(known)}" if known else "expected a name defined in site.yaml (none are)"
    message += f"; found {found!r}"
    hint = difflib.get_close_matches(found, known, n=1)
    return message + (f"; did you mean {hint[0]!r}?" if hint else "")


def _placeholder_problem(value) -> str | None:
    if not isinstance(value, str):
        return None
    allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    try:
        used = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError as exc:
        return f"expected text with only the placeholders {allowed} ({exc}); found {value!r}"
    unknown = [name for name in used if name not in PLACEHOLDERS]
    if unknown:
        return f"expected only the placeholders {allowed}; found {{{unknown[0]}}}"
    return None


# Binary package names that any real exclude list must leave alone.
_CORE_PACKAGES = ("bash", "glibc", "systemd", "coreutils")


def _too_broad(globs) -> list[tuple[int, str]]:
    """(index, message) for each glob that would empty a mirror."""
    return [(i, f"expected a glob naming some packages (it would leave bash, glibc and systemd out of the "
                f"mirror); found {glob!r}")
            for i, glob in enumerate(globs if isinstance(globs, list) else [])
            if isinstance(glob, str) and all(fnmatch.fnmatchcase(core, glob) for core in _CORE_PACKAGES)]


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def _site_checks(doc: SourcedDoc) -> list[InputError]:
    data = doc.data
    errors: list[InputError] = []

    environments = _section(data, "environments")
    if isinstance(environments, dict) and environments:
        roots = []
        for name, env in environments.items():
            source = _section(env, "source")
            if source is None:
                roots.append(name)
                if _section(env, "gate") == "nightly":
                    errors.append(doc.error(("environments", name, "gate"), "expected a source environment "
                                            "for a nightly gate (the gate tests the source's snapshot); found "
                                            "no source"))
            elif isinstance(source, str) and source not in environments:
                errors.append(doc.error(("environments", name, "source"), _one_of(source, environments)))
            elif source == name:
                errors.append(doc.error(("environments", name, "source"),
                                        f"expected another environment; found {name!r} itself"))
        if len(roots) > 1:
            for name in roots[1:]:
                errors.append(doc.error(("environments", name),
                                        f"expected a source: only one environment is filled by the mirror sync "
                                        f"({roots[0]!r}), every other one is promoted from another; found none"))
        errors.extend(_cycle_errors(doc, environments))

    for name, mirror in _mapping(_section(data, "mirrors")).items():
        for key in ("url", "gpgkey"):
            if problem := _placeholder_problem(_section(mirror, key)):
                errors.append(doc.error(("mirrors", name, key), problem))
        for i, problem in _too_broad(_section(mirror, "exclude")):
            errors.append(doc.error(("mirrors", name, "exclude", i), problem))
    for i, problem in _too_broad(_section(data, "exclude")):
        errors.append(doc.error(("exclude", i), problem))

    for name, target in _mapping(_section(data, "targets")).items():
        release, arch = _section(target, "release"), _section(target, "arch")
        said = re.search(r"(?:el|rhel|rocky|alma|centos)(\d+)", str(name))
        if said and isinstance(release, int) and int(said[1]) != release:
            errors.append(doc.error(("targets", name, "release"),
                                    f"expected {said[1]}, as the target's name {name!r} says; found {release}"))
        named_arch = next((a for a in ARCHES if a in str(name)), None)
        if named_arch and isinstance(arch, str) and arch != named_arch:
            errors.append(doc.error(("targets", name, "arch"),
                                    f"expected {named_arch!r}, as the target's name {name!r} says; found {arch!r}"))
    return errors


def _cycle_errors(doc: SourcedDoc, environments: dict) -> list[InputError]:
    errors = []
    reported: set[str] = set()
    for start in environments:
        seen = [start]
        current = _section(environments[start], "source")
        while isinstance(current, str) and current in environments and current not in seen:
            seen.append(current)
            current = _section(environments[current], "source")
        if current == start and len(seen) > 1 and not reported & set(seen):
            reported.update(seen)
            chain = " <- ".join(seen + [start])
            errors.append(doc.error(("environments", start, "source"),
                                    f"expected a chain that starts at the mirrored environment; found a cycle: "
                                    f"{chain}"))
    return errors


def _package_checks(root: Path, names: _SiteNames, doc: SourcedDoc, rejected: set[str]) -> list[InputError]:
    """Checks that need the site and the file system (``rejected``: fields the model already refused)."""
    data = _mapping(doc.data)
    errors: list[InputError] = []

    def add(loc, message):
        errors.append(doc.error(loc, message))

    overlay = data.get("overlay")
    if isinstance(overlay, str) and names.overlays is not None and overlay not in names.overlays:
        add(("overlay",), _one_of(overlay, names.overlays))

    upstream = _mapping(data.get("upstream"))
    if upstream:
        mirror = upstream.get("mirror")
        if isinstance(mirror, str) and names.mirrors is not None and mirror not in names.mirrors:
            add(("upstream", "mirror"), _one_of(mirror, names.mirrors))
        if upstream.get("srpm_name") and not mirror:
            add(("upstream", "srpm_name"), "expected only with upstream.mirror (it names the source package "
                                           "there); found it with " + (_given_source(upstream) or "no source"))
        if upstream.get("sha256") and not (upstream.get("srpm_url") or upstream.get("srpm_path")):
            add(("upstream", "sha256"), "expected only with srpm_url or srpm_path (a mirror's packages are "
                                        "checked by their signature, see gpgkey); found it with "
                                        + (_given_source(upstream) or "no source"))
        for key in ("srpm_url", "srpm_path", "gpgkey"):
            if problem := _placeholder_problem(upstream.get(key)):
                add(("upstream", key), problem)

    targets = data.get("targets") if isinstance(data.get("targets"), list) else []
    site_targets = names.targets or {}
    seen_targets: set[str] = set()
    for i, target in enumerate(targets):
        if not isinstance(target, str):
            continue
        if names.targets is not None and target not in site_targets:
            add(("targets", i), _one_of(target, names.targets))
        elif target in seen_targets:
            add(("targets", i), f"expected each target once; found {target!r} again")
        seen_targets.add(target)
    for target in _mapping(data.get("mock_config")):
        if str(target) not in targets:
            add(("mock_config", target), "expected one of the package's targets: " + ", ".join(map(str, targets))
                + f"; found {target!r}")

    srpm_path = upstream.get("srpm_path")
    if isinstance(srpm_path, str) and not Path(srpm_path).is_absolute():
        for target in [t for t in targets if t in site_targets] or [None]:
            fields = _target_fields(site_targets, target)
            try:
                expanded = srpm_path.format(**fields) if target else srpm_path
            except (KeyError, IndexError, ValueError):
                break  # reported by the placeholder check
            problem = _file_problem(root, root / expanded, srpm_path)
            if problem:
                add(("upstream", "srpm_path"), problem)
                break

    # The patch directory and the replaced globs follow the name: only a valid one says where to look.
    name = data.get("name") if "name" not in rejected else None
    replaces = data.get("replaces")
    if isinstance(name, str) and isinstance(replaces, list) and replaces and all(isinstance(g, str) for g in replaces):
        if not any(fnmatch.fnmatchcase(name, glob) for glob in replaces):
            add(("replaces",), f"expected globs that cover the package's own name {name!r} (else the base "
                               f"mirror keeps shipping it beside the overlay's build); found {replaces!r}")
    for i, problem in _too_broad(replaces):
        add(("replaces", i), problem)

    patches = data.get("patches") if isinstance(data.get("patches"), list) else []
    seen_files: dict[str, int] = {}
    for i, patch in enumerate(patches):
        file = _section(patch, "file")
        if not isinstance(file, str) or not isinstance(name, str):
            continue
        if file in seen_files:
            add(("patches", i, "file"), f"expected each patch once; found {file!r} again "
                                        f"(also patches[{seen_files[file]}])")
            continue
        seen_files[file] = i
        problem = _file_problem(root, root / PATCH_DIR / name / file, file, patch=True)
        if problem:
            add(("patches", i, "file"), problem)
    return errors


def _given_source(upstream: dict) -> str:
    return ", ".join(k for k in UPSTREAM_SOURCES if upstream.get(k))


def _target_fields(site_targets: dict, target: str | None) -> dict[str, str]:
    if target is None:
        return {}
    spec = site_targets[target]
    return {"release": str(spec.get("release", "")), "arch": str(spec.get("arch", "")), "target": target}


def _file_problem(root: Path, path: Path, given: str, patch: bool = False) -> str | None:
    """Why ``path`` (written as ``given``) cannot be used, or None."""
    specs_root = root.resolve()
    resolved = path.resolve()
    if not resolved.is_relative_to(specs_root):
        return f"expected a path inside the specs directory {root}; found {given!r}, which leads outside"
    shown = resolved.relative_to(specs_root.parent)
    if not resolved.is_file():
        return f"expected an existing file; found {given!r}, but {shown} does not exist"
    if patch and not _looks_like_diff(resolved):
        return f"expected a unified diff (git format-patch or diff -u); found {given!r}, which has no ---/+++/@@ lines"
    return None


def _looks_like_diff(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return bool(re.search(r"^--- .*\n\+\+\+ .*\n@@ ", text, re.MULTILINE))
