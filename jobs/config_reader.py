"""Reading a thousand job configs: GET ``job/.../config.xml`` on one keep-alive connection per thread.

A no-op ``hpcos jobs update`` is mostly this read.  Through python-jenkins each GET costs about a
millisecond of CPU in requests' machinery, and the reading threads share one interpreter lock, so
the read was CPU-bound at about 1.3 s for 1,000 jobs however many threads waited on Jenkins.  The
standard library's ``http.client`` does the same GET for a fraction of that.  Only plain reads go this
way, and only where no proxy applies (requests knows the proxy rules; everything else still goes
through python-jenkins); TLS verifies against the same CA bundle requests would use.
"""

from __future__ import annotations

import base64
import http.client
import os
import ssl
import threading
import urllib.request
from urllib.parse import quote, urlsplit

from hpcos.core.errors import HpcosError


class HttpStatus(HpcosError):
    """A non-200 answer, shaped the way ``jenkins_sync.explain`` reads requests' errors."""

    family = "tracker"  # a web service's answer, as a tracker's is

    def __init__(self, status: int, reason: str, text: str):
        super().__init__(f"{status} {reason}")
        self.response = type(
            "Response", (), {"status_code": status, "reason": reason, "text": text}
        )()


def usable(url: str) -> bool:
    """Whether ``url`` can be read directly: http(s), and no proxy configured for its host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    proxies = urllib.request.getproxies()
    return parts.scheme not in proxies or bool(urllib.request.proxy_bypass(parts.hostname))


def _context() -> ssl.SSLContext:
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if not bundle:
        try:
            import certifi

            bundle = certifi.where()
        except ImportError:
            bundle = None
    return ssl.create_default_context(cafile=bundle)


class ConfigReader:
    """Thread-safe: each thread keeps its own connection."""

    def __init__(self, url: str, user: str | None, token: str | None, timeout: float):
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/") + "/"
        self.timeout = timeout
        self.headers = {"Accept": "application/xml"}
        if user and token:
            self.headers["Authorization"] = (
                "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
            )
        self._local = threading.local()
        self._ssl = _context() if self.https else None

    def _connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        if fresh or not hasattr(self._local, "connection"):
            if self.https:
                self._local.connection = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=self._ssl
                )
            else:
                self._local.connection = http.client.HTTPConnection(
                    self.host, self.port, timeout=self.timeout
                )
        return self._local.connection

    def config(self, name: str) -> str:
        path = (
            self.prefix
            + "".join(f"job/{quote(part, safe='')}/" for part in name.split("/"))
            + "config.xml"
        )
        for attempt in (1, 2):
            connection = self._connection(fresh=attempt == 2)
            try:
                connection.request("GET", path, headers=self.headers)
                response = connection.getresponse()
                body = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()
                if (
                    attempt == 2
                ):  # Jenkins closed a kept-alive connection: one new one, then give up
                    raise
        if response.status != 200:
            raise HttpStatus(response.status, response.reason, body.decode("utf-8", "replace"))
        return body.decode("utf-8")
