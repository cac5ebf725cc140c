"""A real sshd on 127.0.0.1 that serves any number of "node" names (DESIGN.md).

The sshd has its own host key, authorized key and config in a tmp dir; an ssh client config maps
``node*`` names to it and ``down*`` names to a closed port, so ClusterShell fans out over real ssh
to node[001-032] and meets a genuinely unreachable node.  Stopped by its PID at teardown.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_tool

START_TIMEOUT = 10


@dataclass
class LoopbackSshd:
    port: int
    closed_port: int
    client_config: Path  # ssh -F: Host node* -> this sshd, Host down* -> a closed port
    directory: Path

    def profile_yaml(self, nodes: str, fanout: int = 64, command_timeout: float = 30) -> str:
        """An ssh cluster profile for these node names."""
        return (f"name: loopback-ssh\nlauncher: ssh\nnodes: '{nodes}'\nnode_class: loopback\n"
                f"timeouts: {{command: {command_timeout}, mpi: 60}}\n"
                f"ssh: {{fanout: {fanout}, connect_timeout: 5, config: '{self.client_config}'}}\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def loopback_sshd(tmp_path_factory) -> LoopbackSshd:
    sshd = require_tool("sshd", "openssh-server")
    keygen = require_tool("ssh-keygen", "openssh-client")
    require_tool("ssh", "openssh-client")
    directory = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "client_key"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(directory / key)],
                       check=True, timeout=30)
    (directory / "authorized_keys").write_text((directory / "client_key.pub").read_text())
    port, closed_port = free_port(), free_port()
    (directory / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {directory / 'host_key'}\n"
        f"AuthorizedKeysFile {directory / 'authorized_keys'}\nPidFile {directory / 'sshd.pid'}\n"
        # Without these, parallel logins get dropped (MaxStartups) or refused (StrictModes on tmp dirs).
        "StrictModes no\nUsePAM no\nMaxStartups 256\nMaxSessions 256\nPermitRootLogin yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\nLogLevel ERROR\n")
    client = directory / "ssh_config"
    common = (f"    User {os.environ.get('USER') or 'root'}\n    IdentityFile {directory / 'client_key'}\n"
              "    IdentitiesOnly yes\n    UserKnownHostsFile /dev/null\n    StrictHostKeyChecking no\n"
              "    LogLevel ERROR\n    BatchMode yes\n")
    client.write_text(f"Host node*\n    HostName 127.0.0.1\n    Port {port}\n{common}"
                      f"Host down*\n    HostName 127.0.0.1\n    Port {closed_port}\n{common}")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(directory / "sshd_config")],
                            stdout=subprocess.DEVNULL, stderr=open(directory / "sshd.log", "w"))
    deadline = time.monotonic() + START_TIMEOUT
    while not _listening(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"sshd did not start: {(directory / 'sshd.log').read_text()}", pytrace=False)
        time.sleep(0.05)
    yield LoopbackSshd(port, closed_port, client, directory)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
