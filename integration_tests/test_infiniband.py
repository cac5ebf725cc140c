"""InfiniBand on every node: HCA ports against the profile, and perftest bandwidth/latency.

A profile with ``infiniband.expected: false`` skips these with a reason.  With ``expected: true`` a
node without an HCA fails, in the tool's own words (``ibv_devinfo``: "Failed to get IB devices list";
``ibstat``: empty output with exit 0, which is a missing HCA, not a pass).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from ClusterShell.NodeSet import NodeSet

from harness import ib_checks
from harness.parsers import ParseError, ibstat, ibv_devinfo, perftest

pytestmark = [pytest.mark.ib, pytest.mark.node]


@pytest.fixture
def ib(profile):
    if not profile.infiniband.expected:
        pytest.skip(f"profile {profile.name!r} expects no InfiniBand (infiniband.expected: false)")
    return profile.infiniband


def test_ibstat_ports(run, node, ib):
    hcas = ib_checks.hcas_from(run("ibstat"), ibstat.parse)
    problems = ib_checks.port_problems(hcas, ib)
    assert not problems, f"{node}: " + "; ".join(problems)


def test_ibv_devinfo_ports(run, node, ib):
    # -v adds active_width/active_speed (the rate) and phys_state.
    hcas = ib_checks.hcas_from(run(["ibv_devinfo", "-v"]), ibv_devinfo.parse)
    problems = ib_checks.port_problems(hcas, ib)
    assert not problems, f"{node}: " + "; ".join(problems)


@pytest.mark.perf
@pytest.mark.parametrize("tool, metric, key, unit, better", [
    ("ib_write_bw", "ib_write_bw", "bw_average", None, "higher"),
    ("ib_read_lat", "ib_read_lat", "t_typical_us", "us", "lower"),
])
def test_perftest(tool, metric, key, unit, better, launcher, node, ib, measure, profile):
    if ib.perftest is None:
        pytest.skip("profile sets no infiniband.perftest (peer node for the server side)")
    peer = ib.perftest.peer
    if node == peer:
        pytest.skip(f"{node} is the perftest server (infiniband.perftest.peer)")
    device = ib.perftest.device or (ib.devices[0] if ib.devices else None)
    extra = list(ib.perftest.extra_args) + (["--report_gbits"] if tool.endswith("_bw") else [])
    timeout = profile.timeouts.command
    server_cmd = ib_checks.perftest_command(tool, device=device, server=None, extra=extra, json=False)
    client_cmd = ib_checks.perftest_command(tool, device=device, server=peer, extra=extra)
    # One client at a time against the peer, so the launcher is used directly: the ``run`` fixture
    # would fan the client out over every node at once.  The server must be listening while the
    # client runs: it starts first, in the background.
    with ThreadPoolExecutor(1) as pool:
        server = pool.submit(launcher.run, server_cmd, NodeSet(peer), timeout=timeout)
        client = launcher.run(f"sleep 1; {client_cmd}", NodeSet(node), timeout=timeout)[node]
        server_result = server.result()[peer]
    client.check()
    text, report = ib_checks.split_perftest_output(client.stdout)
    try:
        parsed = perftest.parse_json(report) if report else perftest.parse_text(text)
    except ParseError as exc:
        pytest.fail(f"{exc}\n{client.describe()}\n{server_result.describe()}", pytrace=False)
    for row in parsed.rows:
        name = key if unit else f"{key}_{'Gbps' if parsed.bw_unit.startswith('Gb') else 'MBps'}"
        measure(metric, row[name], unit or ("Gb/s" if parsed.bw_unit.startswith("Gb") else "MB/s"), better,
                size=row["size"])
