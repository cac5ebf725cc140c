"""Credentials, one rule for every service hpcos talks to: environment, then netrc, then keyring.

``HPCOS_<SERVICE>_USER`` with ``HPCOS_<SERVICE>_PASSWORD`` or ``_TOKEN`` win (SERVICE is TRACKER or
JENKINS); a netrc entry for the service's host comes next; the keyring (service
``hpcos-<service>:<host>``) last.  Never YAML, logs, results or tickets: every text that leaves hpcos
goes through ``redact`` first, and ``CREDENTIAL_VARIABLES`` are taken out of every environment that
hpcos hands to a command it launches.
"""

from __future__ import annotations

import logging
import netrc
import os
import re
import shlex
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hpcos.core.environment import CREDENTIAL_VARIABLES, without_credentials
from hpcos.core.errors import UserError

KEYRING_SERVICE = "hpcos-{service}:{host}"
REDACTED = "********"

log = logging.getLogger("hpcos.credentials")


@dataclass(frozen=True)
class Credentials:
    user: str | None = None
    password: str | None = None
    token: str | None = None

    def __repr__(self) -> str:  # never print a secret, even in a traceback's locals
        return (
            f"Credentials(user={self.user!r}, password={'set' if self.password else None}, "
            f"token={'set' if self.token else None})"
        )

    @property
    def secrets(self) -> list[str]:
        return [s for s in (self.password, self.token) if s]

    @property
    def secret(self) -> str | None:
        """What a token-or-password service (Jenkins' API token) sends."""
        return self.token or self.password

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret masked; longest first, so a secret containing another is masked whole."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


# Secrets ``resolve`` found in a source that cannot be listed (the keyring): masked from then on too.
_resolved: list[str] = []


def resolved_secrets() -> list[str]:
    """The secrets ``resolve`` has found so far in this process (keyring included)."""
    return list(_resolved)


def known_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every secret of every credential source that can be listed: the credential variables that are set
    and every password and account of ~/.netrc, for every host (a password of a host hpcos is not
    configured for is still a password), and what ``resolve`` found in the keyring.  What must never
    leave hpcos."""
    env = os.environ if environ is None else environ
    return list(
        dict.fromkeys(
            [env[name] for name in CREDENTIAL_VARIABLES if env.get(name)]
            + netrc_secrets(env)
            + _resolved
        )
    )


# Password fields of a netrc file, and what a secret must be at least to be masked: masking "a" would
# turn every message into stars.
_NETRC_SECRET_KEYS = ("password", "account")
_MIN_SECRET = 3


def netrc_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every password (and account) ~/.netrc holds, for every host, read with netrc's own tokenizer
    rules; from a file netrc refuses to parse too (its passwords are still secrets)."""
    env = os.environ if environ is None else environ
    try:
        text = netrc_path(env).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    try:
        tokens = shlex.split(text, comments=True)
    except ValueError:  # an unbalanced quote: fall back to white space
        tokens = text.split()
    found = [
        tokens[i + 1].strip("\"'")
        for i, token in enumerate(tokens[:-1])
        if token in _NETRC_SECRET_KEYS
    ]
    # Tokens as written too (quoted, escaped): a message may quote the file's text.
    raw = text.split()
    found += [raw[i + 1] for i, token in enumerate(raw[:-1]) if token in _NETRC_SECRET_KEYS]
    return [s for s in dict.fromkeys(found) if len(s) >= _MIN_SECRET]


def masked_url(url: str) -> str:
    """``url`` as it may be shown: whatever stands before an ``@`` in its authority masked (the password,
    or a token given as the user name).  Works on text no URL parser accepts."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    cut = min(
        (i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest)
    )
    authority, tail = rest[:cut], rest[cut:]
    if "@" in authority:
        userinfo, _, hostport = authority.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        authority = f"{user}:{REDACTED}@{hostport}" if colon else f"{REDACTED}@{hostport}"
    return f"{scheme}{sep}{authority}{tail}"


def checked_url(url: str, what: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """``url`` when it is one every client library can use (a scheme of ``schemes``, a host, a port in
    1-65535, an IPv6 literal in brackets, no white space); else a one-line ``UserError`` that shows it
    with its password masked."""
    shown = masked_url(url)[:200]
    if not url or not url.isprintable() or any(c.isspace() for c in url):
        raise UserError(
            f"{what}: {shown!r} is not a URL: empty, or white space or control characters in it"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range", "Port could not be cast"
        raise UserError(f"{what}: {shown!r} is not a URL: {str(exc).lower()}") from None
    if parts.scheme not in schemes or (not parts.netloc and parts.scheme != "file"):
        raise UserError(
            f"{what}: {shown!r} needs a scheme, {' or '.join(s + '://' for s in schemes)}"
        )
    if parts.scheme != "file" and not parts.hostname:
        raise UserError(f"{what}: {shown!r} names no host")
    if port == 0:
        raise UserError(f"{what}: {shown!r}: port 0 is not a port")
    return url


def netrc_path(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("NETRC") or Path(environ.get("HOME") or Path.home()) / ".netrc")


def _from_netrc(host: str, environ: Mapping[str, str]) -> Credentials | None:
    path = netrc_path(environ)
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # ssh, curl and Python's netrc refuse a netrc others can read; say so instead of silently ignoring it.
        log.warning(
            "%s is readable by others (mode %o): ignored; chmod 600 %s", path, mode & 0o777, path
        )
        return None
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except netrc.NetrcParseError as exc:
        # netrc's own message quotes the token it stumbled on, which may be a password: not shown.
        raise UserError(
            f"{path}:{exc.lineno}: not a valid netrc file (fix the entry on that line; "
            f"its text is not shown, it may hold a password)"
        ) from None
    except OSError:
        return None
    if not entry:
        return None
    login, _, password = entry
    return Credentials(user=login, password=password)


def _from_keyring(service: str, host: str, user: str | None) -> Credentials | None:
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:
        return None
    try:
        password = keyring.get_password(
            KEYRING_SERVICE.format(service=service, host=host), user or "hpcos"
        )
    except (KeyringError, RuntimeError):
        return None
    return Credentials(user=user, password=password) if password else None


def resolve(service: str, url: str | None, environ: Mapping[str, str] | None = None) -> Credentials:
    """Credentials for ``service`` ("tracker" or "jenkins") at ``url``; empty ones when none are found."""
    env = os.environ if environ is None else environ
    prefix = f"HPCOS_{service.upper()}_"
    user, password, token = (env.get(prefix + k) for k in ("USER", "PASSWORD", "TOKEN"))
    if password or token:
        return Credentials(user, password, token)
    host = urlsplit(checked_url(url, f"{service} URL")).hostname if url else None
    if host:
        found = _from_netrc(host, env) or _from_keyring(service, host, user)
        if found:
            _resolved.extend(
                s for s in found.secrets if s not in _resolved and len(s) >= _MIN_SECRET
            )
            return found
    return Credentials(user=user)


class RedactingFilter(logging.Filter):
    """Attached to a logger: a secret that reaches a log message is masked."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [
            *self.secrets,
            *_resolved,
        ]  # a keyring password resolved after the filter was made too
        if secrets:
            record.msg = redact(record.getMessage(), secrets)
            record.args = ()
        return True


# What decides how an MPI job runs, and what a ticket must name to reproduce it: the MPI libraries'
# own variables (Open MPI/PMIx/PRRTE, MPICH/hydra, Intel MPI, MVAPICH), the fabric libraries' (UCX,
# libfabric, PSM/PSM2/PSM3) and the dynamic loader's (LD_PRELOAD, LD_LIBRARY_PATH).
MPI_VARIABLES = re.compile(
    r"^(?:OMPI|OPAL|ORTE|PMIX|PRTE|MPICH|MPIR|MPIEXEC|HYDRA|I_MPI|MV2|UCX|FI|OFI|PSM[23]?"
    r"|HFI|LD)_\w+$"
)
# A name that says it holds a secret: its value is masked even though hpcos did not configure it.
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|CREDENTIAL|_KEY$|^KEY_", re.IGNORECASE)


def job_environment(
    night: Mapping[str, str], job: Mapping[str, str], secrets: Iterable[str] = ()
) -> tuple[dict[str, str], dict[str, str]]:
    """(inherited, set): the MPI_VARIABLES an MPI job ran with -- those it took from the night's
    environment ``night`` (what a reproduction must set again) and those ``job`` (the profile's stack,
    the test) set -- with secret-looking names and every known secret masked."""
    secrets = list(secrets)

    def shown(name: str, value: str) -> str:
        return REDACTED if _SECRET_NAME.search(name) else redact(value, secrets)

    inherited = {
        k: shown(k, v)
        for k, v in sorted(without_credentials(night).items())
        if MPI_VARIABLES.fullmatch(k) and k not in job
    }
    own = {k: shown(k, v) for k, v in sorted(job.items()) if MPI_VARIABLES.fullmatch(k)}
    return inherited, own
