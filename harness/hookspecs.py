"""Hooks the hpcos pytest plugin calls, so that later stages plug in without the harness knowing them.

Order at the end of a session: the perf plugin (tryfirst) turns measurements outside their baseline
into "performance regression" failures; then the results are written; then the tickets plugin
(trylast) files what failed.
"""

import pytest

from hpcos.results.model import RunResults


@pytest.hookspec
def pytest_hpcos_run_finished(config: pytest.Config, run: RunResults) -> None:
    """The whole run is known: every (test, node) result and measurement.  Implementations may add
    failures to ``run`` (regressions) or act on them (tickets)."""
