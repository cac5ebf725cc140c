"""Fan-out: ``hpcos test -m node`` on 1,000 ssh node names against bare ClusterShell (``clush``)
running the same commands; and a four-node Slurm run with one drained node against none.

1. The nodes are real ssh logins: an sshd on 127.0.0.1 (tests/support/sshd_fixture.py) serves every
   ``nodeNNNN`` name through an ssh client config.  ``hpcos test -m node`` runs
   integration_tests/test_nodes.py (4 commands, each fanned out once over all nodes, plus the
   pre-flight ``true`` and the versions probe on one node); clush runs the same 4 commands with the
   same fanout and ssh options.  Each tool gets its own fresh sshd: with ``--multiplex`` (ControlMaster,
   as the docs recommend for a site) the first command pays one handshake per node and the rest
   reuse the connection; without it every command pays a handshake per node.
2. A four-node Slurm (tests/support/slurm_cluster_fixture.py): ``hpcos test`` of the node tests and
   two MPI job tests, once with every node idle, once with n3 drained.  Before the pre-flight, a
   drained node cost the command timeout on every node test.

3. ``--tree G``: ClusterShell's tree mode, both tools with the same topology file: this host reaches
   G gateways (``nodegwN``, more logins to the same sshd) and they reach every node.  The ssh
   launcher's fan-out reads it from the profile's ``ssh.topology``, clush from
   ``$CLUSTERSHELL_CFGDIR/topology.conf``; both start the gateways with this Python.

All "nodes" share this machine's cores, so wall times are upper bounds, and vary with the load of
whoever else uses the machine.

    .venv/bin/python bench/fanout.py [--nodes 1000] [--fanout 64] [--multiplex] [--skip-slurm]   # as root
    .venv/bin/python bench/fanout.py --tree 4 --nodes 200 --skip-slurm [--multiplex]   # tree mode only
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from support.slurm_cluster_fixture import start_slurm_cluster, stop_slurm_cluster  # noqa: E402
from support.sshd_fixture import start_loopback_sshd, stop_loopback_sshd  # noqa: E402

from hpcos.results.model import RunResults  # noqa: E402

COMMAND_TIMEOUT = 900
# The commands of integration_tests/test_nodes.py, as clush runs them.
NODE_COMMANDS = [
    "hostname",
    "uname -r",
    "cat /proc/uptime",
    "probe=$(mktemp) && echo ok > $probe && cat $probe && rm -f $probe",
]


def hpcos_test(
    profile: Path, work: Path, *pytest_args: str, env: dict | None = None
) -> tuple[float, RunResults]:
    results = work / "results.json"
    argv = [
        sys.executable,
        "-m",
        "hpcos.cli",
        "test",
        "--cluster",
        str(profile),
        "--results",
        str(results),
        "-q",
        "-p",
        "no:cacheprovider",
        *pytest_args,
    ]
    started = time.perf_counter()
    subprocess.run(
        argv,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3 * COMMAND_TIMEOUT,
        env={
            **os.environ,
            "XDG_CACHE_HOME": str(work / "cache"),
            "HPCOS_STORE": str(work / "store"),
            **(env or {}),
        },
    )
    return time.perf_counter() - started, RunResults.read(results)


def clush(nodes: str, fanout: int, ssh_config: Path, env: dict | None = None) -> tuple[float, int]:
    clush_bin = Path(sys.executable).parent / "clush"
    started = time.perf_counter()
    failed = 0
    for command in NODE_COMMANDS:
        done = subprocess.run(
            [
                str(clush_bin),
                "-w",
                nodes,
                "-f",
                str(fanout),
                "-b",
                "-S",
                "-o",
                f"-F {shlex.quote(str(ssh_config))} -oStrictHostKeyChecking=accept-new",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            env={**os.environ, **(env or {})},
        )
        failed += done.returncode != 0
    return time.perf_counter() - started, failed


def launcher_fanout(profile: Path, nodes: str) -> tuple[float, int]:
    """The 4 commands through the ssh launcher's fan-out (what each node test does), from a process
    that imports the harness as pytest does."""
    script = (
        "import sys, time\nfrom ClusterShell.NodeSet import NodeSet\n"
        "from hpcos.cluster.launchers import launcher_for\nfrom hpcos.cluster.profiles import load_profile\n"
        "launcher = launcher_for(load_profile(sys.argv[1])); nodes = NodeSet(sys.argv[2]); ok = 0\n"
        "started = time.perf_counter()\n"
        f"for command in {NODE_COMMANDS!r}:\n"
        f"    ok += all(r.ok for r in launcher.run(command, nodes, timeout={COMMAND_TIMEOUT}).values())\n"
        "print(time.perf_counter() - started, ok)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(profile), nodes],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3 * COMMAND_TIMEOUT,
    )
    wall, ok = done.stdout.split()
    return float(wall), int(ok)


def fanout_figures(count: int, fanout: int, multiplex: bool) -> None:
    nodes = f"node[0001-{count:04d}]"
    print(
        f"1. {count} ssh node names, fanout {fanout}, {'with' if multiplex else 'without'} ssh multiplexing"
    )
    with tempfile.TemporaryDirectory(prefix="hpcos-bench-hpcos-") as tmp:
        work = Path(tmp)
        sshd, proc = start_loopback_sshd(work, multiplex=multiplex)
        try:
            profile = work / "fanout.yaml"
            profile.write_text(
                sshd.profile_yaml(nodes, fanout=fanout, command_timeout=COMMAND_TIMEOUT)
            )
            wall, run = hpcos_test(
                profile, work, "-m", "node", str(REPO / "integration_tests/test_nodes.py")
            )
        finally:
            stop_loopback_sshd(sshd, proc)
    passed = sum(r.outcome == "passed" for r in run.results)
    print(
        f"  hpcos test -m node:  {wall:7.1f} s wall  ({passed}/{len(run.results)} (test, node) passed; "
        f"pre-flight + 4 fan-outs + versions; versions: {', '.join(sorted(run.versions)) or 'none'})"
    )
    with tempfile.TemporaryDirectory(prefix="hpcos-bench-launcher-") as tmp:
        work = Path(tmp)
        sshd, proc = start_loopback_sshd(work, multiplex=multiplex)
        try:
            profile = work / "fanout.yaml"
            profile.write_text(
                sshd.profile_yaml(nodes, fanout=fanout, command_timeout=COMMAND_TIMEOUT)
            )
            wall_launcher, ok = launcher_fanout(profile, nodes)
        finally:
            stop_loopback_sshd(sshd, proc)
    with tempfile.TemporaryDirectory(prefix="hpcos-bench-clush-") as tmp:
        sshd, proc = start_loopback_sshd(Path(tmp), multiplex=multiplex)
        try:
            wall_clush, failed = clush(nodes, fanout, sshd.client_config)
        finally:
            stop_loopback_sshd(sshd, proc)
    print(
        f"  clush (4 commands):  {wall_clush:7.1f} s wall  ({len(NODE_COMMANDS) - failed}/{len(NODE_COMMANDS)} "
        "commands succeeded on every node)"
    )
    print(
        f"  the ssh launcher's fan-out alone (4 commands): {wall_launcher:7.1f} s wall ({ok}/{len(NODE_COMMANDS)} "
        "commands succeeded on every node)"
    )
    print(f"  ratio fan-out / clush:          {wall_launcher / wall_clush:7.2f}")
    print(
        f"  ratio hpcos test -m node / clush: {wall / wall_clush:7.2f}  (with the pre-flight round and pytest)"
    )


def tree_figures(count: int, fanout: int, gateways: int, multiplex: bool) -> None:
    nodes = f"node[0001-{count:04d}]"
    gws = f"nodegw[1-{gateways}]"
    print(
        f"3. tree mode: {count} ssh node names behind {gateways} gateways, fanout {fanout}, "
        f"{'with' if multiplex else 'without'} ssh multiplexing"
    )
    topology = f"[routes]\n{socket.gethostname().split('.')[0]}: {gws}\n{gws}: {nodes}\n"
    with tempfile.TemporaryDirectory(prefix="hpcos-bench-tree-") as tmp:
        work = Path(tmp)
        (work / "topology.conf").write_text(topology)
        sshd, proc = start_loopback_sshd(work, multiplex=multiplex)
        try:
            profile = work / "fanout.yaml"
            profile.write_text(
                sshd.profile_yaml(nodes, fanout=fanout, command_timeout=COMMAND_TIMEOUT).replace(
                    "config: '",
                    f"topology: topology.conf, gateway_python: '{sys.executable}', config: '",
                )
            )
            wall_launcher, ok = launcher_fanout(profile, nodes)
        finally:
            stop_loopback_sshd(sshd, proc)
    with tempfile.TemporaryDirectory(prefix="hpcos-bench-tree-clush-") as tmp:
        work = Path(tmp)
        (work / "topology.conf").write_text(topology)
        sshd, proc = start_loopback_sshd(work, multiplex=multiplex)
        try:
            wall_clush, failed = clush(
                nodes,
                fanout,
                sshd.client_config,
                env={
                    "CLUSTERSHELL_CFGDIR": str(work),
                    "CLUSTERSHELL_GW_PYTHON_EXECUTABLE": sys.executable,
                },
            )
        finally:
            stop_loopback_sshd(sshd, proc)
    print(
        f"  clush (4 commands, tree):  {wall_clush:7.1f} s wall  "
        f"({len(NODE_COMMANDS) - failed}/{len(NODE_COMMANDS)} commands succeeded on every node)"
    )
    print(
        f"  the ssh launcher's fan-out (4 commands, tree): {wall_launcher:7.1f} s wall "
        f"({ok}/{len(NODE_COMMANDS)} commands succeeded on every node)"
    )
    print(f"  ratio fan-out / clush:          {wall_launcher / wall_clush:7.2f}")


def drained_figures() -> None:
    print("2. four-node Slurm, `hpcos test -k 'test_nodes or rank_count or ring'`")
    for drained in (None, "n3"):
        with tempfile.TemporaryDirectory(prefix="hpcos-bench-slurm-") as tmp:
            work = Path(tmp)
            cluster = start_slurm_cluster(work)
            try:
                if drained:
                    cluster.drain(drained, "bench: drained")
                    cluster.wait_until({"drain"}, [drained])
                profile = work / "slurm4.yaml"
                profile.write_text(cluster.profile_yaml())
                wall, run = hpcos_test(
                    profile,
                    work,
                    "-k",
                    "test_nodes or rank_count or ring",
                    str(REPO / "integration_tests/test_nodes.py"),
                    str(REPO / "integration_tests/test_mpi.py"),
                    env=cluster.env,
                )
            finally:
                stop_slurm_cluster(cluster)
        outcomes = {
            o: sum(r.outcome == o for r in run.results)
            for o in ("passed", "failed", "error", "skipped")
        }
        print(
            f"  {'n3 drained' if drained else 'none drained'}: {wall:6.1f} s wall; "
            + ", ".join(f"{n} {o}" for o, n in outcomes.items() if n)
            + f"; timeouts: {sum(r.failure_class == 'timeout' for r in run.results)}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--fanout", type=int, default=64)
    parser.add_argument("--multiplex", action="store_true", help="ssh ControlMaster for both tools")
    parser.add_argument("--skip-slurm", action="store_true")
    parser.add_argument(
        "--tree",
        type=int,
        metavar="GATEWAYS",
        help="only tree mode: the launcher's fan-out and clush through this many gateways",
    )
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    if args.tree:
        tree_figures(args.nodes, args.fanout, args.tree, args.multiplex)
    else:
        fanout_figures(args.nodes, args.fanout, args.multiplex)
    if not args.skip_slurm:
        drained_figures()
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
