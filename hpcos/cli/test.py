"""``hpcos test``: run ``integration_tests/`` with the hpcos plugin on a cluster profile.

The nightly Jenkins job and a developer's laptop run the same thing; only the profile differs.
Options not listed here go to pytest unchanged (``-k``, ``-x``, ``-m node``, test paths, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.session import DEFAULT_CLUSTER
from hpcos.cluster.profiles import is_profile_path, load_profile
from hpcos.core import runner
from hpcos.core.errors import FAMILIES
from hpcos.core.shipped import SUITE_NAME
from hpcos.core.shipped import suite_dir as shipped_suite

# The harness's own pytest plugins.  `hpcos test` loads these, and the profile's ``pytest_plugins``,
# and nothing else: pytest's autoloading of every installed ``pytest11`` entry point is off, so a
# plugin that happens to be installed (hypothesis's cost 0.8 s a run here; a site's own may change
# what a nightly run does) never enters the run.  The suite's conftest.py files still load.
HARNESS_PLUGINS = ("harness.plugin", "harness.plugin_perf", "harness.plugin_tickets")


def register(sub) -> None:
    test = sub.add_parser(
        "test",
        help="run the integration tests on a cluster profile",
        description="Run integration_tests/ with the hpcos pytest plugin. Arguments not listed here "
        "(-k EXPR, -x, -m MARK, test paths) are passed to pytest.",
    )
    test.add_argument(
        "--cluster",
        metavar="PROFILE",
        default=DEFAULT_CLUSTER,
        help=f"cluster profile name (integration_tests/clusters/NAME.yaml) or path (default: "
        f"{DEFAULT_CLUSTER})",
    )
    test.add_argument(
        "--nodes", metavar="NODESET", help="test only these nodes (ClusterShell syntax)"
    )
    test.add_argument(
        "--mpi", metavar="STACK", help="test only this MPI stack (comma-separated list)"
    )
    test.add_argument("--results", metavar="FILE", help="write the results JSON here")
    test.add_argument(
        "--junitxml", metavar="FILE", help="write JUnit XML here (one testcase per test and node)"
    )
    test.add_argument(
        "--tickets", metavar="BACKEND", help="file tickets for failures: a backend, dry-run or off"
    )
    # Arguments hpcos does not know go to pytest (hpcos.cli collects them into ``passthrough``).
    test.set_defaults(func=run_tests, passthrough=[])


def suite_dir() -> Path:
    """``integration_tests/`` of the current directory, else the suite hpcos ships (resolved, so that a
    checkout's test ids read ``integration_tests/...`` wherever hpcos runs from)."""
    here = Path.cwd() / SUITE_NAME
    return here if here.is_dir() else shipped_suite().resolve()


def plugin_argv(profile_plugins: Sequence[str] = ()) -> list[str]:
    """Autoloading off, then ``-p`` for each plugin of the run (the harness's, then the profile's)."""
    # pytest's unraisableexception plugin runs full garbage collections at the end of every session to
    # report exceptions raised in __del__ as warnings: a tenth of a second of 20 trivial checks' run,
    # for warnings no nightly run acts on.
    argv = ["--disable-plugin-autoload", "-p", "no:unraisableexception"]
    for name in dict.fromkeys((*HARNESS_PLUGINS, *profile_plugins)):
        argv += ["-p", name]
    return argv


def pytest_argv(args, profile_plugins: Sequence[str] = ()) -> list[str]:
    suite = suite_dir()
    argv = [
        *plugin_argv(profile_plugins),
        "--rootdir",
        str(suite.parent),
        "--cluster",
        args.cluster,
    ]
    # The plugins build the same Site from these (kept in pytest's config stash).
    site = getattr(args, "site", None)
    if site is not None:
        argv += ["--hpcos-specs", str(site.specs_dir)]
        if site.store_override is not None:
            argv += ["--hpcos-store", str(site.store_override)]
    for flag, value in (
        ("--nodes", args.nodes),
        ("--mpi", args.mpi),
        ("--hpcos-results", args.results),
        ("--junitxml", args.junitxml),
        ("--tickets", args.tickets),
    ):
        if value:
            argv += [flag, value]
    extra = list(args.passthrough)
    names_tests = any(_names_tests(a, suite) for a in extra)
    return argv + extra + ([] if names_tests else [str(suite)])


def _names_tests(arg: str, suite: Path) -> bool:
    """Whether a pass-through argument selects tests (so the whole suite is not added).

    Only a node id, a test module, or a directory of the suite counts: the value of an option
    (``--perf-db FILE``, ``--basetemp DIR``) may name an existing file too, and must not turn a
    nightly run into a run of whatever that file is."""
    if arg.startswith("-"):
        return False
    path = Path(arg.split("::", 1)[0])
    if "::" in arg or (path.suffix == ".py" and path.is_file()):
        return True
    return path.is_dir() and path.resolve().is_relative_to(suite.resolve())


def run_tests(args) -> int:
    import pytest

    resolved = args.site.profile_path(args.cluster)
    if is_profile_path(args.cluster):
        args.cluster = str(resolved)  # the harness then reads the same file, wherever pytest runs
    # A broken profile is the user's mistake: one line naming file:line: field, before pytest starts.
    profile = load_profile(resolved)
    # Stopped (a Jenkins abort sends SIGTERM): mpirun, srun and the ssh fan-out end with hpcos.
    with runner.stopped_on_signals():
        code = int(pytest.main(pytest_argv(args, profile.pytest_plugins)))
    # pytest says a usage mistake (a --nodes outside the profile, an unknown stack) with 4; hpcos says
    # every user's mistake with 2 (hpcos.core.errors.FAMILIES), the nightly job included.
    return FAMILIES["user"].exit_code if code == pytest.ExitCode.USAGE_ERROR else code
