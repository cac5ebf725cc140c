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
