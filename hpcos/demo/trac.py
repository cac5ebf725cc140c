"""A stock Trac 1.6 on loopback, started here and stopped by its PID: the demo's tracker and wiki, and
the Trac tests' (tests/support/trac_fixture.py).

``trac-admin ENV initenv``, a ``[ticket-custom] fingerprint = text`` field, TRAC_ADMIN for one user,
an htdigest file, then ``tracd -d -p PORT -b 127.0.0.1 --auth=*,HTDIGEST,trac --pidfile F -s ENV``.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from hpcos.core.errors import UserError
from hpcos.core.runner import run

USER = "hpcos-bot"
PASSWORD = "s3cret-trac-password-4711"
REALM = "trac"


def _tool(name: str) -> str:
    """trac-admin/tracd from the same environment as this Python (the venv's `test` extra)."""
    candidate = Path(sys.executable).with_name(name)
    if candidate.exists():
        return str(candidate)
    from shutil import which

    found = which(name)
    if not found:
        raise UserError(f"{name} not found: pip install trac==1.6 (the project's `test` extra)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class TracServer:
    env: Path
    port: int
    pidfile: Path
    user: str = USER
    password: str = PASSWORD

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> None:
        _must(
            [
                _tool("tracd"),
                "-d",
                "-p",
                str(self.port),
                "-b",
                "127.0.0.1",
                f"--auth=*,{self.env / 'htdigest'},{REALM}",
                "--pidfile",
                str(self.pidfile),
                "-s",
                str(self.env),
            ]
        )
        try:
            self._wait(timeout)
        except BaseException:  # never leave a daemon behind a failed start
            self.stop()
            raise

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/", timeout=10).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or still loading the environment
                pass
            time.sleep(0.1)
        raise RuntimeError(f"tracd did not answer on {self.url} within {timeout} s")

    def stop(self, timeout: float = 10) -> None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            self.pidfile.unlink(missing_ok=True)
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)


def create_trac(base: Path) -> TracServer:
    base.mkdir(parents=True, exist_ok=True)
    env = base / "trac-env"
    _must(
        [_tool("trac-admin"), str(env), "initenv", "hpcos-test", "sqlite:db/trac.db"], timeout=120
    )
    ini = env / "conf" / "trac.ini"
    ini.write_text(
        ini.read_text() + "\n[ticket-custom]\nfingerprint = text\nfingerprint.label = Fingerprint\n"
    )
    _must([_tool("trac-admin"), str(env), "permission", "add", USER, "TRAC_ADMIN"])
    digest = hashlib.md5(f"{USER}:{REALM}:{PASSWORD}".encode()).hexdigest()
    (env / "htdigest").write_text(f"{USER}:{REALM}:{digest}\n")
    return TracServer(env=env, port=free_port(), pidfile=base / "tracd.pid")


def _must(argv: list[str], timeout: float = 60) -> None:
    done = run(argv, timeout=timeout)
    if done.exit_code != 0:
        raise UserError(
            f"{Path(argv[0]).name} failed (exit {done.exit_code}): {done.output.strip()[-1000:]}"
        )
