"""Did the OS update land on every node?  Running kernel and overlay package versions vs the testing repos.

What the testing repositories hold is read once, on the harness host, with ``dnf repoquery
--repofrompath`` (no system repo configuration involved, private cache).  Each node is then asked
``uname -r`` and ``rpm -q`` through the launcher, so a node that missed the update is named in its
own (test, node) result.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass

from hpcos.core import runner
from hpcos.site.credentials import launch_environment

# dnf repoquery prints one line per package; EVR without an epoch of 0, as rpm -q prints it.
QUERY_FORMAT = "%{name} %{version}-%{release}.%{arch}"
RPM_FORMAT = "%{NAME} %{VERSION}-%{RELEASE}.%{ARCH}\\n"
_NOT_INSTALLED = re.compile(r"^package (?P<name>\S+) is not installed$")


class RepoQueryFailed(RuntimeError):
    pass


def repoquery_argv(repo_url: str, packages: list[str], cachedir: str, releasever: str = "9") -> list[str]:
    # skip_if_unavailable=False: an unreachable testing repo must be an error, not "no packages".
    return ["dnf", "-q", "--setopt=reposdir=/dev/null", "--setopt=skip_if_unavailable=False",
            f"--setopt=cachedir={cachedir}", f"--releasever={releasever}",
            f"--repofrompath=testing,{repo_url}", "--repo", "testing", "repoquery", "--latest-limit", "1",
            "--qf", QUERY_FORMAT, *packages]


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


def newest_in_repo(repo_url: str, packages: list[str], *, timeout: float = 120) -> dict[str, set[str]]:
    """Newest version of each package in the testing repo (per arch), read with real dnf."""
    with tempfile.TemporaryDirectory(prefix="hpcos-dnf-") as cachedir:
        done = runner.run(repoquery_argv(repo_url, packages, cachedir), timeout=timeout,
                          base_env=launch_environment())
    if done.timed_out or done.exit_code != 0:
        why = "timed out" if done.timed_out else f"exit {done.exit_code}"
        raise RepoQueryFailed(f"dnf repoquery on {repo_url} {why}: {done.stderr.strip() or done.stdout.strip()}")
    return parse_versions(done.stdout)


def rpm_query_command(packages: list[str]) -> list[str]:
    return ["rpm", "-q", "--qf", RPM_FORMAT, *packages]


@dataclass
class KernelVerdict:
    running: str
    expected: set[str]

    @property
    def ok(self) -> bool:
        return self.running in self.expected

    def message(self, node: str) -> str:
        return f"{node} runs kernel {self.running}; the testing repositories have {', '.join(sorted(self.expected))}"


def package_problems(node: str, installed_text: str, expected: dict[str, set[str]],
                     packages: list[str]) -> list[str]:
    """One line per overlay package that is not at the testing repo's version on ``node``."""
    installed = parse_versions(installed_text)
    missing = set(not_installed(installed_text))
    problems = []
    for name in packages:
        want = expected.get(name)
        if not want:
            problems.append(f"{name}: not in the testing repositories")
        elif name in missing or name not in installed:
            problems.append(f"{node}: {name} is not installed (testing has {', '.join(sorted(want))})")
        elif not installed[name] & want:
            problems.append(f"{node}: {name} {', '.join(sorted(installed[name]))} installed, "
                            f"testing has {', '.join(sorted(want))}")
    return problems
