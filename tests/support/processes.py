"""Ending the daemons the test fixtures start (sshd on loopback, the netns pair's sshd, ...): one
way for all of them.  Not a pytest plugin, so any fixture module may import it."""

from __future__ import annotations

import signal
import subprocess


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not ended within 10 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
