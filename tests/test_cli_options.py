"""Global options anywhere on the line, and machine-readable listings."""

from __future__ import annotations

import json

from hpcos.cli import main, parse


def test_site_options_are_accepted_after_the_subcommand_too(repo_root, tmp_path):
    before = parse(["--specs", "a", "specs", "check"])
    after = parse(["specs", "check", "--specs", "a"])
    assert before.specs == after.specs == "a"
    # An option given before and not repeated after keeps its value (the subparser must not reset it).
    both = parse(["--store", "s1", "repo", "status", "--specs", "x"])
    assert (both.store, both.specs) == ("s1", "x")
    assert main(["specs", "check", "--specs", str(repo_root / "overlay_specs")]) == 0
    assert main(["specs", "check", "--specs", str(tmp_path / "nowhere")]) == 2


def test_tickets_list_and_repo_status_speak_json(repo_root, tmp_path, capsys):
    specs = str(repo_root / "overlay_specs")
    assert main(["tickets", "list", "--json", "--specs", specs, "--store", str(tmp_path)]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing == {"backend": "local", "queued": 0, "tickets": []}
    assert main(["repo", "status", "--json", "--specs", specs, "--store", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out) == {"store": str(tmp_path), "pointers": []}


def test_every_integer_option_takes_only_its_range(repo_root, tmp_path, capsys):
    """A negative batch size, a zero interval or a 25-digit size went on to a range(), the Nagios
    configuration (``--check-timeout -5`` made every check UNKNOWN) or SQLite (OverflowError)."""
    import pytest

    specs = ["--specs", str(repo_root / "overlay_specs"), "--store", str(tmp_path / "store")]
    for argv in (
        ["deploy", "testing", "--cluster", "local", "--batch-size"],
        ["outage", "plan", "--no-wiki", "--batch-size"],
        ["jobs", "diff", "--workers"],
        ["perf", "history", "t", "--size"],
        ["monitoring", "config", "--cluster", "local", "--check-interval"],
        ["monitoring", "config", "--cluster", "local", "--retry-interval"],
        ["monitoring", "config", "--cluster", "local", "--check-timeout"],
        ["monitoring", "config", "--cluster", "local", "--interval-length"],
        ["probes", "build-osu", "src", "--mpi", "openmpi", "-j"],
    ):
        for value in ("-5", "99999999999999999999999", "1e3"):
            with pytest.raises(SystemExit) as exit_:
                main([*specs, *argv, value])
            err = capsys.readouterr().err
            assert exit_.value.code == 2 and "expected " in err and "Traceback" not in err, (
                argv,
                err,
            )
    assert main([*specs, "perf", "history", "t", "--size", "0"]) == 2  # in range: no such test
