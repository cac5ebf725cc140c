"""The ssh fan-out itself, in a small process of its own.

ClusterShell forks one ssh client per node, and a fork costs in proportion to the memory of the
process that forks: from the pytest process (about 170 MB with its plugins) each fork took 20 ms on
a loaded 2-core machine, which made ``hpcos test -m node`` on 1,000 nodes three times slower than
``clush`` running the same commands.  This process imports nothing but ClusterShell, so its forks
cost what clush's do.

Run as a script (``python ssh_fanout.py``, not ``-m``, which would import the harness package with
it): a JSON request on stdin; a ``done NODE`` line on stderr as each node finishes (the caller's
progress bar); the results, one JSON object, on stdout.

With a topology (the profile's ``ssh.topology``) the fan-out runs in ClusterShell's tree mode: this
host reaches the gateways of the topology's first level over ssh, starts ``PYTHON -m
ClusterShell.Gateway -Bu`` on each, and each gateway runs the ssh clients of the nodes (or gateways)
below it.  Results, per-node timeouts and progress come back through the gateways as they would
directly.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

from ClusterShell.Event import EventHandler
from ClusterShell.NodeSet import NodeSet
from ClusterShell.Propagation import RouteResolvingError
from ClusterShell.Task import task_self
from ClusterShell.Topology import TopologyError
from ClusterShell.Worker.Tree import TreeWorker

PROGRESS_PREFIX = "done "
SSH_FAILED = 255  # what a node behind a failed gateway ends with: ssh's own "could not connect"
TOPOLOGY_REFUSED = 2  # this process's exit code when the topology has no place for this host
# What ClusterShell copies from this process's environment onto every gateway's command line: a
# local PYTHONPATH or log directory means nothing there, and the gateway's Python is the profile's.
_GATEWAY_ENVIRONMENT = (
    "PYTHONPATH",
    "CLUSTERSHELL_GW_LOG_DIR",
    "CLUSTERSHELL_GW_LOG_LEVEL",
    "CLUSTERSHELL_GW_B64_LINE_LENGTH",
)


class TopologyRefused(Exception):
    """The topology cannot route from this host (it is not the root of any route)."""


class _Finished(EventHandler):
    """Notes when each node's ssh finished, and says so on stderr."""

    def __init__(self, started: float):
        super().__init__()
        self.started = started
        self.finished: dict[str, float] = {}

    def ev_hup(self, worker, node, rc):
        self.finished[node] = time.monotonic() - self.started
        print(f"{PROGRESS_PREFIX}{node}", file=sys.stderr, flush=True)


class _TreeWorker(TreeWorker):
    """ClusterShell's tree worker, but a node left without a gateway fails alone, as ssh does.

    ClusterShell reroutes the nodes of a gateway it could not start through another gateway; when
    there is none left it raises RouteResolvingError out of its event loop, which ends the whole
    fan-out and every other node's result with it.  Here each such node ends with ssh's exit code and
    a line naming the gateway.  A gateway lost after it started (ClusterShell closes its nodes with
    EX_PROTOCOL and no word) says so the same way."""

    def _relaunch(self, previous_gateway):
        for node in NodeSet.fromlist(self.gwtargets[previous_gateway]):
            if not self._routable(node):
                self._fail(node, previous_gateway, "unreachable, and no other gateway leads to")
        if previous_gateway in self.gwtargets:  # some nodes have another way
            super()._relaunch(previous_gateway)

    def _gateway_abort(self, gateway):
        for node in NodeSet.fromlist(self.gwtargets.get(gateway, ())):
            self._fail(node, gateway, "lost before it finished on")

    def _routable(self, node: str) -> bool:
        try:
            hop = self.router.next_hop(NodeSet(node))
        except RouteResolvingError:
            return False
        if isinstance(hop, str):  # next_hop counted a connection to that gateway: not made yet
            self.router.nodes_fanin[hop] -= 1
        return True

    def _fail(self, node: str, gateway: str, what: str) -> None:
        # What the gateway's own ssh said (ClusterShell files it under the gateway's name).
        said = bytes(self.node_error(gateway) or b"").decode(errors="replace").strip()
        why = f" ({said.splitlines()[-1]})" if said else ""
        line = f"ssh: ClusterShell gateway {gateway}{why} {what} {node}"
        self._on_remote_node_msgline(node, line.encode(), "stderr", gateway)
        self._on_remote_node_close(node, SSH_FAILED, gateway)


def fan_out(request: dict) -> dict:
    """``request``: command, nodes (a node set), fanout, connect_timeout, ssh_options, ssh_user, timeout
    (ClusterShell's per-node backstop), and for tree mode topology (a topology.conf path) and
    gateway_python.  Returns node -> {code, stdout, stderr, seconds, timed_out}."""
    task = task_self()
    task.set_info("fanout", request["fanout"])
    task.set_info("connect_timeout", request["connect_timeout"])
    # The gateways get these too (ClusterShell sends the task's info with the command): their ssh
    # clients use the same options, user and connect timeout.
    task.set_info("ssh_options", request["ssh_options"])
    task.set_info("ssh_user", request["ssh_user"])
    tree = bool(request.get("topology"))
    if tree:
        for name in _GATEWAY_ENVIRONMENT:
            os.environ.pop(name, None)
        os.environ["CLUSTERSHELL_GW_PYTHON_EXECUTABLE"] = request["gateway_python"]
        try:
            task.load_topology(request["topology"])
        except TopologyError as exc:
            host = socket.gethostname().split(".")[0]
            raise TopologyRefused(
                f"ssh.topology {request['topology']}: ClusterShell cannot route from this host "
                f"({host}): {exc}"
            ) from None
    started = time.monotonic()
    handler = _Finished(started)
    if tree:
        worker = _TreeWorker(
            NodeSet(request["nodes"]),
            handler=handler,
            timeout=request["timeout"],
            command=request["command"],
            stderr=True,
        )
        task.schedule(worker)
    else:
        worker = task.shell(
            request["command"],
            nodes=request["nodes"],
            stderr=True,
            handler=handler,
            timeout=request["timeout"],
            # Without a topology in the profile, never the one a site's /etc/clustershell may hold.
            tree=False,
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
    try:
        results = fan_out(json.load(sys.stdin))
    except TopologyRefused as exc:
        print(exc, file=sys.stderr)
        return TOPOLOGY_REFUSED
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
