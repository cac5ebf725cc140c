"""Launchers: how a command or an MPI job reaches the nodes.  The profile picks one; tests never do."""

from __future__ import annotations

from harness.launchers.base import CommandFailed, CommandResult, Launcher
from harness.profiles import Profile

__all__ = ["CommandFailed", "CommandResult", "Launcher", "launcher_for"]


def launcher_for(profile: Profile) -> Launcher:
    if profile.launcher == "ssh":
        from harness.launchers.ssh import SshLauncher

        return SshLauncher(profile)
    if profile.launcher == "slurm":
        from harness.launchers.slurm import SlurmLauncher

        return SlurmLauncher(profile)
    from harness.launchers.local import LocalLauncher

    return LocalLauncher(profile)
