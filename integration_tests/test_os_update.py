"""Did the update land on every node: the running kernel and the overlay packages vs the snapshot under test.

The snapshot is read from the site's store -- every repository of it, with the .repo file's priorities:
``$HPCOS_TESTING_SNAPSHOT`` (the nightly job sets it) or what the profile's ``os_update.environment``
points at.  Skipped when that is unset, or the store has no such snapshot.  Each node answers its running
kernel and ``rpm -q``, so a node that missed the update fails its own (test, node) result, named.
"""

from __future__ import annotations

import pytest

from harness.state import site as harness_site
from hpcos.core.errors import UserError
from hpcos.repo import os_update

pytestmark = pytest.mark.node


@pytest.fixture(scope="session")
def testing_versions(request, profile):
    config = profile.os_update
    if not config.environment:
        pytest.skip(f"profile {profile.name!r} sets no os_update.environment")
    try:
        snapshot, versions = os_update.snapshot_versions(
            harness_site(request.config), profile, [config.kernel_package, *config.packages]
        )
    except UserError as exc:
        pytest.skip(f"no snapshot to compare the nodes with: {exc}")
    return snapshot, versions


def test_running_kernel_is_the_testing_kernel(run, node, profile, testing_versions):
    snapshot, versions = testing_versions
    expected = versions.get(profile.os_update.kernel_package)
    assert expected, f"no {profile.os_update.kernel_package} package in snapshot {snapshot}"
    kernel = run(os_update.running_kernel_command(profile, node)).check().stdout.strip()
    verdict = os_update.KernelVerdict(kernel, expected)
    assert verdict.ok, verdict.message(node)


def test_overlay_packages_are_installed(run, node, profile, testing_versions):
    _snapshot, versions = testing_versions
    packages = profile.os_update.packages
    # rpm -q exits with the number of packages not installed: the output says which, so no check().
    result = run(os_update.rpm_query_command(packages, os_update.node_root(profile, node)))
    if (
        result.timed_out
        or result.unreachable
        or (result.exit_code and "is not installed" not in result.stdout)
    ):
        pytest.fail(result.describe(), pytrace=False)
    problems = os_update.package_problems(node, result.stdout, versions, packages)
    assert not problems, "; ".join(problems)
