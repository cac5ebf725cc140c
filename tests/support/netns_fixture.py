"""Two real hosts on one machine: network namespaces n1 and n2, each with its own UTS namespace
(``hostname`` and ``MPI_Get_processor_name`` say n1 / n2), a veth link between them, its own
``/etc/hosts`` (``/etc/netns/NS/hosts``: MPICH resolves peers by name) and its own sshd on port 22 of
its address.  The harness runs inside n1 (``NetnsCluster.inside``), as on a cluster's login node.

Namespace and interface names carry this process's pid, so runs of other test sessions beside this one
never collide; the addresses exist only inside these namespaces.  Everything is removed at teardown,
even when the start failed half-way: the sshds are stopped by PID, the namespaces and their
``/etc/netns`` entries deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import require_tool

from support.processes import stop

START_TIMEOUT = 15
SUBNET = "192.168.77"  # private; only ever configured inside the namespaces made here
NETNS_ETC = Path("/etc/netns")


@dataclass
class NetnsCluster:
    directory: Path
    nodes: list[str]  # n1, n2
    namespaces: dict[str, str]  # node -> namespace name (unique to this run)
    ssh_config: Path
    ssh_wrapper: Path  # `ssh -F ssh_config "$@"`: mpirun's and hydra's remote agent
    control_dir: Path  # ssh master sockets: a short path (a Unix socket path has ~100 characters)
    sshd: dict[str, subprocess.Popen] = field(default_factory=dict)
    broken_mpi: set[str] = field(
        default_factory=set
    )  # nodes whose sshd sessions find a broken libmpi

    def address(self, node: str) -> str:
        return f"{SUBNET}.{self.nodes.index(node) + 1}"

    def inside(self, node: str, command: list[str]) -> list[str]:
        """argv that runs ``command`` on ``node``: in its network namespace, under its own hostname."""
        script = 'hostname "$0" && exec "$@"'
        return [
            "ip",
            "netns",
            "exec",
            self.namespaces[node],
            "unshare",
            "--uts",
            "sh",
            "-c",
            script,
            node,
            *command,
        ]

    def profile_yaml(
        self,
        *,
        name: str = "netns",
        nodes: str = "n[1-2]",
        ranks_per_node: int = 1,
        openmpi_hosts: list[str] = (),
        command_timeout: float = 30,
        mpi_timeout: float = 90,
    ) -> str:
        """An ssh profile for these two hosts with both MPI stacks, the settings that matter across
        hosts: --bind-to none (the "nodes" share this machine's cores), TCP for UCX (MPICH's UCX would
        otherwise use shared memory across namespaces), the ssh agent that reads our ssh config.
        ``openmpi_hosts``: extra host options on Open MPI's line (a site's own host list)."""
        root = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
        openmpi = [
            "mpirun.openmpi",
            "--bind-to",
            "none",
            "--mca",
            "plm_rsh_agent",
            str(self.ssh_wrapper),
            "--mca",
            "btl",
            "self,tcp",
            "--mca",
            "btl_tcp_if_include",
            f"{SUBNET}.0/24",
            "--mca",
            "oob_tcp_if_include",
            f"{SUBNET}.0/24",
            *openmpi_hosts,
        ]
        mpich = ["mpiexec.mpich", "-launcher", "ssh", "-launcher-exec", str(self.ssh_wrapper)]
        profile = {
            "name": name,
            "launcher": "ssh",
            "nodes": nodes,
            "node_class": "netns",
            "ranks_per_node": ranks_per_node,
            "timeouts": {"command": command_timeout, "mpi": mpi_timeout},
            "ssh": {"fanout": 8, "connect_timeout": 10, "config": str(self.ssh_config)},
            "mpi": {
                "openmpi": {
                    "mpicc": "mpicc.openmpi",
                    "mpirun": openmpi,
                    "srun_mpi": "pmix",
                    "env": root,
                },
                "mpich": {
                    "mpicc": "mpicc.mpich",
                    "mpirun": mpich,
                    "srun_mpi": "pmi2",
                    "env": {"UCX_TLS": "tcp,self"},
                },
            },
            "infiniband": {"expected": False},
        }
        return json.dumps(profile, indent=1)  # JSON is YAML, every value quoted as it must be

    def start_sshd(self, node: str) -> None:
        log = self.directory / f"sshd-{node}.log"
        proc = subprocess.Popen(
            self.inside(
                node,
                [
                    shutil.which("sshd") or "/usr/sbin/sshd",
                    "-D",
                    "-e",
                    "-f",
                    str(self.directory / f"sshd-{node}.config"),
                ],
            ),
            stdout=subprocess.DEVNULL,
            stderr=open(log, "w"),
        )
        self.sshd[node] = proc
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers(node):
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop_sshd(node)
                pytest.fail(
                    f"sshd on {node} did not start: {log.read_text()[-2000:]}", pytrace=False
                )
            time.sleep(0.1)

    def _answers(self, node: str) -> bool:
        probe = "import socket,sys; s=socket.socket(); s.settimeout(0.3); sys.exit(s.connect_ex((sys.argv[1], 22)))"
        done = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.namespaces[node],
                "python3",
                "-c",
                probe,
                self.address(node),
            ],
            capture_output=True,
            timeout=10,
        )
        return done.returncode == 0

    def stop_sshd(self, node: str) -> None:
        """The node stops answering ssh: its sshd, the sessions it served (every process in its
        namespace: all started by this fixture) and the ssh masters that multiplexed logins to it."""
        proc = self.sshd.pop(node, None)
        if proc is None:
            return
        subprocess.run(
            ["ssh", "-F", str(self.ssh_config), "-O", "exit", node], capture_output=True, timeout=10
        )
        stop(proc)
        kill_inside(self.namespaces[node])

    def heal(self) -> None:
        """Both nodes answering ssh again with a working MPI, with no master or session left from the
        test before: the pair is shared by the session's tests, and some take a node off the network
        or break its MPI."""
        for node in sorted(self.broken_mpi):  # a later test gets a working MPI there again
            config = self.directory / f"sshd-{node}.config"
            broken = self.directory / f"broken-lib-{node}"
            config.write_text(
                config.read_text().replace(f"SetEnv LD_LIBRARY_PATH={broken} HOME=", "SetEnv HOME=")
            )
            self.stop_sshd(node)
            self.start_sshd(node)
        self.broken_mpi.clear()
        for node in self.nodes:
            proc = self.sshd.get(node)
            if proc is None or proc.poll() is not None or not self._answers(node):
                self.stop_sshd(node)
                self.start_sshd(node)
        for socket_path in self.control_dir.glob("*"):
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(
                    ["ssh", "-S", str(socket_path), "-O", "exit", "n"],
                    capture_output=True,
                    timeout=10,
                )

    def stop_command(self, node: str) -> list[str]:
        """argv that takes ``node`` off the network as a crash would, from anywhere (a test on n1): its
        ssh masters closed (by name and by alias), every process in its namespace (its sshd and
        sessions) killed."""
        config = shlex.quote(str(self.ssh_config))
        return [
            "sh",
            "-c",
            f"ssh -F {config} -O exit {node} 2>/dev/null; ssh -F {config} -O exit {alias(node)} "
            f"2>/dev/null; kill -KILL $(ip netns pids {self.namespaces[node]})",
        ]

    def break_mpi(self, node: str) -> None:
        """``node``'s MPI library is broken (as a half-done update leaves it): its sshd restarts with
        sessions whose LD_LIBRARY_PATH finds a truncated libmpi.so.40 and libmpich.so.12 first; mpirun,
        orted and hydra link neither and still start."""
        broken = self.directory / f"broken-lib-{node}"
        broken.mkdir(exist_ok=True)
        for lib in ("libmpi.so.40", "libmpich.so.12"):
            (broken / lib).write_bytes(b"\x7fELF truncated")
        self.stop_sshd(node)
        config = self.directory / f"sshd-{node}.config"
        config.write_text(
            config.read_text().replace("SetEnv HOME=", f"SetEnv LD_LIBRARY_PATH={broken} HOME=")
        )
        self.start_sshd(node)
        self.broken_mpi.add(node)

    def processes(self) -> list[str]:
        """Every process in the namespaces but the sshd listeners and ssh's multiplexing masters, as
        ``pid command line``: what a run left behind."""
        listeners = {proc.pid for proc in self.sshd.values()}
        left = []
        for ns in self.namespaces.values():
            pids = subprocess.run(
                ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10
            ).stdout
            for pid in pids.split():
                try:
                    cmdline = (
                        Path(f"/proc/{pid}/cmdline")
                        .read_bytes()
                        .replace(b"\0", b" ")
                        .decode()
                        .strip()
                    )
                except OSError:
                    continue
                if (
                    int(pid) in listeners
                    or not cmdline
                    or "[mux]" in cmdline
                    or cmdline.startswith("sshd:")
                ):
                    continue
                left.append(f"{pid} {cmdline}")
        return left

    def ssh(self, node: str, command: str, *, timeout: float = 30) -> subprocess.CompletedProcess:
        """``command`` on ``node`` over ssh from n1 (what the harness does)."""
        return subprocess.run(
            self.inside("n1", [str(self.ssh_wrapper), node, command]),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def alias(node: str) -> str:
    """The ssh alias of a node (c1 for n1): a name only the ssh config knows."""
    return "c" + node[1:]


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def require_namespaces() -> None:
    """What hosts made of network namespaces need: the tools (a failure in CI, else a skip), and root."""
    for tool, package in (
        ("ip", "iproute2"),
        ("unshare", "util-linux"),
        ("sshd", "openssh-server"),
        ("ssh-keygen", "openssh-client"),
    ):
        require_tool(tool, package)
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")


def kill_inside(namespace: str) -> None:
    """SIGKILL to every process in ``namespace`` (all of them started by these fixtures)."""
    pids = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, timeout=30
    ).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def delete_namespace(namespace: str) -> None:
    # Deleting a namespace deletes its end of a veth pair, and with it the other end.
    subprocess.run(["ip", "netns", "delete", namespace], capture_output=True, timeout=30)
    shutil.rmtree(NETNS_ETC / namespace, ignore_errors=True)


def make_keys(d: Path) -> Path:
    """In ``d``: a host key the sshds share, a client key they accept (authorized_keys) and the HOME
    their sessions get, which is returned."""
    keygen = shutil.which("ssh-keygen")
    for key in ("host_key", "client_key"):
        subprocess.run(
            [keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True, timeout=30
        )
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    home = d / "home"
    home.mkdir(exist_ok=True)
    return home


def start_netns_cluster(directory: Path) -> NetnsCluster:
    """Make the namespaces, link and sshds; on any failure, undo what was made (then fail)."""
    require_namespaces()
    tag = f"{os.getpid()}"
    nodes = ["n1", "n2"]
    cluster = NetnsCluster(
        directory,
        nodes,
        {n: f"hpcos{tag}-{n}" for n in nodes},
        directory / "ssh_config",
        directory / "ssh-agent",
        Path(tempfile.mkdtemp(prefix="hcm")),
    )
    try:
        _make(cluster, tag)
    except BaseException:
        stop_netns_cluster(cluster)
        raise
    return cluster


def _make(cluster: NetnsCluster, tag: str) -> None:
    d = cluster.directory
    veth = {n: f"hv{tag}{n}"[-15:] for n in cluster.nodes}  # interface names: at most 15 characters
    for ns in cluster.namespaces.values():
        ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "lo", "up")
    n1, n2 = cluster.nodes
    ip(
        "link",
        "add",
        veth[n1],
        "netns",
        cluster.namespaces[n1],
        "type",
        "veth",
        "peer",
        "name",
        veth[n2],
        "netns",
        cluster.namespaces[n2],
    )
    hosts = "127.0.0.1 localhost\n" + "".join(f"{cluster.address(n)} {n}\n" for n in cluster.nodes)
    for node, ns in cluster.namespaces.items():
        ip("-n", ns, "addr", "add", f"{cluster.address(node)}/24", "dev", veth[node])
        ip("-n", ns, "link", "set", veth[node], "up")
        (NETNS_ETC / ns).mkdir(parents=True, exist_ok=True)
        (NETNS_ETC / ns / "hosts").write_text(hosts)
    home = make_keys(d)
    for node in cluster.nodes:
        (d / f"sshd-{node}.config").write_text(
            f"Port 22\nListenAddress {cluster.address(node)}\nHostKey {d / 'host_key'}\n"
            f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / f'sshd-{node}.pid'}\n"
            "StrictModes no\nUsePAM no\nMaxStartups 256\nMaxSessions 256\nPermitRootLogin yes\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\nLogLevel ERROR\n"
            f"SetEnv HOME={home}\n"
        )
    # n1, n2 have no HostName lines: ssh resolves them through /etc/netns/NS/hosts, as MPICH must too,
    # and its errors then name the node ("ssh: connect to host n2 port 22: ...").  c1, c2 are the same
    # hosts under ssh aliases (HostName ADDRESS), as many sites name their nodes for ssh.
    aliases = "".join(
        f"Host {alias(n)}\n    HostName {cluster.address(n)}\n" for n in cluster.nodes
    )
    cluster.ssh_config.write_text(
        aliases + "Host n* c*\n"
        f"    User root\n    IdentityFile {d / 'client_key'}\n    IdentitiesOnly yes\n"
        "    UserKnownHostsFile /dev/null\n    StrictHostKeyChecking no\n    LogLevel ERROR\n    BatchMode yes\n"
        "    ConnectTimeout 10\n    KexAlgorithms curve25519-sha256\n"
        f"    ControlMaster auto\n    ControlPath {cluster.control_dir}/%C\n    ControlPersist 60\n"
    )
    cluster.ssh_wrapper.write_text(f'#!/bin/sh\nexec ssh -F {cluster.ssh_config} "$@"\n')
    cluster.ssh_wrapper.chmod(0o755)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    for node in cluster.nodes:
        cluster.start_sshd(node)


def stop_netns_cluster(cluster: NetnsCluster) -> None:
    for socket_path in cluster.control_dir.glob("*"):
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                ["ssh", "-S", str(socket_path), "-O", "exit", "n"], capture_output=True, timeout=10
            )
    shutil.rmtree(cluster.control_dir, ignore_errors=True)
    for node in list(cluster.sshd):
        cluster.stop_sshd(node)
    for ns in cluster.namespaces.values():
        delete_namespace(ns)


@pytest.fixture(scope="session")
def netns_pair(tmp_path_factory) -> NetnsCluster:
    """The two hosts, made once per session (namespaces, keys, sshds take seconds)."""
    cluster = start_netns_cluster(tmp_path_factory.mktemp("netns"))
    try:
        yield cluster
    finally:
        stop_netns_cluster(cluster)


@pytest.fixture
def netns_cluster(netns_pair) -> NetnsCluster:
    """The session's pair, healed after each test (a test may stop a node's sshd or kill the node)."""
    try:
        yield netns_pair
    finally:
        netns_pair.heal()
