"""Size budgets for untrusted input: what a hostile or mistaken value may cost before it is refused.

A node range is expanded by ClusterShell into every name (``n[1-100000000]`` is a hundred million
strings), and a results file is read whole; both come from files anyone may have edited.  The
budgets are far above any real site (the largest clusters have tens of thousands of nodes; a results
file of a nightly run is a few MiB) and are checked before the expensive step.
"""

from __future__ import annotations

import re

MAX_NODES = 65_536  # nodes in one node set (profile ``nodes``, ``--nodes``, a result's node)
RESULTS_FILE_BUDGET = 256 * 1024 * 1024  # bytes of one results file
MAX_NODE_SET_TEXT = 64 * 1024  # characters of one node set as written

_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")


def node_count_bound(text: str) -> int:
    """An upper bound of how many names ``text`` (a ClusterShell node set) expands to, from its text
    alone: per comma-separated pattern, the product of its bracket groups' sizes."""
    total = 0
    depth, start, patterns = 0, 0, []
    for i, c in enumerate(text):  # split on commas outside brackets
        depth += c == "["
        depth -= c == "]"
        if c == "," and depth == 0:
            patterns.append(text[start:i])
            start = i + 1
    patterns.append(text[start:])
    for pattern in patterns:
        size = 1
        for group in re.findall(r"\[([^\]]*)\]", pattern):
            size *= sum(
                int(b) - int(a) + 1 if int(b) >= int(a) else 1 for a, b in _RANGE.findall(group)
            ) + len([item for item in group.split(",") if item and not _RANGE.search(item)])
        total += size
    return total


def node_set_problem(text: str) -> str | None:
    """Why ``text`` is over the node budget, or None: checked before ClusterShell expands it."""
    if len(text) > MAX_NODE_SET_TEXT:
        return f"a node set of more than {MAX_NODE_SET_TEXT} characters"
    # int() refuses more than 4,300 digits (ValueError), and no node is numbered past 18.
    if re.search(r"\d{19}", text):
        return "a node number of more than 18 digits in a node set"
    if node_count_bound(text) > MAX_NODES:
        return f"more than {MAX_NODES} nodes in one node set (the budget for untrusted input)"
    return None
