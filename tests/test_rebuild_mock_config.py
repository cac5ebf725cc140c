"""mock building from the site's own daily snapshot (targets.*.mock_repositories: daily), as Koji builds
from tagged repositories: hpcos generates a mock config that include()s the target's config and whose
dnf.conf names only the daily snapshot's entries, by snapshot path, with no bootstrap image (air-gapped).
mock itself is not packaged for Debian: the config is executed the way mock's config loader does (Python
with ``include`` and ``config_opts`` in scope) and the build goes through tests/support/fake_mock."""

from __future__ import annotations

import configparser
import json
import os
from pathlib import Path

import pytest
from conftest import require_tool
from support.rpm_fixtures import GOOD_PATCH, SITE, UpstreamPackage, make_site, site_patch
from support.rpm_repo_fixtures import Rpm, RpmFactory
from support.rpm_repo_fixtures import make_repo as make_rpm_repo

from hpcos.cli import main
from hpcos.core.store_layout import StoreLayout

FAKE_MOCK_DIR = Path(__file__).parent / "support" / "fake_mock"
TARGET = "el9-x86_64"


def site(tmp_path: Path) -> tuple[Path, Path]:
    for tool, debian in (("rpmbuild", "rpm"), ("createrepo_c", "createrepo-c"), ("dnf", "dnf")):
        require_tool(tool, debian)
    mirror = make_rpm_repo(
        RpmFactory(tmp_path / "rpmbuild"),
        tmp_path / "mirror" / "9" / "x86_64",
        [Rpm("alpha", "1.0")],
    )
    srpm = UpstreamPackage().build_srpm(tmp_path / "upstream")
    targets = {**SITE["targets"], TARGET: {**SITE["targets"][TARGET], "mock_repositories": "daily"}}
    mirrors = {"appstream": {"url": mirror.parent.parent.resolve().as_uri() + "/{release}/{arch}/"}}
    make_site(
        tmp_path / "specs",
        {
            "name": "hello",
            "builder": "mock",
            "upstream": {"srpm_path": str(srpm)},
            "patches": [site_patch("0001-greet.patch")],
        },
        {"0001-greet.patch": GOOD_PATCH},
        {"targets": targets, "mirrors": mirrors},
    )
    return tmp_path / "specs", tmp_path / "store"


def test_mock_builds_from_the_daily_snapshot(tmp_path, monkeypatch):
    specs, store = site(tmp_path)
    record = tmp_path / "mock-calls.jsonl"
    monkeypatch.setenv("PATH", f"{FAKE_MOCK_DIR}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_MOCK_RECORD", str(record))
    argv = ["--specs", str(specs), "--store", str(store)]
    assert main([*argv, "repo", "sync", "--target", TARGET]) == 0
    snapshot = (StoreLayout(store).environments / "daily").resolve()

    assert main([*argv, "build", "hello", "--target", TARGET]) == 0

    [call] = [json.loads(line) for line in record.read_text().splitlines()]
    config_path = Path(call[call.index("-r") + 1])
    assert config_path.name == f"{TARGET}.cfg" and config_path.is_file()
    included: list[str] = []
    config_opts: dict = {}
    exec(
        config_path.read_text(), {"include": included.append, "config_opts": config_opts}
    )  # as mock loads it
    assert included == ["rocky+epel-9-x86_64.cfg"]
    assert config_opts["root"] == f"hpcos-{TARGET}"
    assert config_opts["use_bootstrap_image"] is False
    dnf_conf = configparser.ConfigParser()
    dnf_conf.read_string(config_opts["dnf.conf"])
    assert dnf_conf.sections() == ["main", "hpcos-appstream"]
    assert dnf_conf["main"]["reposdir"] == "/dev/null", "no repository but the snapshot's"
    # The snapshot by its own path: the config stays what it was when the daily pointer moves on.
    assert dnf_conf["hpcos-appstream"]["baseurl"] == (snapshot / f"appstream-{TARGET}").as_uri()
    assert snapshot.name in config_path.read_text()
    assert (
        StoreLayout(store).overlay_repo("hpc-overlay", TARGET) / "hello-1.0-1.el9.hpc1.x86_64.rpm"
    ).is_file()


def test_daily_mock_repositories_need_a_daily_snapshot(tmp_path, capsys):
    specs, store = site(tmp_path)
    assert (
        main(
            [
                "--specs",
                str(specs),
                "--store",
                str(store),
                "build",
                "hello",
                "--target",
                TARGET,
                "--builder",
                "mock",
            ]
        )
        == 2
    )
    assert capsys.readouterr().err == (
        f"hpcos: mock_repositories: daily needs the daily environment; {StoreLayout(store).environments / 'daily'} "
        "does not exist yet (run `hpcos repo sync` first)\n"
    )


@pytest.mark.parametrize("value", ["daily", "config"])
def test_the_setting_is_validated(tmp_path, value):
    targets = {**SITE["targets"], TARGET: {**SITE["targets"][TARGET], "mock_repositories": value}}
    spec_set = make_site(
        tmp_path / "specs",
        {"name": "hello", "upstream": {"srpm_path": "/x.src.rpm"}},
        {},
        {"targets": targets},
    )
    assert spec_set.site.targets[TARGET].mock_repositories == value
