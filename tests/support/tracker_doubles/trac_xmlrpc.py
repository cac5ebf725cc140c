"""Trac's XmlRpcPlugin (trac-hacks.org/wiki/XmlRpcPlugin), ``ticket.*`` at /login/rpc: query (a
Trac query string; unknown fields are ignored), getTicketFields, get -> [id, created, changed, attributes with
``_ts``], create(summary, description, attributes, notify) -> id, update(id, comment, attributes
with ``action`` and ``_ts``, notify; other attributes set those fields) with a Fault "Ticket has been
updated since last get()." for a stale ``_ts``, changeLog(id) -> [[time, author, field, old, new,
permanent], ...].  PyPI's 1.1.9 is Python 2 only, so it cannot run beside Trac 1.6 here."""

from __future__ import annotations

import base64
import hashlib
import xmlrpc.client
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from support.tracker_doubles import Reply, Request, TrackerDouble, route

WORKFLOW = {"leave": None, "resolve": "closed", "reopen": "reopened"}


class TracXmlRpcDouble(TrackerDouble):
    def __init__(self, user: str, password: str, custom_fields: tuple[str, ...] = ("fingerprint",)):
        super().__init__()
        self.basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.user, self.password = user, password
        self.fields = {
            "summary",
            "description",
            "type",
            "component",
            "status",
            "resolution",
            *custom_fields,
        }
        self.tickets: dict[int, dict] = {}
        self.changes: dict[int, list[str]] = {}
        self.on_get = (
            None  # called after each ticket.get: lets a test change a ticket under the client
        )

    def authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if header.startswith("Digest "):  # verify the digest response (RFC 2617, qop=auth, MD5)
            parts = dict(item.strip().split("=", 1) for item in header[7:].split(","))
            parts = {k: v.strip('"') for k, v in parts.items()}
            ha1 = hashlib.md5(f"{self.user}:{parts['realm']}:{self.password}".encode()).hexdigest()
            ha2 = hashlib.md5(f"{request.method}:{parts['uri']}".encode()).hexdigest()
            expected = hashlib.md5(
                f"{ha1}:{parts['nonce']}:{parts['nc']}:{parts['cnonce']}:{parts['qop']}:{ha2}".encode()
            ).hexdigest()
            return parts.get("username") == self.user and parts.get("response") == expected
        return header == self.basic

    def unauthorised(self) -> Reply:
        return Reply(
            401, b"", {"WWW-Authenticate": 'Digest realm="trac", nonce="6e6f6e6365", qop="auth"'}
        )

    @staticmethod
    def _xml(value) -> Reply:
        body = xmlrpc.client.dumps((value,), methodresponse=True, allow_none=False)
        return Reply(200, body.encode(), {"Content-Type": "text/xml"})

    @staticmethod
    def _fault(message: str) -> Reply:
        return Reply(
            200,
            xmlrpc.client.dumps(xmlrpc.client.Fault(1, message)).encode(),
            {"Content-Type": "text/xml"},
        )

    @route("POST", r"/login/rpc")
    def rpc(self, request: Request) -> Reply:
        params, method = xmlrpc.client.loads(request.body)
        handler = {
            "ticket.query": self.query,
            "ticket.get": self.get,
            "ticket.create": self.create,
            "ticket.update": self.update,
            "ticket.getTicketFields": self.ticket_fields,
            "ticket.changeLog": self.change_log,
        }.get(method)
        if handler is None:
            return self._fault(f'RPC method "{method}" not found')
        return handler(*params)

    def _view(self, ticket_id: int) -> list:
        ticket = self.tickets[ticket_id]
        return [
            ticket_id,
            ticket["_created"],
            ticket["_changed"],
            {k: v for k, v in ticket.items() if not k.startswith("_")}
            | {"_ts": str(ticket["_ts"])},
        ]

    def ticket_fields(self) -> Reply:
        return self._xml(
            [
                {"name": name, "label": name.capitalize(), "type": "text"}
                for name in sorted(self.fields)
            ]
        )

    def query(self, qstr: str = "status!=closed") -> Reply:
        filters = [(k, v) for k, v in parse_qsl(qstr) if k in self.fields]
        ids = [i for i, t in self.tickets.items() if all(t.get(k) == v for k, v in filters)]
        return self._xml(sorted(ids, reverse=("desc", "1") in parse_qsl(qstr)))

    def get(self, ticket_id: int) -> Reply:
        if ticket_id not in self.tickets:
            return self._fault(f"Ticket {ticket_id} does not exist.")
        view = self._view(ticket_id)
        if self.on_get:
            self.on_get(ticket_id)
        return self._xml(view)

    def create(
        self, summary: str, description: str, attributes: dict | None = None, notify: bool = False
    ) -> Reply:
        ticket_id = len(self.tickets) + 1
        now = xmlrpc.client.DateTime(datetime.now(UTC))
        self.tickets[ticket_id] = {
            "summary": summary,
            "description": description,
            "status": "new",
            "resolution": "",
            "_created": now,
            "_changed": now,
            "_ts": 1,
            **{k: v for k, v in (attributes or {}).items() if k in self.fields},
        }
        self.changes[ticket_id] = []
        return self._xml(ticket_id)

    def update(
        self, ticket_id: int, comment: str, attributes: dict | None = None, notify: bool = False
    ) -> Reply:
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            return self._fault(f"Ticket {ticket_id} does not exist.")
        attributes = dict(attributes or {})
        if str(attributes.pop("_ts", ticket["_ts"])) != str(ticket["_ts"]):
            return self._fault("Ticket has been updated since last get().")
        action = attributes.pop("action", "leave")
        if action not in WORKFLOW:
            return self._fault(f"invalid action '{action}'")
        if WORKFLOW[action]:
            ticket["status"] = WORKFLOW[action]
            ticket["resolution"] = (
                attributes.get("action_resolve_resolve_resolution", "fixed")
                if action == "resolve"
                else ""
            )
        ticket.update(
            {
                k: v
                for k, v in attributes.items()
                if k in self.fields and k not in ("status", "resolution")
            }
        )
        if comment:
            self.changes[ticket_id].append(comment)
        ticket["_ts"] += 1
        return self._xml(self._view(ticket_id))

    def change_log(self, ticket_id: int, when: int = 0) -> Reply:
        if ticket_id not in self.tickets:
            return self._fault(f"Ticket {ticket_id} does not exist.")
        now = xmlrpc.client.DateTime(datetime.now(UTC))
        return self._xml(
            [[now, self.user, "comment", "", text, 1] for text in self.changes[ticket_id]]
        )

    def comment_by_someone_else(self, ticket_id: int) -> None:
        self.changes[ticket_id].append("a human was here")
        self.tickets[ticket_id]["_ts"] += 1
