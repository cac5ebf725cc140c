"""Trac: a stock Trac (1.4+) through its web interface, or through the XML-RPC plugin where a site has it.

The fingerprint is a ``[ticket-custom]`` text field (``fingerprint = text`` by default, name set by
``tracker.fingerprint_field``).  Web transport: log in with HTTP digest (GET /login), create through
the /newticket form with the ``trac_form_token`` cookie sent back as ``__FORM_TOKEN``, find through
the query's CSV export, comment/reopen/resolve through the ticket form with the ticket's
``view_time``; a stale ``view_time`` is a mid-air collision, so the ticket is re-read and the change
sent again.
"""

from __future__ import annotations

import csv
import html
import io
import re
import xmlrpc.client
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import urlsplit

import requests
from requests.auth import HTTPDigestAuth

from hpcos.tickets.backends import (
    NotATracker,
    Ticket,
    TrackerAuthError,
    TrackerBackend,
    TrackerError,
    TrackerMisconfigured,
    TrackerServerError,
    by_status,
    pick,
    transport_error,
)

_VIEW_TIME = re.compile(r'name="view_time"\s+value="(\d+)"')
_WARNING = re.compile(r'<div id="warning"[^>]*>(.*?)</div>', re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")
_CREATED = re.compile(r"/ticket/(\d+)")
_TRAC_PAGE = re.compile(
    r"Powered by\s*<a[^>]*>\s*<strong>Trac|trac_form_token|<body[^>]*>\s*<div id=\"banner\""
)
COLLISION_RETRIES = 5


class MidAirCollision(TrackerError):
    """The ticket changed between reading its form and posting to it."""


class TracTransport(ABC):
    """What TracTracker needs from Trac, whatever the protocol."""

    @abstractmethod
    def query(self, field: str, value: str) -> list[dict[str, str]]:
        """Tickets whose ``field`` equals ``value``, newest first: dicts with id, status, resolution."""

    @abstractmethod
    def create(self, fields: dict[str, str]) -> str:
        """Create a ticket from field values; returns its id."""

    @abstractmethod
    def update(self, ticket_id: str, action: str, comment: str, options: dict[str, str]) -> None:
        """Apply a workflow ``action`` (leave, resolve, reopen) with a comment."""

    def field_option(self, field: str) -> str:
        """How ``update``'s options name a ticket field."""
        return f"field_{field}"

    @abstractmethod
    def texts(self, ticket_id: str) -> str:
        """The ticket's description and comments (as Trac shows them), to look for a marker."""


class TracWebTransport(TracTransport):
    def __init__(self, url: str, user: str | None, password: str | None, timeout: float = 30):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self._auth = HTTPDigestAuth(user, password) if user and password else None
        self._logged_in = False

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        """One request to Trac, every failure classed (unreachable, authentication, not Trac, server error);
        also what the outage wiki page is written through."""
        try:
            response = self.session.request(
                method, self.url + path, timeout=self.timeout, allow_redirects=False, **kwargs
            )
        except (
            requests.RequestException
        ) as exc:  # refused, reset, timed out, cut off mid-body, bad URL
            raise transport_error(exc, "Trac", self.url) from exc
        code = response.status_code
        location = response.headers.get("Location", "")
        if code in (301, 302, 303, 307, 308) and urlsplit(location).netloc not in (
            "",
            urlsplit(self.url).netloc,
        ):
            raise TrackerAuthError(
                f"Trac at {self.url}: {path} redirected to {location.split('?')[0]} "
                "(single sign-on?); hpcos logs in with HTTP digest on Trac's /login",
                self.url,
            )
        if code in (401, 403):
            raise TrackerAuthError(
                f"Trac at {self.url} refused {path} ({code}): "
                "check HPCOS_TRACKER_USER/HPCOS_TRACKER_PASSWORD and TICKET_* permissions",
                self.url,
            )
        if code == 404 and not self._is_trac(response):
            raise by_status(
                code,
                f"Trac at {self.url}: {path} not found (404): is tracker.url the Trac "
                "environment's URL?",
                self.url,
            )
        if code >= 500 or code == 429:
            raise TrackerServerError(f"Trac at {self.url} answered {code} for {path}", self.url)
        return response

    @staticmethod
    def _is_trac(response: requests.Response) -> bool:
        return "trac_form_token" in response.cookies or bool(
            _TRAC_PAGE.search(response.text[:200000])
        )

    def _not_trac(self, path: str, response: requests.Response) -> NotATracker:
        kind = response.headers.get("Content-Type", "no content type").split(";")[0]
        return NotATracker(
            f"Trac at {self.url}: {path} answered HTTP {response.status_code} ({kind}) that is "
            "not a Trac page: is tracker.url the Trac environment's URL?",
            self.url,
        )

    def login(self) -> None:
        if self._logged_in or self._auth is None:
            return
        # Digest auth happens on /login only; Trac then keeps the session in its trac_auth cookie.
        response = self.request("GET", "/login", auth=self._auth)
        if "trac_auth" not in self.session.cookies:
            if not self._is_trac(response):
                raise self._not_trac("/login", response)
            if response.status_code == 404:
                # Trac itself answered, but has no /login there: the URL names a path inside (or beside)
                # the environment, not the environment.  A password would not help.
                raise by_status(
                    404,
                    f"Trac at {self.url}: /login not found (404): is tracker.url the Trac "
                    "environment's URL?",
                    self.url,
                )
            raise TrackerAuthError(
                f"Trac at {self.url}: login as {self._auth.username} failed "
                f"(HTTP {response.status_code}, no trac_auth cookie)",
                self.url,
            )
        self._logged_in = True

    def _form_token(self) -> str:
        token = self.session.cookies.get("trac_form_token")
        if not token:  # the first page of a session sets it
            self.request("GET", "/newticket")
            token = self.session.cookies.get("trac_form_token")
        if not token:
            raise TrackerAuthError(
                f"Trac at {self.url} gave no form token (TICKET_CREATE missing?)", self.url
            )
        return token

    @staticmethod
    def _warning(response: requests.Response) -> str:
        match = _WARNING.search(response.text)
        text = _TAGS.sub(" ", match.group(1)) if match else f"HTTP {response.status_code}"
        return " ".join(text.replace("close", "", 1).split())

    def query(self, field: str, value: str) -> list[dict[str, str]]:
        self.login()
        params = [
            (field, value),
            ("format", "csv"),
            ("col", "id"),
            ("col", "status"),
            ("col", "resolution"),
            ("col", field),
            ("order", "id"),
            ("desc", "1"),
            ("max", "0"),
        ]
        response = self.request("GET", "/query", params=params)
        if response.status_code != 200 or "csv" not in response.headers.get("Content-Type", ""):
            if not self._is_trac(response):
                raise self._not_trac("/query", response)
            raise TrackerError(
                f"Trac at {self.url}: query for {field}={value} failed: {self._warning(response)}",
                self.url,
            )
        reader = csv.DictReader(io.StringIO(response.content.decode("utf-8-sig")))
        rows = [{k.lower(): v for k, v in row.items()} for row in reader]
        # Trac drops filters and columns on fields it does not know, and would answer with every
        # ticket: without the field, hpcos would comment on strangers' tickets.
        if field not in [name.lower() for name in reader.fieldnames or []]:
            raise TrackerMisconfigured(
                f"Trac at {self.url} has no ticket field {field!r}: add `{field} = text` "
                "under [ticket-custom] in trac.ini",
                self.url,
            )
        return [row for row in rows if row[field] == value]

    def texts(self, ticket_id: str) -> str:
        self.login()
        page = self.request("GET", f"/ticket/{ticket_id}")
        if page.status_code != 200:
            raise TrackerError(
                f"Trac at {self.url}: ticket #{ticket_id} unreadable: {self._warning(page)}",
                self.url,
            )
        return html.unescape(_TAGS.sub("", page.text))

    def create(self, fields: dict[str, str]) -> str:
        self.login()
        data = {f"field_{name}": value for name, value in fields.items()}
        data.update(
            {"__FORM_TOKEN": self._form_token(), "action": "create", "submit": "Create ticket"}
        )
        response = self.request("POST", "/newticket", data=data)
        match = _CREATED.search(response.headers.get("Location", ""))
        if response.status_code not in (302, 303) or not match:
            raise TrackerError(
                f"Trac at {self.url} did not create the ticket: {self._warning(response)}", self.url
            )
        return match.group(1)

    def update(self, ticket_id: str, action: str, comment: str, options: dict[str, str]) -> None:
        self.login()
        for _ in range(COLLISION_RETRIES):
            page = self.request("GET", f"/ticket/{ticket_id}")
            view_time = _VIEW_TIME.search(page.text)
            if page.status_code != 200 or not view_time:
                raise TrackerError(
                    f"Trac at {self.url}: ticket #{ticket_id} has no change form: "
                    f"{self._warning(page)}",
                    self.url,
                )
            data = {
                "__FORM_TOKEN": self._form_token(),
                "comment": comment,
                "action": action,
                "view_time": view_time.group(1),
                "start_time": view_time.group(1),
                "submit": "Submit changes",
                **options,
            }
            response = self.request("POST", f"/ticket/{ticket_id}", data=data)
            if response.status_code in (302, 303):
                return
            warning = self._warning(response)
            if "modified" not in warning:  # anything but a mid-air collision is final
                raise TrackerError(
                    f"Trac at {self.url} refused the change to #{ticket_id}: {warning}", self.url
                )
        raise MidAirCollision(
            f"Trac ticket #{ticket_id} kept changing under us ({COLLISION_RETRIES} tries)"
        )


class TracXmlRpcTransport(TracTransport):
    """The trac-hacks XmlRpcPlugin's ``ticket.*`` API at /login/rpc (digest auth as for the web UI).

    ``ticket.update`` takes the ``_ts`` that ``ticket.get`` returned; a stale one is the XML-RPC
    form of a mid-air collision, so the ticket is read again and the change sent again.
    """

    def __init__(self, url: str, user: str | None, password: str | None, timeout: float = 30):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.auth = HTTPDigestAuth(user, password) if user and password else None
        self.endpoint = self.url + ("/login/rpc" if self.session.auth else "/rpc")
        self._fields: set[str] = set()

    def _call(self, method: str, *params):
        body = xmlrpc.client.dumps(params, method, allow_none=False)
        try:
            response = self.session.post(
                self.endpoint,
                data=body.encode(),
                timeout=self.timeout,
                headers={"Content-Type": "text/xml"},
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise transport_error(exc, "Trac XML-RPC", self.url) from exc
        if response.status_code != 200:
            raise by_status(
                response.status_code,
                f"Trac XML-RPC at {self.url} refused {method} ({response.status_code})",
                self.url,
            )
        try:
            return xmlrpc.client.loads(response.content)[0][0]
        except xmlrpc.client.Fault as fault:
            if "modified" in fault.faultString or "updated since" in fault.faultString:
                raise MidAirCollision(fault.faultString) from fault
            raise TrackerError(
                f"Trac XML-RPC at {self.url}: {method}: {fault.faultString}", self.url
            ) from fault
        except (
            xmlrpc.client.ResponseError,
            ValueError,
            IndexError,
        ) as exc:  # HTML, or XML that is not XML-RPC
            raise NotATracker(
                f"Trac XML-RPC at {self.url}: {method} answered something that is not XML-RPC "
                f"({type(exc).__name__}): is the XmlRpcPlugin enabled?",
                self.url,
            ) from exc

    def query(self, field: str, value: str) -> list[dict[str, str]]:
        if not self._fields:
            self._fields = {f["name"] for f in self._call("ticket.getTicketFields")}
        if field not in self._fields:  # the query would ignore the filter and answer every ticket
            raise TrackerMisconfigured(
                f"Trac at {self.url} has no ticket field {field!r}: add `{field} = text` "
                "under [ticket-custom] in trac.ini",
                self.url,
            )
        rows = []
        for ticket_id in self._call("ticket.query", f"{field}={value}&order=id&desc=1&max=0"):
            _, _, _, attributes = self._call("ticket.get", ticket_id)
            if attributes.get(field) == value:
                rows.append(
                    {
                        "id": str(ticket_id),
                        "status": attributes.get("status", ""),
                        "resolution": attributes.get("resolution", ""),
                    }
                )
        return rows

    def create(self, fields: dict[str, str]) -> str:
        attributes = {k: v for k, v in fields.items() if k not in ("summary", "description")}
        return str(
            self._call("ticket.create", fields["summary"], fields["description"], attributes, False)
        )

    def field_option(self, field: str) -> str:
        return field

    def texts(self, ticket_id: str) -> str:
        _, _, _, attributes = self._call("ticket.get", int(ticket_id))
        changes = self._call("ticket.changeLog", int(ticket_id))
        return "\n".join(
            [
                attributes.get("description", ""),
                *(str(change[4]) for change in changes if change[2] == "comment"),
            ]
        )

    def update(self, ticket_id: str, action: str, comment: str, options: dict[str, str]) -> None:
        for _ in range(COLLISION_RETRIES):
            _, _, _, attributes = self._call("ticket.get", int(ticket_id))
            try:
                self._call(
                    "ticket.update",
                    int(ticket_id),
                    comment,
                    {"action": action, "_ts": attributes["_ts"], **options},
                    False,
                )
                return
            except MidAirCollision:
                continue
        raise MidAirCollision(
            f"Trac ticket #{ticket_id} kept changing under us ({COLLISION_RETRIES} tries)"
        )


class TracTracker(TrackerBackend):
    name = "trac"

    def __init__(
        self,
        transport: TracTransport,
        url: str,
        field: str = "fingerprint",
        fields: dict[str, str] | None = None,
        close_resolution: str = "fixed",
    ):
        self.transport = transport
        self.url = url.rstrip("/")
        self.field = field
        self.fields = {"type": "defect", **(fields or {})}
        self.close_resolution = close_resolution

    @classmethod
    def from_spec(cls, spec, store_root: Path, credentials) -> TracTracker:
        if not spec.url:
            raise TrackerMisconfigured("tracker.url is required for the trac backend")
        kind = TracXmlRpcTransport if spec.trac_transport == "xmlrpc" else TracWebTransport
        transport = kind(spec.url, credentials.user, credentials.password, spec.timeout)
        fields = dict(spec.fields)
        if spec.component:
            fields.setdefault("component", spec.component)
        return cls(
            transport, spec.url, spec.fingerprint_field, fields, spec.close_status or "fixed"
        )

    def _ticket(self, row: dict[str, str], key: str) -> Ticket:
        return Ticket(
            id=row["id"],
            key=key,
            status=row["status"],
            resolution=row.get("resolution", ""),
            closed=row["status"] == "closed",
            url=f"{self.url}/ticket/{row['id']}",
        )

    def find(self, key: str) -> Ticket | None:
        return pick([self._ticket(row, key) for row in self.transport.query(self.field, key)])

    def create(self, summary: str, description: str, key: str) -> Ticket:
        ticket_id = self.transport.create(
            {**self.fields, "summary": summary, "description": description, self.field: key}
        )
        return Ticket(
            id=ticket_id, key=key, status="new", closed=False, url=f"{self.url}/ticket/{ticket_id}"
        )

    def comment(self, ticket: Ticket, text: str) -> None:
        self.transport.update(ticket.id, "leave", text, {})

    def reopen(self, ticket: Ticket, text: str) -> None:
        self.transport.update(ticket.id, "reopen", text, {})

    def close(self, ticket: Ticket, text: str) -> None:
        self.transport.update(
            ticket.id, "resolve", text, {"action_resolve_resolve_resolution": self.close_resolution}
        )

    def rekey(self, ticket: Ticket, key: str) -> bool:
        self.transport.update(
            ticket.id, "leave", "", {self.transport.field_option(self.field): key}
        )
        return True

    def has_marker(self, ticket: Ticket, marker: str) -> bool:
        return marker in self.transport.texts(ticket.id)
