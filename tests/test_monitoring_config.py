"""``hpcos monitoring config``: the object configuration real ``nagios4 -v`` accepts with 0 errors and
0 warnings for each way of reaching the nodes; values that would break it are refused in one line."""

from __future__ import annotations

import re
import subprocess

import pytest
from conftest import require_tool

from hpcos.cli import main
from hpcos.monitoring import checks, plugin

PROFILE = "integration_tests/clusters/example-test-cluster.yaml"


@pytest.mark.parametrize("via", ["local", "ssh", "nrpe"])
def test_nagios_accepts_the_configuration(tmp_path, repo_root, monkeypatch, via, capsys):
    nagios = require_tool("nagios4", "nagios4-core")
    monkeypatch.chdir(repo_root)
    objects = tmp_path / "etc" / "hpcos.cfg"
    assert (
        main(
            [
                "monitoring",
                "config",
                "--cluster",
                PROFILE,
                "-o",
                str(objects),
                "--via",
                via,
                "--repo",
                "https://repo.example.org/hpcos/production",
                "--standalone",
                str(tmp_path / "nagios"),
                "--nrpe-output",
                str(tmp_path / "nrpe.cfg"),
            ]
        )
        == 0
    )
    text = objects.read_text()
    assert text.count("define host {") == 16  # node[001-016]
    assert text.count("define service {") == 4  # one per check, on the profile's hostgroup
    assert re.search(r"host_name\s+node016\n", text)
    done = subprocess.run(
        [nagios, "-v", str(tmp_path / "nagios" / "nagios.cfg")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout
    assert re.search(r"Total Warnings:\s+0\n", done.stdout) and re.search(
        r"Total Errors:\s+0\n", done.stdout
    )
    assert re.search(r"Checked 64 services\.", done.stdout)  # 16 nodes x 4 checks
    assert re.search(r"Checked 16 hosts\.", done.stdout)
    if via == "nrpe":
        nrpe = (tmp_path / "nrpe.cfg").read_text()
        assert "command[hpcos_mpi_hello]=hpcos check mpi-hello --cluster local --repo" in nrpe
    if via == "local":
        assert "check $ARG1$ --cluster" in text and "--node $HOSTNAME$" in text


def test_values_that_would_break_nagios_are_refused(tmp_path, repo_root, monkeypatch, capsys):
    monkeypatch.chdir(repo_root)
    assert (
        main(["monitoring", "config", "--cluster", PROFILE, "--repo", "https://x/$USER1$/repo"])
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "must not be empty or hold '$'" in err
    assert main(["monitoring", "config", "--cluster", PROFILE, "--check", "nope"]) == 2
    assert "unknown check 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "state, code", [("ok", 0), ("warning", 1), ("critical", 2), ("unknown", 3)]
)
def test_plugin_exit_codes_and_one_status_line(state, code, capsys):
    finding = checks.Finding(
        state, "node7: something to say", [checks.Perf("time", 0.25, "s", min=0)]
    )
    with pytest.raises(SystemExit) as exited:
        plugin.run_plugin("kernel", lambda: finding, timeout=30)
    assert exited.value.code == code
    assert (
        capsys.readouterr().out
        == f"KERNEL {state.upper()} - node7: something to say | time=0.25s;;;0\n"
    )


def test_a_check_that_breaks_is_unknown_in_one_line(capsys):
    def broken():
        raise RuntimeError("launcher exploded")

    with pytest.raises(SystemExit) as exited:
        plugin.run_plugin("kernel", broken, timeout=30)
    assert exited.value.code == 3
    assert capsys.readouterr().out == "KERNEL UNKNOWN: RuntimeError: launcher exploded\n"


def test_node_output_cannot_forge_performance_data():
    assert checks._one_line("bad | injected=1\nsecond line") == "bad / injected=1 second line"
    assert checks._one_line("red \x1b[31mtext") == "red \\x1b[31mtext"


@pytest.mark.parametrize(
    "argv, said",
    [
        (["check", "kernal"], "invalid choice: 'kernal'"),
        (["check", "kernel", "--bogus"], "unrecognized arguments: --bogus"),
        (
            ["check", "kernel", "--timeout", "abc"],
            "argument --timeout: invalid seconds value: 'abc'",
        ),
        (["check", "kernel", "--timeout", "0"], "argument --timeout: invalid seconds value: '0'"),
        (["check"], "the following arguments are required: CHECK"),
        (["check", "kernel", "--timeout"], "expected one argument"),
    ],
)
def test_a_usage_error_is_unknown_in_one_stdout_line(capsys, argv, said):
    """The Monitoring Plugins guidelines: a usage error is UNKNOWN (3), never CRITICAL (2), one line."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 3
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("UNKNOWN - hpcos check: ") and said in out, out
