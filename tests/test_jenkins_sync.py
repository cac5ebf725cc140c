"""`hpcos jobs update|diff` against the Jenkins double (Jenkins cannot run here; see support/jenkins_double.py)."""

from __future__ import annotations

import pytest
from support.jenkins_double import JenkinsDouble
from support.jobs_site import write_site

from hpcos.site.credentials import resolve
from hpcos.site.specs import load_specs
from jobs import jenkins_sync
from jobs.jenkins_sync import Connection, JenkinsError, sync
from jobs.job_definitions import marker, project
from jobs.render import render
from jobs.rendered import RenderedJob

SITE = "emsl-cascade"
TOKEN = "tok-9f2c-never-shown"


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> list[RenderedJob]:
    return render(project(load_specs(write_site(tmp_path_factory.mktemp("site")))))


@pytest.fixture
def double():
    server = JenkinsDouble(users={"admin": TOKEN, "viewer": "view"}, read_only={"viewer"}).start()
    yield server
    server.stop()


@pytest.fixture
def conn(double) -> Connection:
    return Connection(double.url, "admin", TOKEN)


def test_first_update_creates_folders_first_then_nothing_changes(double, conn, jobs):
    report = sync(conn, jobs, site=SITE, write=True)
    assert report.created == [job.name for job in jobs] and not report.failed
    creates = [path for method, path in double.writes()]
    assert creates[0] == "/createItem"  # the folder, at the root, before anything inside it
    assert all(path == "/job/hpcos/createItem" for path in creates[1:])
    assert double.all_names() == sorted(job.name for job in jobs)

    before = len(double.log)
    again = sync(conn, jobs, site=SITE, write=True)
    assert again.unchanged == [job.name for job in jobs] and not again.updated and not again.created
    new_requests = double.log[before:]
    assert [r for r in new_requests if r[0] == "POST"] == []
    # Every live config was read (not a cache): one GET per job.
    assert sum(path.endswith("/config.xml") for _, path in new_requests) == len(jobs)


def test_hand_edit_is_found_shown_and_put_back(double, conn, jobs):
    sync(conn, jobs, site=SITE, write=True)
    live = double.item("hpcos/mirror-sync").config
    double.put(
        "hpcos/mirror-sync", live.replace("hpcos repo sync", "hpcos repo sync --mirror epel")
    )

    before = len(double.writes())
    diff = sync(conn, jobs, site=SITE, write=False)
    assert len(double.writes()) == before  # diff never writes
    assert diff.not_attempted == ["hpcos/mirror-sync"]
    assert "-hpcos repo sync --mirror epel\n+hpcos repo sync\n" in "".join(diff.diffs)

    fixed = sync(conn, jobs, site=SITE, write=True)
    assert fixed.updated == ["hpcos/mirror-sync"]
    assert "--mirror epel" not in double.item("hpcos/mirror-sync").config


def test_a_live_config_that_is_not_xml_is_rewritten(double, conn, jobs):
    sync(conn, jobs, site=SITE, write=True)
    double.item("hpcos/mirror-sync").config = "<project><description>truncated by a full disk"
    report = sync(conn, jobs, site=SITE, write=True)
    assert report.updated == ["hpcos/mirror-sync"]
    assert "hpcos repo sync" in double.item("hpcos/mirror-sync").config


def test_prune_deletes_only_this_sites_managed_jobs(double, conn, jobs):
    sync(conn, jobs, site=SITE, write=True)
    double.put(
        "hpcos/rebuild-gone-el8-x86_64",
        f"<project><description>{marker(SITE)}</description></project>",
    )
    double.put("hpcos/by-hand", "<project><description>made in the web UI</description></project>")
    double.put(
        "other-site", f"<project><description>{marker('other-site')}</description></project>"
    )

    assert sync(conn, jobs, site=SITE, write=True).deleted == []  # only with prune
    report = sync(conn, jobs, site=SITE, write=True, prune=True)
    assert report.deleted == ["hpcos/rebuild-gone-el8-x86_64"]
    assert {"hpcos/by-hand", "other-site"} <= set(double.all_names())


def test_failure_halfway_reports_and_a_rerun_finishes(double, conn, jobs):
    double.fail_next.append(("POST", r"/job/hpcos/createItem$", 500))
    # The first createItem inside the folder fails; python-jenkins checks existence first (GETs).
    report = sync(conn, jobs, site=SITE, write=True)
    assert report.created == ["hpcos"]
    failed_name, message = next(iter(report.failed.items()))
    assert "server error (500)" in message
    assert report.not_attempted == [job.name for job in jobs[2:]]
    assert failed_name == jobs[1].name

    rerun = sync(conn, jobs, site=SITE, write=True)
    assert not rerun.failed and rerun.unchanged == ["hpcos"]
    assert double.all_names() == sorted(job.name for job in jobs)


def test_job_vanishing_while_read_is_a_clear_404(double, conn, jobs):
    sync(conn, jobs, site=SITE, write=True)
    double.fail_next.append(("GET", r"/job/mirror-sync/config.xml$", 404))
    with pytest.raises(
        JenkinsError, match="reading the config of hpcos/mirror-sync: not found .*404"
    ):
        sync(conn, jobs, site=SITE, write=False)


def test_a_job_where_the_folder_should_be_is_refused_before_any_write(double, conn, jobs):
    double.put("hpcos", "<project><description>someone's job</description></project>")
    with pytest.raises(
        JenkinsError,
        match="hpcos exists on .* as a hudson.model.FreeStyleProject, but hpcos "
        "defines it as a folder",
    ):
        sync(conn, jobs, site=SITE, write=True)
    assert double.writes() == []


def test_missing_parent_folder_is_named(double, conn):
    job = RenderedJob("elsewhere/x", b"<project/>")
    with pytest.raises(JenkinsError, match="folder 'elsewhere' does not exist"):
        sync(conn, [job], site=SITE, write=True)


@pytest.mark.parametrize(
    "user, token, expected",
    [
        ("admin", "wrong", "rejected the credentials (401)"),
        ("viewer", "view", "lacks permission for this (403)"),
    ],
)
def test_auth_errors_are_clear_and_never_show_the_token(double, jobs, user, token, expected):
    report_or_error = None
    try:
        report_or_error = sync(Connection(double.url, user, token), jobs, site=SITE, write=True)
        message = " ".join(report_or_error.failed.values())
    except JenkinsError as exc:
        message = str(exc)
    assert expected in message
    assert token not in message and TOKEN not in message


def test_crumb_refused(double, conn, jobs):
    double.crumb_for = lambda user: "a-crumb-that-will-not-match-" + str(len(double.log))
    report = sync(conn, jobs, site=SITE, write=True)
    assert "rejected the CSRF crumb (403)" in next(iter(report.failed.values()))
    assert report.created == []


def test_unreachable_jenkins(jobs):
    server = JenkinsDouble().start()
    url = server.url
    server.stop()
    with pytest.raises(JenkinsError, match=f"cannot connect to Jenkins at {url}"):
        sync(Connection(url), jobs, site=SITE, write=False)


def test_credentials_from_env_then_netrc(monkeypatch, tmp_path):
    """Jenkins follows the site's one credential rule: environment, then ~/.netrc for the host."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("HPCOS_JENKINS_USER", raising=False)
    monkeypatch.delenv("HPCOS_JENKINS_TOKEN", raising=False)

    def credentials(url):
        found = resolve("jenkins", url)
        return found.user, found.secret

    assert credentials("https://jenkins.example.org/") == (None, None)
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine jenkins.example.org login deployer password from-netrc\n")
    netrc.chmod(0o600)
    assert credentials("https://jenkins.example.org/") == ("deployer", "from-netrc")
    assert credentials("https://other.example.org/") == (None, None)
    monkeypatch.setenv("HPCOS_JENKINS_USER", "ci")
    monkeypatch.setenv("HPCOS_JENKINS_TOKEN", "from-env")
    assert credentials("https://jenkins.example.org/") == ("ci", "from-env")
    url = "https://jenkins.example.org/"
    assert "from-env" not in repr(jenkins_sync.connect(url, resolve("jenkins", url)))
    monkeypatch.delenv("HPCOS_JENKINS_TOKEN")
    netrc.unlink()  # a user with no token anywhere: say what is missing rather than go anonymous
    with pytest.raises(jenkins_sync.UserError, match="set both"):
        jenkins_sync.connect(url, resolve("jenkins", url))


def test_digest_cache_skips_parsing_unchanged_texts_but_never_misses_an_edit(
    double, conn, jobs, tmp_path, monkeypatch
):
    from jobs import xml_normalise
    from jobs.xml_normalise import DigestCache

    sync(conn, jobs, site=SITE, write=True)
    cache = tmp_path / "jenkins.json"
    assert sync(conn, jobs, site=SITE, write=False, digests=DigestCache(cache)).not_attempted == []
    parsed = []
    real = xml_normalise.normalise
    monkeypatch.setattr(xml_normalise, "normalise", lambda text: parsed.append(1) or real(text))
    again = sync(conn, jobs, site=SITE, write=False, digests=DigestCache(cache))
    assert again.unchanged == [job.name for job in jobs] and parsed == [], (
        "every text was parsed again"
    )

    live = double.item("hpcos/mirror-sync").config
    double.put(
        "hpcos/mirror-sync", live.replace("hpcos repo sync", "hpcos repo sync --mirror epel")
    )
    edited = sync(conn, jobs, site=SITE, write=False, digests=DigestCache(cache))
    assert edited.not_attempted == ["hpcos/mirror-sync"]
    # The edited text once for its digest, then both sides for the readable diff; nothing else.
    assert len(parsed) == 3


def test_the_reading_threads_learn_each_live_digest_and_the_comparison_reuses_them(
    double, conn, jobs, monkeypatch
):
    from jobs import xml_normalise
    from jobs.jenkins_sync import read_live
    from jobs.xml_normalise import DigestCache

    sync(conn, jobs, site=SITE, write=True)
    digests = DigestCache(None)
    live = read_live(conn, ["hpcos"], workers=4, digests=digests)
    assert live.configs and all(
        digests.digests[digests.key(c.text)] == xml_normalise.normalised_digest(c.text)
        for c in live.configs.values()
    )
    parsed = []
    real = xml_normalise.normalise
    monkeypatch.setattr(xml_normalise, "normalise", lambda text: parsed.append(1) or real(text))
    report = sync(conn, jobs, site=SITE, write=False, live=live, digests=digests)
    assert report.unchanged == [job.name for job in jobs]
    # Only the rendered side is parsed here: the live side was digested while it was read.
    assert len(parsed) == len(jobs)


def test_configs_are_read_directly_unless_a_proxy_applies(double, conn, jobs, monkeypatch):
    from jobs import config_reader

    sync(conn, jobs, site=SITE, write=True)
    reader = config_reader.ConfigReader(conn.url, "admin", TOKEN, 10)
    assert reader.config("hpcos/mirror-sync") == double.item("hpcos/mirror-sync").config
    with pytest.raises(config_reader.HttpStatus, match="404"):
        reader.config("hpcos/no-such-job")
    with pytest.raises(config_reader.HttpStatus, match="401"):
        config_reader.ConfigReader(conn.url, "admin", "wrong", 10).config("hpcos/mirror-sync")
    monkeypatch.setenv("http_proxy", "http://proxy.example.org:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert not config_reader.usable(
        "http://jenkins.example.org/"
    )  # requests applies the proxy rules there
    monkeypatch.setenv("no_proxy", "jenkins.example.org")
    assert config_reader.usable("http://jenkins.example.org/")
    assert not config_reader.usable("ftp://jenkins.example.org/")


def test_a_missing_config_is_one_line_naming_the_job(double, conn, jobs):
    from jobs.jenkins_sync import _read_configs

    sync(conn, jobs, site=SITE, write=True)
    with pytest.raises(
        JenkinsError, match=r"reading the config of hpcos/gone: not found on Jenkins at .* \(404\)"
    ):
        _read_configs(conn, None, ["hpcos/mirror-sync", "hpcos/gone"], workers=2)
