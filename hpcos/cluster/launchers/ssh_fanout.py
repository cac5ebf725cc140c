"""The ssh fan-out itself, in a small process of its own.

ClusterShell forks one ssh client per node, and a fork costs in proportion to the memory of the
process that forks: from the pytest process (about 170 MB with its plugins) each fork took 20 ms on
a loaded 2-core machine, which made ``hpcos test -m node`` on 1,000 nodes three times slower than
``clush`` running the same commands.  This process imports nothing but ClusterShell, so its forks
cost what clush's do.

Run as a script (``python ssh_fanout.py``, not ``-m``, which would import the harness package with
it): a JSON request on stdin; a ``done NODE`` line on stderr as each node finishes (the caller's
progress bar); the results, one JSON object, on stdout.
"""

from __future__ import annotations

import json
import sys
import time

from ClusterShell.Event import EventHandler
from ClusterShell.Task import task_self

PROGRESS_PREFIX = "done "


class _Finished(EventHandler):
    """Notes when each node's ssh finished, and says so on stderr."""

    def __init__(self, started: float):
        super().__init__()
        self.started = started
        self.finished: dict[str, float] = {}

    def ev_hup(self, worker, node, rc):
        self.finished[node] = time.monotonic() - self.started
        print(f"{PROGRESS_PREFIX}{node}", file=sys.stderr, flush=True)


def fan_out(request: dict) -> dict:
    """``request``: command, nodes (a node set), fanout, connect_timeout, ssh_options, ssh_user, timeout
    (ClusterShell's per-node backstop).  Returns node -> {code, stdout, stderr, seconds, timed_out}."""
    task = task_self()
    task.set_info("fanout", request["fanout"])
    task.set_info("connect_timeout", request["connect_timeout"])
    task.set_info("ssh_options", request["ssh_options"])
    task.set_info("ssh_user", request["ssh_user"])
    started = time.monotonic()
    handler = _Finished(started)
    worker = task.shell(
        request["command"],
        nodes=request["nodes"],
        stderr=True,
        handler=handler,
        timeout=request["timeout"],
    )
    task.run()
    duration = time.monotonic() - started
    stdout = {
        node: bytes(buf).decode(errors="replace")
        for buf, ns in worker.iter_buffers()
        for node in ns
    }
    stderr = {
        node: bytes(buf).decode(errors="replace") for buf, ns in worker.iter_errors() for node in ns
    }
    codes = {node: rc for rc, ns in worker.iter_retcodes() for node in ns}
    lost = set(worker.iter_keys_timeout())
    nodes = set(codes) | lost | set(stdout) | set(stderr)
    return {
        node: {
            "code": codes.get(node, -1),
            "stdout": stdout.get(node, ""),
            "stderr": stderr.get(node, ""),
            # A node that never answered gets the whole fan-out's time.
            "seconds": handler.finished.get(node, duration),
            "timed_out": node in lost,
        }
        for node in nodes
    }


def main() -> int:
    json.dump(fan_out(json.load(sys.stdin)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
