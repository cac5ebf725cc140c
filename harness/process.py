"""Run one local process with a timeout, and kill its whole process tree when the time is up.

Every launch of the harness ends here (mpirun, srun, sbatch, probes): a pending ``srun`` or a failed
hydra launch otherwise waits forever.  The child gets its own session, so on timeout one ``killpg``
reaches mpirun's orted/hydra_pmi_proxy and the ranks they forked, not just the launcher.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Time a launcher gets after SIGTERM to clean up (srun cancels its pending allocation) before SIGKILL.
TERM_GRACE = 2.0


@dataclass
class ProcessResult:
    exit_code: int  # -SIGNAL when killed; meaningless when timed_out
    stdout: str
    stderr: str
    duration: float
    timed_out: bool


def run_process(argv: Sequence[str] | str, *, timeout: float, env: Mapping[str, str] | None = None,
                cwd: str | None = None) -> ProcessResult:
    """Run ``argv`` (a string runs through ``/bin/sh -c``); never blocks longer than ``timeout`` + grace."""
    full_env = {**os.environ, **(env or {})}
    started = time.monotonic()
    try:
        proc = subprocess.Popen(argv, shell=isinstance(argv, str), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, cwd=cwd,
                                start_new_session=True, text=True, errors="replace")
    except OSError as exc:
        return ProcessResult(127, "", f"{argv if isinstance(argv, str) else argv[0]}: {exc.strerror}",
                             time.monotonic() - started, False)
    try:
        out, err = proc.communicate(timeout=timeout)
        return ProcessResult(proc.returncode, out, err, time.monotonic() - started, False)
    except subprocess.TimeoutExpired:
        out, err = _kill_tree(proc)
        return ProcessResult(proc.returncode if proc.returncode is not None else -signal.SIGKILL,
                             out, err, time.monotonic() - started, True)


def _kill_tree(proc: subprocess.Popen) -> tuple[str, str]:
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        return proc.communicate(timeout=TERM_GRACE)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc.pid, signal.SIGKILL)
    try:
        return proc.communicate(timeout=TERM_GRACE)
    except subprocess.TimeoutExpired:
        # A grandchild that left the session still holds the pipes: stop reading, keep what we have.
        proc.kill()
        proc.wait(timeout=TERM_GRACE)
        return "", "(output lost: a process outside the killed process group kept the pipes open)"


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
