"""Real Nagios 4 runs ``hpcos check kernel`` for two simulated nodes, reached over a real loopback sshd.

Each "node" is an address of one sshd (127.0.0.1 and 127.0.0.2) whose ``Match LocalAddress`` block
puts a node-specific ``uname`` first on PATH: node1 runs the testing repository's newest kernel,
node2 an older one.  The testing repository is real (rpmbuild + createrepo_c), read with real dnf.
Nagios runs from the configuration ``hpcos monitoring config --standalone`` writes, with one-second
intervals; the test reads the services' states and performance data from its status.dat, then
stops Nagios by PID and waits for its worker processes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import process_alive, require_tool
from support.rpm_repo_fixtures import Rpm, RpmFactory, make_repo
from support.sshd_fixture import free_port, start_loopback_sshd, stop_loopback_sshd

HPCOS = str(Path(sys.executable).parent / "hpcos")
DATA = Path(__file__).parent / "data" / "ib"
GOOD, OLD = "5.14.0-427.el9.x86_64", "5.14.0-362.el9.x86_64"


def node_tools(directory: Path, release: str, ibstat: str) -> Path:
    """What the node's tools say: ``uname -r`` its kernel, ``ibstat`` a captured HCA listing."""
    directory.mkdir(parents=True)
    uname = directory / "uname"
    uname.write_text(
        f'#!/bin/sh\nif [ "$1" = "-r" ]; then echo {release}; else exec /usr/bin/uname "$@"; fi\n'
    )
    (directory / "ibstat").write_text(f"#!/bin/sh\ncat {DATA / ibstat}\n")
    for tool in ("uname", "ibstat"):
        (directory / tool).chmod(0o755)
    return directory


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(profile path, work dir): nodes node1 (testing kernel) and node2 (older kernel) over ssh."""
    for tool, package in (
        ("rpmbuild", "rpm"),
        ("createrepo_c", "createrepo-c"),
        ("dnf", "dnf"),
        ("nagios4", "nagios4-core"),
    ):
        require_tool(tool, package)
    work = tmp_path_factory.mktemp("monitoring")
    bins = {
        "node1": node_tools(work / "node1-bin", GOOD, "ibstat_hdr_two_hcas.txt"),
        "node2": node_tools(work / "node2-bin", OLD, "ibstat_port_down.txt"),
    }
    force = 'PATH={bin}:$PATH; export PATH; eval "$SSH_ORIGINAL_COMMAND"'
    extra = (
        "ListenAddress 127.0.0.2\n"
        f"Match LocalAddress 127.0.0.1\n    ForceCommand {force.format(bin=bins['node1'])}\n"
        f"Match LocalAddress 127.0.0.2\n    ForceCommand {force.format(bin=bins['node2'])}\n"
    )
    (work / "sshd").mkdir()
    sshd, proc = start_loopback_sshd(work / "sshd", multiplex=False, extra_config=extra)
    client = sshd.client_config.read_text()
    common = client.split("Port", 1)[1].split("\n", 1)[1].split("Host down*")[0]
    config = work / "ssh_config"
    config.write_text(
        "".join(
            f"Host {node}\n    HostName {address}\n    Port {sshd.port}\n{common}"
            for node, address in (("node1", "127.0.0.1"), ("node2", "127.0.0.2"))
        )
    )
    factory = RpmFactory(work / "rpms")
    repo = make_repo(
        factory,
        work / "testing-repo",
        [
            Rpm("kernel", "5.14.0", "362.el9", "x86_64"),
            Rpm("kernel", "5.14.0", "427.el9", "x86_64"),
        ],
    )
    profile = work / "production.yaml"
    profile.write_text(
        f"name: production\nlauncher: ssh\nnodes: 'node[1-2]'\n"
        f"timeouts: {{command: 60, mpi: 60}}\n"
        f"ssh: {{fanout: 4, connect_timeout: 30, config: '{config}'}}\n"
        "os_update: {kernel_package: kernel}\n"
        "infiniband: {expected: true, devices: [mlx5_0], rate: 200}\n"
    )
    # The environment's repositories as a monitoring host reaches them (served, read with real dnf).
    (work / "repo-url").write_text(f"file://{repo}")
    yield profile, work
    stop_loopback_sshd(sshd, proc)


def check(profile: Path, node: str, name: str = "kernel") -> subprocess.CompletedProcess:
    repo = (profile.parent / "repo-url").read_text()
    return subprocess.run(
        [HPCOS, "check", name, "--cluster", str(profile), "--node", node, "--repo", repo],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_kernel_check_as_a_plugin(cluster):
    profile, _ = cluster
    good = check(profile, "node1")
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.count("\n") == 1  # one status line
    assert good.stdout.startswith(f"KERNEL OK - node1 runs kernel {GOOD}")
    assert "| kernel_current=1;;1:;0;1 time=" in good.stdout
    bad = check(profile, "node2")
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert bad.stdout.startswith(
        f"KERNEL CRITICAL - node2 runs kernel {OLD}; the testing repositories have {GOOD}"
    )
    assert "kernel_current=0;;1:;0;1" in bad.stdout


def test_infiniband_check_as_a_plugin(cluster):
    profile, _ = cluster
    good = check(profile, "node1", "ib-ports")
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout == (
        "IB_PORTS OK - node1: 1 port(s) Active at 200 Gb/s "
        "| active_ports=1;;1:;0;1 mlx5_0_1_rate=200;;200:;0\n"
    )
    bad = check(profile, "node2", "ib-ports")
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert bad.stdout.startswith(
        "IB_PORTS CRITICAL - node2: mlx5_0 port 1: state Down, expected Active"
    )
    assert "rate 10 Gb/s, expected 200 Gb/s" in bad.stdout
    assert "active_ports=0;;1:;0;1" in bad.stdout


def test_unreachable_node_is_unknown_not_critical(cluster, tmp_path):
    """A check that cannot ask the node says UNKNOWN (exit 3); the host check says the node is down."""
    profile, work = cluster
    closed = tmp_path / "closed.yaml"
    (tmp_path / "repo-url").write_text((work / "repo-url").read_text())
    config = tmp_path / "ssh_config"
    config.write_text(
        (work / "ssh_config").read_text().replace("Host node2", "Host node2-old")
        + f"Host node3\n    HostName 127.0.0.1\n    Port {free_port()}\n    BatchMode yes\n"
    )
    closed.write_text(
        profile.read_text()
        .replace("node[1-2]", "node[1-3]")
        .replace(str(work / "ssh_config"), str(config))
    )
    kernel = check(closed, "node3")
    assert kernel.returncode == 3, kernel.stdout + kernel.stderr
    assert kernel.stdout.startswith("KERNEL UNKNOWN - node3: unreachable")
    host = check(closed, "node3", "reachable")
    assert host.returncode == 2, host.stdout
    assert host.stdout.startswith("REACHABLE CRITICAL - node3: node unreachable")


def status_blocks(path: Path) -> list[dict[str, str]]:
    text = path.read_text(errors="replace") if path.exists() else ""
    blocks = []
    for kind, body in re.findall(r"^(\w+) \{\n(.*?)^\t\}", text, re.M | re.S):
        fields = dict(line.strip().split("=", 1) for line in body.splitlines() if "=" in line)
        blocks.append({"kind": kind, **fields})
    return blocks


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def run_nagios(nagios_dir: Path, hosts: set[str]) -> dict[str, dict[str, str]]:
    """Run the standalone Nagios until each of ``hosts`` has its service checked; its service blocks by host.
    Nagios is stopped by PID and its worker processes are waited for."""
    nagios = subprocess.Popen(
        ["nagios4", str(nagios_dir / "nagios.cfg")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 150
        services: dict[str, dict[str, str]] = {}
        while time.monotonic() < deadline:
            workers.update(children(nagios.pid))
            services = {
                b["host_name"]: b
                for b in status_blocks(nagios_dir / "var" / "status.dat")
                if b["kind"] == "servicestatus" and b.get("has_been_checked") == "1"
            }
            if len(services) == len(hosts):
                break
            assert nagios.poll() is None, (nagios_dir / "var" / "nagios.log").read_text()
            time.sleep(0.5)
        assert set(services) == hosts, (nagios_dir / "var" / "nagios.log").read_text()
    finally:
        workers.update(children(nagios.pid))
        nagios.send_signal(signal.SIGTERM)
        nagios.wait(timeout=30)
        end = time.monotonic() + 30
        while any(process_alive(w) for w in workers) and time.monotonic() < end:
            time.sleep(0.1)
        assert not any(process_alive(w) for w in workers), "Nagios workers outlived it"
    return services


def test_real_nagios_runs_the_checks(cluster):
    profile, work = cluster
    nagios_dir = work / "nagios"
    objects = nagios_dir / "hpcos-production.cfg"
    done = subprocess.run(
        [
            HPCOS,
            "monitoring",
            "config",
            "--cluster",
            str(profile),
            "-o",
            str(objects),
            "--check",
            "kernel",
            "--hpcos",
            HPCOS,
            "--standalone",
            str(nagios_dir),
            "--repo",
            (work / "repo-url").read_text(),
            "--interval-length",
            "1",
            "--check-interval",
            "30",
            "--retry-interval",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    verify = subprocess.run(
        ["nagios4", "-v", str(nagios_dir / "nagios.cfg")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout
    assert re.search(r"Total Warnings:\s+0\n", verify.stdout) and re.search(
        r"Total Errors:\s+0\n", verify.stdout
    )

    services = run_nagios(nagios_dir, {"node1", "node2"})
    node1, node2 = services["node1"], services["node2"]
    assert node1["service_description"] == "kernel"
    assert node1["current_state"] == "0", node1["plugin_output"]
    assert node1["plugin_output"] == f"KERNEL OK - node1 runs kernel {GOOD}, the environment's"
    assert node1["performance_data"].startswith("kernel_current=1;;1:;0;1 time=")
    assert node2["current_state"] == "2", node2["plugin_output"]
    assert node2["plugin_output"].startswith(f"KERNEL CRITICAL - node2 runs kernel {OLD}")
    assert node2["performance_data"].startswith("kernel_current=0;;1:;0;1 time=")
    assert os.path.exists(nagios_dir / "var" / "nagios.log")


# Roomy: on a loaded CI host the interpreter's start and dnf's read of the repository take seconds of it.
CHECK_TIMEOUT = 60


def test_hung_node_is_unknown_within_the_timeout_under_nagios(cluster, tmp_path):
    """A node whose ``uname`` hangs (and forks a child that hangs too), reached over a real sshd, checked
    by real Nagios with ``--check-timeout 60`` while the profile allows the node command 300 s: the plugin
    answers UNKNOWN itself, inside its --timeout, and neither the remote tree nor any local process it
    started survives it."""
    _profile, work = cluster
    pids = tmp_path / "remote-pids"
    hung = tmp_path / "hung-bin"
    hung.mkdir()
    (hung / "uname").write_text(
        f"#!/bin/sh\necho $$ >> {pids}\nsleep 3600 &\necho $! >> {pids}\nwait\n"
    )
    (hung / "uname").chmod(0o755)
    (tmp_path / "sshd").mkdir()
    force = f'PATH={hung}:$PATH; export PATH; eval "$SSH_ORIGINAL_COMMAND"'
    sshd, proc = start_loopback_sshd(
        tmp_path / "sshd",
        multiplex=False,
        extra_config=f"Match LocalAddress 127.0.0.1\n    ForceCommand {force}\n",
    )
    try:
        client = sshd.client_config.read_text()
        common = client.split("Port", 1)[1].split("\n", 1)[1].split("Host down*")[0]
        config = tmp_path / "ssh_config"
        config.write_text(f"Host node9\n    HostName 127.0.0.1\n    Port {sshd.port}\n{common}")
        profile = tmp_path / "hung.yaml"
        profile.write_text(
            f"name: hung\nlauncher: ssh\nnodes: node9\ntimeouts: {{command: 300, mpi: 300}}\n"
            f"ssh: {{fanout: 4, connect_timeout: 30, config: '{config}'}}\n"
            "os_update: {kernel_package: kernel}\n"
        )
        nagios_dir = tmp_path / "nagios"
        objects = nagios_dir / "hpcos-hung.cfg"
        done = subprocess.run(
            [
                HPCOS,
                "monitoring",
                "config",
                "--cluster",
                str(profile),
                "-o",
                str(objects),
                "--check",
                "kernel",
                "--hpcos",
                HPCOS,
                "--standalone",
                str(nagios_dir),
                "--repo",
                (work / "repo-url").read_text(),
                "--check-timeout",
                str(CHECK_TIMEOUT),
                "--interval-length",
                "1",
                "--check-interval",
                "300",
                "--retry-interval",
                "300",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert (
            f"service_check_timeout={CHECK_TIMEOUT + 10}" in (nagios_dir / "nagios.cfg").read_text()
        )
        service = run_nagios(nagios_dir, {"node9"})["node9"]
    finally:
        stop_loopback_sshd(sshd, proc)
    assert service["current_state"] == "3", service["plugin_output"]
    # Either the node command's own cut timeout or the plugin's timer answered; both say so.
    assert re.match(r"KERNEL UNKNOWN - (node9: )?no answer within", service["plugin_output"]), (
        service["plugin_output"]
    )
    # The plugin's answer, not Nagios' timeout, and inside --timeout (Nagios measured it).
    assert float(service["check_execution_time"]) < CHECK_TIMEOUT, service
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 2, "the hung uname and its child ran on the node"
    assert not [pid for pid in started if process_alive(pid)], (
        "the remote command's tree outlived the check"
    )


def test_plugin_timeout_kills_the_local_tree(cluster, tmp_path):
    """The local launcher: a node command that hangs (with a child) while the profile allows it 300 s is
    cut to what is left of --timeout, answered UNKNOWN with exit 3 in one line, and no process it
    started is left."""
    _profile, work = cluster
    pids = tmp_path / "pids"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "uname").write_text(
        f"#!/bin/sh\necho $$ >> {pids}\nsleep 3600 &\necho $! >> {pids}\nwait\n"
    )
    (bin_dir / "uname").chmod(0o755)
    profile = tmp_path / "local.yaml"
    profile.write_text(
        "name: hang\nlauncher: local\nnodes: node1\ntimeouts: {command: 300, mpi: 300}\n"
        "os_update: {kernel_package: kernel}\n"
    )
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(
        [
            HPCOS,
            "check",
            "kernel",
            "--cluster",
            str(profile),
            "--node",
            "node1",
            "--repo",
            (work / "repo-url").read_text(),
            "--timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout.count("\n") == 1 and re.match(
        r"KERNEL UNKNOWN - (node1: )?no answer within", done.stdout
    ), done.stdout
    left = [int(pid) for pid in pids.read_text().split()]
    assert len(left) == 2, "the hung uname and its child ran"
    assert not [pid for pid in left if process_alive(pid)], done.stdout
