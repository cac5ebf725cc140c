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
        return f"Credentials(user={self.user!r}, password={'set' if self.password else None}, " \
               f"token={'set' if self.token else None})"

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


def known_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of every credential variable that is set: what must never leave hpcos."""
    env = os.environ if environ is None else environ
    return [env[name] for name in CREDENTIAL_VARIABLES if env.get(name)]


def netrc_secrets(urls: Iterable[str | None], environ: Mapping[str, str] | None = None) -> list[str]:
    """The passwords ~/.netrc holds for the hosts of ``urls``: configured secrets outside the environment."""
    env = os.environ if environ is None else environ
    found = []
    for url in urls:
        host = urlsplit(url).hostname if url else None
        try:
            entry = _from_netrc(host, env) if host else None
        except UserError:
            entry = None  # a broken netrc is reported where credentials are resolved, not here
        if entry and entry.password:
            found.append(entry.password)
    return found


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
        log.warning("%s is readable by others (mode %o): ignored; chmod 600 %s", path, mode & 0o777, path)
        return None
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except netrc.NetrcParseError as exc:
        raise UserError(f"{path}:{exc.lineno}: {exc.msg}") from None
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
        password = keyring.get_password(KEYRING_SERVICE.format(service=service, host=host), user or "hpcos")
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
    host = urlsplit(url).hostname if url else None
    if host:
        found = _from_netrc(host, env) or _from_keyring(service, host, user)
        if found:
            return found
    return Credentials(user=user)


class RedactingFilter(logging.Filter):
    """Attached to a logger: a secret that reaches a log message is masked."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = redact(record.getMessage(), self.secrets)
            record.args = ()
        return True


# What decides how an MPI job runs, and what a ticket must name to reproduce it: the MPI libraries'
# own variables (Open MPI/PMIx/PRRTE, MPICH/hydra, Intel MPI, MVAPICH), the fabric libraries' (UCX,
# libfabric, PSM/PSM2/PSM3) and the dynamic loader's (LD_PRELOAD, LD_LIBRARY_PATH).
MPI_VARIABLES = re.compile(r"^(?:OMPI|OPAL|ORTE|PMIX|PRTE|MPICH|MPIR|MPIEXEC|HYDRA|I_MPI|MV2|UCX|FI|OFI|PSM[23]?"
                           r"|HFI|LD)_\w+$")
# A name that says it holds a secret: its value is masked even though hpcos did not configure it.
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|CREDENTIAL|_KEY$|^KEY_", re.IGNORECASE)


def job_environment(night: Mapping[str, str], job: Mapping[str, str],
                    secrets: Iterable[str] = ()) -> tuple[dict[str, str], dict[str, str]]:
    """(inherited, set): the MPI_VARIABLES an MPI job ran with -- those it took from the night's
    environment ``night`` (what a reproduction must set again) and those ``job`` (the profile's stack,
    the test) set -- with secret-looking names and every known secret masked."""
    secrets = list(secrets)

    def shown(name: str, value: str) -> str:
        return REDACTED if _SECRET_NAME.search(name) else redact(value, secrets)

    inherited = {k: shown(k, v) for k, v in sorted(without_credentials(night).items())
                 if MPI_VARIABLES.match(k) and k not in job}
    own = {k: shown(k, v) for k, v in sorted(job.items()) if MPI_VARIABLES.match(k)}
    return inherited, own
