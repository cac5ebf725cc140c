"""The site's overlay specs as a model: ``site.yaml`` (``SiteSpec``), one YAML per overlay package
(``Package``), and the validated whole (``SpecSet``) the rest of hpcos reads specs through.

Each field has the narrowest type that takes every real value; a constrained string says in words
what it expects (``DescribedPattern``).  Reading the files is ``loading``; what spans files is ``checks``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from hpcos.core.sourced_yaml import DescribedPattern, SourcedDoc
from hpcos.core.text import printable
from hpcos.site.trackers import TRACKERS

SITE_FILE = "site.yaml"
PATCH_DIR = "patches"

# RPM's own rule is loose; these are the names Fedora's packaging guidelines accept, which is what
# a site overlay package should look like (and what survives createrepo_c, dnf and Jenkins job names).
RPM_NAME = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"
RpmName = Annotated[
    str,
    DescribedPattern(
        pattern=RPM_NAME,
        meaning="an RPM package name (letters, digits and . _ + -, not starting with a punctuation mark)",
    ),
]
# The site tag goes into Release after the upstream release (1.el9 -> 1.el9.hpc1); see jobs/release.py.
ReleaseTag = Annotated[
    str,
    DescribedPattern(
        pattern=r"^\.[A-Za-z][A-Za-z0-9_]*$",
        meaning="a release tag: a dot, a letter, then letters, digits or _ (e.g. '.hpc1')",
    ),
]
Identifier = Annotated[
    str,
    DescribedPattern(
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$",
        meaning="a name of letters, digits and _ . - starting with a letter",
    ),
]
# fnmatch globs over binary package names, as dnf's excludepkgs takes them.
NameGlob = Annotated[
    str,
    DescribedPattern(
        pattern=r"^[A-Za-z0-9._+*?\[\]-]+$",
        meaning="a glob of RPM names (letters, digits, . _ + - and the wildcards * ? [ ])",
    ),
]
Sha256 = Annotated[
    str,
    DescribedPattern(
        pattern=r"^[0-9a-f]{64}$", meaning="a SHA-256 digest (64 lower-case hex digits)"
    ),
]
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
CronSpec = Annotated[
    str,
    DescribedPattern(
        pattern=CRON_SPEC,
        meaning="a Jenkins cron spec: five fields like 'H 3 * * *' (digits, H, names and * / , - ( )), or @daily, "
        "@hourly, ...",
    ),
]
# A relative or absolute path as a shell word needs no quoting: no spaces, quotes, $, ; or braces.
SafePath = Annotated[
    str,
    DescribedPattern(
        pattern=r"^[A-Za-z0-9_./+][A-Za-z0-9_./+-]*$",
        meaning="a path of letters, digits and _ . / + - (not starting with -)",
    ),
]
# The file's name goes into the spec's PatchNNNN: tag (after an hpcos- prefix): no % or spaces.  Where
# it leads (outside the specs directory?) is checked against the file system below.
PatchFile = Annotated[
    str,
    DescribedPattern(
        pattern=r"^[A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)*$",
        meaning="a patch file name of letters, digits and _ . + - (subdirectories with /)",
    ),
]


def _no_control_characters(multi_line: bool) -> AfterValidator:
    allowed = "\n\t" if multi_line else ""

    def check(text: str) -> str:
        # "Printable" is what str.isprintable() says: controls, bidi overrides, zero-width characters and
        # U+2028 are refused as well as escape sequences.
        bad = next((c for c in text if not c.isprintable() and c not in allowed), None)
        if bad is not None:
            raise ValueError(
                f"expected printable text without control characters; found {printable(bad)!r} "
                f"in {printable(text)[:200]!r}"
            )
        return text

    return AfterValidator(check)


# Free text (owners, reasons, descriptions): any printable text.  JJB braces and rpm % are escaped where
# the text is used (jobs.job_definitions, hpcos.rebuild.patching).
Text = Annotated[str, _no_control_characters(multi_line=True)]
OneLine = Annotated[str, _no_control_characters(multi_line=False)]


def _url_scheme(*schemes: str) -> AfterValidator:
    def check(url: str) -> str:
        # file:///path (empty host) is the usual form for local repositories, as dnf and createrepo_c write it.
        if not re.match(rf"^({'|'.join(schemes)})://[^/\s]", url) and not (
            "file" in schemes and re.match(r"^file:///[^\s]", url)
        ):
            raise ValueError(
                f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}"
            )
        return url

    return AfterValidator(check)


WebUrl = Annotated[str, _url_scheme("http", "https")]
FetchUrl = Annotated[str, _url_scheme("http", "https", "file")]


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
    model_config = ConfigDict(
        extra="forbid", frozen=True, use_attribute_docstrings=True, defer_build=True
    )


# A Jenkins label expression as a job's node: labels, && || ! and parentheses; no JJB braces.
JenkinsLabel = Annotated[
    str,
    DescribedPattern(
        pattern=r"^[A-Za-z0-9_.:-]+(?:\s*(?:&&|\|\|)\s*!?\(?[A-Za-z0-9_.:-]+\)?)*$",
        meaning="a Jenkins label or label expression (e.g. 'rpm-build && aarch64')",
    ),
]
# What rpmsign and gpg are given: no rpm macro (%), no newline, no shell quoting.
GpgKeyId = Annotated[
    str,
    DescribedPattern(
        pattern=r"^[A-Za-z0-9@._+<> -]+$",
        meaning="a GnuPG key id, fingerprint or user id (letters, digits, @ . _ + < > - and spaces)",
    ),
]
GnupgHome = Annotated[
    str,
    DescribedPattern(
        pattern=r"^/[A-Za-z0-9@._+/-]+$",
        meaning="an absolute directory path (letters, digits, @ . _ + - /)",
    ),
]


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
    required_tests: list[PytestExpression] | None = None
    """The suite the production gate requires on every node in service, as pytest `-k` expressions on the
    full test id (each changed package's `tests:` are required too); default: every test the run
    collected on the test cluster's profile."""


class Wiki(Strict):
    """Where `hpcos outage plan` writes the page developers, management and operators read and edit."""

    backend: Literal["trac", "directory", "none"] = "none"
    url: WebUrl | None = None
    """Trac's base URL (default: tracker.url when the tracker is Trac). Credentials as for the tracker."""
    path: str | None = None
    """Directory of Markdown pages, for backend: directory (relative to the store root unless absolute)."""
    page: Annotated[
        str,
        DescribedPattern(
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_./{}-]{0,200}$",
            meaning="a wiki page name such as Outages/{snapshot}",
        ),
    ] = "Outages/{snapshot}"
    """Page name; {snapshot} becomes the testing snapshot's id."""


def _check_branch(name: str) -> str:
    # Git branch names as `git check-ref-format --branch` accepts them, narrowed to what is also safe
    # on a command line and in a Jenkins job: no leading dash, no "..", no trailing "/" or ".lock".
    if (
        not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._/-]*", name)
        or ".." in name
        or "//" in name
        or name.endswith(("/", ".", ".lock"))
    ):
        raise ValueError(
            "expected a git branch name (letters, digits and . _ / -, no '..', not ending in / . "
            "or .lock)"
        )
    return name


def _check_repo_path(path: str) -> str:
    # A path inside the repository: relative, no "..", no leading dash.
    if not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9._/+-]*", path) or ".." in path.split("/"):
        raise ValueError(
            "expected a relative path inside the repository (letters, digits and . _ / + -, no '..')"
        )
    return path


GitBranch = Annotated[str, AfterValidator(_check_branch)]
RepoPath = Annotated[str, AfterValidator(_check_repo_path)]
CONFIG_KINDS = ("puppet", "ansible", "salt", "cfengine", "nagios", "generic")


def _check_git_url(url: str) -> str:
    # What git clones from: a URL with a scheme, scp-like user@host:path, or an absolute local path.
    # Never something git would read as an option (a leading dash), nor characters a shell, JJB's
    # {placeholders} or a Nagios/Jenkins field would read as syntax: a git URL needs none of them.
    if re.search(r"[{}'\"`$\\<>|;]", url):
        raise ValueError(
            "expected a git URL without { } ' \" ` $ \\ < > | ; (none is needed in a URL)"
        )
    if not (
        re.fullmatch(r"(https?|ssh|git|file)://[^\s]+", url)
        or re.fullmatch(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s-][^\s]*", url)
        or re.fullmatch(r"/[^\s]*", url)
    ):
        raise ValueError(
            "expected a git URL: https://, ssh://, git://, file://, user@host:path or an "
            "absolute path"
        )
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
            raise ValueError(
                f"expected different testing and production branches; found {self.testing!r} twice"
            )
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
            raise ValueError(
                f"expected exactly one of {', '.join(UPSTREAM_SOURCES)}; found "
                f"{', '.join(given) or 'none'}"
            )
        return self


UPSTREAM_SOURCES = ("mirror", "srpm_url", "srpm_path")


class Patch(Strict):
    """A site patch, applied in the order listed."""

    file: PatchFile
    """File name under patches/PACKAGE/ (a git format-patch or diff -u file)."""
    reason: Annotated[
        str, StringConstraints(min_length=10), _no_control_characters(multi_line=True)
    ]
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
        return (
            spec.build_label
            or jenkins.build_labels.get(spec.arch)
            or f"{jenkins.build_label} && {spec.arch}"
        )

    def overlay_packages(self, overlay: str) -> list[Package]:
        return [p for p in self.packages.values() if p.overlay == overlay]
