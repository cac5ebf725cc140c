"""OSU and IMB parsers on real output: the OSU 7.4 / IMB 2021.11 captures in tests/data/osu-7.4 (its
README gives each command line) and older versions' tables in tests/data/osu and tests/data/imb.

Every expected value below was read off the capture by hand."""

from pathlib import Path

import pytest

from hpcos.probes.parsers import ParseError, imb, osu

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "osu-7.4"


def osu_text(name: str) -> str:
    return (DATA / "osu" / name).read_text()


def corpus(name: str) -> osu.OsuResult:
    return osu.parse((CORPUS / name).read_text())


# --- the real OSU 7.4 corpus: one check per file, read by hand ---------------------------------


def check_lat_tall(r):
    assert r.benchmark == "Latency" and r.version == "7.4"
    assert r.datatypes == ["MPI_CHAR", "MPI_INT", "MPI_FLOAT"]
    char, int_, float_ = (r.column("latency_us", dt) for dt in r.datatypes)
    assert char == {1: 0.45, 2: 0.47, 4: 0.65, 8: 0.45, 16: 0.48, 32: 0.51, 64: 0.53}
    assert int_ == {4: 0.44, 8: 0.44, 16: 0.61, 32: 0.54, 64: 0.47}  # no sizes 1-2: not merged
    assert float_[4] == 0.41 and float_[64] == 0.53


def check_allgather_tall(r):
    assert r.benchmark == "Allgather Latency"
    assert [len(s.rows) for s in r.series] == [7, 5, 5]
    assert r.column("latency_us", "MPI_CHAR")[2] == 0.64
    assert r.column("latency_us", "MPI_INT")[64] == 0.77
    assert r.column("latency_us", "MPI_FLOAT")[4] == 0.61


def check_lat_dvect(r):
    (s,) = r.series
    assert s.columns == ["size", "latency_us", "transmit_size"] and s.variant == "derived datatype"
    assert s.rows[0] == {"size": 1, "latency_us": 0.18, "transmit_size": 0}
    assert s.column("transmit_size")[64] == 32 and s.column("latency_us")[64] == 0.52


def check_lat_c(r):
    assert r.columns == ["size", "latency_us", "validation"]
    assert r.column("latency_us")[128] == 20.22 and r.column("validation")[4096] == "Pass"
    assert r.failed_validation == [] and r.validation_error_size is None


def check_lat_z(r):
    assert r.columns == ["size", "latency_us", "p50_us", "p90_us", "p99_us"]
    row = next(x for x in r.rows if x["size"] == 4096)
    assert row == {"size": 4096, "latency_us": 3.30, "p50_us": 3.05, "p90_us": 3.58, "p99_us": 4.00}


def check_bibw(r):
    assert r.benchmark == "Bi-Directional Bandwidth"
    bw = r.column("bandwidth_MBps")
    assert (bw[1], bw[65536], len(bw)) == (14.33, 1013.20, 17)


def check_bw_c(r):
    assert r.benchmark == "Bandwidth" and r.columns == ["size", "bandwidth_MBps", "validation"]
    assert r.column("bandwidth_MBps")[8192] == 881.44 and r.failed_validation == []


def check_mbw_mr(r):
    (s,) = r.series
    assert s.benchmark == "Multiple Bandwidth / Message Rate"
    assert s.settings == {"pairs": "1", "window size": "64"}
    assert s.rows[0] == {"size": 1, "bandwidth_MBps": 7.35, "messages_per_s": 7351714.76}
    assert s.column("messages_per_s")[65536] == 41749.43


def check_alltoall(r):
    assert r.benchmark == "All-to-All Personalized Exchange Latency"
    assert r.column("latency_us")[16384] == 12.93 and r.column("latency_us")[65536] == 52.43


def check_ialltoall(r):
    assert r.benchmark == "Non-blocking All-to-All Latency"
    assert r.columns == ["size", "overall_us", "compute_us", "pure_comm_us", "overlap_pct"]
    assert next(x for x in r.rows if x["size"] == 512) == {
        "size": 512,
        "overall_us": 1024.12,
        "compute_us": 291.36,
        "pure_comm_us": 80.59,
        "overlap_pct": 0.0,
    }


def check_iallreduce_f(r):
    assert r.benchmark == "Non-blocking Allreduce Latency"
    assert r.columns == [
        "size",
        "overall_us",
        "compute_us",
        "coll_init_us",
        "mpi_test_us",
        "mpi_wait_us",
        "pure_comm_us",
        "min_comm_us",
        "max_comm_us",
        "overlap_pct",
    ]
    assert next(x for x in r.rows if x["size"] == 256) == {
        "size": 256,
        "overall_us": 621.71,
        "compute_us": 167.36,
        "coll_init_us": 1.05,
        "mpi_test_us": 0.0,
        "mpi_wait_us": 453.13,
        "pure_comm_us": 41.07,
        "min_comm_us": 1.02,
        "max_comm_us": 81.11,
        "overlap_pct": 0.0,
    }
    assert min(r.column("overall_us")) == 4  # -m 4:65536


def check_barrier(r):
    assert r.benchmark == "Barrier Latency"
    assert r.columns == ["latency_us"] and r.value("latency_us") == 0.23
    with pytest.raises(KeyError, match="prints no message sizes"):
        r.column("latency_us")


def check_barrier_f(r):
    # -f: full statistics beside the one value, and Iterations, a column without a unit.
    assert r.benchmark == "Barrier Latency"
    assert r.columns == ["latency_us", "min_latency_us", "max_latency_us", "iterations"]
    assert r.rows == [
        {"latency_us": 0.51, "min_latency_us": 0.51, "max_latency_us": 0.51, "iterations": 500}
    ]


def check_put_latency(r):
    assert r.benchmark == "MPI_Put Latency"
    (s,) = r.series
    assert s.settings == {"Window creation": "MPI_Win_allocate", "Synchronization": "MPI_Win_flush"}
    assert s.column("latency_us")[4096] == 1.57 and s.column("latency_us")[128] == 0.18


def check_acc_latency(r):
    assert r.benchmark == "MPI_Accumulate latency"  # as OSU spells it
    assert r.column("latency_us")[512] == 0.14 and r.column("latency_us")[4096] == 0.20


def check_init(r):
    assert r.benchmark == "Init"
    assert r.rows == [{"nprocs": 2, "min_ms": 246, "max_ms": 247, "avg_ms": 246}]


def check_hello(r):
    assert r.benchmark == "Hello World" and r.value("processes") == 2


OSU_CORPUS = {
    "lat_Tall.out": check_lat_tall,
    "allgather_Tall.out": check_allgather_tall,
    "lat_Dvect.out": check_lat_dvect,
    "lat_c.out": check_lat_c,
    "lat_z.out": check_lat_z,
    "bibw.out": check_bibw,
    "bw_c.out": check_bw_c,
    "mbw_mr.out": check_mbw_mr,
    "alltoall.out": check_alltoall,
    "ialltoall.out": check_ialltoall,
    "iallreduce_f.out": check_iallreduce_f,
    "barrier.out": check_barrier,
    "barrier_f.out": check_barrier_f,
    "put_latency.out": check_put_latency,
    "acc_latency.out": check_acc_latency,
    "init.out": check_init,
    "hello.out": check_hello,
}


@pytest.mark.parametrize("name", sorted(OSU_CORPUS))
def test_every_real_osu_7_4_output_parses_with_the_values_it_printed(name):
    OSU_CORPUS[name](corpus(name))


def test_the_corpus_has_no_file_without_a_hand_check():
    files = {p.name for p in CORPUS.iterdir() if p.suffix in (".out", ".txt")}
    assert files == set(OSU_CORPUS) | {"lat_f.out", "imb_ok.txt", "imb_multi.txt"}


def test_minus_t_all_gives_three_series_never_merged():
    r = corpus("lat_Tall.out")
    assert len(r.series) == 3
    with pytest.raises(
        KeyError, match=r"printed 3 tables \(MPI_CHAR, MPI_INT, MPI_FLOAT\): name the datatype"
    ):
        r.column("latency_us")


def test_non_blocking_overlap_is_its_own_column():
    r = corpus("ialltoall.out")
    assert r.column("overlap_pct")[1024] == 0.0
    assert r.column("pure_comm_us")[1024] == 0.74 and r.column("overall_us")[1024] == 2.19


def test_rejected_option_is_one_line_naming_the_usage_text():
    # osu_latency 7.4 has no -f: it prints its usage on stdout and "Invalid option [-f]" on stderr.
    with pytest.raises(
        ParseError, match=r"^osu: osu_latency printed its usage text instead of results"
    ):
        corpus("lat_f.out")
    assert "Invalid option [-f]" in (CORPUS / "lat_f.err").read_text()


def test_failed_validation_is_the_size_osu_stopped_at():
    r = osu.parse(osu_text("osu_latency_7.4_validation_failed.txt"))
    assert r.validation_error_size == 1024 and r.failed_validation == [1024]
    assert max(r.column("latency_us")) == 1024  # nothing after the failure


# --- older versions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, version, datatype, latency_8, sizes",
    [
        ("osu_latency_5.6.3.txt", "5.6.3", None, 0.23, (0, 4194304, 24)),
        ("osu_latency_7.2.txt", "7.2", "MPI_CHAR", 0.18, (1, 4194304, 23)),
    ],
)
def test_osu_latency_every_version_gives_the_same_keys(name, version, datatype, latency_8, sizes):
    result = osu.parse(osu_text(name))
    assert (result.benchmark, result.version, result.datatype) == ("Latency", version, datatype)
    assert result.columns == ["size", "latency_us"]
    latency = result.column("latency_us")
    assert latency[8] == latency_8
    assert (min(latency), max(latency), len(latency)) == sizes


def test_osu_bandwidth_skips_mpi_warnings_interleaved_with_the_table():
    result = osu.parse(osu_text("osu_bw_7.3_warnings.txt"))
    assert (
        result.benchmark == "Bandwidth"
        and result.version == "7.3"
        and result.datatype == "MPI_CHAR"
    )
    bw = result.column("bandwidth_MBps")
    assert len(bw) == 23 and bw[2048] == 4311.20 and bw[4194304] == 13036.41


def test_osu_bandwidth_5x():
    bw = osu.parse(osu_text("osu_bw_5.9.txt")).column("bandwidth_MBps")
    assert bw[1] == 2.87 and max(bw.values()) == 12514.60


@pytest.mark.parametrize(
    "name, version, columns, first",
    [
        (
            "osu_allreduce_5.6.3.txt",
            "5.6.3",
            ["size", "latency_us"],
            {"size": 4, "latency_us": 2.34},
        ),
        (
            "osu_allreduce_7.1_full.txt",
            "7.1",
            ["size", "latency_us", "min_latency_us", "max_latency_us", "iterations"],
            {
                "size": 4,
                "latency_us": 5.81,
                "min_latency_us": 4.12,
                "max_latency_us": 7.93,
                "iterations": 1000,
            },
        ),
        (
            "osu_allreduce_7.4_validation.txt",
            "7.4",
            ["size", "latency_us", "min_latency_us", "max_latency_us", "iterations", "validation"],
            {
                "size": 4,
                "latency_us": 3.02,
                "min_latency_us": 2.71,
                "max_latency_us": 3.41,
                "iterations": 1000,
                "validation": "Pass",
            },
        ),
    ],
)
def test_osu_allreduce_variants(name, version, columns, first):
    result = osu.parse(osu_text(name))
    assert result.benchmark == "Allreduce Latency" and result.version == version
    assert result.columns == columns
    assert result.rows[0] == first
    assert isinstance(result.rows[0]["latency_us"], float | int) and result.failed_validation == []


def test_osu_header_split_keeps_multi_word_names():
    assert osu.split_header("# Size       Avg Latency(us)   P99.9 Tail Lat(us)  Iterations") == [
        "Size",
        "Avg Latency(us)",
        "P99.9 Tail Lat(us)",
        "Iterations",
    ]
    # A name as wide as OMB's 18-character field leaves one space: the unit still ends it.
    assert osu.split_header("# Size  Avg Latency(us) Min Latency(us)  Coll. Init(us)") == [
        "Size",
        "Avg Latency(us)",
        "Min Latency(us)",
        "Coll. Init(us)",
    ]
    assert osu.canonical("P99.9 Tail Lat(us)") == "p99_9_us"


def test_osu_missing_column_names_what_exists():
    result = osu.parse(osu_text("osu_latency_5.6.3.txt"))
    with pytest.raises(KeyError, match=r"no 'p99_us' column; has \['size', 'latency_us'\]"):
        result.column("p99_us")


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no '# OSU MPI ... Test vX' title line"),
        (
            "# OSU MPI Latency Test v5.6.3\n# Size          Latency (us)\n",
            "no result rows under the header ['size', 'latency_us'] in OSU Latency output",
        ),
        ("# OSU MPI Barrier Latency Test v7.4\n", "no result rows in OSU Barrier Latency output"),
        ("# OSU MPI Latency Test v5.6.3\n0    0.21\n", "data row before the '# Size ...' header"),
        (
            "# OSU MPI Latency Test v7.4\n# Size  Avg Latency(us)  Iterations\n8  1.63\n",
            "row has 2 cells for 3",
        ),
        ("# OSU MPI Latency Test v7.4\n# Size  Latency (us)\n8  n/a\n", "'n/a' is not a number"),
        # Two tables glued together without their Datatype lines: refused, never merged.
        (
            "# OSU MPI Latency Test v7.4\n# Size  Latency (us)\n4  0.4\n8  0.5\n4  0.6\n",
            "size 4 twice",
        ),
    ],
)
def test_osu_malformed_output_raises_with_the_reason(text, message):
    with pytest.raises(ParseError) as caught:
        osu.parse(text)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_osu_output_of_two_single_rank_jobs_is_counted():
    text = osu_text("osu_allreduce_5.6.3.txt")
    assert osu.parse(text).jobs == 1
    assert osu.parse(text + text).jobs == 2


# --- IMB -----------------------------------------------------------------------------------------


def test_imb_2021_11_pingpong_real():
    result = imb.parse((CORPUS / "imb_ok.txt").read_text())
    assert result.version == "2021.11"
    block = result.benchmark("PingPong")
    assert block.processes == 2 and len(block.rows) == 24
    assert block.rows[-1] == {"size": 4194304, "repetitions": 10, "t_usec": 694.04, "MBps": 6043.34}
    assert block.column("repetitions")[65536] == 640 and block.column("t_usec")[8] == 0.19


def test_imb_2021_11_every_block_of_a_multi_benchmark_run():
    result = imb.parse((CORPUS / "imb_multi.txt").read_text())
    assert [b.benchmark for b in result.blocks] == [
        "PingPong",
        "PingPing",
        "Sendrecv",
        "Exchange",
        "Allreduce",
        "Alltoall",
        "Bcast",
        "Barrier",
        "Uniband",
        "Biband",
    ]
    assert result.benchmark("Sendrecv").column("MBps")[1024] == 3567.91
    assert result.benchmark("Allreduce").column("t_max_usec")[128] == 0.81
    assert (
        min(result.benchmark("Allreduce").column("t_avg_usec")) == 0
    )  # sizes 0, 4, 8 ...: no 1 or 2
    assert result.benchmark("Bcast").column("t_min_usec")[64] == 0.13
    barrier = result.benchmark("Barrier")  # no #bytes column: one value
    assert barrier.columns == ["repetitions", "t_min_usec", "t_max_usec", "t_avg_usec"]
    assert barrier.value("t_avg_usec") == 0.24 and barrier.value("repetitions") == 200
    assert result.benchmark("Uniband").column("msg_per_s")[1024] == 5456896
    assert result.benchmark("Biband").column("MBps")[512] == 2722.14


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
    assert [(b.benchmark, b.processes) for b in result.blocks] == [
        ("PingPong", 2),
        ("Allreduce", 2),
        ("Allreduce", 4),
    ]
    assert result.benchmark("Allreduce").processes == 4  # the largest count by default
    assert result.benchmark("Allreduce", processes=2).column("t_avg_usec")[8] == 4.31
    assert result.benchmark("pingpong").column("t_usec")[0] == 3.17
    with pytest.raises(
        KeyError, match=r"no Alltoall block; has \['Allreduce/2', 'Allreduce/4', 'PingPong/2'\]"
    ):
        result.benchmark("Alltoall")


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "#    Intel(R) MPI Benchmarks 2021.3, MPI-1 part\n# Benchmarking PingPong\n",
            "no '# Benchmarking",
        ),
        (
            "# Benchmarking PingPong\n#bytes #repetitions t[usec] Mbytes/sec\n",
            "no result rows under the header of PingPong",
        ),
        (
            "# Benchmarking PingPong\n#bytes #repetitions t[usec] Mbytes/sec\n0 1000 0.2\n",
            "row has 3 cells",
        ),
    ],
)
def test_imb_malformed_output_raises_with_the_reason(text, message):
    with pytest.raises(ParseError, match=message.replace("[", r"\[")):
        imb.parse(text)
