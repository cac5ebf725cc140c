"""Named points in the store's dangerous moments where a crash test can stop a real hpcos process.

``HPCOS_FAILPOINT=NAME`` makes the process stop itself (SIGSTOP) when it reaches ``NAME``; the test
that started it sees it stopped there and SIGKILLs it, so the kill lands exactly between two steps
(a pointer switched, its record not yet written) instead of somewhere at random.

A process stopped while it holds the store lock stops every other run of the site, so a failpoint is
armed only by a test: ``HPCOS_FAILPOINT_RUN`` must name the pytest test that is running
(``PYTEST_CURRENT_TEST``, which pytest sets and child processes inherit).  ``enable`` gives a test
both variables.  Outside a test harness, or set by hand, the variable is ignored (said once on the
log).  Unset, a failpoint costs one dictionary lookup.
"""

from __future__ import annotations

import logging
import os
import signal

VARIABLE = "HPCOS_FAILPOINT"
RUN_VARIABLE = "HPCOS_FAILPOINT_RUN"
HARNESS_VARIABLE = "PYTEST_CURRENT_TEST"

log = logging.getLogger("hpcos.failpoints")
_warned = False


def _running_test() -> str | None:
    current = os.environ.get(HARNESS_VARIABLE)
    return current.split(" ", 1)[0] if current else None


def enable(name: str) -> dict[str, str]:
    """The environment that arms failpoint ``name`` for the current test (call it inside a test)."""
    test = _running_test()
    if test is None:
        raise RuntimeError("failpoints can only be enabled inside a running pytest test")
    return {VARIABLE: name, RUN_VARIABLE: test}


def reached(name: str) -> None:
    wanted = os.environ.get(VARIABLE)
    if wanted is None:
        return
    test = _running_test()
    if test is None or os.environ.get(RUN_VARIABLE) != test:
        global _warned
        if not _warned:
            _warned = True
            log.warning(
                "%s is set but no test enabled it (%s must name the running test): ignored",
                VARIABLE,
                RUN_VARIABLE,
            )
        return
    if wanted == name:
        os.kill(os.getpid(), signal.SIGSTOP)
