"""The perf plugin in a real ``hpcos test`` session on the ``local`` profile: measurements recorded,
a suspect confirmed (or cleared) by one real rerun of its (test, node) through its rerun command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hpcos.perf.store import ResultsStore
from hpcos.results.model import Measurement, RunResults, TestResult

TEST_ID = "integration_tests/test_fake_latency.py::test_latency"

# The test measures what it is told, per invocation: the first run and the confirming rerun can differ.
FAKE_TEST = """
import json, os, pathlib

def test_latency(node, measure):
    counter = pathlib.Path(os.environ["FAKE_COUNTER"])
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
    levels = json.loads(os.environ["FAKE_LEVELS"])
    samples = [levels[min(n, len(levels) - 1)] * (1 + 0.002 * i) for i in range(7)]
    measure("latency", sorted(samples)[3], "us", "lower", size=8, samples=samples)
"""


@pytest.fixture
def site(tmp_path):
    work = tmp_path / "work"
    (work / "integration_tests").mkdir(parents=True)
    (work / "integration_tests" / "test_fake_latency.py").write_text(FAKE_TEST)
    db = tmp_path / "results.sqlite"
    store = ResultsStore(db)
    for day in range(1, 7):  # six accepted nights at 1.0 us, each a little different
        samples = [1.0 + 0.004 * (day % 3) + 0.002 * i for i in range(7)]
        run = RunResults(
            f"night-{day}",
            "local",
            f"2026-11-0{day}T01:00:00+00:00",
            results=[
                TestResult(
                    TEST_ID,
                    "localhost",
                    "passed",
                    measurements=[Measurement("latency", samples[3], "us", "lower", 8, samples)],
                )
            ],
        )
        store.record(run, "workstation")
        store.accept(run.run_id)
    return work, db, store


def hpcos_test(work, db, levels, tmp_path):
    results = tmp_path / "results.json"
    env = {
        **os.environ,
        "FAKE_COUNTER": str(tmp_path / "counter"),
        "FAKE_LEVELS": json.dumps(levels),
    }
    env.pop("HPCOS_PERF_CONFIRMING", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpcos.cli",
            "test",
            "--cluster",
            "local",
            "--results",
            str(results),
            "--perf-db",
            str(db),
            "--perf-charts",
            str(tmp_path / "charts"),
            "-p",
            "no:cacheprovider",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    runs = int((tmp_path / "counter").read_text())
    return proc, RunResults.read(results), runs


def test_confirmed_regression_fails_with_class_and_chart(site, tmp_path):
    work, db, store = site
    proc, run, invocations = hpcos_test(work, db, [1.5, 1.5], tmp_path)
    assert invocations == 2  # the measurement and its one confirming rerun
    assert proc.returncode == 1  # every test body passed, yet the run failed: Jenkins sees it
    [result] = run.results
    assert result.outcome == "failed" and result.failure_class == "performance regression"
    assert "effect +" in result.message and "rerun measured 1.5" in result.message
    assert "trend chart:" in result.message and list((tmp_path / "charts").glob("*.png"))
    [stored] = store.run_measurements(run.run_id)
    assert stored.verdict == "regression" and len(stored.samples) == 7
    assert store.results(run.run_id)[0]["failure_class"] == "performance regression"
    assert "1 confirmed regressions" in proc.stdout


def test_suspect_cleared_by_its_rerun_passes(site, tmp_path):
    work, db, store = site
    proc, run, invocations = hpcos_test(work, db, [1.5, 1.0], tmp_path)
    assert invocations == 2
    [result] = run.results
    assert result.outcome == "passed" and proc.returncode == 0
    [stored] = store.run_measurements(run.run_id)
    assert stored.verdict == "not confirmed" and "rerun measured 1" in stored.detail


def test_unchanged_performance_is_recorded_without_rerun(site, tmp_path):
    work, db, store = site
    proc, run, invocations = hpcos_test(work, db, [1.004], tmp_path)
    assert invocations == 1, proc.stdout + proc.stderr
    [result] = run.results
    assert result.outcome == "passed"
    [stored] = store.run_measurements(run.run_id)
    assert stored.verdict == "ok" and stored.node == "localhost"


def test_one_rerun_per_test_and_node_however_many_suspects(tmp_path):
    """Two slow metrics of one (test, node) share its single rerun; a second rerun never happens."""
    from hpcos.perf.judge import judge_run

    def night(run_id, day, level):
        samples = [level * (1 + 0.002 * i) for i in range(7)]
        return RunResults(
            run_id,
            "local",
            f"2026-11-{day:02d}T01:00:00+00:00",
            results=[
                TestResult(
                    TEST_ID,
                    "localhost",
                    "passed",
                    rerun="hpcos test -k x",
                    measurements=[
                        Measurement("latency", samples[3], "us", "lower", 8, samples),
                        Measurement("latency", samples[3], "us", "lower", 64, samples),
                    ],
                )
            ],
        )

    store = ResultsStore(tmp_path / "results.sqlite")
    for day in range(1, 6):
        judge_run(store, night(f"n{day}", day, 1.0 + 0.003 * (day % 2)), "workstation")
        store.accept(f"n{day}")
    calls = []

    def rerun(results):
        calls.extend(r.node for r in results)
        fresh = night("again", 7, 1.0).results[0]  # the rerun is fast again
        return {(fresh.test_id, fresh.node): fresh}

    judgements = judge_run(store, night("n6", 6, 1.5), "workstation", rerun=rerun)
    assert calls == ["localhost"]
    assert [j.assessment.verdict for j in judgements] == ["not confirmed", "not confirmed"]
    assert judgements[0].result.outcome == "passed"


def test_suspects_on_many_nodes_are_rerun_in_one_session():
    from harness.plugin_perf import rerun_commands

    def suspect(node, mpi="openmpi", cluster="big"):
        return TestResult(
            "t.py::test_pingpong",
            node,
            "passed",
            mpi=mpi,
            rerun=f"hpcos test --cluster {cluster} -k 'test_pingpong[{mpi}-{node}]' --nodes {node} "
            f"--mpi {mpi}",
        )

    commands = rerun_commands(
        [suspect(f"node{i:03d}") for i in range(1, 65)]
        + [suspect("node001", "mpich"), suspect("gpu01", cluster="gpu")]
    )
    assert len(commands) == 2
    big = commands[0]
    assert big[:3] == ["test", "--cluster", "big"]
    assert big[big.index("--nodes") + 1] == "node[001-064]"
    assert big[big.index("--mpi") + 1] == "openmpi,mpich"
    keyword = big[big.index("-k") + 1]
    assert keyword.count(" or ") == 64 and "(test_pingpong[mpich-node001])" in keyword
    assert commands[1][:3] == ["test", "--cluster", "gpu"]
    # Something that is not an hpcos test command is never run.
    assert rerun_commands([TestResult("t", "n", "passed", rerun="rm -rf /")]) == []


def test_a_regression_message_measures_the_value_that_is_stored(tmp_path):
    """A repeated benchmark stores the median of its runs, which is not the median of its pooled
    samples: the regression message must give the stored number, not a second one."""
    from hpcos.perf.judge import judge_run

    def night(run_id, day, runs):
        samples = [s for run in runs for s in run]
        value = sorted(sorted(run)[len(run) // 2] for run in runs)[
            len(runs) // 2
        ]  # the median run's median
        return RunResults(
            run_id,
            "local",
            f"2026-11-{day:02d}T01:00:00+00:00",
            results=[
                TestResult(
                    TEST_ID,
                    "localhost",
                    "passed",
                    rerun="hpcos test -k x",
                    measurements=[Measurement("latency", value, "us", "lower", 8, samples)],
                )
            ],
        )

    store = ResultsStore(tmp_path / "results.sqlite")
    for day in range(1, 6):
        judge_run(
            store, night(f"n{day}", day, [[1.0 + 0.001 * i for i in range(5)]] * 3), "workstation"
        )
        store.accept(f"n{day}")
    slow = [
        [2.0, 2.0, 2.0, 2.9, 2.9],
        [2.5, 2.5, 2.5, 2.9, 2.9],
        [2.6, 2.6, 2.6, 2.9, 2.9],
    ]  # runs 2.0, 2.5, 2.6
    tonight = night("n6", 6, slow)
    assert (
        sorted(tonight.results[0].measurements[0].samples)[7] == 2.6
    )  # the pooled samples' median
    judgements = judge_run(
        store,
        tonight,
        "workstation",
        rerun=lambda results: {(TEST_ID, "localhost"): night("again", 6, slow).results[0]},
    )
    assert judgements[0].assessment.verdict == "regression"
    [stored] = [m for m in store.run_measurements("n6")]
    assert f"measured {stored.value:.4g} us" in stored.detail and stored.value == 2.5
