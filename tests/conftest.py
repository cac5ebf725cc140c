"""Shared fixtures for the project's own tests.

Real components are used wherever they can run here.  A missing system tool fails the test in CI
(where `.ci/run` must have installed it) and skips it on a laptop with a reason that says what to install.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(tool: str, debian_package: str) -> str:
    """Path of ``tool``; fail in CI, skip elsewhere, when it is missing."""
    path = shutil.which(tool) or next(
        (p for p in (f"/usr/sbin/{tool}", f"/sbin/{tool}") if os.access(p, os.X_OK)), None
    )
    if path:
        return path
    message = (
        f"{tool} not found: apt-get install {debian_package} (or run `bash .ci/setup env` as root)"
    )
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture
def repo_root() -> Path:
    return REPO


# Real services started by fixtures: sshd on loopback, Slurm (one node, four nodes), network namespaces
# as nodes, a stock Trac, and the compiled MPI probes.
pytest_plugins = [
    "pytester",
    "support.trac_fixture",
    "support.sshd_fixture",
    "support.slurm_fixture",
    "support.mpi_probe_fixture",
    "support.netns_fixture",
    "support.netns_tree_fixture",
    "support.slurm_cluster_fixture",
]


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (dead, not yet reaped by init) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/data/golden_jobs from the sample site instead of comparing",
    )


# The kind of every test, assigned here by module (one place, so no test file needs to move or change):
#   unit         no service and no external tool beyond this Python: seconds for all of them
#                (`pytest tests -m unit`, the loop while editing);
#   integration  real Slurm, sshd, network namespaces, Trac, rpmbuild/createrepo_c/dnf, gpg, git, MPI,
#                Nagios, Puppet, chromium, or `hpcos test` runs on the local launcher;
#   e2e          a whole process through many of them.
# A module in neither set is unit; a test that uses a fixture starting a service is integration
# wherever it lives.  `pytest tests` (CI, the README) still runs every kind.
KINDS = {
    "unit": "no services, no external tools: the quick loop (pytest tests -m unit)",
    "integration": "real services or tools: Slurm, sshd, netns, Trac, rpmbuild/createrepo_c/dnf, MPI, ...",
    "e2e": "a whole build -> test -> production process through the real tools",
}
E2E_MODULES = {
    "test_process_end_to_end",
    "test_probes_end_to_end",
    "test_outage",
    "test_demo_cycle",
}
INTEGRATION_MODULES = {
    "test_architecture",
    "test_bad_input",
    "test_cli_jobs",  # the render pool forks
    "test_config_promotion",
    "test_config_puppet",
    "test_config_specs",
    "test_config_validation_kinds",
    "test_config_with_packages",
    "test_deploy",
    "test_deploy_rolling",
    "test_deploy_slurm",
    "test_gate",
    "test_harness_cli",
    "test_harness_plugin",
    "test_hung_processes",
    "test_ib_checks",
    "test_injection",
    "test_inventory",
    "test_launcher_local",
    "test_launcher_slurm",
    "test_launcher_ssh",
    "test_monitoring_config",
    "test_monitoring_nagios",
    "test_monitoring_store",
    "test_multinode_netns",
    "test_multinode_placement",
    "test_multinode_slurm",
    "test_multinode_stacks",
    "test_os_update",
    "test_osu_imb_stand_ins",
    "test_outage_wiki",
    "test_perf_cli",
    "test_perf_plugin",
    "test_probe_reference_repeats",
    "test_probes",
    "test_probes_build",
    "test_probes_build_osu",
    "test_rebuild_build",
    "test_rebuild_export",
    "test_rebuild_immutable",
    "test_rebuild_kernel",
    "test_rebuild_mock",
    "test_rebuild_mock_config",
    "test_rebuild_signing",
    "test_rebuild_tickets",
    "test_rebuild_upstream_signatures",
    "test_render",  # many `hpcos` processes; jenkins-jobs itself
    "test_repo_crash",
    "test_repo_crash_points",
    "test_repo_http",
    "test_repo_lifecycle",
    "test_repo_locking",
    "test_repo_units",
    "test_report",
    "test_runner",
    "test_secrets",
    "test_site",
    "test_specs_cli",
    "test_specs_sample",
    "test_ssh_tree",
    "test_store_full_or_readonly",
    "test_store_untrusted",
    "test_tickets_nights",
    "test_tickets_real_mpi",
    "test_tickets_real_nights",
    "test_tickets_trac",
    "test_tickets_wiring",
}
SERVICE_FIXTURES = {
    "tracd",
    "local_slurm",
    "slurm_nodes",
    "slurm_cluster",
    "netns_cluster",
    "tree_hosts",
    "loopback_sshd",
    "pingpong",
    "rpm_factory",
    "pytester",
}


def kind_of(item) -> str:
    module = item.module.__name__.rsplit(".", 1)[-1] if getattr(item, "module", None) else ""
    if module in E2E_MODULES:
        return "e2e"
    if module in INTEGRATION_MODULES or SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return "integration"
    return "unit"


def pytest_configure(config):
    for kind, text in KINDS.items():
        config.addinivalue_line("markers", f"{kind}: {text}")
    # A suite stopped by SIGTERM (a CI timeout, `timeout 600 pytest ...`) runs its fixtures'
    # teardown as after Ctrl-C, so the daemons they started (munged, slurmd, sshd, tracd) stop too.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(
        signal.SIGTERM
    ) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, functools.partial(_interrupt, os.getpid()))


def _interrupt(main_pid, signum, frame):
    if (
        os.getpid() != main_pid
    ):  # a forked worker (a render pool being terminated): die as it would have
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session", autouse=True)
def nothing_left_running(tmp_path_factory):
    """After the last test: no process started under this session's temporary directory may still
    run (a munged that outlived the suite).  Any left is stopped and named: a fixture forgot it."""
    yield
    base = str(tmp_path_factory.getbasetemp())
    left = []
    for pid_file in Path(base).rglob("*.pid"):
        try:
            pid = int(pid_file.read_text().split()[0])
            with (
                open(f"/proc/{pid}/cmdline", "rb") as cmdline,
                open(f"/proc/{pid}/environ", "rb") as environ,
            ):
                mine = base.encode() in cmdline.read() + environ.read()  # not a reused pid
        except (OSError, ValueError, IndexError):
            continue
        if mine and process_alive(pid):
            left.append(f"{pid_file.name} (pid {pid})")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if left:
        pytest.fail(
            f"fixtures left processes running (now killed): {', '.join(left)}", pytrace=False
        )


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(kind_of(item))


# The unit kind is held to its word: a unit test (its fixtures' set-up included) that starts a
# process fails and says where it belongs.  CPython reports every process start as an audit event,
# whoever starts it (hpcos's runner, subprocess, multiprocessing, os.system).
_PROCESS_EVENTS = {
    "subprocess.Popen",
    "os.posix_spawn",
    "os.fork",
    "os.forkpty",
    "os.exec",
    "os.system",
}
_started: list[str] = []


def _note_process(event: str, args: tuple) -> None:
    if event in _PROCESS_EVENTS and not _importing(sys._getframe(1)):
        _started.append(f"{event} {str(args[:2])[:200]}")


def _importing(frame) -> bool:
    """A process started while a module is being imported is the module's, once per interpreter
    (rpm's shim asks the system python for its site-packages; ctypes.util.find_library runs
    ldconfig and gcc when keyring loads): not the test starting a tool, and which test pays for it
    depends only on the order."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


sys.addaudithook(_note_process)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _unit_starts_nothing(item, "set-up"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _unit_starts_nothing(item, "call"))


def _unit_starts_nothing(item, phase: str):
    before = len(_started)
    result = yield
    if item.get_closest_marker("unit") and len(_started) > before:
        pytest.fail(
            f"a unit test started a process in its {phase} ({_started[before]}): add "
            f"{item.module.__name__.rsplit('.', 1)[-1]} to INTEGRATION_MODULES in tests/conftest.py",
            pytrace=False,
        )
    return result
