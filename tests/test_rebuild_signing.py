"""Signatures, with a real GnuPG key made in a tmp dir: the upstream SRPM is checked with
``rpmkeys --checksig`` against only the configured key (a private rpm database); published RPMs are
signed with ``rpmsign`` and repository metadata with a detached ``repomd.xml.asc`` (site.yaml
``signing``), which the real dnf accepts with ``gpgcheck=1 repo_gpgcheck=1`` in an install root; a
tampered and an unsigned package are refused by dnf and by ``hpcos repo publish``.

The rpmbuild host check is satisfied with rpm_fixtures.el_host, as on an EL9 build agent."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import require_tool
from support.rpm_fixtures import (  # noqa: F401 (el9_build_host is a fixture)
    GOOD_PATCH,
    UpstreamPackage,
    el9_build_host,
    el_host,
    gpg_signing_key,
    make_site,
    rpmsign,
    site_patch,
)

from hpcos.cli import main
from hpcos.core.store_layout import StoreLayout

pytestmark = pytest.mark.usefixtures("el9_build_host")

KEY_ID = "rpm-signing@example.org"


@pytest.fixture(scope="module")
def gpg_key(tmp_path_factory) -> tuple[Path, Path]:
    """(GnuPG home with a passphrase-less signing key, its exported public key)."""
    for tool, debian in (
        ("gpg", "gnupg"),
        ("rpmsign", "rpm"),
        ("rpmkeys", "rpm"),
        ("rpmbuild", "rpm"),
        ("createrepo_c", "createrepo-c"),
    ):
        require_tool(tool, debian)
    home = tmp_path_factory.mktemp("gnupg")
    public = gpg_signing_key(home, f"HPC Site <{KEY_ID}>")
    yield home, public
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, timeout=60
    )


def sign(path: Path, home: Path) -> None:
    rpmsign([path], home, KEY_ID)


def checksig(path: Path, public: Path, dbpath: Path) -> str:
    dbpath.mkdir(exist_ok=True)
    subprocess.run(
        ["rpmkeys", "--dbpath", str(dbpath), "--import", str(public)], check=True, timeout=60
    )
    return subprocess.run(
        ["rpmkeys", "--dbpath", str(dbpath), "--checksig", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def build(tmp_path: Path, srpm: Path, public: Path, *extra: str) -> int:
    make_site(
        tmp_path / "specs",
        {
            "name": "hello",
            "upstream": {"srpm_path": str(srpm), "gpgkey": str(public)},
            "patches": [site_patch("0001-greet.patch")],
        },
        {"0001-greet.patch": GOOD_PATCH},
    )
    return main(
        [
            "--specs",
            str(tmp_path / "specs"),
            "--store",
            str(tmp_path / "store"),
            "build",
            "hello",
            "--target",
            "el9-x86_64",
            *extra,
        ]
    )


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
    assert err == (
        f"hpcos: hello-1.0-1.el9.src.rpm: signature check failed against {public}: "
        "no signature made with the configured key"
    )
    assert not StoreLayout(tmp_path / "store").overlay_repo("hpc-overlay", "el9-x86_64").exists()


TARGET = "el9-x86_64"
ENTRY = f"hpc-overlay-{TARGET}"


def site_with_signing(tmp_path: Path, home: Path | None) -> Path:
    srpm = UpstreamPackage(autoreq=False).build_srpm(tmp_path / "upstream")
    changes = {"signing": {"gnupg_home": str(home), "key_id": KEY_ID}} if home else {}
    make_site(
        tmp_path / "specs",
        {
            "name": "hello",
            "upstream": {"srpm_path": str(srpm)},
            "patches": [site_patch("0001-greet.patch")],
        },
        {"0001-greet.patch": GOOD_PATCH},
        changes,
    )
    return tmp_path / "specs"


def hpcos(specs: Path, store: Path, *args: str) -> int:
    return main(["--specs", str(specs), "--store", str(store), *args])


def dnf_install(
    work: Path, repo: Path, key: Path, package: str = "hello"
) -> subprocess.CompletedProcess:
    """The real dnf, as a node runs it: gpgcheck=1 and repo_gpgcheck=1 with the site's public key, in a
    fresh install root (RECIPES: private dnf.conf, plugins off, no skipping of a broken repository)."""
    root = work / "root"
    (work / "repos.d").mkdir(parents=True)
    (work / "dnf.conf").write_text(
        f"[main]\ngpgcheck=1\nskip_if_unavailable=0\nplugins=0\nreposdir={work}/repos.d\n"
        "install_weak_deps=0\nmetadata_expire=0\n"
    )
    (work / "repos.d" / "site.repo").write_text(
        f"[site]\nname=site overlay\nbaseurl={repo.resolve().as_uri()}\n"
        f"gpgcheck=1\nrepo_gpgcheck=1\ngpgkey={key.resolve().as_uri()}\n"
    )
    try:
        return subprocess.run(
            [
                "dnf",
                "-y",
                "-c",
                str(work / "dnf.conf"),
                f"--installroot={root}",
                "--releasever=9",
                "install",
                package,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        # dnf's repo_gpgcheck leaves one gpg-agent per repository behind.
        for pubring in root.glob("var/cache/dnf/*/pubring"):
            subprocess.run(
                ["gpgconf", "--homedir", str(pubring), "--kill", "gpg-agent"],
                capture_output=True,
                timeout=60,
            )


def installed(work: Path) -> list[str]:
    out = subprocess.run(
        ["rpm", "--root", str(work / "root"), "-qa", "--qf", "%{name}-%{version}-%{release}\n"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return sorted(line for line in out.splitlines() if not line.startswith("gpg-pubkey"))


def resign_metadata(repo: Path, home: Path) -> None:
    subprocess.run(["createrepo_c", "-q", "--update", str(repo)], check=True, timeout=120)
    subprocess.run(
        [
            "gpg",
            "--homedir",
            str(home),
            "--batch",
            "--yes",
            "-u",
            KEY_ID,
            "--armor",
            "--detach-sign",
            str(repo / "repodata" / "repomd.xml"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


def tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # inside the compressed payload, which the header's payload digest covers
    path.write_bytes(bytes(data))


def test_signed_packages_and_metadata_are_accepted_by_dnf_with_gpgcheck(tmp_path, gpg_key):
    require_tool("dnf", "dnf")
    home, _ = gpg_key
    specs, store = site_with_signing(tmp_path, home), tmp_path / "store"

    assert hpcos(specs, store, "build", "hello", "--target", TARGET) == 0
    assert hpcos(specs, store, "repo", "publish", "hpc-overlay") == 0

    layout = StoreLayout(store)
    entry = next(layout.snapshots.glob(f"*/{ENTRY}"))
    assert (entry / "repodata" / "repomd.xml.asc").is_file()
    assert (layout.overlay_repo("hpc-overlay", TARGET) / "repodata" / "repomd.xml.asc").is_file()
    key = store / "keys" / "RPM-GPG-KEY-testsite"
    assert key.read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")

    done = dnf_install(tmp_path / "node1", entry, key)
    assert done.returncode == 0, done.stderr
    assert installed(tmp_path / "node1") == ["hello-1.0-1.el9.hpc1"]


def test_tampered_and_unsigned_packages_are_refused_by_dnf_and_by_repo_publish(
    tmp_path, gpg_key, capsys
):
    require_tool("dnf", "dnf")
    home, _ = gpg_key
    specs, store = site_with_signing(tmp_path, home), tmp_path / "store"
    assert hpcos(specs, store, "build", "hello", "--target", TARGET) == 0
    working = StoreLayout(store).overlay_repo("hpc-overlay", TARGET)
    binary = working / "hello-1.0-1.el9.hpc1.x86_64.rpm"
    key = store / "keys" / "RPM-GPG-KEY-testsite"
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_bytes((home / "public.asc").read_bytes())

    # Tampered after signing: dnf refuses it even with fresh, validly signed metadata...
    tampered_repo = tmp_path / "tampered"
    tampered_repo.mkdir()
    (tampered_repo / binary.name).write_bytes(binary.read_bytes())
    tamper(tampered_repo / binary.name)
    resign_metadata(tampered_repo, home)
    done = dnf_install(tmp_path / "node-tampered", tampered_repo, key)
    assert done.returncode != 0 and "GPG check FAILED" in done.stdout + done.stderr
    assert installed(tmp_path / "node-tampered") == []
    # ... and so does `hpcos repo publish`.
    tamper(binary)
    capsys.readouterr()
    assert hpcos(specs, store, "repo", "publish", "hpc-overlay") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(
        f"hpcos: refusing to publish; signed by {KEY_ID} expected: 1 package(s) not validly signed: "
        f"{binary.name} ("
    )
    assert "NOT OK" in err
    assert not list(StoreLayout(store).snapshots.glob(f"*/{ENTRY}"))

    # Unsigned: built by a site without a key, then published by one with a key.
    unsigned_site = tmp_path / "unsigned"
    unsigned_specs, unsigned_store = site_with_signing(unsigned_site, None), unsigned_site / "store"
    assert hpcos(unsigned_specs, unsigned_store, "build", "hello", "--target", TARGET) == 0
    unsigned_repo = StoreLayout(unsigned_store).overlay_repo("hpc-overlay", TARGET)
    resign_metadata(unsigned_repo, home)
    done = dnf_install(tmp_path / "node-unsigned", unsigned_repo, key)
    assert done.returncode != 0 and "is not signed" in done.stdout + done.stderr
    assert installed(tmp_path / "node-unsigned") == []
    signed_specs = site_with_signing(unsigned_site / "signed", home)
    capsys.readouterr()
    assert hpcos(signed_specs, unsigned_store, "repo", "publish", "hpc-overlay") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"hpcos: refusing to publish; signed by {KEY_ID} expected: 1 package(s) not validly signed: "
        "hello-1.0-1.el9.hpc1.x86_64.rpm (unsigned)"
    )
