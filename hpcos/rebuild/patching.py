"""Turning the upstream SRPM into the overlay SRPM: unpack it, add the site patches to the spec
(Patch tags, applied the way the spec already applies patches), set the overlay Release and add a
changelog entry naming each patch and its reason, then pack a new SRPM."""

from __future__ import annotations

import email.utils
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from specfile import Specfile

from hpcos.core.errors import UserError
from hpcos.rebuild import rpmtool
from hpcos.rebuild.release import Evr, overlay_evr
from hpcos.rebuild.source import Srpm
from hpcos.site.specs import Package, SpecSet

PATCH_TIMEOUT = 300


class PatchingError(UserError):
    pass


@dataclass(frozen=True)
class PatchedSource:
    srpm: Path
    evr: Evr
    # "autosetup" (Patch tags are enough) or "explicit" (one %patch line per site patch).
    style: str
    patch_numbers: dict[str, int]


def unpack(srpm: Path, topdir: Path, log: Path) -> Path:
    """Install the SRPM into a private _topdir; return its spec file."""
    for sub in ("SOURCES", "SPECS", "SRPMS", "BUILD", "RPMS"):
        (topdir / sub).mkdir(parents=True, exist_ok=True)
    rpmtool.check(["rpm", "-i", "--nodeps", "--define", f"_topdir {topdir}", str(srpm)], log,
                  what=f"unpacking {srpm.name}", timeout=PATCH_TIMEOUT)
    specs = sorted((topdir / "SPECS").glob("*.spec"))
    if len(specs) != 1:
        raise PatchingError(f"{srpm.name}: expected one spec file, found {len(specs)}")
    return specs[0]


def apply_site_changes(spec_path: Path, spec_set: SpecSet, package: Package, base: Srpm,
                       when: datetime | None = None) -> tuple[Evr, str, dict[str, int]]:
    """Edit the spec in place; return the overlay EVR, the patch style used and each patch's number."""
    sources = spec_path.parent.parent / "SOURCES"
    spec = Specfile(spec_path, sourcedir=sources, autosave=False)
    with spec.prep() as prep:
        if prep is None:
            raise PatchingError(f"{spec_path.name}: no %prep section to apply site patches in")
        # "%autosetup -N" applies nothing; such specs follow it with %autopatch or with %patch lines.
        applies_all = any(m.name == "%autopatch" or (m.name == "%autosetup" and not m.options.N)
                          for m in prep.macros)
    style = "autosetup" if applies_all else "explicit"

    numbers: dict[str, int] = {}
    for patch in package.patches:
        src = spec_set.patch_path(package, patch)
        local_name = f"hpcos-{package.release_tag.lstrip('.')}-{Path(patch.file).name}"
        shutil.copyfile(src, sources / local_name)
        spec.add_patch(local_name, initial_number=9000,
                       comment=f"hpcos site patch: {_rpm_literal(_one_line(patch.reason))}")
        with spec.patches() as patches:
            number = max(p.number for p in patches)
        numbers[patch.file] = number
        if style == "explicit":
            with spec.prep() as prep:
                # -P works on every rpm (el7's 4.11 through 4.19); "%patch N" only from 4.18.
                prep.add_patch_macro(P=number, p=_strip_level(src))

    evr = overlay_evr(base.evr, package.release_tag)
    # A literal Release: the build host's %{dist} may differ from the base build's (see release.py).
    spec.raw_release = evr.release
    author, address = email.utils.parseaddr(package.owner)
    lines = [f"- Rebuild of {base.name}-{base.evr} for site {spec_set.site.name} ({package.overlay})"]
    lines += [_rpm_literal(f"- {patch.file}: {_one_line(patch.reason)}"
                           + (f" ({patch.upstream})" if patch.upstream else "")) for patch in package.patches]
    spec.add_changelog_entry(lines, author=_rpm_literal(author or address or package.owner),
                             email=_rpm_literal(address) if address else None,
                             timestamp=(when or datetime.now(UTC)).date(), evr=str(evr))
    spec.save()
    return evr, style, numbers


def build_srpm(spec_path: Path, topdir: Path, log: Path) -> Path:
    before = set((topdir / "SRPMS").glob("*.src.rpm"))
    proc = rpmtool.run(["rpmbuild", "--define", f"_topdir {topdir}", "-bs", str(spec_path)], log,
                       timeout=PATCH_TIMEOUT)
    made = sorted(set((topdir / "SRPMS").glob("*.src.rpm")) - before)
    if proc.exit_code != 0 or not made:
        last = next((line for line in reversed(proc.stdout.splitlines()) if line.strip()), "")
        raise PatchingError(f"rpmbuild -bs {spec_path.name} failed: {last.strip()}; see {log}")
    return made[-1]


def prepare(spec_set: SpecSet, package: Package, base: Srpm, topdir: Path, log: Path) -> PatchedSource:
    spec_path = unpack(base.path, topdir, log)
    evr, style, numbers = apply_site_changes(spec_path, spec_set, package, base)
    return PatchedSource(build_srpm(spec_path, topdir, log), evr, style, numbers)


def _strip_level(patch: Path) -> int:
    """-p1 for git-style a/ b/ paths (nearly every patch today), -p0 for bare paths."""
    for line in patch.read_text(errors="replace").splitlines():
        match = re.match(r"^--- (\S+)", line)
        if match and match.group(1) != "/dev/null":
            return 1 if "/" in match.group(1) else 0
    return 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _rpm_literal(text: str) -> str:
    """``text`` as rpm reads it back verbatim: rpm expands macros everywhere in a spec, comments and
    %changelog included, so ``%(cmd)`` in a reason would run on the build host; ``%%`` is a literal %."""
    return text.replace("%", "%%")
