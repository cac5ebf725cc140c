"""The wiring: ``hpcos tickets list|file|flush`` and the pytest plugin's ``--tickets`` option."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from support.tracker_doubles.runs import (
    IBV_MISSING,
    OPENMPI_UNREACHABLE,
    nodes,
    run,
    site_with_tracker,
)

from hpcos.cli import main

pytest_plugins = ["pytester"]

PINGPONG = "integration_tests/test_mpi.py::test_pingpong[openmpi]"


@pytest.fixture
def site_env(tmp_path, monkeypatch, repo_root):
    monkeypatch.setenv("HPCOS_SPECS", str(repo_root / "overlay_specs"))
    monkeypatch.setenv("HPCOS_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("COLUMNS", "250")  # rich tables wrap at 80 columns when not on a terminal
    for name in ("HPCOS_TRACKER_USER", "HPCOS_TRACKER_PASSWORD", "HPCOS_TRACKER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def saved(tmp_path, results, name="results.json"):
    path = tmp_path / name
    results.write(path)
    return str(path)


def test_file_then_list_then_file_again_comments(site_env, capsys):
    night1 = saved(site_env, run("n1", {PINGPONG: (OPENMPI_UNREACHABLE, nodes(300))}))
    assert main(["tickets", "file", night1]) == 0
    assert capsys.readouterr().out == "#1: created\n"
    assert main(["tickets", "list"]) == 0
    out = capsys.readouterr()
    assert "[openmpi] test_pingpong[openmpi] fails on node[001-300]" in out.out
    assert "queued, waiting for the tracker: 0" in out.err
    night2 = saved(site_env, run("n2", {PINGPONG: (OPENMPI_UNREACHABLE, nodes(3))}), "r2.json")
    assert main(["tickets", "file", night2]) == 0
    assert capsys.readouterr().out == "#1: commented\n"
    assert main(["tickets", "show", "1"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(
        "#1 [new] [openmpi] test_pingpong[openmpi] fails on node[001-300]: At least one pair"
    )
    assert "--- comment 1\nSeen again in run n2 on 3 node(s), 1 test(s):" in shown
    assert main(["tickets", "show", "7"]) == 2
    assert "no local ticket #7" in capsys.readouterr().err


def test_dry_run_prints_and_files_nothing(site_env, capsys):
    path = saved(site_env, run("n1", {PINGPONG: (OPENMPI_UNREACHABLE, nodes(5))}))
    assert main(["tickets", "file", "--dry-run", path]) == 0
    out = capsys.readouterr().out
    assert out.startswith("== new ticket for hpcos-v2-") and "Nodes (5): node[001-005]" in out
    assert main(["tickets", "list", "--all"]) == 0
    assert "test_pingpong" not in capsys.readouterr().out


def test_bad_results_file_is_one_line_error(site_env, capsys):
    (site_env / "bad.json").write_text("{not json")
    assert main(["tickets", "file", str(site_env / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"hpcos: {site_env / 'bad.json'}: not an hpcos results file")
        and "Traceback" not in err
    )
    assert main(["tickets", "file", str(site_env / "missing.json")]) == 2
    assert "results file not found" in capsys.readouterr().err


def test_unreachable_tracker_queues_then_flush_sends(site_env, capsys, monkeypatch, repo_root):
    """A Trac URL where nothing listens: the run's tickets wait in the queue; flush sends them later."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    specs = site_with_tracker(
        site_env, repo_root, {"backend": "trac", "url": f"http://127.0.0.1:{port}"}
    )
    monkeypatch.setenv("HPCOS_SPECS", str(specs))
    monkeypatch.setenv("HPCOS_TRACKER_USER", "bot")
    monkeypatch.setenv("HPCOS_TRACKER_PASSWORD", "hunter2-do-not-leak")
    path = saved(
        site_env,
        run(
            "n1",
            {
                PINGPONG: (OPENMPI_UNREACHABLE, nodes(4)),
                "t::hca": (IBV_MISSING + "pw hunter2-do-not-leak", nodes(2)),
            },
        ),
    )
    assert main(["tickets", "file", path]) == 1
    err = capsys.readouterr().err
    assert (
        f"2 queued (unreachable: Trac at http://127.0.0.1:{port} unreachable: ConnectionError)"
        in err
    )
    queue = list((site_env / "store" / "tickets" / "queue").glob("*.json"))
    assert len(queue) == 2 and all("hunter2" not in p.read_text() for p in queue)
    assert main(["tickets", "flush"]) == 1
    assert "flush (trac): nothing sent, 2 queued" in capsys.readouterr().err
    # The site moves to its local tracker; what waited is sent there, each once.
    site_with_tracker(site_env, repo_root, {"backend": "local"})
    assert main(["tickets", "flush"]) == 0
    printed = capsys.readouterr()
    assert printed.out == "#1: created\n#2: created\n"
    assert (
        "#1" not in printed.err and "#2" not in printed.err
    )  # each line once, not again as a log line
    assert main(["tickets", "flush"]) == 0
    assert "queue empty" in capsys.readouterr().err


CONFTEST = """
import os
from hpcos.results.model import RunResults

def pytest_sessionfinish(session):
    # What the harness plugin does at the end of a run (issue 3): hand the whole run to the hook.
    run = RunResults.read(os.environ["HPCOS_TEST_RUN"])
    session.config.hook.pytest_hpcos_run_finished(config=session.config, run=run)
"""


@pytest.mark.parametrize("mode", ["local", "dry-run", "off"])
def test_plugin_files_at_the_end_of_the_session(pytester, site_env, monkeypatch, mode):
    monkeypatch.setenv(
        "HPCOS_TEST_RUN", saved(site_env, run("n1", {PINGPONG: (OPENMPI_UNREACHABLE, nodes(30))}))
    )
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess(f"--tickets={mode}", "-p", "no:cacheprovider")
    out = result.stdout.str()
    db = site_env / "store" / "tickets.sqlite"
    if mode == "local":
        assert "hpcos tickets (local): 1 created" in out
        assert db.exists()
    elif mode == "dry-run":
        assert "hpcos tickets (dry run, local):" in out and "Nodes (30): node[001-030]" in out
        assert not db.exists()
    else:
        assert "hpcos tickets" not in out and not db.exists()


def test_plugin_declares_option_and_ini(pytester):
    pytester.makeini("[pytest]\nhpcos_tickets = bogus\n")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--help")
    assert "--tickets=BACKEND|dry-run|off" in result.stdout.str()
    assert "hpcos_tickets" in result.stdout.str()


def test_hpcos_console_script_help():
    out = subprocess.run(
        [sys.executable, "-m", "hpcos.cli", "tickets", "file", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
        check=True,
    ).stdout
    assert "--dry-run" in out and "--backend" in out
