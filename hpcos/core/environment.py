"""The environment every command hpcos launches for a test or a node starts from: this process's,
minus every variable that can hold a secret hpcos knows of.

It lives in the core because every layer that starts commands (the cluster's launchers, probe builds,
rpm tools) needs it, while the rule for resolving credentials stays with the site
(``hpcos.site.credentials``), which names the same variables from here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

SERVICES = ("tracker", "jenkins")
# Every variable that can hold a secret hpcos knows of: launched test commands never see them.
CREDENTIAL_VARIABLES = frozenset(f"HPCOS_{s.upper()}_{k}" for s in SERVICES for k in ("PASSWORD", "TOKEN"))


def without_credentials(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` minus every credential variable: the environment launched commands get."""
    return {k: v for k, v in environ.items() if k not in CREDENTIAL_VARIABLES}


def launch_environment() -> dict[str, str]:
    """The environment every command hpcos launches for a test starts from (``runner.run(base_env=...)``)."""
    return without_credentials(os.environ)
