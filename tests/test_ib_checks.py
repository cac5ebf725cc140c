"""InfiniBand verdicts: real ibstat/ibv_devinfo runs on this HCA-less machine, and sample texts of healthy ones."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import require_tool

from hpcos.cluster.launchers import CommandResult
from hpcos.cluster.profiles import Infiniband
from hpcos.probes import ib_checks
from hpcos.probes.parsers import ibstat, ibv_devinfo

DATA = Path(__file__).parent / "data" / "ib"
HDR = Infiniband(expected=True, devices=["mlx5_0"], rate=200, firmware="20.35.1012")


def real(tool: str, package: str, *args: str) -> CommandResult:
    path = require_tool(tool, package)
    done = subprocess.run([path, *args], capture_output=True, text=True, timeout=60)
    return CommandResult(
        "node001", " ".join([tool, *args]), done.returncode, done.stdout, done.stderr, 0.1
    )


def sample(name: str, exit_code: int = 0) -> CommandResult:
    return CommandResult(
        "node001", name.split("_")[0], exit_code, (DATA / name).read_text(), "", 0.1
    )


def test_real_ibv_devinfo_without_hca_fails_with_its_own_words():
    with pytest.raises(ib_checks.IbCheckFailed) as failure:
        ib_checks.hcas_from(real("ibv_devinfo", "ibverbs-utils", "-v"), ibv_devinfo.parse)
    text = str(failure.value)
    assert text.startswith("ibv_devinfo failed on node001 (InfiniBand expected by the profile):")
    assert (
        "exit code 255" in text
        and "Failed to get IB devices list: Function not implemented" in text
    )


def test_real_ibstat_empty_output_is_a_missing_hca_not_a_pass():
    result = real("ibstat", "infiniband-diags")
    assert (result.exit_code, result.stdout) == (0, "")  # what this machine really does
    with pytest.raises(
        ib_checks.IbCheckFailed,
        match="ibstat found no HCA on node001: it printed nothing and exited 0",
    ):
        ib_checks.hcas_from(result, ibstat.parse)


def test_healthy_hdr_port_passes():
    hcas = ib_checks.hcas_from(sample("ibstat_hdr_two_hcas.txt"), ibstat.parse)
    assert ib_checks.port_problems(hcas, HDR) == []
    verbose = ib_checks.hcas_from(sample("ibv_devinfo_v_hdr.txt"), ibv_devinfo.parse)
    assert ib_checks.port_problems(verbose, HDR) == []


def test_down_port_and_old_firmware_are_each_named():
    hcas = ibstat.parse((DATA / "ibstat_port_down.txt").read_text())
    assert ib_checks.port_problems(hcas, HDR) == [
        "mlx5_0: firmware 20.31.1014, expected 20.35.1012",
        "mlx5_0 port 1: state Down, expected Active",
        "mlx5_0 port 1: physical state Polling, expected LinkUp",
        "mlx5_0 port 1: rate 10 Gb/s, expected 200 Gb/s",
    ]


def test_missing_device_and_wrong_link_layer():
    hcas = ibstat.parse((DATA / "ibstat_hdr_two_hcas.txt").read_text())
    expected = Infiniband(expected=True, devices=["mlx5_1", "mlx5_2"], rate=100)
    assert ib_checks.port_problems(hcas, expected) == [
        "mlx5_1 port 1: link layer Ethernet, expected InfiniBand",
        "mlx5_2: missing; HCAs present: mlx5_0, mlx5_1",
    ]


def test_without_named_devices_every_infiniband_hca_is_checked():
    hcas = ibstat.parse((DATA / "ibstat_hdr_two_hcas.txt").read_text())
    assert (
        ib_checks.port_problems(hcas, Infiniband(expected=True, rate=200)) == []
    )  # the Ethernet one is not IB
    roce_only = [h for h in hcas if h.name == "mlx5_1"]
    assert ib_checks.port_problems(roce_only, Infiniband(expected=True)) == [
        "no HCA with a InfiniBand port; found mlx5_1 (Ethernet)"
    ]


def test_perftest_command_and_output_split():
    cmd = ib_checks.perftest_command(
        "ib_write_bw", device="mlx5_0", server="node002", extra=["--report_gbits"]
    )
    assert cmd.startswith(
        'f=$(mktemp) && ib_write_bw -d mlx5_0 --report_gbits node002 --out_json --out_json_file="$f"'
    )
    assert cmd.endswith("exit $rc")
    text, report = ib_checks.split_perftest_output(
        f'table\n{ib_checks.JSON_MARK}\n{{"results": {{}}}}\n'
    )
    assert (text, report) == ("table\n", '{"results": {}}')


def test_real_perftest_without_hca_exits_non_zero_with_its_message(tmp_path):
    require_tool("ib_write_bw", "perftest")
    cmd = ib_checks.perftest_command("ib_write_bw", device=None, server="127.0.0.1", extra=[])
    done = subprocess.run(
        ["sh", "-c", cmd], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode != 0
    assert "Unable to find the Infiniband/RoCE device" in done.stdout + done.stderr
    assert (
        ib_checks.split_perftest_output(done.stdout)[1] == ""
    )  # no report: the test fails on the exit code
