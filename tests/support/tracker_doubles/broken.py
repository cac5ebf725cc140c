"""What a tracker URL can answer when it is not a working tracker, served on a loopback socket.

``BrokenServer(kind)`` answers every request the same way: ``cutoff`` promises 4096 bytes and closes
after 10 (a reply cut off mid-body), ``500`` is a server error, ``404`` a plain web server's "not
found", ``html`` someone else's web page, ``sso`` a single-sign-on redirect to another host.
``ReplyDroppingProxy`` forwards to a real server and, once armed, lets one matching request through
but closes the connection instead of passing the reply on (the server did the work; the client
never hears of it).
"""

from __future__ import annotations

import socket
import threading

ANSWERS = {
    "cutoff": b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 4096\r\n\r\nid,status\r\n",
    "500": b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 21\r\nConnection: close\r\n\r\n"
    b"Internal Server Error",
    "404": b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 45\r\nConnection: close\r\n\r\n"
    b"<html><body><h1>Not Found</h1></body></html>\n",
    "html": b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 52\r\nConnection: close\r\n\r\n"
    b"<html><body><h1>Welcome to nginx!</h1></body></html>",
    "sso": b"HTTP/1.1 302 Found\r\nLocation: https://sso.example.org/idp/login?service=trac\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n",
}


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class _Listener:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def stop(self):
        self._stop = True
        self.sock.close()


class BrokenServer(_Listener):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.requests = 0

    def handle(self, conn: socket.socket) -> None:
        with conn:
            if not _read_request(conn):
                return
            self.requests += 1
            answer = ANSWERS[self.kind]
            conn.sendall(answer[:-2] if self.kind == "cutoff" else answer)


class ReplyDroppingProxy(_Listener):
    """Forwards each request to ``target``; ``drop(b"POST /ticket/")`` arms it to drop one reply."""

    def __init__(self, target_port: int):
        super().__init__()
        self.target_port = target_port
        self._armed: bytes | None = None
        self.dropped = 0
        self._lock = threading.Lock()

    def drop(self, request_prefix: bytes) -> None:
        self._armed = request_prefix

    def handle(self, conn: socket.socket) -> None:
        with conn:
            while True:  # requests' keep-alive: several requests per connection
                request = _read_request(conn)
                if not request:
                    return
                with self._lock:
                    drop = self._armed is not None and request.startswith(self._armed)
                    if drop:
                        self._armed = None
                # One request per upstream connection keeps the forwarding simple: read until it closes.
                head, _, body = request.partition(b"\r\n\r\n")
                lines = [
                    line
                    for line in head.split(b"\r\n")
                    if not line.lower().startswith(b"connection:")
                ]
                request = b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body
                with socket.create_connection(
                    ("127.0.0.1", self.target_port), timeout=60
                ) as upstream:
                    upstream.sendall(request)
                    reply = b""
                    while chunk := upstream.recv(65536):
                        reply += chunk
                if (
                    drop
                ):  # the server has answered, so it has done the work: the client never learns
                    self.dropped += 1
                    return
                conn.sendall(reply)
                if b"\r\nConnection: close" in reply.split(b"\r\n\r\n", 1)[0]:
                    return
