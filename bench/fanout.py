"""Fan-out: 1,000 node names through the ssh launcher (ClusterShell, fanout 64) running ``true``.

The nodes are real ssh logins: an sshd on 127.0.0.1 (the same one the tests start, from
tests/sshd_fixture.py) serves every ``nodeNNNN`` name through an ssh client config, without
connection sharing, so every node costs a full ssh handshake as on a real cluster's first contact.
All 1,000 "nodes" share this machine's cores, so the wall time is an upper bound for the launcher
on real hardware; the harness's own CPU per node (ClusterShell's engine, result gathering) is the
launcher overhead proper, printed separately from the ssh clients' CPU.

    .venv/bin/python bench/fanout.py [--nodes 1000] [--fanout 64]   # as root: sshd needs /run/sshd
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from ClusterShell.NodeSet import NodeSet

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from support.sshd_fixture import start_loopback_sshd, stop_loopback_sshd  # noqa: E402

from harness.launchers import launcher_for  # noqa: E402
from harness.profiles import load_profile  # noqa: E402

COMMAND_TIMEOUT = 600


def _cpu_with_children(pid: int) -> float:
    """CPU seconds of ``pid`` and its reaped children (sshd's per-login processes)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--fanout", type=int, default=64)
    args = parser.parse_args()
    nodes = NodeSet(f"node[0001-{args.nodes:04d}]")
    with tempfile.TemporaryDirectory(prefix="hpcos-bench-fanout-") as tmp:
        sshd, proc = start_loopback_sshd(Path(tmp), multiplex=False)
        try:
            profile_file = Path(tmp) / "fanout.yaml"
            profile_file.write_text(sshd.profile_yaml(str(nodes), fanout=args.fanout,
                                                      command_timeout=COMMAND_TIMEOUT))
            launcher = launcher_for(load_profile(profile_file))
            sshd_before = _cpu_with_children(proc.pid)
            own_before = resource.getrusage(resource.RUSAGE_SELF)
            kids_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            results = launcher.run("true", nodes, timeout=COMMAND_TIMEOUT)
            wall = time.perf_counter() - started
            own = resource.getrusage(resource.RUSAGE_SELF)
            kids = resource.getrusage(resource.RUSAGE_CHILDREN)
            sshd_cpu = _cpu_with_children(proc.pid) - sshd_before
        finally:
            stop_loopback_sshd(sshd, proc)
    ok = sum(r.ok for r in results.values())
    own_cpu = (own.ru_utime + own.ru_stime) - (own_before.ru_utime + own_before.ru_stime)
    ssh_cpu = (kids.ru_utime + kids.ru_stime) - (kids_before.ru_utime + kids_before.ru_stime)
    n = len(nodes)
    print(f"{n} node names, fanout {args.fanout}, command 'true' over real ssh to a loopback sshd")
    print(f"  succeeded:                     {ok}/{n}")
    print(f"  wall time:                     {wall:7.2f} s   ({wall / n * 1000:.1f} ms per node)")
    print(f"  launcher CPU (ClusterShell):   {own_cpu:7.2f} s   ({own_cpu / n * 1000:.2f} ms per node)")
    print(f"  ssh clients' CPU:              {ssh_cpu:7.2f} s   ({ssh_cpu / n * 1000:.2f} ms per node)")
    print(f"  sshd's CPU (the 'nodes'):      {sshd_cpu:7.2f} s   ({sshd_cpu / n * 1000:.2f} ms per node)")
    return 0 if ok == n else 1


if __name__ == "__main__":
    sys.exit(main())
