"""The one small interface every tracker implements, and the factory that picks one from ``site.yaml``.

A backend knows how its tracker stores the fingerprint (custom field, label, whiteboard or a marker
line in the description) and how to find, create, comment, reopen and close.  Connection failures,
timeouts and 5xx answers raise ``TrackerUnavailable`` so the caller queues instead of losing tickets.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hpcos.site.credentials import Credentials
from hpcos.site.specs import Tracker as TrackerSpec
from hpcos.site.trackers import TRACKERS


@dataclass
class Ticket:
    id: str
    key: str  # the fingerprint key it carries
    status: str  # the tracker's own status word
    closed: bool
    resolution: str = ""
    url: str = ""


class TrackerError(Exception):
    """The tracker refused a request (bad credentials, missing project, invalid field)."""


class TrackerUnavailable(TrackerError):
    """The tracker is down, too slow or answered 5xx: try again later."""


# Markup of ticket text per tracker (see ``content.render``); known without connecting.
MARKUP = {name: kind.markup for name, kind in TRACKERS.items()}


class TrackerBackend(ABC):
    name: str
    can_reopen = True

    @property
    def markup(self) -> str:
        return MARKUP[self.name]

    @abstractmethod
    def find(self, key: str) -> Ticket | None:
        """The open ticket carrying ``key``; else the most recent closed one; else None."""

    @abstractmethod
    def create(self, summary: str, description: str, key: str) -> Ticket: ...

    @abstractmethod
    def comment(self, ticket: Ticket, text: str) -> None: ...

    @abstractmethod
    def reopen(self, ticket: Ticket, text: str) -> None: ...

    @abstractmethod
    def close(self, ticket: Ticket, text: str) -> None: ...


def pick(tickets: list[Ticket]) -> Ticket | None:
    """``find``'s rule over candidates listed newest first: open beats closed."""
    return next((t for t in tickets if not t.closed), tickets[0] if tickets else None)


BACKENDS = {name: kind.implementation for name, kind in TRACKERS.items()}


def open_backend(spec: TrackerSpec, store_root: Path, credentials: Credentials) -> TrackerBackend:
    module, _, cls = BACKENDS[spec.backend].partition(":")
    return getattr(importlib.import_module(module), cls).from_spec(spec, store_root, credentials)


@contextmanager
def translated(tracker: str, errors: tuple[type[BaseException], ...],
               status: Callable[[BaseException], int | None]) -> Iterator[None]:
    """Turn a client library's exceptions into TrackerUnavailable (retry later) or TrackerError.

    ``status`` extracts the HTTP status from the library's exception; an unknown status counts as
    unavailable, since queueing is harmless and losing a ticket is not.
    """
    # Imported here: every nightly run opens the ticket session, most with the local SQLite
    # tracker, and requests costs a tenth of a second to import.
    import requests

    try:
        yield
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TrackerUnavailable(f"{tracker} unreachable: {type(exc).__name__}") from exc
    except errors as exc:
        code = status(exc)
        if code is None or code >= 500 or code == 429:
            raise TrackerUnavailable(f"{tracker} answered {code or 'an error'}: {exc}") from exc
        raise TrackerError(f"{tracker} refused the request ({code}): {exc}") from exc


def credential(credentials: Credentials, tracker: str) -> str:
    """The API token (or password used as one) a token-based tracker needs."""
    secret = credentials.token or credentials.password
    if not secret:
        raise TrackerError(f"{tracker} needs an API token: set HPCOS_TRACKER_TOKEN, a ~/.netrc entry or the keyring")
    return secret
