"""InfiniBand on every node: HCA ports against the profile, and perftest bandwidth/latency.

A profile with ``infiniband.expected: false`` skips these with a reason.  With ``expected: true`` a
node without an HCA fails, in the tool's own words (``ibv_devinfo``: "Failed to get IB devices list";
``ibstat``: empty output with exit 0, which is a missing HCA, not a pass).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from ClusterShell.NodeSet import NodeSet

from hpcos.probes import ib_checks
from hpcos.probes.parsers import ParseError, ibstat, ibv_devinfo, perftest

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
@pytest.mark.parametrize(
    "tool, key, unit, better, gbits",
    [
        ("ib_write_bw", "bw_average_Gbps", "Gb/s", "higher", True),
        ("ib_read_lat", "t_typical_us", "us", "lower", False),
    ],
)
def test_perftest(tool, key, unit, better, gbits, launcher, node, ib, measure, profile):
    if ib.perftest is None:
        pytest.skip("profile sets no infiniband.perftest (peer node for the server side)")
    peer = ib.perftest.peer
    if node == peer:
        pytest.skip(f"{node} is the perftest server (infiniband.perftest.peer)")
    device = ib.perftest.device or (ib.devices[0] if ib.devices else None)
    extra = list(ib.perftest.extra_args) + (["--report_gbits"] if gbits else [])
    timeout = profile.timeouts.command
    server_cmd = ib_checks.perftest_command(
        tool, device=device, server=None, extra=extra, json=False
    )
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
        parsed = (
            perftest.parse_json(report, report_gbits=gbits) if report else perftest.parse_text(text)
        )
    except ParseError as exc:
        pytest.fail(f"{exc}\n{client.describe()}\n{server_result.describe()}", pytrace=False)
    for row in parsed.rows:
        measure(tool, row[key], unit, better, size=row["size"])
