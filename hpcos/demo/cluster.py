"""The simulated clusters: a real Slurm (munged, slurmctld, one ``slurmd -N NAME`` per node) and one
dnf install root per node.

Test cluster and production share one slurmctld, in two partitions named as the shipped profiles
name them.  Each slurmd runs in a mount namespace of its own where the shared spool path is its
node's spool: pmix puts its sockets there, at the same path on every node, as on a real cluster.

A node's operating system is its install root ``nodes/NAME``: dnf installs and distro-syncs into it,
``rpm --root`` reads it.  Its "reboot" is a script that boots the boot default into
``run/running-kernel`` and writes a new ``run/boot_id``; a simulated grubby keeps the default
as EL9 does (the newest kernel after an install, the one ``grubby --set-default`` names).
InfiniBand cannot be real here (no HCA): ``ibstat`` and ``ibv_devinfo`` on the nodes' PATH print an
HDR port as captured from a real one.
The boot scripts are the project's simulated nodes' (tests/support/deploy_fixtures.py uses them from
here).  Every daemon is stopped by its pid file (``stop``), also when the demo fails or is interrupted.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from hpcos.core.environment import launch_environment
from hpcos.core.errors import UserError
from hpcos.core.runner import run

START_TIMEOUT = 60
STOP_GRACE = 10

# skip_if_unavailable=0: a broken repository must fail the node, not be skipped ("Nothing to do");
# plugins=0: Debian's dnf enables the "local" plugin; metadata_expire=0: a re-created repository at
# the same URL must be read again (RECIPES section 5).
DNF_CONF = (
    "[main]\ngpgcheck=1\nskip_if_unavailable=0\nplugins=0\ninstall_weak_deps=0\nmetadata_expire=0\n"
    "installonly_limit=3\n"
)

GRUBBY_SH = r"""#!/bin/sh
# A simulated EL9 grubby for the node whose root is $1: --default-kernel, --set-default /boot/vmlinuz-V.
# The boot default behaves as on EL9: kernel-install (UPDATEDEFAULT=yes) makes each newly installed
# kernel the default; --set-default changes it; a removed default falls back to the newest kernel.
set -eu
root=$1; shift
mkdir -p "$root/boot"
known="$root/boot/sim-known"; [ -f "$known" ] || : > "$known"
installed=$(rpm --root "$root" -q --qf '%{VERSION}-%{RELEASE}.%{ARCH}\n' kernel 2>/dev/null \
  | grep -v 'not installed' | sort -V || true)
new=$(printf '%s\n' "$installed" | grep -vxF -f "$known" | grep . | tail -n 1 || true)
[ -z "$new" ] || echo "$new" > "$root/boot/sim-default"
printf '%s\n' "$installed" > "$known"
default=$(cat "$root/boot/sim-default" 2>/dev/null || true)
if [ -z "$default" ] || ! printf '%s\n' "$installed" | grep -qxF "$default"; then
  default=$(printf '%s\n' "$installed" | tail -n 1); echo "$default" > "$root/boot/sim-default"
fi
case "${1:-}" in
  --default-kernel) echo "/boot/vmlinuz-$default" ;;
  --set-default)
    want=${2#/boot/vmlinuz-}
    if printf '%s\n' "$installed" | grep -qxF "$want"; then echo "$want" > "$root/boot/sim-default"
    else echo "The param ${2:-} is incorrect" >&2; exit 1; fi ;;
  *) echo "usage: grubby ROOT --default-kernel | --set-default /boot/vmlinuz-VERSION" >&2; exit 2 ;;
esac
"""

REBOOT_SH = r"""#!/bin/sh
# A simulated reboot of the node whose root is $1: what a real one changes, the way it changes it.
# It boots the boot default (grubby.sh beside this script), records the reboot with the nodes Slurm
# had out of service at that moment, and writes a new boot id.
set -eu
root=$1
mkdir -p "$root/run" "$root/var/log"
drained=$(sinfo -h -N -t drained -o %N 2>/dev/null | sort -u | tr '\n' ' ' || true)
reserved=$(scontrol -o show reservation 2>/dev/null | sed -n 's/.*\(Nodes=[^ ]*\).*\(Flags=[^ ]*\).*/\1 \2/p' \
  | tr '\n' ' ' || true)
echo "reboot at $(date +%s.%N); drained: $drained; reserved: $reserved" >> "$root/var/log/reboots"
sh "$(dirname "$0")/grubby.sh" "$root" --default-kernel | sed 's#^/boot/vmlinuz-##' > "$root/run/running-kernel"
cat /proc/sys/kernel/random/uuid > "$root/run/boot_id"
"""


# mlx5_0 of a real HDR node (ibstat 1.x and ibv_devinfo -v, captured; tests/data/ib holds the full texts).
IBSTAT = """CA 'mlx5_0'
\tCA type: MT4123
\tNumber of ports: 1
\tFirmware version: {firmware}
\tHardware version: 0
\tNode GUID: 0xb8cef60300a1c3f2
\tSystem image GUID: 0xb8cef60300a1c3f2
\tPort 1:
\t\tState: Active
\t\tPhysical state: LinkUp
\t\tRate: 200
\t\tBase lid: 17
\t\tLMC: 0
\t\tSM lid: 1
\t\tCapability mask: 0xa651e848
\t\tPort GUID: 0xb8cef60300a1c3f2
\t\tLink layer: InfiniBand
"""


@dataclass
class Slurm:
    directory: Path
    partitions: dict[str, list[str]]  # partition -> node names
    conf: Path = field(init=False)

    def __post_init__(self) -> None:
        self.conf = self.directory / "slurm.conf"

    @property
    def nodes(self) -> list[str]:
        return [n for nodes in self.partitions.values() for n in nodes]

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def start(self) -> None:
        d = self.directory
        for sub in ("state", "log", "spool/cur", *(f"spool/{n}" for n in self.nodes)):
            (d / sub).mkdir(parents=True, exist_ok=True)
        run_dir = d / "run"
        run_dir.mkdir(mode=0o755, exist_ok=True)
        run_dir.chmod(0o755)  # munged refuses a socket directory others cannot search
        key = d / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        sock = run_dir / "munge.socket"
        _must(
            [
                "munged",
                f"--socket={sock}",
                f"--key-file={key}",
                f"--pid-file={d / 'munged.pid'}",
                f"--log-file={d / 'log' / 'munged.log'}",
                f"--seed-file={d / 'munge.seed'}",
                "--force",
                "--num-threads=8",
            ]
        )
        probe = _must(["slurmd", "-C"]).splitlines()[0]
        hardware = " ".join(
            f
            for f in probe.split()
            if f.split("=")[0]
            in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
        )
        nodes = "".join(
            f"NodeName={n} NodeHostname=localhost NodeAddr=127.0.0.1 Port={_free_port()} {hardware} "
            f"RealMemory=1000 State=UNKNOWN\n"
            for n in self.nodes
        )
        parts = "".join(
            f"PartitionName={p} Nodes={','.join(ns)} MaxTime=INFINITE State=UP\n"
            for p, ns in self.partitions.items()
        )
        write_slurm_conf(
            d,
            cluster="hpcos-demo",
            controller=socket.gethostname(),
            munge_socket=sock,
            nodes=nodes,
            partition=parts,
            spool=str(d / "spool" / "cur"),
            extra=f"TmpFS={d / 'spool' / 'cur'}\n",
        )
        _must(["slurmctld"], env=self.env)
        for node in self.nodes:
            spool = shlex.quote(str(d / "spool" / node))
            cur = shlex.quote(str(d / "spool" / "cur"))
            _must(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    f"mount --bind {spool} {cur} && exec slurmd -N {shlex.quote(node)}",
                ],
                env=self.env,
            )
        self.wait_idle()

    def states(self) -> dict[str, str]:
        out = run(["sinfo", "-h", "-N", "-o", "%N %t"], timeout=30, env=self.env).stdout
        return dict(line.split() for line in out.splitlines() if len(line.split()) == 2)

    def wait_idle(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = self.states()
            if all(states.get(n) == "idle" for n in self.nodes):
                return
            if time.monotonic() > deadline:
                raise UserError(
                    f"Slurm nodes not idle after {timeout:g} s: {states} "
                    f"(logs in {self.directory / 'log'})"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        d = self.directory
        stop_pids(
            [*(d / f"slurmd-{n}.pid" for n in self.nodes), d / "slurmctld.pid", d / "munged.pid"]
        )


def write_slurm_conf(
    d: Path,
    *,
    cluster: str,
    controller: str,
    munge_socket: Path,
    nodes: str,
    partition: str,
    spool: str,
    slurmd_pid: str = "slurmd-%n.pid",
    slurmd_log: str = "slurmd-%n.log",
    extra: str = "",
) -> Path:
    """``d/slurm.conf`` of a Slurm private to ``d`` (state, spool, logs, pid files), munge through a
    private socket, no cgroups, no accounting: the one writer of the demo's and the tests' Slurms.
    ``nodes`` are the NodeName lines, ``partition`` the PartitionName lines, ``spool`` the
    SlurmdSpoolDir (``%n`` for one per node), ``extra`` further lines (a SlurmdPort, TmpFS, ...)."""
    conf = d / "slurm.conf"
    conf.write_text(f"""ClusterName={cluster}
SlurmctldHost={controller}
SlurmctldPort={_free_port()}
{extra}AuthType=auth/munge
AuthInfo=socket={munge_socket}
SlurmUser=root
StateSaveLocation={d / "state"}
SlurmdSpoolDir={spool}
SlurmctldPidFile={d / "slurmctld.pid"}
SlurmdPidFile={d / slurmd_pid}
SlurmctldLogFile={d / "log" / "slurmctld.log"}
SlurmdLogFile={d / "log" / slurmd_log}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
MailProg=/bin/true
ReturnToService=2
{nodes.rstrip()}
{partition.rstrip()}
""")
    return conf


def stop_pids(pid_files: list[Path], grace: float = STOP_GRACE) -> None:
    """TERM every daemon at once, KILL what is still there after ``grace`` seconds."""
    pids = []
    for pid_file in pid_files:
        with contextlib.suppress(OSError, ValueError):
            pids.append(int(pid_file.read_text().strip()))
    stop_processes(pids, grace)


def stop_processes(pids: list[int], grace: float = STOP_GRACE) -> None:
    """TERM each of ``pids``, KILL what is still there after ``grace`` seconds."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if _alive(pid)]
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def processes() -> list[tuple[int, list[bytes]]]:
    """Every process of this host (pid, command line), read from /proc; kernel threads left out."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if argv[0]:
            found.append((int(entry.name), argv))
    return found


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (dead, its parent not yet told) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _must(
    argv: list[str], env: dict | None = None, timeout: float = 60, base_env: dict | None = None
) -> str:
    done = run(argv, timeout=timeout, env=env, base_env=base_env)
    if done.exit_code != 0:
        raise UserError(f"{argv[0]} failed (exit {done.exit_code}): {done.output.strip()[-1000:]}")
    return done.stdout


# -- nodes --------------------------------------------------------------------------------------------


def make_node(root: Path) -> Path:
    (root / "etc" / "dnf").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "yum.repos.d").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "dnf" / "dnf.conf").write_text(DNF_CONF)
    return root


def write_scripts(directory: Path) -> tuple[Path, Path]:
    """reboot.sh and grubby.sh in ``directory`` (the nodes' parent): the simulated boot of every node."""
    directory.mkdir(parents=True, exist_ok=True)
    reboot, grubby = directory / "reboot.sh", directory / "grubby.sh"
    reboot.write_text(REBOOT_SH)
    grubby.write_text(GRUBBY_SH)
    return reboot, grubby


def node_commands(nodes_dir: Path) -> dict[str, str]:
    """The ``deploy:`` commands that reach a simulated node's boot: the real ones' paths substituted."""
    script, grubby = write_scripts(nodes_dir)
    return {
        "reboot": f"sh {script} {{root}}",
        "boot_id": "cat {root}/run/boot_id",
        "running_kernel": "cat {root}/run/running-kernel",
        "boot_default": f"sh {grubby} {{root}} --default-kernel",
        "set_boot_default": f"sh {grubby} {{root}} --set-default /boot/vmlinuz-{{kernel}}",
    }


def provision(root: Path, repo_text: str, packages: list[str]) -> None:
    """Install ``packages`` from the repositories of ``repo_text`` (what a kickstart would do), then
    "boot" the node once so it has a running kernel and a boot id."""
    make_node(root)
    (root / "etc" / "yum.repos.d" / "hpcos.repo").write_text(repo_text)
    # With the HOME of hpcos's node commands: Debian's rpm keeps an install root's database under
    # ROOT$HOME/.rpmdb, and deploy must find the packages provisioning installed.
    node_env = launch_environment()
    _must(
        ["dnf", "-y", "-q", f"--installroot={root}", "--releasever=9", "install", *packages],
        timeout=300,
        base_env=node_env,
    )
    reboot, _grubby = write_scripts(root.parent)
    _must(["sh", str(reboot), str(root)], base_env=node_env)
    (root / "var" / "log" / "reboots").unlink()  # provisioning is not a deployment's reboot


def hca_stand_ins(directory: Path, firmware: str) -> Path:
    """``ibstat`` and ``ibv_devinfo`` printing one HDR port at ``firmware``: the nodes' PATH gets them."""
    directory.mkdir(parents=True, exist_ok=True)
    text = IBSTAT.format(firmware=firmware)
    ibstat = directory / "ibstat"
    ibstat.write_text(f"#!/bin/sh\ncat <<'EOF'\n{text}EOF\n")
    devinfo = directory / "ibv_devinfo"
    devinfo.write_text("#!/bin/sh\ncat <<'EOF'\n" + IBV_DEVINFO.format(firmware=firmware) + "EOF\n")
    for path in (ibstat, devinfo):
        path.chmod(0o755)
    return directory


IBV_DEVINFO = """hca_id:\tmlx5_0
\ttransport:\t\t\tInfiniBand (0)
\tfw_ver:\t\t\t\t{firmware}
\tnode_guid:\t\t\tb8ce:f603:00a1:c3f2
\tsys_image_guid:\t\t\tb8ce:f603:00a1:c3f2
\tvendor_id:\t\t\t0x02c9
\tvendor_part_id:\t\t\t4123
\thw_ver:\t\t\t\t0x0
\tboard_id:\t\t\tMT_0000000223
\tphys_port_cnt:\t\t\t1
\t\tport:\t1
\t\t\tstate:\t\t\tPORT_ACTIVE (4)
\t\t\tmax_mtu:\t\t4096 (5)
\t\t\tactive_mtu:\t\t4096 (5)
\t\t\tsm_lid:\t\t\t1
\t\t\tport_lid:\t\t17
\t\t\tport_lmc:\t\t0x00
\t\t\tlink_layer:\t\tInfiniBand
\t\t\tactive_width:\t\t4X (2)
\t\t\tactive_speed:\t\t50.0 Gbps (64)
\t\t\tphys_state:\t\tLINK_UP (5)
"""
