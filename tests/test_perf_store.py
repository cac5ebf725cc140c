"""The SQLite results store and the baselines built from it (a real SQLite file in tmp_path)."""

from __future__ import annotations

import sqlite3

import pytest

from hpcos.perf.baselines import baseline_for
from hpcos.perf.store import ResultsStore, SeriesKey, UnknownRun
from hpcos.results.model import Measurement, RunResults, TestResult

TEST = "integration_tests/test_mpi.py::test_pingpong[openmpi]"
KEY = SeriesKey("local", "workstation", TEST, "latency", 8)


def make_run(
    run_id: str, started: str, latencies: list[float], *, nodes=("node001",), mpi="openmpi"
) -> RunResults:
    results = [
        TestResult(
            TEST,
            node,
            "passed",
            mpi=mpi,
            measurements=[
                Measurement(
                    "latency",
                    sorted(latencies)[len(latencies) // 2],
                    "us",
                    "lower",
                    8,
                    list(latencies),
                ),
                Measurement("bandwidth", 900.0, "MB/s", "higher", 1048576, [900.0, 910.0]),
            ],
        )
        for node in nodes
    ]
    return RunResults(
        run_id,
        "local",
        started,
        started,
        versions={"kernel": "5.14.0-427", "rdma-core": "48.0", "openmpi": "4.1.4"},
        testing_snapshot=f"snap-{run_id}",
        results=results,
    )


def test_every_measurement_and_sample_is_stored_with_its_context(tmp_path):
    store = ResultsStore(tmp_path / "sub" / "results.sqlite")
    store.record(
        make_run(
            "r1", "2026-11-01T01:00:00+00:00", [0.2, 0.21, 0.19], nodes=("node001", "node002")
        ),
        "workstation",
    )
    rows = store.run_measurements("r1")
    assert len(rows) == 4
    lat = [r for r in rows if r.metric == "latency"]
    assert {r.node for r in lat} == {"node001", "node002"}
    m = lat[0]
    assert m.samples == (0.2, 0.21, 0.19)
    assert (m.kernel, m.ofed, m.mpi_version, m.mpi, m.direction, m.unit) == (
        "5.14.0-427",
        "48.0",
        "4.1.4",
        "openmpi",
        "lower",
        "us",
    )
    with sqlite3.connect(store.path) as db:
        assert db.execute(
            "SELECT testing_snapshot, node_class FROM measurements LIMIT 1"
        ).fetchone() == ("snap-r1", "workstation")
    assert [(r["node"], r["outcome"]) for r in store.results("r1")] == [
        ("node001", "passed"),
        ("node002", "passed"),
    ]
    run = store.run("r1")
    assert run["versions"]["openmpi"] == "4.1.4" and run["accepted"] is False


def test_recording_a_run_again_replaces_it_and_keeps_acceptance(tmp_path):
    store = ResultsStore(tmp_path / "results.sqlite")
    store.record(make_run("r1", "2026-11-01T01:00:00+00:00", [0.2] * 5), "workstation")
    store.accept("r1")
    store.record(make_run("r1", "2026-11-01T01:00:00+00:00", [0.3] * 5), "workstation")
    rows = store.run_measurements("r1")
    assert len(rows) == 2 and rows[0].samples == (0.3,) * 5
    assert store.run("r1")["accepted"] is True


def test_accepting_an_unknown_run_says_so(tmp_path):
    with pytest.raises(UnknownRun):
        ResultsStore(tmp_path / "results.sqlite").accept("nope")


def test_baseline_uses_only_the_last_k_accepted_runs_before_the_candidate(tmp_path):
    store = ResultsStore(tmp_path / "results.sqlite")
    for day in range(1, 8):
        store.record(
            make_run(f"r{day}", f"2026-11-0{day}T01:00:00+00:00", [float(day)] * 5), "workstation"
        )
    for day in (1, 2, 3, 5, 6):  # r4 was never accepted (a bad night); r7 is the candidate
        store.accept(f"r{day}")
    store.accept("r7")
    base = baseline_for(store, KEY, before="r7", runs=3)
    assert base.run_ids == ("r3", "r5", "r6")
    assert base.run_medians == [3.0, 5.0, 6.0]
    assert len(base.pooled) == 15
    # Another node class, cluster or stack has no history here.
    assert baseline_for(store, SeriesKey("local", "gpu", TEST, "latency", 8)) is None
    assert baseline_for(store, KEY, mpi="mpich") is None


def test_nodes_of_one_class_pool_into_one_baseline_run(tmp_path):
    store = ResultsStore(tmp_path / "results.sqlite")
    store.record(
        make_run("r1", "2026-11-01T01:00:00+00:00", [1.0] * 5, nodes=("n1", "n2", "n3")),
        "workstation",
    )
    store.accept("r1")
    base = baseline_for(store, KEY)
    assert base.run_ids == ("r1",) and len(base.runs[0]) == 15


def test_series_is_oldest_first_and_verdicts_are_kept(tmp_path):
    store = ResultsStore(tmp_path / "results.sqlite")
    ids = {}
    for day in (3, 1, 2):
        ids[day] = store.record(
            make_run(f"r{day}", f"2026-11-0{day}T01:00:00+00:00", [float(day)] * 5), "workstation"
        )
    store.set_verdicts(
        {ids[2][(TEST, "node001", "latency", 8, "openmpi")]: ("regression", "effect +20%")}
    )
    series = store.series(KEY)
    assert [m.run_id for m in series] == ["r1", "r2", "r3"]
    assert [m.verdict for m in series] == [None, "regression", None]
    assert series[1].detail == "effect +20%"
    assert [m.run_id for m in store.series(KEY, limit=2)] == ["r2", "r3"]
