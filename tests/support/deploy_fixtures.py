"""Simulated cluster nodes for ``hpcos deploy``: one dnf install root per node (RECIPES: dnf nodes).

Each node is a directory with its own rpm database and its own dnf configuration
(``ROOT/etc/dnf/dnf.conf``: dnf reads the install root's configuration and ``yum.repos.d`` first),
reached through the profile's launcher (local, ssh on the loopback sshd, or srun).  The "reboot" is
a script: it records the reboot (with the nodes Slurm had out of service at that moment), "boots" the
boot default into ``ROOT/run/running-kernel`` and writes a new ``ROOT/run/boot_id``.  The boot
default is kept by a simulated grubby the way EL9 keeps it: the newest kernel after an install, the
one ``grubby --set-default`` names after that.

Debian's rpm keeps its database under ``~/.rpmdb``: the node's database is ``ROOT$HOME/.rpmdb``,
so every dnf and rpm call on a node must see the same HOME (the launcher's).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml
from conftest import REPO

# skip_if_unavailable=0: a broken repository must fail the node, not be skipped ("Nothing to do");
# plugins=0: Debian's dnf enables the "local" plugin; metadata_expire=0: a re-created repository at
# the same URL must be read again (RECIPES section 5).
DNF_CONF = ("[main]\ngpgcheck=1\nskip_if_unavailable=0\nplugins=0\ninstall_weak_deps=0\nmetadata_expire=0\n"
            "installonly_limit=3\n")

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


def write_scripts(directory: Path) -> tuple[Path, Path]:
    """reboot.sh and grubby.sh in ``directory`` (the nodes' parent): the simulated boot of every node."""
    reboot, grubby = directory / "reboot.sh", directory / "grubby.sh"
    reboot.write_text(REBOOT_SH)
    grubby.write_text(GRUBBY_SH)
    return reboot, grubby


def make_node(root: Path) -> Path:
    (root / "etc" / "dnf").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "yum.repos.d").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "dnf" / "dnf.conf").write_text(DNF_CONF)
    return root


def provision(root: Path, repo_text: str, packages: list[str], env: dict | None = None) -> None:
    """Install ``packages`` from the repositories of ``repo_text`` (what a kickstart would do), then
    "boot" the node once so it has a running kernel and a boot id."""
    make_node(root)
    (root / "etc" / "yum.repos.d" / "hpcos.repo").write_text(repo_text)
    environ = {**os.environ, **(env or {})}
    done = subprocess.run(["dnf", "-y", "-q", f"--installroot={root}", "--releasever=9", "install", *packages],
                          capture_output=True, text=True, timeout=300, env=environ)
    assert done.returncode == 0, done.stderr
    boot(root, env)


def boot(root: Path, env: dict | None = None) -> None:
    script, _ = write_scripts(root.parent)
    subprocess.run(["sh", str(script), str(root)], check=True, capture_output=True, timeout=60,
                   env={**os.environ, **(env or {})})
    (root / "var" / "log" / "reboots").unlink()  # provisioning is not a deployment's reboot


def installed(root: Path, env: dict | None = None) -> set[str]:
    fmt = "%{NAME}-%{EPOCHNUM}:%{VERSION}-%{RELEASE}.%{ARCH}\n"
    out = subprocess.run(["rpm", "--root", str(root), "-qa", "--qf", fmt],
                         capture_output=True, text=True, timeout=60, check=True,
                         env={**os.environ, **(env or {})}).stdout
    return {line for line in out.splitlines() if line and not line.startswith("gpg-pubkey")}


def deploy_settings(nodes_dir: Path, *, batch_size: int = 2, drain: str = "slurm") -> dict:
    """A profile's ``deploy:`` section for nodes that are the install roots ``nodes_dir/<node>``."""
    return {"batch_size": batch_size, "root": f"{nodes_dir}/{{node}}", "gpgcheck": False, "drain": drain,
            **node_commands(nodes_dir), "reboot_timeout": 60, "drain_timeout": 60}


def node_commands(nodes_dir: Path) -> dict[str, str]:
    """The ``deploy:`` commands that reach a simulated node's boot: the real ones' paths substituted."""
    script, grubby = write_scripts(nodes_dir)
    return {"reboot": f"sh {script} {{root}}", "boot_id": "cat {root}/run/boot_id",
            "running_kernel": "cat {root}/run/running-kernel",
            "boot_default": f"sh {grubby} {{root}} --default-kernel",
            "set_boot_default": f"sh {grubby} {{root}} --set-default /boot/vmlinuz-{{kernel}}"}


def profile_yaml(nodes_dir: Path, nodes: str, *, batch_size: int = 2, launcher: str = "local",
                 drain: str = "slurm", extra: dict | None = None) -> str:
    """A cluster profile whose nodes are the install roots ``nodes_dir/<node>``."""
    local = yaml.safe_load((REPO / "integration_tests" / "clusters" / "local.yaml").read_text())
    profile = {
        "name": "sim-cluster", "launcher": launcher, "nodes": nodes, "node_class": "simulated",
        "timeouts": {"command": 120, "mpi": 120}, "mpi": local["mpi"],
        "os_update": {"kernel_package": "kernel", "packages": ["openmpi"]},
        "deploy": deploy_settings(nodes_dir, batch_size=batch_size, drain=drain),
        **(extra or {}),
    }
    return yaml.safe_dump(profile)
