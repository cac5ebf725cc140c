"""How the benchmarks time a command: wall and CPU time, under the environment both tools get.

Both sides of a comparison run from compiled bytecode, as installed software does (pip compiles a
tool's modules when it installs it): an editable hpcos under ``PYTHONDONTWRITEBYTECODE`` would
compile its modules from source on every run (55 modules, 60 ms, in ``hpcos test``) while the tool
it is compared with compiles none.  A first, unmeasured run of each writes what is missing.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

BYTECODE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: list[str], cwd: Path | None = None, timeout: float = 600) -> tuple[float, float]:
    """Wall time, and CPU time (user + system of the command's processes): on a loaded machine the
    wall time measures the neighbours too, the CPU time much less so.  A failure ends the bench
    with the command's output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        argv, cwd=cwd, env=BYTECODE_ENV, capture_output=True, text=True, timeout=timeout
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(
            f"failed ({done.returncode}): {' '.join(argv)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
