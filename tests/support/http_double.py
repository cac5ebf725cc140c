"""The one base of every HTTP test double (Jenkins, the trackers): a threaded server on 127.0.0.1 and a
free port, keep-alive like the real servers, that hands each request to the double's ``respond``.

A double is used only where the real server cannot run on the test machines (Jenkins, Bugzilla, Jira,
GitHub, GitLab, Redmine); each subclass follows its server's documented API.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Response = tuple[int, dict[str, str], bytes]


class HttpDouble:
    """Subclasses implement ``respond(method, path, headers, body) -> (status, headers, body)``."""

    server_header: dict[str, str] = {}  # sent with every answer (Jenkins' X-Jenkins)

    def __init__(self):
        self._server: ThreadingHTTPServer | None = None

    def respond(self, method: str, path: str, headers, body: bytes) -> Response:
        raise NotImplementedError

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle on, the body waits for the client's
            # delayed ACK (40 ms), which no real server makes a client wait.
            disable_nagle_algorithm = True

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = double.respond(
                    self.command, self.path, self.headers, body
                )
                self.send_response(status)
                for name, value in {**double.server_header, **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                try:
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a delay longer than its timeout)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=type(self).__name__,
            daemon=True,
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
