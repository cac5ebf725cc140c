"""Credentials come from the environment, ~/.netrc or the keyring, and never leave in clear."""

from __future__ import annotations

import logging

import keyring
import pytest
from keyring.backend import KeyringBackend

from hpcos.site.credentials import Credentials, RedactingFilter, resolve

URL = "https://trac.example.org/hpc"


def test_environment_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".netrc").write_text(
        "machine trac.example.org login netrc-user password netrc-pw\n"
    )
    creds = resolve(
        "tracker", URL, {"HPCOS_TRACKER_USER": "env-user", "HPCOS_TRACKER_PASSWORD": "env-pw"}
    )
    assert (creds.user, creds.password, creds.token) == ("env-user", "env-pw", None)


def test_netrc_entry_for_the_tracker_host(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    netrc = tmp_path / ".netrc"
    netrc.write_text(
        "machine other.example.org login x password y\n"
        "machine trac.example.org login netrc-user password netrc-pw\n"
    )
    netrc.chmod(0o600)
    creds = resolve("tracker", URL, {})
    assert (creds.user, creds.password) == ("netrc-user", "netrc-pw")


class MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self):
        super().__init__()
        self.store = {("hpcos-tracker:trac.example.org", "bot"): "keyring-pw"}

    def get_password(self, service, username):
        return self.store.get((service, username))

    def set_password(self, service, username, password):
        self.store[(service, username)] = password

    def delete_password(self, service, username):
        self.store.pop((service, username), None)


@pytest.fixture
def memory_keyring():
    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    yield
    keyring.set_keyring(previous)


def test_keyring_when_no_environment_or_netrc(tmp_path, monkeypatch, memory_keyring):
    monkeypatch.setenv("HOME", str(tmp_path))
    creds = resolve("tracker", URL, {"HPCOS_TRACKER_USER": "bot"})
    assert (creds.user, creds.password) == ("bot", "keyring-pw")
    assert (
        resolve("tracker", "https://elsewhere.example.org", {"HPCOS_TRACKER_USER": "bot"}).password
        is None
    )


def test_repr_and_logs_never_show_the_secret(caplog):
    creds = Credentials("bot", "pw-123456", "tok-abcdef")
    assert "pw-123456" not in repr(creds) and "tok-abcdef" not in repr(creds)
    logger = logging.getLogger("hpcos.tickets.test")
    logger.addFilter(RedactingFilter(creds.secrets))
    with caplog.at_level(logging.INFO, logger="hpcos.tickets.test"):
        logger.info(
            "request to %s failed", "https://x/rest/bug?Bugzilla_api_key=tok-abcdef&product=HPC"
        )
    assert caplog.messages == [
        "request to https://x/rest/bug?Bugzilla_api_key=********&product=HPC failed"
    ]
    assert creds.redact("user bot pw-123456") == "user bot ********"


NETRC_PLUGIN_CONFTEST = """
import os
from hpcos.results.model import RunResults

def pytest_sessionfinish(session):
    run = RunResults("n1", "c", "2026-11-26T02:00:00+00:00")
    session.config.hook.pytest_hpcos_run_finished(config=session.config, run=run)
"""


def test_a_netrc_others_can_read_is_ignored_with_one_line_the_user_sees(
    tmp_path, monkeypatch, pytester, repo_root
):
    """Credentials log the warning; the nightly run's own output (the tickets plugin) shows it once."""
    from support.tracker_doubles.runs import site_with_tracker

    from hpcos.site.specs import Tracker
    from hpcos.tickets.session import TicketSession

    netrc = tmp_path / ".netrc"
    netrc.write_text("machine trac.example.org login netrc-user password netrc-pw\n")
    netrc.chmod(0o644)
    environ = {"HOME": str(tmp_path)}
    with TicketSession(Tracker(backend="local", url=URL), tmp_path / "store", environ) as session:
        assert session.credentials.password is None
        assert session.warnings == [
            f"{netrc} is readable by others (mode 644): ignored; chmod 600 {netrc}"
        ]

    specs = site_with_tracker(tmp_path, repo_root, {"backend": "local", "url": URL})
    for name, value in {
        "HOME": str(tmp_path),
        "HPCOS_SPECS": str(specs),
        "HPCOS_STORE": str(tmp_path / "store"),
    }.items():
        monkeypatch.setenv(name, value)
    pytester.makeconftest(NETRC_PLUGIN_CONFTEST)
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    # (pytester's conftest hands the run over once per session finish it sees; each says it in one line)
    lines = {line for line in result.stdout.lines if ".netrc" in line}
    assert lines == {
        f"hpcos tickets: {netrc} is readable by others (mode 644): ignored; chmod 600 {netrc}"
    }


def test_every_configured_secret_is_masked_in_tickets_not_only_the_trackers(tmp_path):
    from support.tracker_doubles.runs import IBV_MISSING, nodes, run

    from hpcos.site.specs import Tracker
    from hpcos.tickets.session import TicketSession

    environ = {
        "HOME": str(tmp_path),
        "HPCOS_TRACKER_PASSWORD": "tracker-secret-1",
        "HPCOS_JENKINS_TOKEN": "jenkins-token-2",
    }
    leaky = (
        "curl -u bot:tracker-secret-1 -H 'Authorization: jenkins-token-2' failed\n" + IBV_MISSING
    )
    with TicketSession(Tracker(), tmp_path / "store", environ) as session:
        decided = session.plan(run("n1", {"t::leak": (leaky, nodes(2))}))
    text = "\n".join(a.summary + a.description + a.comment for a in decided.actions)
    assert (
        "tracker-secret-1" not in text
        and "jenkins-token-2" not in text
        and text.count("********") >= 2
    )
