"""``hpcos repo promote testing production --with-config``: packages and configuration move together,
from the same nightly run; every configuration check runs before the packages move, so a conflict
leaves both where they were.  Real rpmbuild/createrepo_c repositories and real git."""

from __future__ import annotations

import json

import pytest
import support.gate_fixtures as gate_fixtures
from support.config_repos import SiteRepo, git
from support.rpm_repo_fixtures import RpmFactory, make_site

from hpcos.cli import main


@pytest.fixture
def site(tmp_path):
    packages = make_site(RpmFactory(tmp_path / "rpms"), tmp_path / "site")
    config = SiteRepo(tmp_path / "git", {"motd": "release 1\n"})
    with open(packages.specs / "site.yaml", "a") as site_yaml:
        site_yaml.write(
            f"config:\n  repositories:\n    cm: {{url: 'file://{config.remote}', kind: generic}}\n"
        )
    base = ["--specs", str(packages.specs), "--store", str(packages.store)]
    assert main([*base, "repo", "sync"]) == 0
    assert main([*base, "repo", "promote", "daily", "testing"]) == 0
    return packages, config, base, tmp_path


def snapshot(base, env, capsys) -> str | None:
    capsys.readouterr()
    code = main([*base, "repo", "status", env, "--id"])
    return capsys.readouterr().out.strip() if code == 0 else None


def night(base, tmp_path, testing: str, capsys) -> None:
    """The nightly job's sequence: heads before the tests, recorded with the run."""
    heads = tmp_path / "config-heads.json"
    assert main([*base, "config", "heads", "-o", str(heads)]) == 0
    assert set(json.loads(heads.read_text())) == {"cm"}
    # The gate's other conditions (the site's test cluster, a verified deploy): tests/test_gate.py.
    sha = gate_fixtures.write_test_cluster(tmp_path / "site" / "specs")
    gate_fixtures.deployed(tmp_path / "site" / "store", testing, sha)
    results = tmp_path / "results.json"
    gate_fixtures.test_cluster_night(
        tmp_path / "site" / "specs", tmp_path / "site" / "store", testing, results
    )
    assert main([*base, "repo", "record-run", str(results), "--config-heads", str(heads)]) == 0


def test_packages_and_configuration_promoted_together(site, capsys):
    packages, config, base, tmp_path = site
    change = config.commit("testing", {"motd": "release 2\n"}, "motd: release 2")
    testing = snapshot(base, "testing", capsys)
    night(base, tmp_path, testing, capsys)

    assert (
        main(
            [
                *base,
                "repo",
                "promote",
                "testing",
                "production",
                "--with-config",
                "--reason",
                "CHG-50",
            ]
        )
        == 0
    )

    assert snapshot(base, "production", capsys) == testing
    merge = config.head("production")
    assert git(config.remote, "log", "-1", "--format=%P", merge).split()[1] == change
    message = git(config.remote, "log", "-1", "--format=%B", merge)
    assert f"Testing snapshot: {testing}" in message and "CHG-50" in message


def test_a_configuration_conflict_stops_the_packages_too(site, capsys):
    packages, config, base, tmp_path = site
    config.commit("testing", {"motd": "release 2\n"}, "motd: release 2")
    config.commit("production", {"motd": "release 1, hot-fixed\n"}, "hot-fix")
    testing = snapshot(base, "testing", capsys)
    night(base, tmp_path, testing, capsys)
    before = config.head("production")

    assert (
        main(
            [
                *base,
                "repo",
                "promote",
                "testing",
                "production",
                "--with-config",
                "--reason",
                "CHG-51",
            ]
        )
        == 2
    )
    assert "conflicts in motd" in capsys.readouterr().err
    assert snapshot(base, "production", capsys) is None  # the packages did not move either
    assert config.head("production") == before

    assert main([*base, "repo", "promote", "daily", "testing", "--with-config"]) == 2
    assert "--with-config goes with" in capsys.readouterr().err
