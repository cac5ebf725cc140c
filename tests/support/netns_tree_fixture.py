"""Three real hosts in a line, for ClusterShell's tree mode: h (where hpcos runs) -- g (a gateway) --
t (a node only g can reach).

Each is a network namespace with its own hostname (``unshare --uts``) and ``/etc/netns/NS/hosts``; h
and g share one veth link, g and t another, and g forwards nothing (a new namespace's default), so h
has no route to t at all: ssh from h to t fails with "Network is unreachable", and a command reaches t
only through a ClusterShell gateway on g.  g and t run sshd.  Names carry this process's pid; the
sshds are stopped by PID and the namespaces deleted at teardown, also when the start failed half-way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.netns_fixture import (
    NETNS_ETC,
    delete_namespace,
    ip,
    kill_inside,
    make_keys,
    require_namespaces,
)
from support.processes import stop

START_TIMEOUT = 30  # seconds for an sshd to answer, on a loaded machine
NETS = {("h", "g"): "192.168.81", ("g", "t"): "192.168.82"}  # private, only inside these namespaces
ADDRESSES = {
    "h": ["192.168.81.1"],
    "g": ["192.168.81.2", "192.168.82.2"],
    "t": ["192.168.82.3"],
}


@dataclass
class TreeHosts:
    directory: Path
    namespaces: dict[str, str]  # host -> namespace name (unique to this run)
    ssh_config: Path
    sshd: dict[str, subprocess.Popen] = field(default_factory=dict)

    def inside(self, host: str, command: list[str]) -> list[str]:
        """argv that runs ``command`` on ``host``: in its namespace, under its own hostname."""
        return [
            "ip",
            "netns",
            "exec",
            self.namespaces[host],
            "unshare",
            "--uts",
            "sh",
            "-c",
            'hostname "$0" && exec "$@"',
            host,
            *command,
        ]

    def processes(self, host: str) -> list[str]:
        """``pid command line`` of every process in ``host``'s namespace but its sshd listener."""
        listener = self.sshd[host].pid if host in self.sshd else None
        pids = subprocess.run(
            ["ip", "netns", "pids", self.namespaces[host]],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split()
        left = []
        for pid in pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
            except OSError:
                continue
            if int(pid) != listener and cmdline:
                left.append(f"{pid} {cmdline.decode(errors='replace')}")
        return left

    def _answers(self, host: str) -> bool:
        probe = (
            "import socket,sys; s=socket.socket(); s.settimeout(1); "
            "sys.exit(s.connect_ex((sys.argv[1], 22)))"
        )
        done = subprocess.run(
            ["ip", "netns", "exec", self.namespaces[host], "python3", "-c", probe]
            + [ADDRESSES[host][-1]],
            capture_output=True,
            timeout=30,
        )
        return done.returncode == 0

    def start_sshd(self, host: str) -> None:
        log = self.directory / f"sshd-{host}.log"
        config = self.directory / f"sshd-{host}.config"
        with open(log, "w") as stderr:
            self.sshd[host] = subprocess.Popen(
                self.inside(
                    host, [shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f", str(config)]
                ),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers(host):
            if self.sshd[host].poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"sshd on {host} did not start: {log.read_text()[-2000:]}", pytrace=False
                )
            time.sleep(0.2)


def _make(hosts: TreeHosts, tag: str) -> None:
    d = hosts.directory
    for ns in hosts.namespaces.values():
        ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "lo", "up")
    for (left, right), net in NETS.items():
        ends = {host: f"ht{tag}{left}{right}{host}"[-15:] for host in (left, right)}
        ip(
            "link",
            "add",
            ends[left],
            "netns",
            hosts.namespaces[left],
            "type",
            "veth",
            "peer",
            "name",
            ends[right],
            "netns",
            hosts.namespaces[right],
        )
        for host in (left, right):
            address = next(a for a in ADDRESSES[host] if a.startswith(net + "."))
            ns = hosts.namespaces[host]
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", ends[host])
            ip("-n", ns, "link", "set", ends[host], "up")
    # Every host knows every name (h resolves t, and still cannot reach it); a name resolves to the
    # address on the link the asking host shares with it, else its last one.
    for host, ns in hosts.namespaces.items():
        mine = {a.rsplit(".", 1)[0] for a in ADDRESSES[host]}
        lines = ["127.0.0.1 localhost"]
        for other, addresses in ADDRESSES.items():
            shared = [a for a in addresses if a.rsplit(".", 1)[0] in mine]
            lines.append(f"{(shared or addresses)[-1]} {other}")
        (NETNS_ETC / ns).mkdir(parents=True, exist_ok=True)
        (NETNS_ETC / ns / "hosts").write_text("\n".join(lines) + "\n")
    home = make_keys(d)
    for host in ("g", "t"):
        listen = "".join(f"ListenAddress {a}\n" for a in ADDRESSES[host])
        (d / f"sshd-{host}.config").write_text(
            f"Port 22\n{listen}HostKey {d / 'host_key'}\n"
            f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / f'sshd-{host}.pid'}\n"
            "StrictModes no\nUsePAM no\nMaxStartups 64\nPermitRootLogin yes\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\nLogLevel ERROR\n"
            f"SetEnv HOME={home}\n"
        )
    # One client config for every hop (the gateway's ssh clients read the same file: one filesystem).
    hosts.ssh_config.write_text(
        "Host h g t\n"
        f"    User root\n    IdentityFile {d / 'client_key'}\n    IdentitiesOnly yes\n"
        "    UserKnownHostsFile /dev/null\n    StrictHostKeyChecking no\n    LogLevel ERROR\n"
        "    BatchMode yes\n    ConnectTimeout 20\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    for host in ("g", "t"):
        hosts.start_sshd(host)


def stop_tree_hosts(hosts: TreeHosts) -> None:
    for proc in list(hosts.sshd.values()):
        stop(proc)
    for ns in hosts.namespaces.values():
        # What a test left in a namespace (it asserts there is nothing) must not outlive the session.
        kill_inside(ns)
        delete_namespace(ns)


@pytest.fixture(scope="module")
def tree_hosts(tmp_path_factory) -> TreeHosts:
    """h -- g -- t, made once for the module."""
    require_namespaces()
    tag = str(os.getpid())
    directory = tmp_path_factory.mktemp("netns-tree")
    hosts = TreeHosts(
        directory, {h: f"hpcos{tag}-tree-{h}" for h in ("h", "g", "t")}, directory / "ssh_config"
    )
    try:
        _make(hosts, tag)
        yield hosts
    finally:
        stop_tree_hosts(hosts)
