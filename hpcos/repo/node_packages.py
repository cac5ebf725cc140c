"""What a node on a snapshot must have: per ``name.arch`` the EVR dnf resolves to, and its kernel.

Read from the snapshot's own repository metadata (``hpcos.repo.repodata``), in the order of the
``.repo`` file's priorities: a package an overlay carries is the overlay's newest build, whatever a
mirror holds; otherwise the newest EVR across the mirrors (rpm's own comparison).
"""

from __future__ import annotations

from dataclasses import dataclass

import rpm

from hpcos.repo import repodata
from hpcos.repo.client_config import RepoSection
from hpcos.repo.snapshots import Snapshot

# dnf keeps several versions of these side by side (installonlypkgs): the snapshot's must be among them.
INSTALL_ONLY = frozenset(
    {
        "kernel",
        "kernel-core",
        "kernel-modules",
        "kernel-modules-core",
        "kernel-modules-extra",
        "kernel-devel",
    }
)


@dataclass(frozen=True)
class Evr:
    epoch: str
    version: str
    release: str

    def __str__(self) -> str:
        return f"{self.epoch}:{self.version}-{self.release}"

    def newer_than(self, other: Evr) -> bool:
        return (
            rpm.labelCompare(
                (self.epoch, self.version, self.release),
                (other.epoch, other.version, other.release),
            )
            > 0
        )


@dataclass
class Expected:
    snapshot: str
    packages: dict[str, Evr]  # name.arch -> EVR
    kernel: str | None  # ``uname -r`` of the snapshot's newest kernel: version-release.arch

    def problems(self, installed: dict[str, set[Evr]], running_kernel: str | None) -> list[str]:
        """What on a node differs from the snapshot, one short phrase each (empty: verified)."""
        wrong = []
        for key, have in sorted(installed.items()):
            want = self.packages.get(key)
            if want is None:
                continue  # not from the site's repositories (gpg-pubkey, a locally built tool)
            name = key.rsplit(".", 1)[0]
            ok = want in have if name in INSTALL_ONLY else have == {want}
            if not ok:
                wrong.append(
                    f"{key} {', '.join(sorted(map(str, have)))} installed, snapshot has {want}"
                )
        newer = self.newer_install_only(installed)
        if newer:
            wrong.append(f"{', '.join(newer)} newer than the snapshot's kernel installed")
        found = []
        if wrong:
            found.append(
                f"{len(wrong)} package(s) not at the snapshot's version: "
                + "; ".join(wrong[:3])
                + ("; ..." if len(wrong) > 3 else "")
            )
        if self.kernel and running_kernel != self.kernel:
            found.append(f"runs kernel {running_kernel or 'unknown'}, snapshot has {self.kernel}")
        return found

    def newer_install_only(self, installed: dict[str, set[Evr]]) -> list[str]:
        """Installed kernel packages (``name-EVR.arch``) newer than the snapshot's, which it does not carry:
        what a rolled-back kernel leaves behind."""
        found = []
        for key, have in sorted(installed.items()):
            want = self.packages.get(key)
            if want is None or key.rsplit(".", 1)[0] not in INSTALL_ONLY:
                continue
            name, arch = key.rsplit(".", 1)
            found += [
                f"{name}-{evr}.{arch}" for evr in sorted(have, key=str) if evr.newer_than(want)
            ]
        return found


def expected(snapshot: Snapshot, sections: list[RepoSection], kernel_package: str) -> Expected:
    best: dict[str, tuple[int, Evr, str]] = {}  # name.arch -> (priority, evr, version-release.arch)
    for section in sorted(sections, key=lambda s: s.priority):
        entry = section.baseurl.rstrip("/").rsplit("/", 1)[1]
        for p in repodata.read_packages(snapshot.entry_dir(entry)):
            if p.arch == "src":
                continue
            key = f"{p.name}.{p.arch}"
            evr = Evr(p.epoch or "0", p.version, p.release)
            held = best.get(key)
            if held is None or (held[0] == section.priority and evr.newer_than(held[1])):
                best[key] = (section.priority, evr, f"{p.version}-{p.release}.{p.arch}")
    kernels = [
        (evr, uname)
        for key, (_prio, evr, uname) in best.items()
        if key.rsplit(".", 1)[0] == kernel_package
    ]
    kernel = None
    for evr, uname in kernels:
        if kernel is None or evr.newer_than(kernel[0]):
            kernel = (evr, uname)
    return Expected(snapshot.id, {k: v[1] for k, v in best.items()}, kernel[1] if kernel else None)


def parse_installed(text: str) -> dict[str, set[Evr]]:
    """``rpm -qa --qf '%{NAME}.%{ARCH} %{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n'`` -> {name.arch: {EVR}}."""
    found: dict[str, set[Evr]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2 or ":" not in parts[1] or "-" not in parts[1]:
            continue
        epoch, _, vr = parts[1].partition(":")
        version, _, release = vr.rpartition("-")
        found.setdefault(parts[0], set()).add(Evr(epoch, version, release))
    return found


RPM_QUERY_FORMAT = "%{NAME}.%{ARCH} %{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n"
