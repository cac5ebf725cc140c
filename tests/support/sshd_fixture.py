"""A real sshd on 127.0.0.1 that serves any number of "node" names (see docs/architecture.md, "Testing").

The sshd has its own host key, authorized key and config in a tmp dir; an ssh client config maps
``node*`` names to it and ``down*`` names to a closed port, so ClusterShell fans out over real ssh
to node[001-032] and meets a genuinely unreachable node.  Stopped by its PID at teardown.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_tool

from support.processes import stop

START_TIMEOUT = 10


@dataclass
class LoopbackSshd:
    port: int
    closed_port: int
    client_config: Path  # ssh -F: Host node* -> this sshd, Host down* -> a closed port
    directory: Path

    def profile_yaml(self, nodes: str, fanout: int = 64, command_timeout: float = 30) -> str:
        """An ssh cluster profile for these node names."""
        return (
            f"name: loopback-ssh\nlauncher: ssh\nnodes: '{nodes}'\nnode_class: loopback\n"
            f"timeouts: {{command: {command_timeout}, mpi: 60}}\n"
            # Generous: on a loaded shared machine a loopback handshake can take seconds.
            f"ssh: {{fanout: {fanout}, connect_timeout: 30, config: '{self.client_config}'}}\n"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_loopback_sshd(
    directory: Path, *, multiplex: bool = True, extra_config: str = ""
) -> tuple[LoopbackSshd, subprocess.Popen]:
    """Start sshd for ``node*`` names; ``multiplex`` keeps one ssh master per name (ControlPersist);
    ``extra_config`` is appended to sshd_config (more ListenAddress lines, Match blocks)."""
    sshd = require_tool("sshd", "openssh-server")
    keygen = require_tool("ssh-keygen", "openssh-client")
    require_tool("ssh", "openssh-client")
    for key in ("host_key", "client_key"):
        subprocess.run(
            [keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(directory / key)],
            check=True,
            timeout=30,
        )
    (directory / "authorized_keys").write_text((directory / "client_key.pub").read_text())
    port, closed_port = free_port(), free_port()
    home = directory / "home"
    home.mkdir()
    (directory / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {directory / 'host_key'}\n"
        f"AuthorizedKeysFile {directory / 'authorized_keys'}\nPidFile {directory / 'sshd.pid'}\n"
        # Without these, parallel logins get dropped (MaxStartups) or refused (StrictModes on tmp dirs).
        "StrictModes no\nUsePAM no\nMaxStartups 256\nMaxSessions 256\nPermitRootLogin yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\nLogLevel ERROR\n"
        # The "nodes" get their own home: this machine's root ~/.bashrc runs `pyenv rehash`, which
        # races between parallel logins and sprinkles errors into some nodes' stderr.
        f"SetEnv HOME={home}\n" + extra_config
    )
    client = directory / "ssh_config"
    common = (
        f"    User {os.environ.get('USER') or 'root'}\n    IdentityFile {directory / 'client_key'}\n"
        "    IdentitiesOnly yes\n    UserKnownHostsFile /dev/null\n    StrictHostKeyChecking no\n"
        "    LogLevel ERROR\n    BatchMode yes\n"
        # The post-quantum default (sntrup761) costs ~70 ms of CPU per login on each side; on
        # loopback, with hundreds of logins on two shared cores, that is most of the fan-out time.
        "    KexAlgorithms curve25519-sha256\n"
    )
    if multiplex:
        # One handshake per node name for the whole session, as a site would set up clush/pdsh:
        # this machine is shared and each loopback handshake costs about half a second.
        common += (
            f"    ControlMaster auto\n    ControlPath {directory}/cm-%n\n    ControlPersist 120\n"
        )
    client.write_text(
        f"Host node*\n    HostName 127.0.0.1\n    Port {port}\n{common}"
        f"Host down*\n    HostName 127.0.0.1\n    Port {closed_port}\n{common}"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    proc = subprocess.Popen(
        [sshd, "-D", "-e", "-f", str(directory / "sshd_config")],
        stdout=subprocess.DEVNULL,
        stderr=open(directory / "sshd.log", "w"),
    )
    deadline = time.monotonic() + START_TIMEOUT
    while not _listening(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(
                f"sshd did not start: {(directory / 'sshd.log').read_text()}", pytrace=False
            )
        time.sleep(0.05)
    return LoopbackSshd(port, closed_port, client, directory), proc


def stop_loopback_sshd(sshd: LoopbackSshd, proc: subprocess.Popen) -> None:
    for socket_path in sshd.directory.glob("cm-*"):  # the persistent masters, one per node name
        subprocess.run(
            ["ssh", "-S", str(socket_path), "-O", "exit", "node"], capture_output=True, timeout=10
        )
    stop(proc)


@pytest.fixture(scope="session")
def loopback_sshd(tmp_path_factory) -> LoopbackSshd:
    sshd, proc = start_loopback_sshd(tmp_path_factory.mktemp("sshd"))
    yield sshd
    stop_loopback_sshd(sshd, proc)
