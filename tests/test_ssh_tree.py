"""ClusterShell's tree mode for the ssh fan-out: a profile's ``ssh.topology`` names gateways.

On three real hosts in a line (tests/support/netns_tree_fixture.py: h -- g -- t, h has no route to
t), the ssh launcher runs inside h: without the topology t is unreachable; with it the command reaches
t through a ClusterShell gateway on g (t's sshd sees g's address as its client), and the per-node
results, stderr, exit codes, the timeout and the ``done NODE`` progress lines are those of direct mode.
The gateway's command line and environment carry no credential of hpcos's.  The profile checks of
the topology file run here too: each mistake is one line naming file, line and route.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO
from support.netns_tree_fixture import ADDRESSES, TreeHosts

from hpcos.cli import main
from hpcos.cluster.profiles import load_profile
from hpcos.core.errors import UserError
from hpcos.results.model import RunResults

SECRET = "tree-secret-4f1c"  # a credential in hpcos's environment: never seen on g or t
RUN_TIMEOUT = 300  # the whole launcher run inside h, on a loaded machine
HPCOS_TEST_TIMEOUT = 600  # `hpcos test` inside h: pytest's start alone takes a while under load

# Through the launcher itself, inside h.  The runner's line callback is wrapped to keep the fan-out
# process's progress lines (what the progress bar reads).
LAUNCH_SCRIPT = """
import json, sys
from ClusterShell.NodeSet import NodeSet
from hpcos.cluster.launchers import launcher_for
from hpcos.cli import main
from hpcos.cluster.profiles import load_profile
from hpcos.core import runner

lines = []
real_run = runner.run
def spying_run(*args, on_line=None, **kwargs):
    def seen(line):
        lines.append(line)
        if on_line:
            on_line(line)
    return real_run(*args, on_line=seen, **kwargs)
runner.run = spying_run

launcher = launcher_for(load_profile(sys.argv[1]))
results = launcher.run(sys.argv[2], NodeSet(sys.argv[3]), timeout=float(sys.argv[4]))
print(json.dumps({"lines": lines, "results": {
    node: {"code": r.exit_code, "stdout": r.stdout, "stderr": r.stderr, "timed_out": r.timed_out,
           "unreachable": r.unreachable, "why": r.describe()} for node, r in results.items()}}))
"""


def _profile(hosts: TreeHosts, tmp_path: Path, *, topology: bool) -> Path:
    """An ssh profile for g and t; with ``topology``, h reaches t through g (ClusterShell's syntax)."""
    gateway_python = tmp_path / "gateway-python"
    # What the gateway was started with, kept for the test: its host, its argv and its environment.
    gateway_python.write_text(
        "#!/bin/sh\n"
        f'{{ hostname; echo "$SSH_CONNECTION"; printf "%s\\n" "$0" "$@"; env; }} '
        f"> {tmp_path}/gateway-$$.log\n"
        f'exec {sys.executable} "$@"\n'
    )
    gateway_python.chmod(0o755)
    (tmp_path / "topology.conf").write_text(
        "# h is where hpcos runs; g is the only host that reaches t\n[routes]\nh: g\ng: t\n"
    )
    ssh = {"fanout": 8, "connect_timeout": 20, "config": str(hosts.ssh_config)}
    if topology:
        ssh |= {"topology": "topology.conf", "gateway_python": str(gateway_python)}
    profile = tmp_path / "tree.yaml"
    profile.write_text(
        json.dumps({"name": "tree", "launcher": "ssh", "nodes": "g,t", "ssh": ssh}, indent=1)
    )
    return profile


def _start(hosts: TreeHosts, profile: Path, command: str, nodes: str, timeout: float):
    """``command`` on ``nodes`` through the ssh launcher, started inside h with a credential in its
    environment."""
    script = profile.parent / "launch.py"
    script.write_text(LAUNCH_SCRIPT)
    argv = [sys.executable, str(script), str(profile), command, nodes, str(timeout)]
    return subprocess.Popen(
        hosts.inside("h", argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HPCOS_TRACKER_PASSWORD": SECRET},
    )


def _finish(launch: subprocess.Popen) -> dict:
    try:
        out, err = launch.communicate(timeout=RUN_TIMEOUT)
    finally:
        if launch.poll() is None:
            launch.kill()
            launch.communicate()
    assert launch.returncode == 0, err[-3000:]
    return json.loads(out)


def _launch(hosts: TreeHosts, profile: Path, command: str, nodes: str, timeout: float) -> dict:
    return _finish(_start(hosts, profile, command, nodes, timeout))


def _wait_for(hosts: TreeHosts, host: str, word: str) -> str:
    """The first process on ``host`` whose command line holds ``word``, once there is one."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = [p for p in hosts.processes(host) if word in p]
        if found:
            return found[0]
        time.sleep(0.2)
    pytest.fail(f"no {word!r} on {host}: {hosts.processes(host)}", pytrace=False)


def _gateway_logs(tmp_path: Path) -> list[str]:
    return [p.read_text() for p in sorted(tmp_path.glob("gateway-*.log"))]


def _wait_until_empty(hosts: TreeHosts, host: str) -> list[str]:
    """The processes left in ``host`` once the sessions that ended are gone (sshd reaps them soon after
    the client leaves; a loaded machine may take a while)."""
    deadline = time.monotonic() + 60
    while (left := [p for p in hosts.processes(host) if "sshd:" not in p]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.5)
    return left


def test_without_the_topology_h_cannot_reach_t(tree_hosts, tmp_path):
    """The layout the tree test relies on: from h, g answers ssh and t has no route at all."""
    got = _launch(tree_hosts, _profile(tree_hosts, tmp_path, topology=False), "hostname", "g,t", 30)
    results = got["results"]
    assert results["g"]["code"] == 0 and results["g"]["stdout"] == "g"
    assert results["t"]["unreachable"], results["t"]
    assert "Network is unreachable" in results["t"]["stderr"]
    assert not _gateway_logs(tmp_path)


def test_a_command_reaches_t_through_the_gateway_on_g(tree_hosts, tmp_path):
    command = 'hostname; echo "$SSH_CONNECTION"; echo "to stderr" >&2; env; exit 3'
    got = _launch(tree_hosts, _profile(tree_hosts, tmp_path, topology=True), command, "g,t", 30)
    results = got["results"]
    assert set(results) == {"g", "t"}
    for node in ("g", "t"):
        result = results[node]
        lines = result["stdout"].splitlines()
        assert lines[0] == node, result
        assert (result["code"], result["stderr"], result["timed_out"]) == (3, "to stderr", False)
        assert SECRET not in result["stdout"]
    # t's sshd saw its client come from g's address on the g--t link: the gateway's ssh.
    t_client = results["t"]["stdout"].splitlines()[1].split()[0]
    assert t_client == ADDRESSES["g"][1], results["t"]["stdout"]
    # g, a gateway that is a node too, runs its command as ClusterShell has it: from its own gateway.
    assert results["g"]["stdout"].splitlines()[1].split()[0] in ADDRESSES["g"]
    # One gateway was started, on g, by h's ssh, as `PYTHON -m ClusterShell.Gateway -Bu`; neither its
    # command line nor its environment holds hpcos's credential.
    logs = _gateway_logs(tmp_path)
    assert len(logs) == 1, logs
    host, connection, *rest = logs[0].splitlines()
    assert host == "g" and connection.split()[0] == ADDRESSES["h"][0]
    assert rest[1:4] == ["-m", "ClusterShell.Gateway", "-Bu"], rest[:4]
    assert SECRET not in logs[0]
    # Progress as in direct mode: one `done NODE` line per node.
    assert sorted(line for line in got["lines"] if line.startswith("done ")) == ["done g", "done t"]


def test_a_command_behind_the_gateway_ends_at_its_timeout(tree_hosts, tmp_path):
    profile = _profile(tree_hosts, tmp_path, topology=True)
    got = _launch(tree_hosts, profile, "sleep 600; echo finished", "t", 2)
    result = got["results"]["t"]
    assert result["timed_out"] and "finished" not in result["stdout"], result
    assert _wait_until_empty(tree_hosts, "t") == []
    assert _wait_until_empty(tree_hosts, "g") == []


def test_a_host_outside_the_topology_is_told_so(tree_hosts, tmp_path):
    """hpcos run from a host the topology does not start at: every node says why, in one line."""
    profile = _profile(tree_hosts, tmp_path, topology=True)
    (tmp_path / "topology.conf").write_text("[routes]\nadmin: g\ng: t\n")
    got = _launch(tree_hosts, profile, "true", "t", 10)
    why = got["results"]["t"]["why"]
    assert (
        "ClusterShell cannot route from this host (h)" in why
        and str(tmp_path / "topology.conf") in why
    )


def test_a_gateway_that_cannot_be_reached_fails_its_nodes_alone(tree_hosts, tmp_path):
    """ClusterShell itself stops the whole fan-out when no gateway is left for a node; the launcher
    reports that node as unreachable, saying which gateway and why, and the other nodes still run."""
    profile = _profile(tree_hosts, tmp_path, topology=True)
    (tmp_path / "topology.conf").write_text("[routes]\nh: g9\ng9: t\n")
    got = _launch(tree_hosts, profile, "hostname", "g,t", 10)
    assert got["results"]["g"]["stdout"] == "g"  # g is no gateway now: h reaches it directly
    t = got["results"]["t"]
    assert t["unreachable"] and t["code"] == 255, t
    assert t["stderr"] == (
        "ssh: ClusterShell gateway g9 (ssh: Could not resolve hostname g9: Temporary failure in name "
        "resolution) unreachable, and no other gateway leads to t"
    )


def test_a_gateway_lost_mid_run_fails_its_nodes_and_leaves_nothing_behind(tree_hosts, tmp_path):
    launch = _start(
        tree_hosts,
        _profile(tree_hosts, tmp_path, topology=True),
        "sleep 300; echo finished",
        "t",
        250,
    )
    try:
        _wait_for(tree_hosts, "t", "sleep 300")
        gateway = _wait_for(tree_hosts, "g", "ClusterShell.Gateway")
        os.kill(int(gateway.split()[0]), signal.SIGKILL)
    finally:
        got = _finish(launch)
    t = got["results"]["t"]
    assert t["unreachable"] and "finished" not in t["stdout"], t
    assert t["stderr"] == "ssh: ClusterShell gateway g lost before it finished on t"
    # The command on t ended with the gateway's ssh client (the watchdog saw its stdin close).
    assert _wait_until_empty(tree_hosts, "t") == []
    assert _wait_until_empty(tree_hosts, "g") == []


def test_hpcos_test_runs_the_node_tests_through_the_gateway(tree_hosts, tmp_path):
    """The whole harness in h: the pre-flight, four node tests and the versions probe, each (test,
    node) its own result, t's through the gateway on g."""
    profile = _profile(tree_hosts, tmp_path, topology=True)
    results = tmp_path / "results.json"
    argv = tree_hosts.inside(
        "h",
        [
            "env",
            f"XDG_CACHE_HOME={tmp_path / 'cache'}",
            f"HPCOS_STORE={tmp_path / 'store'}",
            sys.executable,
            "-m",
            "hpcos.cli",
            "test",
            "--cluster",
            str(profile),
            "--results",
            str(results),
            "-p",
            "no:cacheprovider",
            "-m",
            "node",
            str(REPO / "integration_tests/test_nodes.py"),
        ],
    )
    done = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=HPCOS_TEST_TIMEOUT
    )
    output = done.stdout + done.stderr
    assert results.exists(), output[-4000:]
    run = RunResults.read(results)
    assert sorted(
        (r.test_id.split("::")[-1].split("[")[0], r.node, r.outcome) for r in run.results
    ) == [
        (test, node, "passed")
        for test in ("test_hostname", "test_kernel_release", "test_tmp_writable", "test_uptime")
        for node in ("g", "t")
    ], output[-4000:]
    assert done.returncode == 0, output[-4000:]
    assert len(_gateway_logs(tmp_path)) >= 1


JOB_SCRIPT = """
import json, sys
from ClusterShell.NodeSet import NodeSet
from hpcos.cluster.launchers import launcher_for
from hpcos.cluster.profiles import MpiStack, load_profile

launcher = launcher_for(load_profile(sys.argv[1]))
# A job that hangs after its first line, started as the launcher starts mpirun: on the job's first node.
stack = MpiStack(mpicc="cc", mpirun=["sh", "-c", "echo started; sleep 300; echo finished"])
r = launcher.mpi("/bin/sleep", [], np=1, stack=stack, nodes=NodeSet("t"), timeout=float(sys.argv[2]))
print(json.dumps({"stdout": r.stdout, "timed_out": r.timed_out, "unreachable": r.unreachable,
                  "why": r.describe()}))
"""


def test_a_job_that_times_out_behind_the_gateway_is_a_timeout_and_ends(tree_hosts, tmp_path):
    """A job's timeout is kept by the launcher (it looks at the ranks, then ends the fan-out's ssh
    clients, here the gateway's): the job is a timeout, not an unreachable node, its output so far is
    kept, and nothing of it is left on t or g."""
    profile = _profile(tree_hosts, tmp_path, topology=True)
    script = tmp_path / "job.py"
    script.write_text(JOB_SCRIPT)
    done = subprocess.run(
        tree_hosts.inside("h", [sys.executable, str(script), str(profile), "5"]),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["timed_out"] and not result["unreachable"], result
    assert result["stdout"].splitlines()[:1] == ["started"] and "finished" not in result["stdout"]
    assert _wait_until_empty(tree_hosts, "t") == []
    assert _wait_until_empty(tree_hosts, "g") == []


# --- the profile's checks of the topology file ---------------------------------------------------


def _load(tmp_path: Path, topology: str | None, *, name: str = "topology.conf") -> str:
    profile = tmp_path / "p.yaml"
    profile.write_text(f"name: p\nlauncher: ssh\nnodes: t1\nssh:\n  topology: {name}\n")
    if topology is not None:
        (tmp_path / name).write_text(topology)
    try:
        loaded = load_profile(profile)
    except UserError as exc:
        return str(exc)
    return f"loaded {loaded.ssh.topology}"


@pytest.mark.parametrize(
    ("topology", "message"),
    [
        (None, "{dir}/p.yaml:5: ssh.topology: cannot read {dir}/topology.conf: no such file"),
        ("h: g\n", "{dir}/topology.conf:1: expected a [routes] section before any route"),
        ("[main]\nh: g\n", "{dir}/topology.conf: expected a [routes] section"),
        ("[routes]\n", "{dir}/topology.conf:1: routes: expected at least one route"),
        (
            "[routes]\nh: g\ng t1\n",
            "{dir}/topology.conf:3: expected 'gateways: nodes' or a [section]; found 'g t1'",
        ),
        (
            "[routes]\n# gateways\nh: g[1-\n",
            "{dir}/topology.conf:3: routes.h: expected a ClusterShell node set such as gw[1-2]",
        ),
        (
            "[routes]\nh: g\ng: -oProxyCommand=x\n",
            "{dir}/topology.conf:3: routes.g: expected node names of letters, digits",
        ),
        (
            "[routes]\nh: g  # the gateway\n",
            "{dir}/topology.conf:2: routes.h: expected a node set; found 'g  # the gateway' (a "
            "comment goes on a line of its own)",
        ),
        (
            "[routes]\nh: g\ng: h\n",
            "{dir}/topology.conf:3: routes.g: expected a tree of routes: Loop detected",
        ),
        (
            "[routes]\nh: g\nh: t1\n",
            "{dir}/topology.conf:3: topology syntax error:",
        ),
    ],
)
def test_a_bad_topology_is_one_line_naming_file_line_and_route(tmp_path, topology, message):
    said = _load(tmp_path, topology)
    assert said.startswith(message.format(dir=tmp_path)), said
    assert "\n" not in said and "Traceback" not in said


def test_a_topology_is_read_relative_to_the_profile(tmp_path):
    assert _load(tmp_path, "[routes]\nadmin: gw[1-2]\ngw[1-2]: t[1-100]\n") == (
        f"loaded {tmp_path / 'topology.conf'}"
    )


def test_a_bad_topology_stops_hpcos_test_with_exit_2(tmp_path, capsys):
    (tmp_path / "topology.conf").write_text("[routes]\nh: g[1-\n")
    profile = tmp_path / "p.yaml"
    profile.write_text("name: p\nlauncher: ssh\nnodes: t1\nssh:\n  topology: topology.conf\n")
    code = main(["test", "--cluster", str(profile), "--collect-only", "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip().splitlines() == [
        f"hpcos: {tmp_path}/topology.conf:2: routes.h: expected a ClusterShell node set such as "
        "gw[1-2]; found 'g[1-' (missing bracket: \"g[1-\")"
    ]
