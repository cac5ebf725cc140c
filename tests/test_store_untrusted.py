"""The store trusts none of its own files: each medium case of issue 27 reproduced, through the real
``hpcos`` command, and refused.

A hand-written switch journal (``environments/.switches.json``) that names a folder outside the store,
a ``../`` snapshot id or a pointer name that is a path; a ticket queue holding foreign or damaged
files; pointers, records and store folders that are symbolic links.  Each time: nothing outside the
store is touched, the bad file is moved to ``quarantine/`` with one warning line, and the command goes
on.  Secrets: a broken ``~/.netrc`` and URLs with passwords in them never print the password.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict
from pathlib import Path

import pytest

from hpcos.cli import main
from hpcos.core.store_layout import StoreLayout
from hpcos.repo.environments import JOURNAL, Environments
from hpcos.repo.snapshots import META
from hpcos.tickets.lifecycle import Action
from hpcos.tickets.queue import TicketQueue

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "tests" / "data" / "specs_site"


def snapshot(layout: StoreLayout, snapshot_id: str) -> None:
    (layout.snapshots / snapshot_id).mkdir(parents=True)
    (layout.snapshots / snapshot_id / META).write_text(
        json.dumps({"id": snapshot_id, "kind": "daily", "created": 1.0, "entries": {}})
    )


@pytest.fixture
def store(tmp_path) -> StoreLayout:
    """A store whose testing points at snap-1; snap-2 is committed too."""
    layout = StoreLayout(tmp_path / "store")
    snapshot(layout, "snap-1")
    snapshot(layout, "snap-2")
    Environments(layout).environment("testing").switch("snap-1", "promote", reason="first")
    return layout


def record(snapshot_id: str = "snap-2", **changes) -> dict:
    return {
        "action": "promote",
        "snapshot": snapshot_id,
        "previous": "snap-1",
        "user": "mallory",
        "time": "2026-12-01T00:00:00+00:00",
        "reason": "",
        "forced": False,
        "build_url": None,
        **changes,
    }


def rollback(layout: StoreLayout) -> int:
    """A store-changing run (it completes the journal under the store lock first)."""
    return main(
        [
            "--specs",
            str(SPECS),
            "--store",
            str(layout.root),
            "repo",
            "rollback",
            "testing",
            "--reason",
            "test",
        ]
    )


def quarantined(layout: StoreLayout) -> list[str]:
    return sorted(p.name for p in layout.quarantine.iterdir()) if layout.quarantine.is_dir() else []


def test_a_journal_naming_a_folder_outside_the_store_touches_nothing_there(store, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("precious")
    journal = store.environments / JOURNAL
    journal.write_text(
        json.dumps([{"directory": str(outside), "name": "victim", "record": record()}])
    )
    rollback(store)
    assert (outside / "victim").read_text() == "precious" and not (outside / "victim").is_symlink()
    assert sorted(p.name for p in outside.iterdir()) == ["victim"], "no .log written beside it"
    assert not journal.exists() and any(name.endswith(JOURNAL) for name in quarantined(store))
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if "switch journal" in line)
    assert "names a folder that holds no pointers of this store" in line and "moved to" in line


@pytest.mark.parametrize(
    "entry, why",
    [
        (
            {"directory": "", "name": "testing", "record": record("../../outside")},
            "a snapshot id that is not one",
        ),
        (
            {"directory": "", "name": "testing", "record": record(previous="../x")},
            "a snapshot id that is not one",
        ),
        ({"directory": "", "name": "../../x", "record": record()}, "not a pointer name"),
        ({"directory": "", "name": "testing.log", "record": record()}, "not a pointer name"),
        ({"directory": "../..", "name": "testing", "record": record()}, "names a folder"),
        ({"directory": "", "name": "testing", "record": record(action="rm -rf")}, "unknown action"),
        ({"directory": "", "name": "testing", "record": record(extra=1)}, "unknown field"),
        (
            {"directory": "", "name": "testing", "record": {**record(), "forced": "yes"}},
            "wrong type",
        ),
        ({"directory": "", "name": "testing"}, "not a switch"),
    ],
)
def test_a_forged_journal_entry_is_quarantined_and_testing_stays(store, caplog, entry, why):
    (store.environments / JOURNAL).write_text(json.dumps([entry]))
    Environments(store).clean_leftovers()
    assert Environments(store).environment("testing").current() == "snap-1"
    assert [r.snapshot for r in Environments(store).environment("testing").records()] == ["snap-1"]
    assert not (store.root.parent / "outside").exists() and not (store.root.parent / "x").exists()
    assert len(quarantined(store)) == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "hpcos.store"]
    assert len(lines) == 1 and why in lines[0] and "moved to" in lines[0]


@pytest.mark.parametrize(
    "content", ["", "{", "[1, 2]", '{"a": 1}', "\x00" * 10, "[" * 100000 + "]" * 100000]
)
def test_a_damaged_journal_is_quarantined_and_the_store_goes_on(store, caplog, content):
    (store.environments / JOURNAL).write_text(content)
    assert Environments(store).clean_leftovers() == []
    assert len(quarantined(store)) == 1
    assert [r.getMessage().count("\n") for r in caplog.records if r.name == "hpcos.store"] == [0]


def test_a_journal_that_is_a_symlink_or_a_directory_is_quarantined(store, tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps([{"directory": "", "name": "testing", "record": record()}]))
    (store.environments / JOURNAL).symlink_to(target)
    Environments(store).clean_leftovers()
    assert Environments(store).environment("testing").current() == "snap-1"
    assert target.exists(), "the link is moved aside, not what it points at"
    (store.environments / JOURNAL).mkdir()
    Environments(store).clean_leftovers()
    assert len(quarantined(store)) == 2


def test_the_journal_hpcos_writes_is_still_completed(store):
    """The real thing still works: a journal of a killed switch is completed forward."""
    envs = Environments(store)
    (store.environments / JOURNAL).write_text(
        json.dumps([{"directory": "", "name": "testing", "record": record()}])
    )
    done = envs.clean_leftovers()
    assert [(p.name, r.snapshot) for p, r in done] == [("testing", "snap-2")]
    assert envs.environment("testing").current() == "snap-2" and not quarantined(store)


def test_records_and_pointers_that_lead_outside_are_not_followed(store, tmp_path, capsys):
    envs = Environments(store)
    # A hand-added record line pointing rollback at "../../x" is not a record.
    with open(store.environments / "testing.log", "a") as log:
        log.write(json.dumps(record("../../x")) + "\n")
    assert "../../x" not in envs.environment("testing").history()
    # A pointer that points outside snapshots/ names no snapshot, and is moved aside.
    (store.environments / "evil").symlink_to("/etc")
    assert envs.environment("evil").current() is None
    envs.clean_leftovers()
    assert not (store.environments / "evil").is_symlink() and "evil" in "".join(quarantined(store))
    # A record that is a symlink is never appended to.
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (store.environments / "production.log").symlink_to(victim)
    assert main(
        [
            "--specs",
            str(SPECS),
            "--store",
            str(store.root),
            "repo",
            "rollback",
            "testing",
            "--reason",
            "x",
        ]
    ) in (0, 2)
    assert victim.read_text() == "precious\n"


def test_symlinked_store_folders_are_refused(tmp_path, capsys):
    store = tmp_path / "store"
    store.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for folder in ("nightly", "content", "tickets"):
        (store / folder).symlink_to(elsewhere)
        assert main(["--specs", str(SPECS), "--store", str(store), "repo", "status"]) == 2
        err = capsys.readouterr().err
        assert (
            err.count("\n") == 1
            and f"{store / folder}: a store folder must not be a symbolic link" in err
        )
        (store / folder).unlink()
    for bad in ("/proc", "/proc/self", "/dev/zero", "/sys/kernel"):
        assert main(["--specs", str(SPECS), "--store", bad, "repo", "status"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_nightly_and_deployment_records_are_quarantined(store, capsys):
    from hpcos.repo import deployments, nightly

    store.nightly_records.mkdir()
    (store.nightly_records / "forged.json").write_text(json.dumps({"run_id": "x", "passed": "yes"}))
    (store.nightly_records / "empty.json").write_text("")
    store.deployments.mkdir()
    (store.deployments / "forged.json").write_text(json.dumps({"deploy_id": 1}))
    assert nightly.records(store) == [] and deployments.records(store) == []
    assert len(quarantined(store)) == 3


# --- the ticket queue ----------------------------------------------------------------------------


def action(run_id: str = "run-1") -> Action:
    return Action(
        kind="report",
        key="k" * 16,
        test_id="integration_tests/test_mpi.py::test_pingpong",
        run_id=run_id,
        day="2026-12-01",
        summary="pingpong fails on node01",
        description="d",
    )


def poison(queue_dir: Path, tmp_path: Path) -> list[str]:
    """One of each kind of file that is not a queued action."""
    (queue_dir / "0-bad.json").write_text("{")
    (queue_dir / "1-empty.json").write_text("")
    (queue_dir / "2-unknown.json").write_text(
        json.dumps({**asdict(action("x")), "shell": "rm -rf /"})
    )
    (queue_dir / "3-wrongtype.json").write_text(json.dumps({**asdict(action("x")), "close": "no"}))
    (queue_dir / "4-dir.json").mkdir()
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(asdict(action("from-outside"))))
    (queue_dir / "5-link.json").symlink_to(secret)
    (queue_dir / "6-list.json").write_text("[]")
    (queue_dir / "7-kind.json").write_text(json.dumps({**asdict(action("x")), "kind": "delete"}))
    return ["0-bad", "1-empty", "2-unknown", "3-wrongtype", "4-dir", "5-link", "6-list", "7-kind"]


@pytest.mark.parametrize("command", ["flush", "file"])
def test_a_poisoned_queue_is_quarantined_and_the_rest_is_filed(tmp_path, capsys, command):
    store = tmp_path / "store"
    layout = StoreLayout(store)
    queue = TicketQueue(layout.ticket_queue)
    assert queue.put(action())
    bad = poison(layout.ticket_queue, tmp_path)
    argv = ["--specs", str(SPECS), "--store", str(store), "tickets"]
    if command == "flush":
        assert main([*argv, "flush"]) == 0
    else:
        results = tmp_path / "results.json"
        results.write_text(
            json.dumps(
                {
                    "schema_version": 1,
                    "run_id": "run-2",
                    "cluster": "local",
                    "started": "2026-12-02T02:00:00+00:00",
                    "finished": "2026-12-02T03:00:00+00:00",
                    "results": [],
                }
            )
        )
        assert main([*argv, "file", str(results)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    warnings = [line for line in err.splitlines() if "ticket queue:" in line]
    assert len(warnings) == len(bad), err
    moved = quarantined(layout)
    assert all(any(name in m for m in moved) for name in bad)
    assert (tmp_path / "secret.json").exists(), "the link went to quarantine, not its target"
    assert not list(layout.ticket_queue.glob("*.json")), (
        "the good action was sent, the bad ones moved"
    )
    assert main([*argv, "list", "--json"]) == 0
    listed = capsys.readouterr().out
    assert "pingpong fails on node01" in listed and "from-outside" not in listed


# --- secrets in errors ---------------------------------------------------------------------------

PASSWORD = "Pw-9zQ'x7"


@pytest.mark.parametrize(
    "netrc",
    [
        f"machine jenkins.example.org login hpcos password {PASSWORD} bogus\n",
        f'machine jenkins.example.org login hpcos password "{PASSWORD}\n',
        f"machine jenkins.example.org login hpcos\npassword {PASSWORD} macdef\n",
        f"default login x password {PASSWORD} machine\n",
    ],
)
def test_a_broken_netrc_never_prints_a_password(tmp_path, capsys, monkeypatch, netrc):
    path = tmp_path / "netrc"
    path.write_text(netrc)
    path.chmod(0o600)
    for name in ("HPCOS_JENKINS_USER", "HPCOS_JENKINS_TOKEN", "HPCOS_JENKINS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(path))
    code = main(["--specs", str(SPECS), "jobs", "update", "--url", "http://127.0.0.1:9/"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in (PASSWORD, PASSWORD[:5], PASSWORD[-4:]):
        assert fragment not in err


@pytest.mark.parametrize(
    "url, why",
    [
        ("admin:S3cr3t-PW@host:9", "needs a scheme"),
        ("http://admin:S3cr3t-PW@host:99999/", "port out of range"),
        ("http://admin:S3cr3t-PW@host:x/", "port could not be cast"),
        ("http://admin:S3cr3t-PW@[::1:9/", "invalid ipv6 url"),
        ("http://admin:S3cr3t-PW@/", "names no host"),
        ("http://admin:S3cr3t-PW@host/\x1b[2J", "control characters"),
        ("ftp://admin:S3cr3t-PW@host/", "needs a scheme"),
    ],
)
def test_a_bad_url_is_one_line_with_its_password_masked(capsys, monkeypatch, url, why):
    monkeypatch.setenv("NETRC", "/nonexistent")
    assert main(["--specs", str(SPECS), "jobs", "update", "--url", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and why in err.lower() and "S3cr3t-PW" not in err, err
    assert "\x1b" not in err


def test_every_netrc_password_is_masked_whatever_its_host(tmp_path, monkeypatch):
    from hpcos.site import Site

    path = tmp_path / "netrc"
    path.write_text(
        "machine jenkins.example.org login a password first-PW\n"
        "machine unrelated.example.net login b password 'second PW'\n"
        "default login c password third-PW\n"
    )
    path.chmod(0o600)
    site = Site.from_options(SPECS, tmp_path / "store", {"NETRC": str(path), "HOME": str(tmp_path)})
    assert {"first-PW", "second PW", "third-PW"} <= set(site.secrets)


def test_launched_commands_get_a_home_without_credentials(tmp_path, monkeypatch):
    from hpcos.core import runner
    from hpcos.core.environment import launch_environment

    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text("machine x login y password home-PW\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(home / ".netrc"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    done = runner.run(
        'cat ~/.netrc "$NETRC"; echo "HOME=$HOME"', timeout=30, base_env=launch_environment()
    )
    assert "home-PW" not in done.output
    assert re.search(r"HOME=\S+/hpcos/launch-home", done.stdout)
    assert not os.listdir(launch_environment()["HOME"])


def test_the_content_sweep_never_follows_a_symlinked_shard(tmp_path):
    from hpcos.rpms.content_store import ContentStore

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("one link only")
    content = tmp_path / "store" / "content"
    content.mkdir(parents=True)
    (content / "ab").symlink_to(elsewhere)
    (content / "cd").mkdir()
    (content / "cd" / ".tmp-x-pidnot-a-number").write_text("")
    (content / "cd" / ("cd" + "0" * 62 + ".rpm")).write_text("unreferenced")
    assert ContentStore(content).collect_garbage() == 2
    assert (elsewhere / "precious.txt").read_text() == "one link only"


@pytest.mark.parametrize(
    ("meta", "why"),
    [
        ("", "empty, not a snapshot.json"),
        ("[]", "not a JSON object"),
        ({"id": "snap-2"}, "field 'kind' is missing"),
        (
            {"id": "snap-2", "kind": "daily", "created": 1.0, "entries": 5},
            "field 'entries' has the wrong",
        ),
        ({"id": "../x", "kind": "daily", "created": 1.0, "entries": {}}, "names snapshot '../x'"),
        (
            {"id": "snap-2", "kind": "d", "created": 1.0, "entries": {"base": ".."}},
            "entry 'base' is not one folder",
        ),
        (
            {"id": "snap-2", "kind": "d", "created": 1e400, "entries": {}},
            "field 'created' is not a time",
        ),
    ],
)
def test_a_damaged_snapshot_json_is_one_line_for_every_reader(store, capsys, meta, why):
    """Snapshot metadata was read as trusted: a KeyError, a TypeError or rich's NotRenderableError."""
    text = meta if isinstance(meta, str) else json.dumps(meta).replace("1e+400", "1e400")
    (store.snapshots / "snap-2" / META).write_text(text)
    Environments(store).environment("testing").switch("snap-2", "promote")
    for argv in (
        ["repo", "status", "testing"],
        ["repo", "diff", "testing", "testing"],
        ["repo", "promote", "testing", "production", "--force", "--reason", "x"],
    ):
        code = main(["--specs", str(SPECS), "--store", str(store.root), *argv])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
        assert f"{META}: {why}" in err, (argv, err)


def test_bad_lines_of_the_node_service_log_are_skipped_with_a_warning(tmp_path, capsys):
    """nodes/service.jsonl was read on trust: a node set ClusterShell refuses or a list ended the gate
    and `repo out-of-service` in a traceback; n[1-99999999] ran for minutes."""
    from hpcos.repo import out_of_service

    layout = StoreLayout(tmp_path / "store")
    out_of_service.mark(layout, "example-test-cluster", "node002", "fan failure")
    good = layout.node_service.read_text()
    line = json.loads(good)
    bad = [
        {**line, "nodes": "n]]"},
        {**line, "nodes": ["node003"], "reason": {"a": 1}},
        {**line, "nodes": "n[1-99999999]"},
        {**line, "time": "yesterday"},
    ]
    layout.node_service.write_text("".join(json.dumps(b) + "\n" for b in bad) + "[]\n" + good)
    argv = ["--specs", str(REPO / "overlay_specs"), "--store", str(layout.root)]
    assert main([*argv, "repo", "out-of-service"]) == 0
    captured = capsys.readouterr()
    assert "node002 (fan failure" in captured.out + captured.err
    assert captured.err.count("not a node service change; ignored") == 5, captured.err
    assert "Traceback" not in captured.err
