"""The one error tree: each family's exit code, soft or fatal, and what `hpcos` does with each."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import harness
import hpcos
import jobs
from hpcos.cli import main
from hpcos.core.errors import FAMILIES, HpcosError, StoreError, UserError

# The exit codes `hpcos` has always ended with: 2 for a user's mistake, 1 for a full store and for a
# failure that is not the user's (what an uncaught one gave before the tree had a base).
EXPECTED = {
    "user": (2, True),
    "store": (1, True),
    "tracker": (1, False),
    "build": (1, False),
    "parse": (1, False),
    "node": (1, False),
}


def every_error_class() -> set[type[HpcosError]]:
    for package in (hpcos, harness, jobs):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not module.name.endswith("__main__"):  # would run the command
                importlib.import_module(module.name)
    found, todo = set(), [HpcosError]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    return found


def test_the_exit_code_table():
    assert {name: (f.exit_code, f.fatal) for name, f in FAMILIES.items()} == EXPECTED


def test_every_error_takes_its_exit_code_from_its_family():
    classes = every_error_class()
    assert len(classes) > 30
    for cls in classes:
        assert cls.exit_code == FAMILIES[cls.family].exit_code, cls
    by_name = {cls.__name__: cls for cls in classes}
    # The families that once stood outside UserError, and the two that were already in it.
    assert {
        name: by_name[name].family
        for name in (
            "UserError",
            "StoreError",
            "InvalidInput",
            "TrackerError",
            "TrackerUnavailable",
            "MidAirCollision",
            "BuildFailed",
            "ProbeBuildError",
            "HttpStatus",
            "NotXml",
            "ParseError",
            "UnknownRun",
            "CommandFailed",
            "NodeUnavailable",
        )
    } == {
        "UserError": "user",
        "StoreError": "store",
        "InvalidInput": "user",
        "TrackerError": "tracker",
        "TrackerUnavailable": "tracker",
        "MidAirCollision": "tracker",
        "BuildFailed": "build",
        "ProbeBuildError": "build",
        "HttpStatus": "tracker",
        "NotXml": "parse",
        "ParseError": "parse",
        "UnknownRun": "user",
        "CommandFailed": "node",
        "NodeUnavailable": "node",
    }
    # Callers that catch them by a builtin class, and pytest's failed-not-errored, still see them so.
    assert issubclass(by_name["ParseError"], ValueError) and issubclass(
        by_name["NotXml"], ValueError
    )
    assert issubclass(by_name["UnknownRun"], LookupError) and issubclass(
        by_name["ProbeBuildError"], RuntimeError
    )
    assert issubclass(by_name["CommandFailed"], AssertionError)


def test_soft_and_fatal():
    from hpcos.tickets.backends import TrackerError, TrackerMisconfigured, TrackerServerError

    # The tracker's own word for soft: the action waits in the queue.
    assert TrackerServerError("down").retry and not TrackerServerError.fatal
    assert not TrackerMisconfigured("no URL").retry and TrackerMisconfigured.fatal
    assert TrackerError("refused").retry
    assert UserError.fatal and StoreError.fatal


def _fails_with(exc: BaseException):
    def command(args):
        raise exc

    return command


@pytest.mark.parametrize(
    "make, code",
    [
        (lambda: UserError("overlay_specs/site.yaml:3: name: required"), 2),
        (lambda: StoreError("/store: No space left on device"), 1),
        (
            lambda: importlib.import_module("hpcos.tickets.backends").TrackerUnavailable(
                "trac at http://x: down"
            ),
            1,
        ),
        (
            lambda: importlib.import_module("hpcos.probes.parsers").ParseError(
                "osu", "no results table"
            ),
            1,
        ),
        (lambda: importlib.import_module("hpcos.perf.store").UnknownRun("night-1"), 2),
    ],
)
def test_the_command_line_ends_every_family_with_one_line_and_its_code(
    make, code, monkeypatch, capsys, tmp_path
):
    import hpcos.cli.specs

    error = make()
    monkeypatch.setattr(hpcos.cli.specs, "check_command", _fails_with(error))
    assert main(["--store", str(tmp_path), "specs", "check"]) == code
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"hpcos: {error}" and "Traceback" not in err
