"""Did the OS update land on every node?  Running kernel and overlay package versions vs the snapshot.

What the snapshot holds is read from the store, on the harness host: every mirror and overlay
repository of the snapshot this run tests (``$HPCOS_TESTING_SNAPSHOT``, which the nightly job sets,
else what ``os_update.environment`` points at), resolved with the .repo file's priorities
(``hpcos.repo.node_packages``) -- the kernel and the MPI stacks live in different overlays.  Each node
is then asked for its running kernel and ``rpm -q`` through the launcher (with the profile's
``deploy.root`` and ``deploy.running_kernel``, as ``hpcos deploy`` asks), so a node that missed the
update is named in its own (test, node) result.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass

from hpcos.cluster.profiles import Profile
from hpcos.repo import client_config, node_packages
from hpcos.site import Site

RPM_FORMAT = "%{NAME} %{VERSION}-%{RELEASE}.%{ARCH}\\n"
_NOT_INSTALLED = re.compile(r"^package (?P<name>\S+) is not installed$")


def snapshot_versions(
    site: Site, profile: Profile, packages: list[str]
) -> tuple[str, dict[str, set[str]]]:
    """The snapshot under test and, per package name, the ``version-release.arch`` a node must have."""
    snapshot_id = os.environ.get("HPCOS_TESTING_SNAPSHOT") or None
    env = profile.os_update.environment or "testing"
    snapshot = client_config.snapshot_for(site.layout, env, snapshot_id)
    sections = client_config.sections(
        site.specs, site.layout, env, target=profile.deploy.target, snapshot_id=snapshot.id
    )
    expected = node_packages.expected(snapshot, sections, profile.os_update.kernel_package)
    versions: dict[str, set[str]] = {}
    for key, evr in expected.packages.items():
        name, arch = key.rsplit(".", 1)
        if name in packages:
            versions.setdefault(name, set()).add(f"{evr.version}-{evr.release}.{arch}")
    return snapshot.id, versions


def parse_versions(text: str) -> dict[str, set[str]]:
    """``name version-release.arch`` lines (repoquery or ``rpm -q --qf``) -> {name: {vr.arch, ...}}."""
    found: dict[str, set[str]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and not _NOT_INSTALLED.match(line.strip()):
            found.setdefault(parts[0], set()).add(parts[1])
    return found


def not_installed(text: str) -> list[str]:
    return [m["name"] for line in text.splitlines() if (m := _NOT_INSTALLED.match(line.strip()))]


def node_root(profile: Profile, node: str) -> str:
    return profile.deploy.root.replace("{node}", node)


def rpm_query_command(packages: list[str], root: str = "/") -> list[str]:
    return ["rpm", *(["--root", root] if root != "/" else []), "-q", "--qf", RPM_FORMAT, *packages]


def running_kernel_command(profile: Profile, node: str) -> str:
    """The profile's way of reading a node's running kernel (``uname -r`` on an installed node)."""
    return profile.deploy.running_kernel.replace(
        "{root}", shlex.quote(node_root(profile, node))
    ).replace("{node}", shlex.quote(node))


@dataclass
class KernelVerdict:
    running: str
    expected: set[str]

    @property
    def ok(self) -> bool:
        return self.running in self.expected

    def message(self, node: str) -> str:
        return f"{node} runs kernel {self.running}; the testing repositories have {', '.join(sorted(self.expected))}"


def package_problems(
    node: str, installed_text: str, expected: dict[str, set[str]], packages: list[str]
) -> list[str]:
    """One line per overlay package that is not at the testing repo's version on ``node``."""
    installed = parse_versions(installed_text)
    missing = set(not_installed(installed_text))
    problems = []
    for name in packages:
        want = expected.get(name)
        if not want:
            problems.append(f"{name}: not in the testing repositories")
        elif name in missing or name not in installed:
            problems.append(
                f"{node}: {name} is not installed (testing has {', '.join(sorted(want))})"
            )
        elif not installed[name] & want:
            problems.append(
                f"{node}: {name} {', '.join(sorted(installed[name]))} installed, "
                f"testing has {', '.join(sorted(want))}"
            )
    return problems
