"""OSU and IMB parsers on realistic output of every version variant (tests/data/osu, tests/data/imb)."""

from pathlib import Path

import pytest

from harness.parsers import ParseError, imb, osu

DATA = Path(__file__).parent / "data"


def osu_text(name: str) -> str:
    return (DATA / "osu" / name).read_text()


@pytest.mark.parametrize(
    "name, version, datatype, columns, latency_8, sizes",
    [
        ("osu_latency_5.6.3.txt", "5.6.3", None, ["size", "latency_us"], 0.23, (0, 4194304, 24)),
        ("osu_latency_7.2.txt", "7.2", "MPI_CHAR", ["size", "latency_us"], 0.18, (1, 4194304, 23)),
        ("osu_latency_7.4_full.txt", "7.4", "MPI_CHAR",
         ["size", "latency_us", "min_latency_us", "max_latency_us", "iterations"], 1.63, (1, 4194304, 23)),
        ("osu_latency_7.5_validation_tail.txt", "7.5", "MPI_CHAR",
         ["size", "latency_us", "p50_us", "p90_us", "p99_us", "validation"], 1.71, (1, 4096, 13)),
    ],
)
def test_osu_latency_every_version_gives_the_same_keys(name, version, datatype, columns, latency_8, sizes):
    result = osu.parse(osu_text(name))
    assert (result.benchmark, result.version, result.datatype) == ("Latency", version, datatype)
    assert result.columns == columns
    latency = result.column("latency_us")
    assert latency[8] == latency_8
    assert (min(latency), max(latency), len(latency)) == sizes


def test_osu_full_output_keeps_min_max_and_iterations_per_size():
    result = osu.parse(osu_text("osu_latency_7.4_full.txt"))
    row = next(r for r in result.rows if r["size"] == 16384)
    assert row == {"size": 16384, "latency_us": 7.34, "min_latency_us": 7.21, "max_latency_us": 8.03,
                   "iterations": 1000}
    assert isinstance(row["iterations"], int)


def test_osu_validation_failures_are_named_by_size():
    result = osu.parse(osu_text("osu_latency_7.5_validation_tail.txt"))
    assert result.failed_validation == [1024]
    assert result.column("p99_us")[1] == 2.12


def test_osu_bandwidth_skips_mpi_warnings_interleaved_with_the_table():
    result = osu.parse(osu_text("osu_bw_7.3_warnings.txt"))
    assert result.benchmark == "Bandwidth" and result.version == "7.3"
    bw = result.column("bandwidth_MBps")
    assert len(bw) == 23 and bw[2048] == 4311.20 and bw[4194304] == 13036.41


def test_osu_bandwidth_5x():
    bw = osu.parse(osu_text("osu_bw_5.9.txt")).column("bandwidth_MBps")
    assert bw[1] == 2.87 and max(bw.values()) == 12514.60


@pytest.mark.parametrize(
    "name, version, columns, first",
    [
        ("osu_allreduce_5.6.3.txt", "5.6.3", ["size", "latency_us"], {"size": 4, "latency_us": 2.34}),
        ("osu_allreduce_7.1_full.txt", "7.1",
         ["size", "latency_us", "min_latency_us", "max_latency_us", "iterations"],
         {"size": 4, "latency_us": 5.81, "min_latency_us": 4.12, "max_latency_us": 7.93, "iterations": 1000}),
        ("osu_allreduce_7.4_validation.txt", "7.4",
         ["size", "latency_us", "min_latency_us", "max_latency_us", "iterations", "validation"],
         {"size": 4, "latency_us": 3.02, "min_latency_us": 2.71, "max_latency_us": 3.41, "iterations": 1000,
          "validation": "Pass"}),
    ],
)
def test_osu_allreduce_variants(name, version, columns, first):
    result = osu.parse(osu_text(name))
    assert result.benchmark == "Allreduce Latency" and result.version == version
    assert result.columns == columns
    assert result.rows[0] == first
    assert result.failed_validation == []


def test_osu_header_split_keeps_multi_word_names():
    assert osu.split_header("# Size       Avg Latency(us)   P99.9 Tail Lat(us)  Iterations") == [
        "Size", "Avg Latency(us)", "P99.9 Tail Lat(us)", "Iterations"]
    assert osu.canonical("P99.9 Tail Lat(us)") == "p99_9_us"


def test_osu_missing_column_names_what_exists():
    result = osu.parse(osu_text("osu_latency_5.6.3.txt"))
    with pytest.raises(KeyError, match=r"no 'p99_us' column; has \['size', 'latency_us'\]"):
        result.column("p99_us")


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no '# OSU MPI ... Test vX' title line"),
        ("# OSU MPI Latency Test v5.6.3\n# Size          Latency (us)\n", "no result rows"),
        ("# OSU MPI Latency Test v5.6.3\n0    0.21\n", "data row before the '# Size ...' header"),
        ("# OSU MPI Latency Test v7.4\n# Size  Avg Latency(us)  Iterations\n8  1.63\n", "row has 2 cells for 3"),
        ("# OSU MPI Latency Test v7.4\n# Size  Latency (us)\n8  n/a\n", "'n/a' is not a number"),
    ],
)
def test_osu_malformed_output_raises_with_the_reason(text, message):
    with pytest.raises(ParseError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        osu.parse(text)


def test_imb_2021_pingpong():
    result = imb.parse((DATA / "imb" / "imb_2021.3_pingpong.txt").read_text())
    assert result.version == "2021.3"
    block = result.benchmark("PingPong")
    assert block.processes == 2
    assert block.columns == ["size", "repetitions", "t_usec", "MBps"]
    assert block.column("t_usec")[8] == 1.06
    assert block.column("MBps")[4194304] == 6618.02
    assert len(block.rows) == 24


def test_imb_4_several_blocks_and_process_counts():
    result = imb.parse((DATA / "imb" / "imb_4.0_pingpong_allreduce_npmin.txt").read_text())
    assert result.version == "4.0"
    assert [(b.benchmark, b.processes) for b in result.blocks] == [("PingPong", 2), ("Allreduce", 2),
                                                                  ("Allreduce", 4)]
    assert result.benchmark("Allreduce").processes == 4  # the largest count by default
    assert result.benchmark("Allreduce", processes=2).column("t_avg_usec")[8] == 4.31
    assert result.benchmark("pingpong").column("t_usec")[0] == 3.17
    with pytest.raises(KeyError, match=r"no Alltoall block; has \['Allreduce/2', 'Allreduce/4', 'PingPong/2'\]"):
        result.benchmark("Alltoall")


def test_imb_without_results_is_an_error():
    with pytest.raises(ParseError, match="no '# Benchmarking"):
        imb.parse("#    Intel(R) MPI Benchmarks 2021.3, MPI-1 part\n# Benchmarking PingPong\n")


def test_osu_output_of_two_single_rank_jobs_is_counted():
    text = osu_text("osu_allreduce_5.6.3.txt")
    assert osu.parse(text).jobs == 1
    assert osu.parse(text + text).jobs == 2
