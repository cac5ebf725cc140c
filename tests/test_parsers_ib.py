"""ibstat, ibv_devinfo and perftest parsers on realistic output (tests/data/ib, tests/data/perftest)."""

from pathlib import Path

import pytest

from hpcos.probes.parsers import ParseError, ibstat, ibv_devinfo, perftest
from hpcos.probes.parsers.hca import Port

DATA = Path(__file__).parent / "data"


def test_ibstat_two_hcas_infiniband_and_ethernet():
    hcas = ibstat.parse((DATA / "ib" / "ibstat_hdr_two_hcas.txt").read_text())
    assert [h.name for h in hcas] == ["mlx5_0", "mlx5_1"]
    assert hcas[0].firmware == "20.35.1012" and hcas[0].ca_type == "MT4123"
    assert hcas[0].ports == [Port(1, "Active", "LinkUp", 200.0, "InfiniBand", 17)]
    assert hcas[1].ports[0].link_layer == "Ethernet" and hcas[1].ports[0].rate == 100.0


def test_ibstat_port_down():
    (hca,) = ibstat.parse((DATA / "ib" / "ibstat_port_down.txt").read_text())
    assert (hca.ports[0].state, hca.ports[0].physical_state, hca.ports[0].rate) == (
        "Down",
        "Polling",
        10.0,
    )


def test_ibstat_empty_output_is_no_hca():
    # What ibstat prints, exit 0, on a machine without an HCA: the caller turns [] into a failure.
    assert ibstat.parse("") == []


def test_ibstat_garbage_before_a_ca_is_an_error():
    with pytest.raises(ParseError, match="expected a CA 'name' line first"):
        ibstat.parse("ibpanic: [1234] main: stat of IB device 'mlx5_0' failed\n")


def test_ibv_devinfo_normalises_states_to_ibstat_words():
    (hca,) = ibv_devinfo.parse((DATA / "ib" / "ibv_devinfo_hdr.txt").read_text())
    assert hca.name == "mlx5_0" and hca.firmware == "20.35.1012" and hca.ca_type == "MT_0000000223"
    assert hca.ports == [Port(1, "Active", None, None, "InfiniBand", 17)]


def test_ibv_devinfo_verbose_gives_rate_and_physical_state():
    (hca,) = ibv_devinfo.parse((DATA / "ib" / "ibv_devinfo_v_hdr.txt").read_text())
    assert hca.ports == [Port(1, "Active", "LinkUp", 200.0, "InfiniBand", 17)]


def test_perftest_write_bw_json():
    result = perftest.parse_json((DATA / "perftest" / "ib_write_bw_4.5-0.20.json").read_text())
    assert (result.test, result.device, result.bw_unit) == (
        "RDMA_Write BW Test",
        "mlx5_0",
        "MB/sec",
    )
    assert result.rows == [
        {
            "size": 65536,
            "iterations": 5000,
            "bw_peak_MBps": 23587.41,
            "bw_average_MBps": 23581.06,
            "msg_rate_Mpps": 0.377297,
        }
    ]


def test_perftest_read_lat_json_with_trailing_commas():
    result = perftest.parse_json(
        (DATA / "perftest" / "ib_read_lat_trailing_commas.json").read_text()
    )
    assert result.test == "RDMA_Read Latency Test"
    (row,) = result.rows
    assert (
        row["size"] == 2
        and row["t_typical_us"] == 1.98
        and row["p99_us"] == 2.31
        and row["p99_9_us"] == 4.87
    )


def test_perftest_text_matches_json():
    text = perftest.parse_text((DATA / "perftest" / "ib_write_bw.txt").read_text())
    json_ = perftest.parse_json((DATA / "perftest" / "ib_write_bw_4.5-0.20.json").read_text())
    assert text.rows == json_.rows
    assert (text.test, text.device) == ("RDMA_Write BW Test", "mlx5_0")


def test_perftest_latency_text_with_percentile_columns():
    result = perftest.parse_text((DATA / "perftest" / "ib_read_lat.txt").read_text())
    assert result.rows == [
        {
            "size": 2,
            "iterations": 1000,
            "t_min_us": 1.93,
            "t_max_us": 4.87,
            "t_typical_us": 1.98,
            "t_avg_us": 2.01,
            "t_stdev_us": 0.09,
            "p99_us": 2.31,
            "p99_9_us": 4.87,
        }
    ]


def test_perftest_json_in_gbits_when_asked():
    text = (
        (DATA / "perftest" / "ib_write_bw_4.5-0.20.json").read_text().replace("23581.06", "188.65")
    )
    result = perftest.parse_json(text, report_gbits=True)
    assert result.bw_unit == "Gb/sec" and result.rows[0]["bw_average_Gbps"] == 188.65


def test_perftest_gbits_text_header():
    text = (
        " #bytes     #iterations    BW peak[Gb/sec]    BW average[Gb/sec]   MsgRate[Mpps]\n"
        " 65536      5000             188.70             188.65		   0.359810\n"
    )
    result = perftest.parse_text(text)
    assert result.bw_unit == "Gb/sec" and result.rows[0]["bw_average_Gbps"] == 188.65


@pytest.mark.parametrize(
    "parse, text, message",
    [
        (perftest.parse_json, "", "does not decode"),
        (perftest.parse_json, '{"test_info": {"test": "RDMA_Write BW Test"}}', "has no 'results'"),
        (perftest.parse_text, " Unable to find the Infiniband/RoCE device\n", "no result rows"),
    ],
)
def test_perftest_incomplete_output(parse, text, message):
    with pytest.raises(ParseError, match=message):
        parse(text)
