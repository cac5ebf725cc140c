"""OpenPGP signatures on both sides of the site's repositories.

Outgoing: the site's key (``site.yaml`` ``signing``: a GnuPG home and a key id, never the key) signs
every overlay RPM with ``rpmsign --addsign`` and every repository's metadata with a detached, armored
``repodata/repomd.xml.asc``, so nodes run dnf with ``gpgcheck=1`` and ``repo_gpgcheck=1``.  The public
key is exported to ``<store>/keys/RPM-GPG-KEY-<site>`` (``public_key_file``), served beside the
repositories for the nodes' ``gpgkey=``.

Incoming: ``verify`` checks packages with ``rpmkeys --checksig`` in a private rpm database holding
only the expected key, so an unsigned package, one signed by another key and a tampered one are each
refused (an unsigned package passes a bare digest check, hence "signatures OK" is required).

rpm's ``%__gpg`` is ``/usr/bin/gpg2`` on Debian, which does not exist there: the gpg found on PATH is
passed explicitly.  The key's passphrase is GnuPG's business (its agent, or a passphrase-less build
key); hpcos never sees it.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from hpcos.core.errors import UserError
from hpcos.core.store_layout import StoreLayout
from hpcos.rpms import rpmtool

SIGN_TIMEOUT = 900
DOWNLOAD_TIMEOUT = 300
# rpmkeys takes many packages per call; the limit keeps the command line short.
CHECKSIG_BATCH = 200


class SignatureError(UserError):
    pass


def _gpg() -> str:
    return shutil.which("gpg") or shutil.which("gpg2") or "gpg"


@dataclass(frozen=True)
class Signer:
    """The site key: its user id or fingerprint, and the GnuPG home holding it."""

    key: str
    gnupg_home: str | None = None

    @classmethod
    def from_site(
        cls, site, key: str | None = None, gnupg_home: str | None = None
    ) -> Signer | None:
        """``site.signing`` with command-line overrides; None when nothing names a key."""
        signing = getattr(site, "signing", None)
        key = key or (signing.key_id if signing else None)
        if not key:
            return None
        return cls(key, gnupg_home or (signing.gnupg_home if signing else None))

    def _gpg_cmd(self) -> list[str]:
        cmd = [_gpg(), "--batch", "--yes"]
        return cmd + (["--homedir", self.gnupg_home] if self.gnupg_home else [])

    def sign(self, rpms: list[Path], log: Path) -> None:
        """``rpmsign --addsign`` (a header signature on rpm 4.18)."""
        cmd = ["rpmsign", "--define", f"_gpg_name {self.key}", "--define", f"__gpg {_gpg()}"]
        if self.gnupg_home:
            cmd += ["--define", f"_gpg_path {self.gnupg_home}"]
        rpmtool.check(
            cmd + ["--addsign", *map(str, rpms)],
            log,
            what="rpmsign --addsign",
            timeout=SIGN_TIMEOUT,
        )

    def sign_metadata(self, repo: Path, log: Path) -> Path:
        """``repodata/repomd.xml.asc``: what dnf's ``repo_gpgcheck`` verifies."""
        repomd = repo / "repodata" / "repomd.xml"
        signature = repomd.with_name("repomd.xml.asc")
        rpmtool.check(
            [
                *self._gpg_cmd(),
                "--local-user",
                self.key,
                "--armor",
                "--detach-sign",
                "--output",
                str(signature),
                str(repomd),
            ],
            log,
            what="gpg --detach-sign repomd.xml",
            timeout=SIGN_TIMEOUT,
        )
        return signature

    def export_public_key(self, dest: Path, log: Path | None = None) -> Path:
        out = rpmtool.check(
            [*self._gpg_cmd(), "--armor", "--export", self.key],
            log,
            what=f"gpg --export {self.key}",
            timeout=60,
        )
        if "BEGIN PGP PUBLIC KEY BLOCK" not in out:
            raise SignatureError(
                f"signing key {self.key!r} not found in the GnuPG home "
                f"{self.gnupg_home or '$GNUPGHOME'} (site.yaml signing)"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(out[out.index("-----BEGIN") :])
        return dest


def public_key_file(layout: StoreLayout, site_name: str) -> Path:
    """Where the site's public key is published: ``<store>/keys/RPM-GPG-KEY-<site>``.  Serve it with
    the repositories; a node's ``.repo`` names it in ``gpgkey=`` (file:// or the web server's URL
    for ``keys/RPM-GPG-KEY-<site>``)."""
    return layout.root / "keys" / f"RPM-GPG-KEY-{site_name}"


def publish_public_key(
    signer: Signer, layout: StoreLayout, site_name: str, log: Path | None = None
) -> Path:
    return signer.export_public_key(public_key_file(layout, site_name), log)


def fetch_key(key: str, dest: Path, specs_root: Path) -> Path:
    """A configured key (URL, or file relative to the specs directory) copied to ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if "://" in key:
        try:
            with (
                urllib.request.urlopen(key, timeout=DOWNLOAD_TIMEOUT) as response,
                dest.open("wb") as f,
            ):
                shutil.copyfileobj(response, f)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SignatureError(
                f"cannot download signing key {key}: {getattr(exc, 'reason', exc)}"
            ) from None
        return dest
    local = specs_root / key
    if not local.is_file():
        raise SignatureError(f"signing key not found: {local}")
    shutil.copyfile(local, dest)
    return dest


def verify(
    paths: list[Path], key_file: Path, workdir: Path, log: Path | None = None
) -> dict[Path, str]:
    """Packages that are not validly signed by ``key_file``'s key, each with rpm's verdict."""
    workdir.mkdir(parents=True, exist_ok=True)
    problems: dict[Path, str] = {}
    with tempfile.TemporaryDirectory(dir=workdir, prefix="rpmdb-") as dbpath:
        dbpath = str(Path(dbpath).resolve())
        rpmtool.check(
            ["rpmkeys", "--dbpath", dbpath, "--import", str(key_file.resolve())],
            log,
            what=f"importing signing key {key_file.name}",
            timeout=60,
        )
        for start in range(0, len(paths), CHECKSIG_BATCH):
            batch = paths[start : start + CHECKSIG_BATCH]
            proc = rpmtool.run(
                ["rpmkeys", "--dbpath", dbpath, "--checksig", *map(str, batch)],
                log,
                timeout=SIGN_TIMEOUT,
            )
            verdicts = {}
            for line in proc.stdout.splitlines():
                name, sep, verdict = line.rpartition(": ")
                if sep:
                    verdicts[name] = verdict.strip()
            for path in batch:
                verdict = verdicts.get(str(path), "not checked")
                if "NOT OK" in verdict or "signatures OK" not in verdict:
                    problems[path] = "unsigned" if verdict == "digests OK" else verdict
    return problems


def refuse_unsigned(problems: dict[Path, str], what: str) -> None:
    if problems:
        shown = "; ".join(
            f"{path.name} ({verdict})" for path, verdict in sorted(problems.items())[:5]
        )
        more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise SignatureError(
            f"{what}: {len(problems)} package(s) not validly signed: {shown}{more}"
        )
