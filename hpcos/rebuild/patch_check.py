"""Why a site patch failed in %prep, found the way a packager finds it by hand: unpack the tree as
far as the site patches (``rpmbuild -bp`` of the pre-check spec, which stops with ``exit 0`` where
they go), then, in order, ``patch --dry-run`` each one in that tree; one that does not apply is tried
with ``-R --dry-run``.  Applying in reverse means upstream already carries the change (drop the
patch); otherwise the patch no longer applies and the failing file and hunks are named.

rpm's own log says only that some hunk failed, often without the patch's name (the kernel applies
its patches through a shell function); and a patch can fail in the build only because it went into
the wrong directory, which the dry run in the right one tells apart.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from hpcos.rebuild.failures import Failure, FailureKind
from hpcos.rpms import rpmtool
from hpcos.site.specs import Package, SpecSet

CHECK_TIMEOUT = 1800

_TARGET = re.compile(r"^\+\+\+ (\S+)")
_CHECKING = re.compile(r"^(?:checking|patching) file (.+)$")
_HUNK = re.compile(r"^(Hunk #\d+ FAILED at \d+)")


@dataclass
class Verdict:
    patch: str  # the site patch's file name, as package YAML names it
    applies: bool
    reversed: bool = False
    file: str | None = None
    hunks: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)


def strip_level(patch: Path) -> int:
    """-p1 for git-style a/ b/ paths (nearly every patch today), -p0 for bare paths."""
    for line in patch.read_text(errors="replace").splitlines():
        match = re.match(r"^--- (\S+)", line)
        if match and match.group(1) != "/dev/null":
            return 1 if "/" in match.group(1) else 0
    return 1


def targets(patch: Path, level: int) -> list[str]:
    found = []
    for line in patch.read_text(errors="replace").splitlines():
        match = _TARGET.match(line)
        if match and match.group(1) != "/dev/null":
            parts = match.group(1).split("/")[level:]
            if parts:
                found.append("/".join(parts))
    return list(dict.fromkeys(found))


def find_tree(build_root: Path, files: list[str]) -> Path | None:
    """The directory under ``build_root`` in which the patch's paths exist: the tree it is meant for."""
    for name in files:
        hits = sorted(build_root.rglob(name), key=lambda p: len(p.parts))
        for hit in hits:
            tree = Path(str(hit)[: -len(name)].rstrip("/"))
            if tree.is_dir():
                return tree
    return None


def check(
    spec_set: SpecSet, package: Package, check_spec: Path, topdir: Path, log: Path
) -> list[Verdict] | None:
    """Every site patch's verdict up to the first that fails; None when the tree could not be made."""
    work = topdir / "prep-check"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    proc = rpmtool.run(
        [
            "rpmbuild",
            "--define",
            f"_topdir {topdir}",
            "--define",
            f"_builddir {work}",
            "--nodeps",
            "-bp",
            str(check_spec),
        ],
        log,
        timeout=CHECK_TIMEOUT,
    )
    if proc.exit_code != 0:
        return None
    verdicts: list[Verdict] = []
    tree = None
    for patch in package.patches:
        path = spec_set.patch_path(package, patch)
        level = strip_level(path)
        tree = tree or find_tree(work, targets(path, level))
        if tree is None:
            verdicts.append(
                Verdict(
                    patch.file,
                    False,
                    file=(targets(path, level) or [None])[0],
                    hunks=["file to patch not found in the unpacked tree"],
                )
            )
            return verdicts
        base = ["patch", f"-p{level}", "--fuzz=0", "-i", str(path.resolve())]
        forward = rpmtool.run(
            base + ["--forward", "--dry-run"], log, cwd=tree, timeout=CHECK_TIMEOUT
        )
        if forward.exit_code == 0:
            rpmtool.run(base + ["--forward", "--silent"], log, cwd=tree, timeout=CHECK_TIMEOUT)
            verdicts.append(Verdict(patch.file, True))
            continue
        backward = rpmtool.run(
            base + ["-R", "--force", "--dry-run"], log, cwd=tree, timeout=CHECK_TIMEOUT
        )
        lines = forward.stdout.splitlines()
        verdict = Verdict(patch.file, False, reversed=backward.exit_code == 0, output=lines)
        current = None
        for line in lines:
            if match := _CHECKING.match(line):
                current = match.group(1).strip()
            elif match := _HUNK.match(line):
                verdict.file = verdict.file or current
                if current == verdict.file:
                    verdict.hunks.append(match.group(1))
            elif "can't find file to patch" in line:
                verdict.hunks.append("file to patch not found")
        if verdict.reversed and not verdict.file:
            verdict.file = current
        verdicts.append(verdict)
        return verdicts
    return verdicts


def explain(verdicts: list[Verdict] | None, failure: Failure, package: Package) -> Failure:
    """The build's patch failure, told from the dry runs."""
    if not verdicts:
        return failure
    last = verdicts[-1]
    if last.applies:
        return Failure(
            failure.kind,
            failure.summary + " (every site patch applies with patch --dry-run in the "
            "unpacked tree after upstream's patches: the failure is elsewhere)",
            failure.details,
            failure.patch,
            failure.file,
            failure.hunks,
            failure.missing,
        )
    where = f" to {last.file}" if last.file else ""
    if last.reversed:
        summary = (
            f"site patch {last.patch} is already upstream: it applies reversed{where} "
            f"(patch -R --dry-run in the unpacked tree); drop it from {package.name}.yaml"
        )
    else:
        summary = (
            f"site patch {last.patch} no longer applies{where}: {'; '.join(last.hunks) or 'rejected'} "
            f"(patch --dry-run in the unpacked tree); rebase it on the new upstream"
        )
    return Failure(
        FailureKind.PATCH,
        summary,
        last.output[:20] or failure.details,
        last.patch,
        last.file,
        last.hunks,
        reversed=last.reversed,
    )
