"""Did the update land on every node: the running kernel and the overlay packages vs the testing repos.

Skipped when the profile sets no ``os_update.testing_repo``.  The repositories are read once, on the
harness host (``dnf repoquery --repofrompath``); each node answers ``uname -r`` and ``rpm -q``, so a
node that missed the update fails its own (test, node) result, named.
"""

from __future__ import annotations

import pytest

from harness import os_update

pytestmark = pytest.mark.node


@pytest.fixture(scope="session")
def testing_versions(profile):
    config = profile.os_update
    if not config.testing_repo:
        pytest.skip(f"profile {profile.name!r} sets no os_update.testing_repo")
    try:
        return os_update.newest_in_repo(config.testing_repo, [config.kernel_package, *config.packages],
                                        timeout=profile.timeouts.command)
    except os_update.RepoQueryFailed as exc:
        pytest.fail(str(exc), pytrace=False)


def test_running_kernel_is_the_testing_kernel(run, node, profile, testing_versions):
    expected = testing_versions.get(profile.os_update.kernel_package)
    assert expected, f"no {profile.os_update.kernel_package} package in {profile.os_update.testing_repo}"
    verdict = os_update.KernelVerdict(run(["uname", "-r"]).check().stdout.strip(), expected)
    assert verdict.ok, verdict.message(node)


def test_overlay_packages_are_installed(run, node, profile, testing_versions):
    packages = profile.os_update.packages
    # rpm -q exits with the number of packages not installed: the output says which, so no check().
    result = run(os_update.rpm_query_command(packages))
    if result.timed_out or result.unreachable or (result.exit_code and "is not installed" not in result.stdout):
        pytest.fail(result.describe(), pytrace=False)
    problems = os_update.package_problems(node, result.stdout, testing_versions, packages)
    assert not problems, "; ".join(problems)
