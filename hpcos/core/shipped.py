"""Where the files hpcos ships beside its code live: the integration-test suite, its example cluster
profiles and the MPI probes' sources.

In a checkout they are the repository's ``integration_tests/`` (``hpcos/suite`` links to it); an
installed wheel carries the same tree as package data under ``hpcos/suite``.  Either way the code
finds them at one place, so ``hpcos test`` from a plain ``pip install`` runs the suite.
"""

from __future__ import annotations

from pathlib import Path

import hpcos

SUITE_NAME = "integration_tests"


def suite_dir() -> Path:
    """The integration-test suite hpcos ships."""
    return Path(hpcos.__file__).resolve().parent / "suite"


def profiles_dir() -> Path:
    """The example cluster profiles (``local``, ``example-test-cluster``, ...)."""
    return suite_dir() / "clusters"


def probes_dir() -> Path:
    """The MPI probes' C sources."""
    return suite_dir() / "probes"
