"""Replaying what Open MPI printed on a real night, through the harness's own launch and parsing path.

The profile's ``mpirun`` becomes this script: the launcher passes ``-np N BINARY ARGS`` as to any
mpirun, and the script prints the captured stderr of that probe (``<probe>.stderr`` in a directory of
captures, tests/data/mpi_failures/*-stderr/) and exits 1, as Open MPI did.  The probes are still built
with mpicc and the failures parsed by the integration tests: only the launch's output is replayed.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPLAY = """import sys, pathlib
args = sys.argv[2:]  # the captures' directory, then what the launcher passes: -np N BINARY ARGS
probe = pathlib.Path(args[args.index("-np") + 2]).name.split("-")[0]
sys.stderr.write((pathlib.Path(sys.argv[1]) / f"{probe}.stderr").read_text())
sys.exit(1)
"""


def replay_mpirun(work: Path, captures: Path) -> list[str]:
    """The ``mpirun`` setting of a profile that replays ``captures`` (the script written under ``work``)."""
    script = work / "replay.py"
    script.write_text(REPLAY)
    return [sys.executable, str(script), str(captures)]
