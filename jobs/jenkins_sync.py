"""Rendered jobs -> a live Jenkins, through python-jenkins: the last link of the chain.

Unlike JJB's update cache, this compares every job with the live server, so a job edited by hand in
the web UI is found and put back.  Live configs are read concurrently; only jobs whose normalised
XML differs are written; folders are created before the jobs inside them; ``prune`` deletes only
jobs that carry this site's hpcos marker.  A write that fails stops the run with a report of what
was and was not done; running again finishes the work, because everything is compared again.
"""

from __future__ import annotations

import difflib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

import jenkins
import requests

from hpcos.core.errors import UserError
from hpcos.site.credentials import Credentials, checked_url
from jobs import config_reader
from jobs.job_definitions import is_managed
from jobs.rendered import RenderedJob
from jobs.xml_normalise import DigestCache, pretty

# Levels of folders listed in one /api/json request (python-jenkins' own default).
TREE_DEPTH = 10
FOLDER_CLASS = "com.cloudbees.hudson.plugins.folder.Folder"
TIMEOUT = 30


class JenkinsError(UserError):
    """Jenkins refused or failed a request; the message says which and what to do."""


@dataclass(frozen=True)
class Connection:
    """Where and as whom; makes one python-jenkins client per thread (a client is not thread-safe)."""

    url: str
    user: str | None = None
    token: str | None = field(default=None, repr=False)

    def client(self) -> jenkins.Jenkins:
        return jenkins.Jenkins(self.url, self.user, self.token, timeout=TIMEOUT)


def connect(url: str, credentials: Credentials) -> Connection:
    """A connection as the user the site's credential rule found (HPCOS_JENKINS_USER/_TOKEN, netrc).

    A ``user:password@`` in ``url`` is taken out of it (it is shown in every message) and used only
    when no other credentials are configured."""
    parts = urlsplit(checked_url(url, "Jenkins URL"))
    if parts.username is not None or parts.password is not None:
        host = parts.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
        if not credentials.secret:
            credentials = Credentials(
                unquote(parts.username or ""), unquote(parts.password or "") or None
            )
        url = urlunsplit(parts._replace(netloc=netloc))
    if bool(credentials.user) != bool(credentials.secret):
        raise UserError(
            "set both HPCOS_JENKINS_USER and HPCOS_JENKINS_TOKEN (or a ~/.netrc entry), "
            "or neither for anonymous access"
        )
    return Connection(url, credentials.user, credentials.secret)


@dataclass
class LiveJob:
    name: str
    kind: str  # Jenkins _class
    description: str | None


@dataclass
class SyncReport:
    url: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    # Planned but not done: the write that failed, and everything after it.
    failed: dict[str, str] = field(default_factory=dict)
    not_attempted: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)


def explain(exc: Exception, url: str, what: str) -> str:
    """One line a Jenkins admin can act on, for any failure python-jenkins or requests raise."""
    # python-jenkins raises its own exceptions from inside `except HTTPError`; the response is there.
    response = getattr(exc, "response", None)
    if response is None:
        response = getattr(exc.__context__, "response", None)
    status = getattr(response, "status_code", None)
    body = getattr(response, "text", "") or ""
    # requests' own errors are OSErrors too: only a bare socket error (the direct config reader's) is one here.
    bare_socket_error = isinstance(exc, OSError) and not isinstance(exc, requests.RequestException)
    if isinstance(exc, TimeoutError) and bare_socket_error:
        return f"{what}: Jenkins at {url} did not answer within {TIMEOUT} s"
    if isinstance(exc, requests.exceptions.ConnectionError) or bare_socket_error:
        return f"{what}: cannot connect to Jenkins at {url}"
    if isinstance(exc, jenkins.TimeoutException | requests.exceptions.Timeout):
        return f"{what}: Jenkins at {url} did not answer within {TIMEOUT} s"
    if status == 401:
        return (
            f"{what}: Jenkins at {url} rejected the credentials (401); check HPCOS_JENKINS_USER and "
            "HPCOS_JENKINS_TOKEN, or the ~/.netrc entry for this host"
        )
    if status == 403 and "crumb" in body.lower():
        return (
            f"{what}: Jenkins at {url} rejected the CSRF crumb (403); the crumb issuer may be behind a "
            "proxy that drops the session, or the crumb expired"
        )
    if status == 403:
        return f"{what}: the Jenkins user lacks permission for this (403)"
    if status == 404 or isinstance(exc, jenkins.NotFoundException):
        return f"{what}: not found on Jenkins at {url} (404)"
    if status is not None and status >= 500:
        return f"{what}: Jenkins at {url} failed with a server error ({status}); try again, or see its log"
    if status is not None:
        return f"{what}: Jenkins answered {status} {getattr(response, 'reason', '')}".rstrip()
    return f"{what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


def list_jobs(client: jenkins.Jenkins, url: str) -> dict[str, LiveJob]:
    """Every job and folder on the server, with its class and description, in one request."""
    fields = "name,_class,description"
    tree = "jobs"
    for _ in range(TREE_DEPTH):
        tree = f"jobs[{fields},{tree}]"
    try:
        info = client.get_info(query=f"?tree={tree}")
    except Exception as exc:
        raise JenkinsError(explain(exc, url, "listing jobs")) from None
    found: dict[str, LiveJob] = {}
    pending = [("", info.get("jobs", []))]
    while pending:
        prefix, entries = pending.pop()
        for entry in entries:
            if "name" not in entry:
                continue  # deeper than TREE_DEPTH; hpcos never nests that deep
            name = prefix + entry["name"]
            found[name] = LiveJob(name, entry.get("_class", ""), entry.get("description"))
            if isinstance(entry.get("jobs"), list):
                pending.append((name + "/", entry["jobs"]))
    return found


def _is_folder(job: RenderedJob) -> bool:
    return job.xml.lstrip().split(b"\n", 1)[-1].lstrip().startswith(f"<{FOLDER_CLASS}".encode())


def _parents(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


@dataclass(frozen=True)
class LiveConfig:
    text: str


@dataclass
class LiveState:
    jobs: dict[str, LiveJob]
    configs: dict[str, LiveConfig]  # of the jobs under the folders asked for
    crumb: dict | bool | None = None


def read_live(
    connection: Connection,
    folders: list[str],
    workers: int = 16,
    digests: DigestCache | None = None,
) -> LiveState:
    """Every job's name and description, and the config of every job in ``folders`` (read
    concurrently).  Needs no rendered jobs, so it can run while they are rendered.  With
    ``digests``, each config's normalised digest is learnt as it arrives, while the threads
    would otherwise wait on Jenkins."""
    main = connection.client()
    jobs = list_jobs(main, connection.url)
    names = [name for name in jobs if any(name == f or name.startswith(f + "/") for f in folders)]
    configs = _read_configs(connection, main.crumb, names, workers, digests)
    return LiveState(jobs, configs, main.crumb)


def sync(
    connection: Connection,
    jobs: list[RenderedJob],
    *,
    site: str,
    write: bool,
    prune: bool = False,
    workers: int = 16,
    live: LiveState | None = None,
    progress=None,
    digests: DigestCache | None = None,
) -> SyncReport:
    """Compare every rendered job with its live config; with ``write``, make Jenkins match.
    ``progress(total) -> tick`` is told of every write (the CLI shows a bar); ``digests`` remembers
    normalised digests between runs (jobs are equal when their normalised forms are)."""
    digests = digests or DigestCache(None)
    url = connection.url
    report = SyncReport(url)
    top_level = sorted({job.name.split("/")[0] for job in jobs})
    live = live or read_live(connection, top_level, workers)
    wanted = {job.name: job for job in jobs}

    missing_parents = sorted(
        {p for job in jobs for p in _parents(job.name)} - set(wanted) - set(live.jobs)
    )
    if missing_parents:
        raise JenkinsError(
            f"folder {missing_parents[0]!r} does not exist on {url} and hpcos does not define it; "
            "create it in Jenkins or set jenkins.folder in site.yaml to an existing folder"
        )

    # Jenkins cannot turn a job into a folder (or back) through config.xml: say so before writing anything.
    for job in jobs:
        if job.name in live.jobs and (live.jobs[job.name].kind == FOLDER_CLASS) != _is_folder(job):
            raise JenkinsError(
                f"{job.name} exists on {url} as a {live.jobs[job.name].kind or 'item'}, but hpcos "
                f"defines it as a {'folder' if _is_folder(job) else 'job'}; rename or delete it "
                "in Jenkins, or choose another jenkins.folder"
            )

    unread = [job.name for job in jobs if job.name in live.jobs and job.name not in live.configs]
    live_configs = {
        **live.configs,
        **_read_configs(connection, live.crumb, unread, workers, digests),
    }

    plan: list[tuple[str, RenderedJob]] = []
    for job in jobs:
        if job.name not in live.jobs:
            plan.append(("create", job))
            report.diffs.append(_diff(job.name, None, job.xml))
            continue
        live_digest = digests.digest(live_configs[job.name].text)
        if live_digest is not None and live_digest == digests.digest(job.xml, job.digest):
            report.unchanged.append(job.name)
        else:
            plan.append(("update", job))
            report.diffs.append(_diff(job.name, live_configs[job.name].text, job.xml))
    # Only the digests of what was just compared are kept: the cache stays the size of the site.
    digests.save(
        keep={digests.key(c.text) for c in live_configs.values()}
        | {digests.key(j.xml) for j in jobs}
    )
    # Folders before the jobs inside them: shallower names first, in name order within a level.
    plan.sort(key=lambda step: (step[1].name.count("/"), step[1].name))

    stale = []
    if prune:
        stale = sorted(
            (
                name
                for name, job in live.jobs.items()
                if name not in wanted and is_managed(job.description, site)
            ),
            key=lambda name: (-name.count("/"), name),
        )  # contents before their folder
        report.diffs.extend(f"--- {name}\n+++ (deleted by --prune)\n" for name in stale)

    if not write:
        report.not_attempted = [job.name for _, job in plan] + stale
        return report

    writer = connection.client()
    steps = [(action, job.name, job) for action, job in plan] + [
        ("delete", name, None) for name in stale
    ]
    tick = progress(len(steps)) if progress and steps else (lambda: None)
    for i, (action, name, job) in enumerate(steps):
        try:
            if action == "create":
                writer.create_job(name, job.xml.decode("utf-8"))
                report.created.append(name)
            elif action == "update":
                writer.reconfig_job(name, job.xml.decode("utf-8"))
                report.updated.append(name)
            else:
                writer.delete_job(name)
                report.deleted.append(name)
            tick()
        except Exception as exc:
            report.failed[name] = explain(exc, url, f"{action} {name}")
            report.not_attempted = [n for _, n, _ in steps[i + 1 :]]
            break
    return report


def _read_configs(
    connection: Connection,
    crumb,
    names: list[str],
    workers: int,
    digests: DigestCache | None = None,
) -> dict[str, LiveConfig]:
    if not names:
        return {}
    if config_reader.usable(connection.url):
        reader = config_reader.ConfigReader(
            connection.url, connection.user, connection.token, TIMEOUT
        )
        fetch = reader.config
    else:
        local = threading.local()

        def fetch(name: str) -> str:
            if not hasattr(local, "client"):
                local.client = connection.client()
                # The crumb belongs to the user's session, not to a connection: reuse the one fetched.
                local.client.crumb = crumb
            return local.client.get_job_config(name)

    def read(name: str) -> LiveConfig:
        try:
            text = fetch(name)
        except Exception as exc:
            raise JenkinsError(
                explain(exc, connection.url, f"reading the config of {name}")
            ) from None
        if digests is not None:
            digests.digest(text)
        return LiveConfig(text)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return dict(zip(names, pool.map(read, names), strict=True))


def _diff(name: str, live: str | None, rendered: bytes) -> str:
    before = pretty(live) if live is not None else []
    after = pretty(rendered)
    return "".join(
        difflib.unified_diff(
            before, after, f"{name} (live)" if live is not None else "/dev/null", f"{name} (specs)"
        )
    )
