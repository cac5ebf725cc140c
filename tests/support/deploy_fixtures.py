"""Simulated cluster nodes for ``hpcos deploy``: one dnf install root per node (RECIPES: dnf nodes).

Each node is a directory with its own rpm database and its own dnf configuration
(``ROOT/etc/dnf/dnf.conf``: dnf reads the install root's configuration and ``yum.repos.d`` first),
reached through the profile's launcher (local, ssh on the loopback sshd, or srun).  The "reboot" is
a script: it records the reboot (with the nodes Slurm had out of service at that moment), "boots" the
boot default into ``ROOT/run/running-kernel`` and writes a new ``ROOT/run/boot_id``.  The boot
default is kept by a simulated grubby the way EL9 keeps it: the newest kernel after an install, the
one ``grubby --set-default`` names after that.

Debian's rpm keeps its database under ``~/.rpmdb``: the node's database is ``ROOT$HOME/.rpmdb``,
so every dnf and rpm call on a node must see the same HOME (the launcher's: ``launch_environment``
gives every launched command an empty HOME of its own, and these calls start from it too).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from conftest import REPO

from hpcos.core.environment import launch_environment

# node_commands and write_scripts: the simulated boot's, re-exported for the deploy tests.
from hpcos.demo.cluster import make_node, node_commands, write_scripts  # noqa: F401


def provision(root: Path, repo_text: str, packages: list[str], env: dict | None = None) -> None:
    """Install ``packages`` from the repositories of ``repo_text`` (what a kickstart would do), then
    "boot" the node once so it has a running kernel and a boot id."""
    make_node(root)
    (root / "etc" / "yum.repos.d" / "hpcos.repo").write_text(repo_text)
    environ = {**launch_environment(), **(env or {})}
    done = subprocess.run(
        ["dnf", "-y", "-q", f"--installroot={root}", "--releasever=9", "install", *packages],
        capture_output=True,
        text=True,
        timeout=300,
        env=environ,
    )
    assert done.returncode == 0, done.stderr
    boot(root, env)


def boot(root: Path, env: dict | None = None) -> None:
    script, _ = write_scripts(root.parent)
    subprocess.run(
        ["sh", str(script), str(root)],
        check=True,
        capture_output=True,
        timeout=60,
        env={**launch_environment(), **(env or {})},
    )
    (root / "var" / "log" / "reboots").unlink()  # provisioning is not a deployment's reboot


def installed(root: Path, env: dict | None = None) -> set[str]:
    fmt = "%{NAME}-%{EPOCHNUM}:%{VERSION}-%{RELEASE}.%{ARCH}\n"
    out = subprocess.run(
        ["rpm", "--root", str(root), "-qa", "--qf", fmt],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**launch_environment(), **(env or {})},
    ).stdout
    return {line for line in out.splitlines() if line and not line.startswith("gpg-pubkey")}


def deploy_settings(nodes_dir: Path, *, batch_size: int = 2, drain: str = "slurm") -> dict:
    """A profile's ``deploy:`` section for nodes that are the install roots ``nodes_dir/<node>``."""
    return {
        "batch_size": batch_size,
        "root": f"{nodes_dir}/{{node}}",
        "gpgcheck": False,
        "drain": drain,
        **node_commands(nodes_dir),
        "reboot_timeout": 60,
        "drain_timeout": 60,
    }


def profile_yaml(
    nodes_dir: Path,
    nodes: str,
    *,
    batch_size: int = 2,
    launcher: str = "local",
    drain: str = "slurm",
    extra: dict | None = None,
) -> str:
    """A cluster profile whose nodes are the install roots ``nodes_dir/<node>``."""
    local = yaml.safe_load((REPO / "integration_tests" / "clusters" / "local.yaml").read_text())
    profile = {
        "name": "sim-cluster",
        "launcher": launcher,
        "nodes": nodes,
        "node_class": "simulated",
        "timeouts": {"command": 120, "mpi": 120},
        "mpi": local["mpi"],
        "os_update": {"kernel_package": "kernel", "packages": ["openmpi"]},
        "deploy": deploy_settings(nodes_dir, batch_size=batch_size, drain=drain),
        **(extra or {}),
    }
    return yaml.safe_dump(profile)
