"""What the harness records of a nightly run into the store, for the production gate: every test it
collected (deselected ones included), whether that collection was the whole suite, the nodes it
selected -- signed together with the results file it wrote (``hpcos.repo.nightly.record_harness_run``).

The plugin gathers the collection as pytest reports it (``pytest_deselected``, then
``pytest_collection_finish``) and calls ``record`` after writing the results file, when the run names
the testing snapshot it tested (``HPCOS_TESTING_SNAPSHOT``, set by the nightly job).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.state import harness_session, item_state, site
from hpcos.core import shipped
from hpcos.core.shipped import SUITE_NAME
from hpcos.repo import nightly

DESELECTED_KEY = pytest.StashKey[list]()
COLLECTED_KEY = pytest.StashKey[list]()


def deselected(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash.setdefault(DESELECTED_KEY, []).extend(items)


def collection_finished(session: pytest.Session) -> None:
    items = [*session.items, *session.config.stash.get(DESELECTED_KEY, [])]
    collected: dict[tuple, None] = {}  # ordered, without repeats
    for item in items:
        state = item_state(item)
        collected.setdefault((state.test_id, state.node, state.mpi), None)
    session.config.stash[COLLECTED_KEY] = [list(key) for key in collected]


def write_collection(config: pytest.Config, path: Path) -> None:
    """The collection ``record`` would sign, for harness/suite.py (``--hpcos-collected``)."""
    path.write_text(json.dumps(config.stash.get(COLLECTED_KEY, [])), encoding="utf-8")


def narrowed(config: pytest.Config) -> str:
    """Why pytest did not collect the whole suite; empty when it did.  ``-k``, ``-m`` and ``--deselect``
    are not narrowing: their tests are collected and reported deselected."""
    # The suite `hpcos test` runs: the rootdir's integration_tests/, else the one hpcos ships.
    suite = Path(config.rootpath) / SUITE_NAME
    suite = (suite if suite.is_dir() else shipped.suite_dir()).resolve()
    reasons = []
    paths = [Path(str(arg).split("::", 1)[0]) for arg in config.args]
    if not any(
        "::" not in str(arg)
        and suite.is_relative_to(Path(config.invocation_params.dir, p).resolve())
        for arg, p in zip(config.args, paths, strict=True)
    ):
        reasons.append(f"only {' '.join(str(a) for a in config.args)}")
    for option, flag in (("ignore", "--ignore"), ("ignore_glob", "--ignore-glob")):
        if config.getoption(option, None):
            reasons.append(f"{flag} {' '.join(config.getoption(option))}")
    for option, flag in (("lf", "--lf"), ("stepwise", "--sw"), ("collectonly", "--collect-only")):
        if config.getoption(option, None):
            reasons.append(flag)
    harness = harness_session(config)
    if harness.used and harness.selection.mpi:
        # MPI tests are parametrized over the selected stacks only: the others are never collected.
        selected = {s.name for s in harness.stacks()}
        left_out = [s.name for s in harness.profile.stacks(None) if s.name not in selected]
        if left_out:
            reasons.append(f"--mpi {harness.selection.mpi} leaves out {', '.join(left_out)}")
    return ", ".join(reasons)


def record(config: pytest.Config, results: Path) -> nightly.NightlyRecord:
    harness = harness_session(config)
    return nightly.record_harness_run(
        site(config).layout,
        results,
        str(harness.nodes) if harness.used else "",
        config.stash.get(COLLECTED_KEY, []),
        narrowed(config),
    )
