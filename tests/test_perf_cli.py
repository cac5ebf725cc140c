"""``hpcos perf record|accept|history`` through the real CLI entry point, on a real SQLite store."""

from __future__ import annotations

import json
import subprocess
import sys

import matplotlib.image as mpimg
import pytest

from hpcos.cli import main
from hpcos.perf.store import ResultsStore
from hpcos.results.model import Measurement, RunResults, TestResult

TEST = "integration_tests/test_mpi.py::test_pingpong"


def results_file(path, run_id: str, day: int, level: float) -> str:
    samples = [level * (1 + 0.002 * i) for i in range(7)]
    run = RunResults(
        run_id,
        "testcluster",
        f"2026-11-{day:02d}T01:00:00+00:00",
        versions={"kernel": "5.14.0-427", "openmpi": "4.1.6"},
        testing_snapshot=f"t{day}",
        results=[
            TestResult(
                TEST,
                "node001",
                "passed",
                mpi="openmpi",
                measurements=[
                    Measurement("pingpong_latency", samples[3], "us", "lower", 8, samples)
                ],
            )
        ],
    )
    run.write(path / f"{run_id}.json")
    return str(path / f"{run_id}.json")


def test_record_accept_then_a_slow_night_is_suspect(tmp_path, capsys):
    db = str(tmp_path / "results.sqlite")
    for day in range(1, 6):
        assert (
            main(
                [
                    "perf",
                    "record",
                    results_file(tmp_path, f"n{day}", day, 1.0 + 0.003 * (day % 2)),
                    "--db",
                    db,
                    "--node-class",
                    "compute",
                ]
            )
            == 0
        )
        assert main(["perf", "accept", f"n{day}", "--db", db]) == 0
    assert "n5 accepted as a baseline (1 measurements)" in capsys.readouterr().err
    # `perf record` has no way to rerun: a slow night stays a suspect, reported and not failed.
    assert (
        main(
            [
                "perf",
                "record",
                results_file(tmp_path, "n6", 6, 1.3),
                "--db",
                db,
                "--node-class",
                "compute",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "suspect: integration_tests" in err and "effect +" in err
    [m] = ResultsStore(db).run_measurements("n6")
    assert m.verdict == "suspect" and m.kernel == "5.14.0-427" and m.mpi_version == "4.1.6"


def test_history_prints_the_series_and_draws_it(tmp_path, capsys):
    db = str(tmp_path / "results.sqlite")
    for day in range(1, 4):
        main(["perf", "record", results_file(tmp_path, f"n{day}", day, float(day)), "--db", db])
    main(["perf", "accept", "n1", "--db", db])
    capsys.readouterr()
    chart = tmp_path / "trend.png"
    assert (
        main(
            [
                "perf",
                "history",
                "test_pingpong",
                "--metric",
                "pingpong_latency",
                "--db",
                db,
                "--chart",
                str(chart),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if " n" in line and "us" in line]
    assert [line.split()[1] for line in lines] == ["n1", "n2", "n3"]
    assert "yes" in lines[0] and "yes" not in lines[1]
    assert mpimg.imread(chart).std() > 0.05


def test_user_mistakes_are_one_line_errors(tmp_path):
    db = tmp_path / "results.sqlite"

    def hpcos(*argv):
        return subprocess.run(
            [sys.executable, "-m", "hpcos.cli", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )

    proc = hpcos("perf", "accept", "nope", "--db", str(db))
    assert proc.returncode == 2 and "no results database yet" in proc.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema_version": 99}))
    proc = hpcos("perf", "record", str(bad), "--db", str(db))
    assert (
        proc.returncode == 2
        and "not an hpcos results file" in proc.stderr
        and "Traceback" not in proc.stderr
    )
    results_file(tmp_path, "n1", 1, 1.0)
    assert hpcos("perf", "record", str(tmp_path / "n1.json"), "--db", str(db)).returncode == 0
    proc = hpcos("perf", "accept", "n2", "--db", str(db))
    assert proc.returncode == 2 and "run 'n2' is not in" in proc.stderr
    proc = hpcos("perf", "history", "no_such_test", "--db", str(db))
    assert proc.returncode == 2 and "no measurements of 'no_such_test'" in proc.stderr
    # No --db, no store and no specs: say how to name the database.
    proc = hpcos("perf", "history", "x")
    assert proc.returncode == 2 and "--db FILE or --store DIR" in proc.stderr


def test_database_follows_the_store_and_site(tmp_path, repo_root):
    """The store root from --store, the file name from site.yaml's harness.results_db."""
    import shutil

    specs = tmp_path / "overlay_specs"
    shutil.copytree(repo_root / "overlay_specs", specs)
    site = specs / "site.yaml"
    site.write_text(
        site.read_text().replace("results_db: results.sqlite", "results_db: perf/history.sqlite")
    )
    results_file(tmp_path, "n1", 1, 1.0)
    store = tmp_path / "store"
    assert (
        main(
            [
                "--specs",
                str(specs),
                "--store",
                str(store),
                "perf",
                "record",
                str(tmp_path / "n1.json"),
            ]
        )
        == 0
    )
    assert (store / "perf" / "history.sqlite").exists()
    with pytest.raises(SystemExit):
        main(["perf", "history"])  # TEST is required: argparse's own usage error
