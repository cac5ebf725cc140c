"""Signatures, with a real GnuPG key made in a tmp dir: the upstream SRPM is checked with
``rpmkeys --checksig`` against only the configured key (a private rpm database), and published
RPMs are signed with ``rpmsign`` when a key is given."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import require_tool
from support.rpm_fixtures import GOOD_PATCH, UpstreamPackage, make_site, site_patch

from hpcos.cli import main
from hpcos.core.store_layout import StoreLayout

KEY_ID = "rpm-signing@example.org"


@pytest.fixture(scope="module")
def gpg_key(tmp_path_factory) -> tuple[Path, Path]:
    """(GnuPG home with a passphrase-less signing key, its exported public key)."""
    for tool, debian in (("gpg", "gnupg"), ("rpmsign", "rpm"), ("rpmkeys", "rpm"), ("rpmbuild", "rpm"),
                         ("createrepo_c", "createrepo-c")):
        require_tool(tool, debian)
    home = tmp_path_factory.mktemp("gnupg")
    os.chmod(home, 0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run(gpg + ["--quick-gen-key", f"HPC Site <{KEY_ID}>", "rsa2048", "sign", "never"], check=True,
                   capture_output=True, timeout=120)
    public = home / "public.asc"
    public.write_bytes(subprocess.run(gpg + ["--armor", "--export", KEY_ID], check=True, capture_output=True,
                                      timeout=60).stdout)
    yield home, public
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, timeout=60)


def sign(path: Path, home: Path) -> None:
    subprocess.run(["rpmsign", "--define", f"_gpg_name {KEY_ID}", "--define", f"_gpg_path {home}",
                    "--define", "__gpg /usr/bin/gpg", "--addsign", str(path)], check=True, capture_output=True,
                   timeout=120)


def checksig(path: Path, public: Path, dbpath: Path) -> str:
    dbpath.mkdir(exist_ok=True)
    subprocess.run(["rpmkeys", "--dbpath", str(dbpath), "--import", str(public)], check=True, timeout=60)
    return subprocess.run(["rpmkeys", "--dbpath", str(dbpath), "--checksig", str(path)], capture_output=True,
                          text=True, timeout=60).stdout


def build(tmp_path: Path, srpm: Path, public: Path, *extra: str) -> int:
    make_site(tmp_path / "specs", {"name": "hello", "upstream": {"srpm_path": str(srpm), "gpgkey": str(public)},
                                   "patches": [site_patch("0001-greet.patch")]}, {"0001-greet.patch": GOOD_PATCH})
    return main(["--specs", str(tmp_path / "specs"), "--store", str(tmp_path / "store"), "build", "hello",
                 "--target", "el9-x86_64", *extra])


def test_signed_srpm_is_accepted_and_published_rpms_are_signed(tmp_path, gpg_key, monkeypatch):
    home, public = gpg_key
    srpm = UpstreamPackage().build_srpm(tmp_path)
    sign(srpm, home)
    monkeypatch.setenv("GNUPGHOME", str(home))

    assert build(tmp_path, srpm, public, "--sign-key", KEY_ID) == 0

    repo = StoreLayout(tmp_path / "store").overlay_repo("hpc-overlay", "el9-x86_64")
    published = sorted(repo.glob("*.rpm"))
    assert len(published) == 2
    for path in published:
        assert checksig(path, public, tmp_path / "rpmdb").strip().endswith("digests signatures OK")


def test_unsigned_srpm_is_refused_when_a_key_is_configured(tmp_path, gpg_key, capsys):
    _, public = gpg_key
    srpm = UpstreamPackage().build_srpm(tmp_path)

    assert build(tmp_path, srpm, public) == 2

    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"hpcos: hello-1.0-1.el9.src.rpm: signature check failed against {public}: "
                   "no signature made with the configured key")
    assert not StoreLayout(tmp_path / "store").overlay_repo("hpc-overlay", "el9-x86_64").exists()
