"""A store on a full and on a read-only file system (a small tmpfs the test mounts and unmounts).

``hpcos test`` still writes results.json where it was asked and says in one line that the store
could not take the rest (exit 1); every store command says so in one line (exit 1) without a
traceback, and nothing leaves temporary files behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import IN_CI

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "tests" / "data" / "specs_site"

PASSING_TEST = """
import pytest


@pytest.mark.node
def test_true(run):
    run("true").check()
"""


def _mount(target: Path, *options: str) -> None:
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(target)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode != 0:
        message = f"cannot mount a tmpfs (needs root): {done.stderr.strip()}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(params=["full", "read-only"])
def bad_store(request, tmp_path):
    """A store that already holds what earlier runs wrote, on a file system that is now full or read-only."""
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    _mount(mount_point, "size=1m", "mode=0755")
    try:
        store = mount_point / "store"
        (store / "locks").mkdir(parents=True)
        if request.param == "full":
            with open(mount_point / "filler", "wb") as filler:
                try:
                    while True:
                        filler.write(b"\0" * 65536)
                        filler.flush()
                except OSError:
                    pass
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], check=True, timeout=30)
        yield store
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], timeout=30, check=False)


def _stray(store: Path) -> list[str]:
    return [
        str(p)
        for p in store.rglob("*")
        if ".tmp" in p.name or p.name.startswith((".partial", ".switches"))
    ]


def _hpcos(store: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "hpcos.cli", "--specs", str(SPECS), "--store", str(store), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_hpcos_test_writes_results_and_says_the_store_problem_in_one_line(bad_store, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "test_passing.py").write_text(PASSING_TEST)
    profile = yaml.safe_load((REPO / "integration_tests" / "clusters" / "local.yaml").read_text())
    (work / "cluster.yaml").write_text(yaml.safe_dump(profile))
    done = _hpcos(
        bad_store,
        work,
        "test",
        "--cluster",
        str(work / "cluster.yaml"),
        "--results",
        "results.json",
        "--junitxml",
        "junit.xml",
        "--tickets",
        "local",
        str(work / "test_passing.py"),
        "-p",
        "no:cacheprovider",
    )
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert done.returncode == 1, output
    run = json.loads((work / "results.json").read_text())
    assert [r["outcome"] for r in run["results"]] == ["passed"]
    problem = [line for line in output.splitlines() if line.startswith("hpcos: ")]
    assert len(problem) == 1 and problem[0].endswith("(results written to results.json)"), output
    assert any(
        said in problem[0]
        for said in (
            "No space left on device",
            "Read-only file system",
            "database or disk is full",
            "unable to open database file",
        )
    ), output
    assert _stray(bad_store) == []


def _results(path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "run_id": "r1",
                "cluster": "local",
                "started": "2026-12-01T02:00:00+00:00",
                "testing_snapshot": "snap-1",
                "results": [
                    {
                        "test_id": "t",
                        "node": "n1",
                        "outcome": "passed",
                        "measurements": [
                            {
                                "metric": "latency",
                                "value": 1.0,
                                "unit": "us",
                                "direction": "lower",
                                "size": 8,
                            }
                        ],
                    }
                ],
            }
        )
    )
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["repo", "record-run", "{results}"],
        ["perf", "record", "{results}"],
        ["tickets", "file", "{results}", "--backend", "local"],
    ],
)
def test_store_commands_fail_in_one_line(bad_store, tmp_path, argv):
    results = _results(tmp_path / "results.json")
    done = _hpcos(bad_store, tmp_path, *[a.format(results=results) for a in argv])
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpcos: "), done.stderr
    assert _stray(bad_store) == []
