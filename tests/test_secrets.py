"""Secrets never leave hpcos: a test command that prints its environment, through the real ``hpcos test``,
``hpcos report``, ``hpcos tickets file`` and ``hpcos perf record`` processes.

The credential variables are set in the environment hpcos runs in, as on a Jenkins agent.  Launched
commands must not get them at all; what a test prints in-process (pytest's captured output) is masked
wherever it goes.  Afterwards every byte of every file the run wrote (results, JUnit, HTML report,
results database, the local tracker's tickets) and the console are searched for both secrets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
TRACKER_PASSWORD = "tr4ck3r-Passw0rd-7Q"
JENKINS_TOKEN = "j3nk1ns-T0ken-9Z"
NETRC_PASSWORD = (
    "n3trc-Passw0rd-4K"  # configured for the site's Jenkins host in ~/.netrc, not the environment
)
OTHER_PASSWORD = "0ther-h0st-Pw-8M"  # ~/.netrc's password for a host hpcos is not configured for

PRINTING_TESTS = """
import os
import pytest


@pytest.mark.node
def test_launched_command_sees_no_credentials(run):
    result = run("env")
    print(result.stdout)
    assert "HPCOS_TRACKER_PASSWORD" not in result.stdout
    assert "HPCOS_JENKINS_TOKEN" not in result.stdout


@pytest.mark.node
def test_failing_command_prints_environment(run):
    run("env; echo jenkins=$HPCOS_JENKINS_TOKEN; exit 3").check()


@pytest.mark.node
def test_command_prints_the_netrc(run):
    run('cat "$NETRC" ~/.netrc; exit 4').check()


@pytest.mark.node
def test_in_process_print_of_the_netrc(run):
    run("true")
    print(open(os.environ["NETRC"]).read())
    assert False, open(os.environ["NETRC"]).read()


@pytest.mark.node
def test_in_process_print_of_the_environment(run):
    run("true")
    print(dict(os.environ))
    assert False, "tracker password is " + os.environ["HPCOS_TRACKER_PASSWORD"]
"""


def test_no_secret_in_console_results_junit_report_database_or_ticket(tmp_path):
    specs = REPO / "tests" / "data" / "specs_site"
    store = tmp_path / "store"
    work = tmp_path / "work"
    work.mkdir()
    tests = work / "test_env_printing.py"
    tests.write_text(PRINTING_TESTS)
    profile = yaml.safe_load((REPO / "integration_tests" / "clusters" / "local.yaml").read_text())
    (work / "cluster.yaml").write_text(yaml.safe_dump(profile))
    netrc = tmp_path / "netrc"
    netrc.write_text(
        f"machine jenkins.example.org login hpcos password {NETRC_PASSWORD}\n"
        f"machine other.example.net login someone password {OTHER_PASSWORD}\n"
    )
    netrc.chmod(0o600)
    env = {
        **os.environ,
        "HPCOS_TRACKER_PASSWORD": TRACKER_PASSWORD,
        "HPCOS_JENKINS_TOKEN": JENKINS_TOKEN,
        "HPCOS_TRACKER_USER": "hpcos",
        "PYTHONPATH": str(REPO),
        "COLUMNS": "200",
        "NETRC": str(netrc),
    }
    env.pop("PYTEST_ADDOPTS", None)

    def hpcos(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "hpcos.cli",
                "--specs",
                str(specs),
                "--store",
                str(store),
                *args,
            ],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    console = []
    ran = hpcos(
        "test",
        "--cluster",
        str(work / "cluster.yaml"),
        "--results",
        "results.json",
        "--junitxml",
        "junit.xml",
        str(tests),
        "-p",
        "no:cacheprovider",
        "-rA",
    )
    console.append(ran.stdout + ran.stderr)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "test_launched_command_sees_no_credentials" in ran.stdout and "1 passed" in ran.stdout
    assert "********" in ran.stdout, "the in-process print is masked, not dropped"
    for step in (
        hpcos("report", "results.json", "-o", "report"),
        hpcos("perf", "record", "results.json"),
        hpcos("tickets", "file", "results.json", "--backend", "local"),
        hpcos("tickets", "list", "--all"),
    ):
        console.append(step.stdout + step.stderr)
        assert step.returncode in (0, 1), step.stderr

    written = [p for p in tmp_path.rglob("*") if p.is_file() and p not in (tests, netrc)]
    assert {"results.json", "junit.xml"} <= {p.name for p in written}
    assert any(p.suffix == ".html" for p in written) and any(p.suffix == ".sqlite" for p in written)
    for secret in (TRACKER_PASSWORD, JENKINS_TOKEN, NETRC_PASSWORD, OTHER_PASSWORD):
        for text in console:
            assert secret not in text
        for path in written:
            assert secret.encode() not in path.read_bytes(), f"{secret[:4]}... found in {path}"


def test_jobs_update_never_prints_a_password_given_in_the_url(capsys, monkeypatch):
    from support.sshd_fixture import free_port

    from hpcos.cli import main

    for name in ("HPCOS_JENKINS_USER", "HPCOS_JENKINS_TOKEN", "HPCOS_JENKINS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent")
    url = f"http://admin:s3cr3t-in-url@127.0.0.1:{free_port()}/"
    assert (
        main(
            ["--specs", str(REPO / "tests" / "data" / "specs_site"), "jobs", "update", "--url", url]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "s3cr3t-in-url" not in err and "Traceback" not in err
    assert f"cannot connect to Jenkins at http://127.0.0.1:{url.rsplit(':', 1)[1]}" in err
