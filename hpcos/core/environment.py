"""The environment every command hpcos launches for a test or a node starts from: this process's,
minus every variable that can hold a secret hpcos knows of and ``NETRC``, with a HOME that holds no
credential file.

It lives in the core because every layer that starts commands (the cluster's launchers, probe builds,
rpm tools) needs it, while the rule for resolving credentials stays with the site
(``hpcos.site.credentials``), which names the same variables from here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SERVICES = ("tracker", "jenkins")
# Every variable that can hold a secret hpcos knows of: launched test commands never see them.
CREDENTIAL_VARIABLES = frozenset(
    f"HPCOS_{s.upper()}_{k}" for s in SERVICES for k in ("PASSWORD", "TOKEN")
)


def without_credentials(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` minus every credential variable and ``NETRC``: the environment launched commands get."""
    return {k: v for k, v in environ.items() if k not in CREDENTIAL_VARIABLES and k != "NETRC"}


def launch_home(environ: Mapping[str, str] | None = None) -> Path:
    """The HOME of every command hpcos launches for a test or a build: an empty private directory in the
    user's hpcos cache (beside the real home, so it also exists on nodes that share home directories).
    A test command that reads ``~/.netrc`` or ``~/.config`` finds nothing of the user's."""
    env = os.environ if environ is None else environ
    cache = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    home = Path(cache) / "hpcos" / "launch-home"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return home


def launch_environment() -> dict[str, str]:
    """The environment every command hpcos launches for a test starts from (``runner.run(base_env=...)``):
    no credential variable, no ``NETRC``, and a HOME that holds no credential file."""
    env = without_credentials(os.environ)
    try:
        env["HOME"] = str(launch_home())
    except OSError:
        env["HOME"] = (
            "/nonexistent"  # no cache directory to be had: a HOME with nothing in it at all
        )
    return env
