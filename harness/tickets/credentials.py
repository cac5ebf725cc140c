"""Tracker credentials: environment, then ~/.netrc, then the keyring.  Never YAML, logs or tickets.

``HPCOS_TRACKER_USER`` / ``HPCOS_TRACKER_PASSWORD`` / ``HPCOS_TRACKER_TOKEN`` win; a netrc entry for
the tracker's host comes next; the keyring (service ``hpcos-tracker:<host>``) last.  Every text that
leaves hpcos for a tracker, the queue or a log goes through ``redact`` first.
"""

from __future__ import annotations

import logging
import netrc
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

KEYRING_SERVICE = "hpcos-tracker:{host}"
REDACTED = "********"


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

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


def _from_netrc(host: str) -> Credentials | None:
    try:
        entry = netrc.netrc().authenticators(host)
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return None
    if not entry:
        return None
    login, _, password = entry
    return Credentials(user=login, password=password)


def _from_keyring(host: str, user: str | None) -> Credentials | None:
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:
        return None
    service = KEYRING_SERVICE.format(host=host)
    try:
        password = keyring.get_password(service, user or "hpcos")
    except (KeyringError, RuntimeError):
        return None
    return Credentials(user=user, password=password) if password else None


def resolve(url: str | None, environ: dict[str, str] | None = None) -> Credentials:
    env = os.environ if environ is None else environ
    user = env.get("HPCOS_TRACKER_USER")
    password = env.get("HPCOS_TRACKER_PASSWORD")
    token = env.get("HPCOS_TRACKER_TOKEN")
    if password or token:
        return Credentials(user, password, token)
    host = urlsplit(url).hostname if url else None
    if host:
        found = _from_netrc(host) or _from_keyring(host, user)
        if found:
            return found
    return Credentials(user=user)


class RedactingFilter(logging.Filter):
    """Attached to the tickets logger: a secret that reaches a log message is masked."""

    def __init__(self, credentials: Credentials):
        super().__init__()
        self.credentials = credentials

    def filter(self, record: logging.LogRecord) -> bool:
        if self.credentials.secrets:
            record.msg = self.credentials.redact(record.getMessage())
            record.args = ()
        return True
