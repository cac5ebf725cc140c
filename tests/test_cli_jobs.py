"""`hpcos jobs ...` as a user runs it: exit codes, what goes to stdout and stderr, no secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.jenkins_double import JenkinsDouble
from support.jobs_site import write_site

from hpcos.cli import main

TOKEN = "cli-token-5e1d-never-shown"


@pytest.fixture
def double(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HPCOS_JENKINS_USER", "admin")
    monkeypatch.setenv("HPCOS_JENKINS_TOKEN", TOKEN)
    server = JenkinsDouble(users={"admin": TOKEN}).start()
    yield server
    server.stop()


def hpcos(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def specs(tmp_path) -> str:
    return str(write_site(tmp_path / "site"))


def test_update_then_diff_then_hand_edit(double, capsys, specs):
    code, out, err = hpcos(capsys, "--specs", specs, "jobs", "diff", "--url", double.url)
    assert code == 0 and "+++ hpcos/mirror-sync (specs)" in out and "10 to change" in err
    assert double.writes() == []

    code, out, err = hpcos(capsys, "--specs", specs, "jobs", "update", "--url", double.url)
    assert code == 0 and "created 10" in err

    code, out, err = hpcos(capsys, "--specs", specs, "jobs", "diff", "--url", double.url)
    assert code == 0 and out == "" and "0 to change, 10 unchanged" in err
    for text in (out, err):
        assert TOKEN not in text


def test_update_failure_exits_nonzero_with_a_report(double, capsys, specs):
    double.fail_next.append(("POST", r"/job/hpcos/createItem$", 503))
    code, out, err = hpcos(capsys, "--specs", specs, "jobs", "update", "--url", double.url)
    assert code == 1
    assert (
        "failed" in err
        and "503" in err
        and "not attempted 8" in err
        and "run `hpcos jobs update` again" in err
    )
    code, _, err = hpcos(capsys, "--specs", specs, "jobs", "update", "--url", double.url)
    assert code == 0 and "created 9" in err


def test_bad_credentials_one_line_no_token(double, capsys, specs, monkeypatch):
    monkeypatch.setenv("HPCOS_JENKINS_TOKEN", "wrong-" + TOKEN)
    code, out, err = hpcos(capsys, "--specs", specs, "jobs", "update", "--url", double.url)
    assert code == 2
    assert err.count("\n") == 1 and "rejected the credentials (401)" in err
    assert TOKEN not in out + err


def test_bad_spec_is_a_one_line_error_with_file_and_line(tmp_path, capsys, specs):
    spec_file = Path(specs) / "openmpi.yaml"
    spec_file.write_text(spec_file.read_text().replace("- el8-x86_64", "- el7-sparc", 1))
    code, out, err = hpcos(capsys, "--specs", specs, "jobs", "render", "-o", str(tmp_path / "out"))
    assert code == 2 and "openmpi.yaml:" in err and "el7-sparc" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
