"""HTTP doubles of the trackers that cannot run here (Bugzilla, Jira, GitHub, GitLab, Redmine).

Each double serves, on 127.0.0.1 and a free port, the endpoints its client library calls, with the
request and response shapes of that tracker's documented REST API; it keeps issues in memory and
records every request so a test can check which endpoints were used.  ``fail_with`` makes every
request answer that status, as a tracker behind a failing proxy does; ``delay`` makes it slow.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


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


class TrackerDouble:
    def __init__(self):
        self.requests: list[Request] = []
        self.fail_with: int | None = None
        self.delay = 0.0  # seconds before answering: a tracker that is up but too slow
        self._routes = [getattr(self, name).route + (getattr(self, name),) for name in dir(type(self))
                        if hasattr(getattr(type(self), name), "route")]
        self._server: ThreadingHTTPServer | None = None

    # -- subclasses --
    def authorised(self, request: Request) -> bool:
        raise NotImplementedError

    def unauthorised(self) -> Reply:
        return Reply(401, {"message": "Bad credentials"})

    def not_found(self, request: Request) -> Reply:
        return Reply(404, {"message": "Not Found"})

    # -- serving --
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

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

    def start(self) -> TrackerDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                                  {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                reply = double.dispatch(request)
                if isinstance(reply.body, bytes):  # already encoded (XML-RPC); headers name its type
                    body = reply.body
                else:
                    body = b"" if reply.body is None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                if reply.body is not None and not isinstance(reply.body, bytes):
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                try:
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a ``delay`` longer than its timeout)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
