"""Node-level sanity: every selected node answers, runs a sane kernel and has been up a while.

Each test runs once per node (``node`` marker); the launcher fans the command out over all nodes
at once, so one (test, node) result per node costs one ssh round, not one per node.
"""

import re

import pytest

pytestmark = pytest.mark.node


def test_hostname(run, node):
    result = run("hostname").check()
    assert result.stdout.strip(), f"{node}: hostname printed nothing"


def test_kernel_release(run, node):
    release = run("uname -r").check().stdout.strip()
    assert re.match(r"^\d+\.\d+", release), f"{node}: unexpected kernel release {release!r}"


def test_uptime(run, node):
    # /proc/uptime: seconds since boot; a node that rebooted mid-run shows up here.
    seconds = float(run("cat /proc/uptime").check().stdout.split()[0])
    assert seconds > 0


def test_tmp_writable(run, node):
    run("probe=$(mktemp) && echo ok > $probe && cat $probe && rm -f $probe").check()
