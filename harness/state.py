"""Where the plugin keeps its per-session and per-(test, node) state (pytest stashes)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest

from harness.session import HarnessSession
from hpcos.cluster.launchers import CommandResult
from hpcos.results.model import Measurement, TestResult
from hpcos.site import Site

SESSION_KEY = pytest.StashKey[HarnessSession]()
SITE_KEY = pytest.StashKey[Site]()
ITEM_KEY = pytest.StashKey["ItemState"]()
K_WORD = re.compile(r"[\w:+\-.\[\]\\/]+")  # what pytest's -k grammar reads as one identifier


@dataclass
class ItemState:
    """What one (test, node) item did: the base of its TestResult."""

    test_id: str  # node id without the node and MPI stack parameters
    keyword: str  # the ``-k`` expression that selects it (with --nodes and --mpi)
    node: str | None = None  # the node of a node test
    mpi: str | None = None
    commands: list[CommandResult] = field(default_factory=list)
    fanout_wall: float = 0.0  # seconds this item spent fanning commands out to the other nodes too
    fanout_own: float = 0.0  # seconds its own node took for those fanned-out commands
    measurements: list[Measurement] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)  # measurements outside their reference
    # The MPI job's environment (hpcos.site.credentials.job_environment): inherited from the night, set
    # by the profile's stack or the test.
    env: dict[str, str] = field(default_factory=dict)
    profile_env: dict[str, str] = field(default_factory=dict)
    result: TestResult | None = None


def site(config: pytest.Config) -> Site:
    """The site of this run, built once in ``pytest_configure`` from --hpcos-specs/--hpcos-store and
    the environment, as the command line builds it."""
    if SITE_KEY not in config.stash:
        config.stash[SITE_KEY] = Site.from_options(
            config.getoption("hpcos_specs", None), config.getoption("hpcos_store", None)
        )
    return config.stash[SITE_KEY]


def harness_session(config: pytest.Config) -> HarnessSession:
    return config.stash[SESSION_KEY]


def item_state(item: pytest.Item) -> ItemState:
    if ITEM_KEY not in item.stash:
        params = getattr(getattr(item, "callspec", None), "params", {})
        stack = params.get("mpi_stack")
        others = [str(v) for k, v in params.items() if k not in ("node", "mpi_stack")]
        base = item.nodeid.split("[", 1)[0]
        item.stash[ITEM_KEY] = ItemState(
            test_id=f"{base}[{'-'.join(others)}]" if others else base,
            # The full item name selects exactly this (test, node) when -k accepts it as one word.
            keyword=item.name
            if K_WORD.fullmatch(item.name)
            else getattr(item, "originalname", item.name),
            node=params.get("node"),
            mpi=getattr(stack, "name", stack),
        )
    return item.stash[ITEM_KEY]
