"""`hpcos repo sync` verifies upstream package signatures against the mirror's `gpgkey`: a mirror whose
packages are all signed by that key is synced; one unsigned package, or one signed by another key,
stops the sync and the daily environment stays where it was.  Real gpg, rpmsign, rpmkeys,
createrepo_c and dnf reposync."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import require_tool
from support.rpm_fixtures import gpg_signing_key, rpmsign
from support.rpm_repo_fixtures import TOOLS, Rpm, RpmFactory, make_site

from hpcos.cli import main

UPSTREAM_KEY = "Upstream Distro <security@distro.example>"
OTHER_KEY = "Somebody Else <other@example.org>"
PACKAGES = [Rpm("alpha", "1.0"), Rpm("beta", "1.0"), Rpm("gamma", "1.0", arch="x86_64")]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    for tool, debian in (
        ("gpg", "gnupg"),
        ("rpmsign", "rpm"),
        ("rpmkeys", "rpm"),
        ("createrepo_c", "createrepo-c"),
        ("dnf", "dnf"),
    ):
        require_tool(tool, debian)
    homes = {uid: tmp_path_factory.mktemp("gnupg") for uid in (UPSTREAM_KEY, OTHER_KEY)}
    publics = {uid: gpg_signing_key(home, uid) for uid, home in homes.items()}
    yield homes, publics
    for home in homes.values():
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, timeout=60
        )


def upstream_repo(
    directory: Path, factory: RpmFactory, signed_by: dict[str, str | None], homes
) -> None:
    """``directory``: each package copied in and signed by the named key (None: left unsigned)."""
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "Packages").mkdir(parents=True)
    for rpm in PACKAGES:
        path = directory / "Packages" / rpm.filename
        shutil.copy2(factory.path(rpm), path)
        key = signed_by[rpm.name]
        if key:
            rpmsign([path], homes[key], key)
    subprocess.run(
        ["createrepo_c", "--quiet", str(directory)], check=True, capture_output=True, timeout=120
    )


def test_sync_refuses_unsigned_and_foreign_signed_packages(tmp_path, keys, capsys):
    homes, publics = keys
    factory = RpmFactory(tmp_path / "rpmbuild")
    site = make_site(factory, tmp_path)
    # The base mirror names upstream's key (relative to the specs directory, as site.yaml allows).
    shutil.copyfile(publics[UPSTREAM_KEY], site.specs / "RPM-GPG-KEY-upstream")
    site_yaml = site.specs / "site.yaml"
    site_yaml.write_text(
        site_yaml.read_text().replace(
            "    url: {upstream}/base/{{release}}/{{arch}}/".format(
                upstream=f"file://{site.upstream}"
            ),
            f"    url: file://{site.upstream}/base/{{release}}/{{arch}}/\n    gpgkey: RPM-GPG-KEY-upstream",
        )
    )
    assert "gpgkey: RPM-GPG-KEY-upstream" in site_yaml.read_text()
    base = site.upstream / "base" / "9" / "x86_64"
    site.set_upstream("tools", TOOLS)  # no gpgkey: not checked

    upstream_repo(
        base, factory, {"alpha": UPSTREAM_KEY, "beta": UPSTREAM_KEY, "gamma": UPSTREAM_KEY}, homes
    )
    assert main(site.argv("sync")) == 0
    daily = (site.store / "environments" / "daily").resolve()

    upstream_repo(
        base, factory, {"alpha": UPSTREAM_KEY, "beta": None, "gamma": UPSTREAM_KEY}, homes
    )
    capsys.readouterr()
    assert main(site.argv("sync")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "hpcos: base-el9-x86_64: sync aborted, packages not signed by "
        f"{(site.specs / 'RPM-GPG-KEY-upstream').resolve()}: 1 package(s) not validly signed: "
        "beta-1.0-1.noarch.rpm (unsigned)"
    )
    assert (site.store / "environments" / "daily").resolve() == daily, (
        "daily stays on the last good sync"
    )

    upstream_repo(
        base, factory, {"alpha": UPSTREAM_KEY, "beta": UPSTREAM_KEY, "gamma": OTHER_KEY}, homes
    )
    assert main(site.argv("sync")) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "1 package(s) not validly signed: gamma-1.0-1.x86_64.rpm (" in err
    assert "NOT OK" in err
    assert (site.store / "environments" / "daily").resolve() == daily
