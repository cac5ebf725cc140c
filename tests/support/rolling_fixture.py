"""A real Slurm whose own reboot machinery reboots simulated nodes (RECIPES: Slurm's rolling reboot).

Several ``slurmd -N NAME`` on this host, with ``RebootProgram`` a script and every node a dnf install
root (support/deploy_fixtures.py).  Slurm counts a reboot as done only when the node registers with
a newer boot time, which slurmd computes from ``sysinfo()``'s uptime: each slurmd runs with a small
``LD_PRELOAD`` shim whose ``sysinfo()`` reports ``uptime = now - mtime($SIM_BOOT_FILE)``, so the
simulated boot of node X is ``touch boot/X`` before its slurmd starts again.

The RebootProgram (run by slurmd through ``sh -c``) finds which node asked by walking up to the
``slurmd -N X`` process, and returns at once; in a ``setsid`` background job it does what a node's
reboot does: slurmd stops, the site's reboot hook runs (hpcos's update-at-reboot file, if the
deployment left one: the install from the node's dnf cache), the node "boots" (the deploy fixture's
reboot script: the boot default becomes the running kernel, a new boot id), then slurmd starts again.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from conftest import require_tool

from hpcos.core.environment import launch_environment
from support.deploy_fixtures import write_scripts
from support.slurm_conf import write_slurm_conf
from support.slurm_fixture import _stop, start_munged
from support.slurm_nodes_fixture import SlurmNodes
from support.sshd_fixture import free_port

SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <time.h>
/* sysinfo() with the uptime of a simulated node: seconds since the mtime of $SIM_BOOT_FILE. */
int sysinfo(struct sysinfo *info) {
    static int (*real)(struct sysinfo *);
    if (!real) real = (int (*)(struct sysinfo *))dlsym(RTLD_NEXT, "sysinfo");
    int rc = real(info);
    const char *file = getenv("SIM_BOOT_FILE");
    struct stat st;
    if (rc == 0 && file && stat(file, &st) == 0) {
        long up = (long)(time(NULL) - st.st_mtime);
        info->uptime = up < 1 ? 1 : up;
    }
    return rc;
}
"""

# Slurm's RebootProgram: which node asked, then its reboot in the background (slurmd waits for us).
REBOOT_PROGRAM = """#!/bin/sh
pid=$$
node=""
while [ "$pid" -gt 1 ]; do
  args=$(tr '\\0' ' ' < /proc/$pid/cmdline 2>/dev/null || true)
  case "$args" in
    *slurmd*" -N "*) node=$(printf '%s\\n' "$args" | sed -n 's/.* -N \\([^ ]*\\).*/\\1/p'); break ;;
  esac
  pid=$(cut -d' ' -f4 /proc/$pid/stat)
done
[ -n "$node" ] || {{ echo "RebootProgram: no slurmd -N above $$" >&2; exit 1; }}
setsid sh {boot_node} "$node" </dev/null >>{log}/boot-"$node".log 2>&1 &
exit 0
"""

# One node's reboot: slurmd down, the site's reboot hook, the boot, slurmd up with a newer boot time.
BOOT_NODE = """#!/bin/sh
set -u
export SLURM_CONF={conf} HOME={home} PATH={path}
node=$1
root={nodes}/$node
pidfile={d}/slurmd-$node.pid
pid=$(cat "$pidfile" 2>/dev/null || true)
[ -z "$pid" ] || kill "$pid" 2>/dev/null || true
while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
echo "$(date +%s.%N) $node down"
hook="$root{hook}"
if [ -f "$hook" ]; then sh "$hook"; echo "$(date +%s.%N) $node hook exit $?"; fi
sh {nodes}/reboot.sh "$root"
sleep 1   # Slurm's boot time has one-second resolution: the new one must be later
touch {d}/boot/$node
SIM_BOOT_FILE={d}/boot/$node LD_PRELOAD={d}/shim.so slurmd -N "$node"
echo "$(date +%s.%N) $node up"
"""


def start_rolling_slurm(
    d: Path, nodes: list[str], nodes_dir: Path, hook: str, partition: str = "debug"
) -> SlurmNodes:
    """Slurm over ``nodes`` whose RebootProgram boots the install roots ``nodes_dir/<node>``, running
    ``<root><hook>`` first when it exists."""
    for tool, package in (("slurmctld", "slurm-wlm"), ("slurmd", "slurm-wlm"), ("gcc", "gcc")):
        require_tool(tool, package)
    for sub in ("state", "spool", "log", "boot"):
        (d / sub).mkdir(parents=True)
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-o", str(d / "shim.so"), "-x", "c", "-", "-ldl"],
        input=SHIM_C,
        text=True,
        check=True,
        capture_output=True,
        timeout=60,
    )
    write_scripts(nodes_dir)
    socket_path = start_munged(d)
    try:
        host = subprocess.run(
            ["hostname", "-s"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        node_lines = "".join(
            f"NodeName={n} NodeHostname=localhost NodeAddr=127.0.0.1 Port={free_port()} CPUs=1 "
            f"RealMemory=100 State=UNKNOWN\n"
            for n in nodes
        )
        reboot = d / "reboot-program.sh"
        conf = write_slurm_conf(
            d,
            cluster="hpcos-rolling",
            controller=f"{host}(127.0.0.1)",
            munge_socket=socket_path,
            nodes=node_lines,
            partition=f"PartitionName={partition} Nodes={','.join(nodes)} Default=YES "
            "MaxTime=INFINITE State=UP",
            spool=f"{d / 'spool'}/%n",
            # Pings every 10 s: a node marked not responding in a reboot's race is
            # seen again soon (tests/test_deploy_rolling.py).
            extra=f"RebootProgram={reboot}\nResumeTimeout=60\nSlurmdTimeout=30\n",
        )
        (d / "boot-node.sh").write_text(
            BOOT_NODE.format(
                # Debian's rpm keeps an install root's database under $HOME: the same HOME as hpcos's node commands.
                conf=shlex.quote(str(conf)),
                home=shlex.quote(launch_environment()["HOME"]),
                path=shlex.quote(os.environ.get("PATH", "/usr/bin:/bin")),
                nodes=nodes_dir,
                d=d,
                hook=hook,
            )
        )
        reboot.write_text(REBOOT_PROGRAM.format(boot_node=d / "boot-node.sh", log=d / "log"))
        reboot.chmod(0o755)
        env = {**os.environ, "SLURM_CONF": str(conf)}
        slurm = SlurmNodes(d, conf, nodes)
        subprocess.run(["slurmctld"], env=env, check=True, capture_output=True, timeout=30)
        for node in nodes:
            (d / "spool" / node).mkdir()
            boot = d / "boot" / node
            boot.touch()
            os.utime(
                boot, (boot.stat().st_atime - 600, boot.stat().st_mtime - 600)
            )  # booted ten minutes ago
            subprocess.run(
                ["slurmd", "-N", node],
                env={**env, "SIM_BOOT_FILE": str(boot), "LD_PRELOAD": str(d / "shim.so")},
                check=True,
                capture_output=True,
                timeout=30,
            )
        return slurm
    except BaseException:  # a start that failed half-way: stop whatever wrote its pid file
        _stop([*d.glob("slurmd-*.pid"), d / "slurmctld.pid", d / "munged.pid"])
        raise
