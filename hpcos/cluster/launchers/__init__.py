"""Launchers: how a command or an MPI job reaches the nodes.  The profile picks one; tests never do."""

from __future__ import annotations

import importlib

from hpcos.cluster.launchers.base import CommandFailed, CommandResult, Launcher
from hpcos.cluster.profiles import Profile
from hpcos.cluster.registry import LAUNCHERS

__all__ = ["CommandFailed", "CommandResult", "Launcher", "launcher_for"]


def launcher_for(profile: Profile) -> Launcher:
    module, _, cls = LAUNCHERS[profile.launcher].partition(":")
    return getattr(importlib.import_module(module), cls)(profile)
