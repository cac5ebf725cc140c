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

from hpcos.core.errors import HpcosError
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


LINE_MAX = 300


class TrackerError(HpcosError):
    """The tracker refused a request (invalid field, missing project...).

    Every tracker error has a ``cause`` a person can act on, and says which URL it concerns.  All but
    a bad configuration are soft (the family's default): the action waits in the queue until someone
    fixes the tracker, the credentials or the network (``retry``).
    """

    family = "tracker"
    cause = "refused"

    def __init__(self, message: str, url: str = ""):
        super().__init__(message)
        self.url = url

    @property
    def retry(self) -> bool:
        """Whether the action is worth keeping in the queue: the tracker's word for a soft error."""
        return not self.fatal

    def line(self) -> str:
        """One line: cause, then the message (which names the URL)."""
        text = " ".join(str(self).split())
        if self.url and self.url not in text:
            text = f"{self.url}: {text}"
        if len(text) > LINE_MAX:  # a client library may quote a whole response
            text = text[: LINE_MAX - 3] + "..."
        return f"{self.cause}: {text}"


class TrackerUnavailable(TrackerError):
    """The tracker is down, too slow, or its answer was cut off: try again later."""

    cause = "unreachable"


class TrackerServerError(TrackerUnavailable):
    """The tracker answered 5xx (or 429): try again later."""

    cause = "server error"


class TrackerAuthError(TrackerError):
    """Credentials refused, or the tracker sent us to a single-sign-on page hpcos cannot follow."""

    cause = "authentication"


class TrackerNotFound(TrackerError):
    """The URL answers, but not with the tracker's page there (404: wrong path or project)."""

    cause = "not found"


class NotATracker(TrackerError):
    """Something answered, but not the tracker the site names (a proxy's page, another web app)."""

    cause = "not a tracker"


class TrackerMisconfigured(TrackerError):
    """site.yaml's tracker settings cannot work (no URL, a URL without scheme or host, a bad port).
    ``specs check`` refuses these; queueing would only repeat the mistake later."""

    cause = "bad configuration"
    fatal = True


def by_status(code: int, message: str, url: str = "") -> TrackerError:
    """The error an HTTP status means."""
    if code in (401, 403):
        return TrackerAuthError(message, url)
    if code == 404:
        return TrackerNotFound(message, url)
    if code >= 500 or code == 429:
        return TrackerServerError(message, url)
    return TrackerError(message, url)


def transport_error(exc: BaseException, what: str, url: str) -> TrackerError:
    """A ``requests`` exception as a tracker error: a URL requests cannot use is configuration;
    everything else on the wire (refused, reset, timed out, a reply cut off mid-body) is unreachable."""
    import requests

    if isinstance(exc, requests.exceptions.JSONDecodeError):  # an answer, but not the tracker's API
        return NotATracker(
            f"{what} at {url} answered something that is not its API (not JSON)", url
        )
    if isinstance(
        exc,
        (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            requests.exceptions.URLRequired,
            ValueError,
        ),
    ) and not isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return TrackerMisconfigured(f"{what} at {url}: unusable URL ({type(exc).__name__})", url)
    reason = type(exc).__name__
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        reason = "reply cut off mid-body (ChunkedEncodingError)"
    return TrackerUnavailable(f"{what} at {url} unreachable: {reason}", url)


# Markup of ticket text per tracker (see ``content.render``); known without connecting.
MARKUP = {name: kind.markup for name, kind in TRACKERS.items()}


class TrackerBackend(ABC):
    name: str
    can_reopen = True
    url = ""  # what error lines name (``open_backend`` sets it from site.yaml)

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

    def has_marker(self, ticket: Ticket, marker: str) -> bool:
        """Whether the ticket's description or one of its last comments carries ``marker``.

        Read before re-sending a change: a tracker that stored the change but whose reply was
        lost must not get it twice.  A backend that cannot read comments answers False (the state
        file's per-run record is then the only guard); every backend hpcos ships reads them.
        """
        return False

    def rekey(self, ticket: Ticket, key: str) -> bool:
        """Make ``ticket`` carry ``key`` from now on (a newer fingerprint version).  False where the
        backend cannot: hpcos then keeps finding the ticket by its old key."""
        return False


def pick(tickets: list[Ticket]) -> Ticket | None:
    """``find``'s rule over candidates listed newest first: open beats closed."""
    return next((t for t in tickets if not t.closed), tickets[0] if tickets else None)


BACKENDS = {name: kind.implementation for name, kind in TRACKERS.items()}


def open_backend(spec: TrackerSpec, store_root: Path, credentials: Credentials) -> TrackerBackend:
    module, _, cls = BACKENDS[spec.backend].partition(":")
    backend = getattr(importlib.import_module(module), cls).from_spec(spec, store_root, credentials)
    if not backend.url:
        backend.url = (spec.url or "").rstrip("/")
    return backend


@contextmanager
def translated(
    tracker: str,
    errors: tuple[type[BaseException], ...],
    status: Callable[[BaseException], int | None],
    url: str = "",
) -> Iterator[None]:
    """Turn a client library's exceptions into classified tracker errors.

    ``status`` extracts the HTTP status from the library's exception; an unknown status counts as
    unavailable, since queueing is harmless and losing a ticket is not.
    """
    # Imported here: every nightly run opens the ticket session, most with the local SQLite
    # tracker, and requests costs a tenth of a second to import.
    import requests

    where = f"{tracker} at {url}" if url else tracker
    try:
        yield
    except TrackerError:
        raise
    except (*errors, requests.RequestException) as exc:
        code = status(exc) if isinstance(exc, errors) else None
        if code is None and isinstance(exc, requests.RequestException):
            raise transport_error(exc, tracker, url or "its URL") from exc
        if code is None:
            raise TrackerUnavailable(f"{where} answered an error: {exc}", url) from exc
        if code >= 500 or code == 429:
            raise TrackerServerError(f"{where} answered {code}: {exc}", url) from exc
        raise by_status(code, f"{where} refused the request ({code}): {exc}", url) from exc


def credential(credentials: Credentials, tracker: str) -> str:
    """The API token (or password used as one) a token-based tracker needs."""
    secret = credentials.token or credentials.password
    if not secret:
        raise TrackerAuthError(
            f"{tracker} needs an API token: set HPCOS_TRACKER_TOKEN, a ~/.netrc entry "
            "or the keyring"
        )
    return secret
