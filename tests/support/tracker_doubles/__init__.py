"""HTTP doubles of the trackers that cannot run here (Bugzilla, Jira, GitHub, GitLab, Redmine).

Each double serves, on 127.0.0.1 and a free port, the endpoints its client library calls, with the
request and response shapes of that tracker's documented REST API; it keeps issues in memory and
records every request so a test can check which endpoints were used.  ``fail_with`` makes every
request answer that status, as a tracker behind a failing proxy does; ``delay`` makes it slow.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from support.http_double import HttpDouble, Response


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route

    @property
    def json(self):
        return json.loads(self.body or b"null")

    def arg(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, [default])[0]


class Reply:
    def __init__(self, status: int, body=None, headers: dict[str, str] | None = None):
        self.status = status
        self.body = body
        self.headers = headers or {}


def route(method: str, pattern: str):
    """Mark a double's method as the handler of ``method`` on paths matching ``pattern``."""

    def mark(fn):
        fn.route = (method, re.compile(pattern + r"$"))
        return fn

    return mark


class TrackerDouble(HttpDouble):
    def __init__(self):
        super().__init__()
        self.requests: list[Request] = []
        self.fail_with: int | None = None
        self.delay = 0.0  # seconds before answering: a tracker that is up but too slow
        self._routes = [
            getattr(self, name).route + (getattr(self, name),)
            for name in dir(type(self))
            if hasattr(getattr(type(self), name), "route")
        ]

    # -- subclasses --
    def authorised(self, request: Request) -> bool:
        raise NotImplementedError

    def unauthorised(self) -> Reply:
        return Reply(401, {"message": "Bad credentials"})

    def not_found(self, request: Request) -> Reply:
        return Reply(404, {"message": "Not Found"})

    # -- serving --
    def called(self, method: str, path_pattern: str) -> list[Request]:
        pattern = re.compile(path_pattern + r"$")
        return [r for r in self.requests if r.method == method and pattern.match(r.path)]

    def dispatch(self, request: Request) -> Reply:
        self.requests.append(request)
        if self.delay:
            time.sleep(self.delay)
        if self.fail_with:
            return Reply(self.fail_with, {"message": "Service Unavailable"})
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if method == request.method and match:
                if not self.authorised(request):
                    return self.unauthorised()
                request.params = {k: unquote(v) for k, v in match.groupdict().items()}
                return handler(request)
        return self.not_found(request)

    def respond(self, method: str, path: str, headers, body: bytes) -> Response:
        parts = urlsplit(path)
        request = Request(
            method,
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            {k.lower(): v for k, v in headers.items()},
            body,
        )
        reply = self.dispatch(request)
        out = dict(reply.headers)
        if isinstance(reply.body, bytes):  # already encoded (XML-RPC); headers name its type
            return reply.status, out, reply.body
        if reply.body is None:
            return reply.status, out, b""
        return (
            reply.status,
            {"Content-Type": "application/json; charset=utf-8", **out},
            json.dumps(reply.body).encode(),
        )
