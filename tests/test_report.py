"""``hpcos report``: the page rendered for real in headless Chromium (Debian's chromium), checked by its
screenshot and its DOM; the Plot plugin CSVs; the CLI's errors."""

from __future__ import annotations

import csv
import json
import re
import subprocess

import numpy as np
import pytest
from conftest import require_tool

from hpcos.cli import main
from hpcos.perf.judge import judge_run
from hpcos.perf.report import node_groups
from hpcos.perf.store import ResultsStore
from hpcos.results.model import Measurement, RunResults, TestResult

PINGPONG = "integration_tests/test_mpi.py::test_pingpong[openmpi]"
HOSTNAME = "integration_tests/test_nodes.py::test_hostname"


def nightly(
    run_id: str, day: int, latency: float, *, fail_node: str | None = None, seed: int = 0
) -> RunResults:
    rng = np.random.default_rng(seed)
    results = []
    for node in ("node001", "node002", "node003", "node004"):
        samples = list(rng.normal(latency, latency * 0.01, 7))
        failed = node == fail_node
        results.append(
            TestResult(
                HOSTNAME,
                node,
                "failed" if failed else "passed",
                failure_class="error" if failed else None,
                message="hostname: command not found" if failed else "",
            )
        )
        results.append(
            TestResult(
                PINGPONG,
                node,
                "passed",
                mpi="openmpi",
                rerun=f"hpcos test -k pp --nodes {node}",
                measurements=[
                    Measurement("latency", float(np.median(samples)), "us", "lower", 8, samples)
                ],
            )
        )
    return RunResults(
        run_id,
        "testcluster",
        f"2026-11-{day:02d}T01:00:00+00:00",
        f"2026-11-{day:02d}T01:30:00+00:00",
        versions={"kernel": "5.14.0-427.el9", "openmpi": "4.1.6", "rdma-core": "48.0"},
        testing_snapshot=f"testing-{day}",
        build_url="https://jenkins.example/job/nightly/12/",
        results=results,
    )


@pytest.fixture
def store_with_regression(tmp_path):
    """Ten accepted nights at 1.0 us, then a night where node003 is 40% slower, confirmed by its rerun."""
    store = ResultsStore(tmp_path / "results.sqlite")
    for day in range(1, 11):
        judge_run(store, nightly(f"night-{day}", day, 1.0 + 0.005 * (day % 3), seed=day), "compute")
        store.accept(f"night-{day}")
    run = nightly("night-11", 11, 1.0, fail_node="node002", seed=11)
    slow = next(r for r in run.results if r.node == "node003" and r.measurements)
    slow.measurements[0].samples = [s * 1.4 for s in slow.measurements[0].samples]
    slow.measurements[0].value *= 1.4

    def rerun(results):
        return {
            (r.test_id, r.node): TestResult(
                r.test_id,
                r.node,
                "passed",
                measurements=[
                    Measurement("latency", 1.41, "us", "lower", 8, [1.40, 1.41, 1.42, 1.40, 1.43])
                ],
            )
            for r in results
        }

    judgements = judge_run(store, run, "compute", rerun=rerun, charts=tmp_path / "charts")
    return store, run, judgements


def test_regression_becomes_a_failure_with_effect_size_and_chart(store_with_regression, tmp_path):
    _, run, judgements = store_with_regression
    regressions = [j for j in judgements if j.assessment.verdict == "regression"]
    assert [j.result.node for j in regressions] == ["node003"]
    failed = regressions[0].result
    assert failed.outcome == "failed" and failed.failure_class == "performance regression"
    assert re.search(
        r"effect \+(39|40|41)\.\d% worse \(95% CI \+\d+\.\d%\.\.\+\d+\.\d%\)", failed.message
    )
    assert "CI" in failed.message and "baseline 1" in failed.message
    assert "rerun measured 1.41 us" in failed.message
    assert regressions[0].chart.exists() and str(regressions[0].chart) in failed.message
    assert all(j.assessment.verdict == "ok" for j in judgements if j.result.node != "node003")


def test_matrix_groups_nodes_with_identical_results():
    run = nightly("r", 1, 1.0, fail_node="node002")
    rows = [
        {
            "test_id": r.test_id,
            "node": r.node,
            "outcome": r.outcome,
            "failure_class": r.failure_class,
            "message": r.message,
        }
        for r in run.results
    ]
    tests, groups = node_groups(rows)
    assert tests == [HOSTNAME, PINGPONG]
    assert [label for label, _ in groups] == ["node[001,003-004]", "node002"]


def test_report_renders_in_headless_chromium(store_with_regression, tmp_path):
    chromium = require_tool("chromium", "chromium")
    changes = tmp_path / "changes.json"
    # The shape of `hpcos repo diff production testing --json`.
    changes.write_text(
        json.dumps(
            {
                "from": "snap-prod",
                "to": "snap-test",
                "repositories": {
                    "overlay-openmpi": {
                        "added": [],
                        "removed": [],
                        "status": "changed",
                        "updated": [["openmpi.x86_64", "4.1.5-1.el9", "4.1.6-1.el9"]],
                    },
                    "baseos": {
                        "added": ["kernel-5.14.0-427.el9.x86_64"],
                        "removed": ["kernel-5.14.0-362.el9.x86_64"],
                        "updated": [],
                        "status": "changed",
                    },
                },
            }
        )
    )
    out = tmp_path / "report"
    assert (
        main(
            [
                "report",
                "night-11",
                "-o",
                str(out),
                "--db",
                str(tmp_path / "results.sqlite"),
                "--package-changes",
                str(changes),
            ]
        )
        == 0
    )
    page = out / "index.html"
    profile = tmp_path / "chromium-profile"
    flags = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout

    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[0] >= 2000 and pixels.shape[1] >= 1200
    rgb = pixels[..., :3]
    assert rgb.std() > 0.05  # not a blank page
    # The matrix's failed cell is drawn in its red (#fed7d7) and passed cells in green (#c6f6d5).
    assert np.any(np.all(np.abs(rgb - np.array([0xFE, 0xD7, 0xD7]) / 255) < 0.02, axis=-1))
    assert np.any(np.all(np.abs(rgb - np.array([0xC6, 0xF6, 0xD5]) / 255) < 0.02, axis=-1))

    assert '<table id="matrix">' in dom
    # node003's regression sets it apart from the nodes that passed everything.
    assert "<th>node[001,004]</th><th>node002</th><th>node003</th>" in dom
    assert "failed (error)" in dom and "failed (performance regression)" in dom
    assert 'id="regressions"' in dom and "no-regressions" not in dom
    assert '<img src="charts/' in dom and "node003" in dom
    assert "<th>snap-prod</th><th>snap-test</th>" in dom
    assert "<td>openmpi.x86_64</td><td>4.1.5-1.el9</td><td>4.1.6-1.el9</td>" in dom
    assert "kernel-5.14.0-362.el9.x86_64" in dom and "5.14.0-427.el9" in dom
    assert 'id="regression-count">1 performance regressions' in dom
    charts = list((out / "charts").glob("*.png"))
    assert len(charts) == 1 and mpimg.imread(charts[0]).std() > 0.05


def test_plot_plugin_csvs_have_labels_then_values(store_with_regression, tmp_path):
    _, run, _ = store_with_regression
    run.write(tmp_path / "results.json")  # the nightly job names the run by its results file
    out = tmp_path / "report"
    db = str(tmp_path / "results.sqlite")
    assert main(["report", str(tmp_path / "results.json"), "-o", str(out), "--db", db]) == 0
    with (out / "plots" / "summary.csv").open() as f:
        header, values = list(csv.reader(f))
    summary = dict(zip(header, values, strict=True))
    assert (
        summary["failed"] == "2"
        and summary["performance regressions"] == "1"
        and summary["passed"] == "6"
    )
    [latency] = [p for p in (out / "plots").glob("*.csv") if "latency" in p.name]
    with latency.open() as f:
        header, values = list(csv.reader(f))
    assert header == ["node001", "node002", "node003", "node004"]
    assert float(values[2]) == pytest.approx(1.4, rel=0.03)
    assert "not provided" in (out / "index.html").read_text().lower()


def test_text_package_changes_keep_their_lines(tmp_path):
    from hpcos.perf.report import read_package_changes

    text = tmp_path / "diff.txt"
    text.write_text("production (a1) -> testing (b2)\nbaseos\n  ~ openmpi.x86_64 4.1.5 -> 4.1.6\n")
    assert read_package_changes(text) == [
        "production (a1) -> testing (b2)",
        "baseos",
        "  ~ openmpi.x86_64 4.1.5 -> 4.1.6",
    ]


def test_cli_errors_are_one_line(tmp_path, capsys):
    db = tmp_path / "results.sqlite"
    assert main(["report", "nope", "-o", str(tmp_path / "r"), "--db", str(db)]) == 2
    assert "no results database yet" in capsys.readouterr().err
    ResultsStore(db).record(nightly("r1", 1, 1.0), "compute")
    assert main(["report", "nope", "-o", str(tmp_path / "r"), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "run 'nope' is not in" in err and "Traceback" not in err
    assert (
        main(
            [
                "report",
                "r1",
                "-o",
                str(tmp_path / "r"),
                "--db",
                str(db),
                "--package-changes",
                str(tmp_path / "missing.json"),
            ]
        )
        == 2
    )
    assert "missing.json" in capsys.readouterr().err
