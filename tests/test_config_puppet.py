"""Validation of a Puppet control repository with real Puppet 7, environments laid out per branch
as r10k does (the testing branch ``pre-prod`` becomes the environment ``pre_prod``).

A change that fails ``puppet parser validate`` blocks promotion and files a ticket (local tracker);
a valid one shows its ``puppet apply --noop`` change count in ``hpcos config status``.
"""

from __future__ import annotations

import json

import pytest
from conftest import require_tool
from support.config_repos import SiteRepo, nightly_results, write_site

from hpcos.cli import main
from hpcos.config.validation import environment_name


def manifest(target, content: str, extra: str = "") -> str:
    return f"file {{ '{target}': ensure => file, content => \"{content}\\n\", }}\n{extra}"


@pytest.fixture
def control(tmp_path, monkeypatch):
    require_tool("git", "git")
    require_tool("puppet", "puppet")
    managed = tmp_path / "node"
    managed.mkdir()
    (managed / "motd").write_text(
        "release 1\n"
    )  # the "node" already runs production's configuration
    repo = SiteRepo(
        tmp_path / "git",
        {"manifests/site.pp": manifest(managed / "motd", "release 1")},
        testing="pre-prod",
    )
    specs = write_site(
        tmp_path / "specs",
        tmp_path / "store",
        {"control": {"url": str(repo.remote), "kind": "puppet", "testing": "pre-prod"}},
    )
    monkeypatch.setenv("HPCOS_SPECS", str(specs))
    monkeypatch.setenv("HPCOS_STORE", str(tmp_path / "store"))
    repo.tmp, repo.managed = tmp_path, managed
    return repo


def test_branch_names_become_puppet_environment_names():
    assert environment_name("pre-prod") == "pre_prod"
    assert environment_name("hot-fix/CVE-1") == "hot_fix_cve_1"
    assert environment_name("2026") == "env_2026"


def test_valid_change_shows_its_noop_change_count(control, capsys):
    head = control.commit(
        "pre-prod",
        {
            "manifests/site.pp": manifest(
                control.managed / "motd",
                "release 2",
                extra=manifest(control.managed / "issue", "welcome"),
            )
        },
        "motd release 2, new issue file",
    )
    assert main(["config", "validate"]) == 0
    capsys.readouterr()
    assert main(["config", "status", "--json"]) == 0
    (state,) = json.loads(capsys.readouterr().out)["repositories"]
    assert state["validation"]["commit"] == head
    assert state["validation"]["ok"] is True
    assert (
        state["validation"]["changes"] == 2
    )  # motd content and the new file: out of sync, not changed
    assert (control.managed / "motd").read_text() == "release 1\n"
    assert not (control.managed / "issue").exists()
    assert main(["config", "status"]) == 0
    assert "dry run: 2 change(s)" in capsys.readouterr().out


def test_parse_error_blocks_promotion_and_files_a_ticket(control, capsys):
    before = control.head("production")
    broken = control.commit(
        "pre-prod",
        {"manifests/site.pp": "file { '/tmp/x': ensure => file,\n"},
        "motd: half-written resource",
    )
    results = nightly_results(
        control.tmp / "night.json", control.tmp / "specs", control.tmp / "store"
    )
    assert main(["repo", "record-run", str(results), "--config-commit", f"control={broken}"]) == 0
    capsys.readouterr()

    assert main(["config", "promote", "--reason", "CHG-44"]) == 2
    err = capsys.readouterr().err
    assert "puppet-parser-validate failed" in err and "nothing was changed" in err
    assert "Syntax error" in err or "Could not parse" in err
    assert "Facter" not in err  # the sandbox's permission noise is filtered
    assert control.head("production") == before
    # --force overrides the nightly gate, never a failed validation.
    assert (
        main(["config", "promote", "--force", "--reason", "CHG-44, in a hurry", "--no-tickets"])
        == 2
    )
    assert "puppet-parser-validate failed" in capsys.readouterr().err
    assert control.head("production") == before

    assert main(["tickets", "list", "--json"]) == 0
    tickets = json.loads(capsys.readouterr().out)["tickets"]
    assert len(tickets) == 1
    assert tickets[0]["summary"].startswith("puppet-parser-validate fails: Could not parse")
    assert main(["tickets", "show", str(tickets[0]["id"])]) == 0
    shown = capsys.readouterr().out
    assert f"control: {broken}" in shown  # the ticket names the commit that failed
