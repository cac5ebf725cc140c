"""Turning the upstream SRPM into the overlay SRPM: unpack it, add the site patches to the spec
(Patch tags, applied where and how the spec applies its own: patch_style.py), set the overlay
release (a literal Release, or the kernel's ``%define buildid``) and add a changelog entry naming
each patch and its reason and the digest of the site inputs, then pack a new SRPM."""

from __future__ import annotations

import email.utils
import hashlib
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from specfile import Specfile

from hpcos.core.errors import UserError
from hpcos.core.files import file_digest
from hpcos.rebuild import patch_style
from hpcos.rebuild.patch_check import strip_level
from hpcos.rebuild.release import build_tag, next_counter
from hpcos.rebuild.source import Srpm
from hpcos.rpms import rpmtool
from hpcos.rpms.evr import Evr
from hpcos.site.specs import Package, SpecSet

PATCH_TIMEOUT = 300


class PatchingError(UserError):
    pass


# Bumped when the way hpcos edits specs changes: the edit is part of the build's inputs.
SPEC_EDITS_VERSION = "2"
INPUTS_LINE = "hpcos site inputs: "
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass(frozen=True)
class PatchedSource:
    srpm: Path
    evr: Evr
    # "kernel", "autosetup" or "explicit" (patch_style.py)
    style: str
    patch_numbers: dict[str, int]
    # Digest of the site patches and the spec edits (site_inputs_digest), also in the changelog.
    inputs: str = ""
    # The upstream spec stopped with ``exit 0`` where the site patches go: ``rpmbuild -bp`` of it
    # leaves the tree exactly as the first site patch sees it (patch_check.py).
    check_spec: Path | None = None
    counter: int = 1


def unpack(srpm: Path, topdir: Path, log: Path) -> Path:
    """Install the SRPM into a private _topdir; return its spec file."""
    for sub in ("SOURCES", "SPECS", "SRPMS", "BUILD", "RPMS"):
        (topdir / sub).mkdir(parents=True, exist_ok=True)
    rpmtool.check(
        ["rpm", "-i", "--nodeps", "--define", f"_topdir {topdir}", str(srpm)],
        log,
        what=f"unpacking {srpm.name}",
        timeout=PATCH_TIMEOUT,
    )
    specs = sorted((topdir / "SPECS").glob("*.spec"))
    if len(specs) != 1:
        raise PatchingError(f"{srpm.name}: expected one spec file, found {len(specs)}")
    return specs[0]


def site_inputs_digest(spec_set: SpecSet, package: Package) -> str:
    """What the overlay build adds to upstream's: the tag, each patch's name, content and strip level,
    and the version of hpcos's spec edits.  A change to any of them makes a new build due."""
    digest = hashlib.sha256()
    digest.update(f"edits {SPEC_EDITS_VERSION}\0tag {package.release_tag}\0".encode())
    for patch in package.patches:
        path = spec_set.patch_path(package, patch)
        digest.update(f"patch {patch.file}\0p{strip_level(path)}\0".encode())
        digest.update(file_digest(path).encode() + b"\0")
    return digest.hexdigest()[:16]


def apply_site_changes(
    spec_path: Path,
    spec_set: SpecSet,
    package: Package,
    base: Srpm,
    when: datetime | None = None,
    counter: int = 1,
    log: Path | None = None,
) -> tuple[Evr, str, dict[str, int], Path]:
    """Edit the spec in place; return the overlay EVR it should build, the patch style, each site
    patch's Patch number, and the pre-check spec (see PatchedSource.check_spec)."""
    sources = spec_path.parent.parent / "SOURCES"
    original = spec_path.read_text(errors="surrogateescape").splitlines(keepends=True)
    try:
        style = patch_style.detect(original)
    except patch_style.UnknownPatchStyle as exc:
        raise PatchingError(f"{spec_path.name}: {exc}") from None
    check_spec = spec_path.parent.parent / f"{spec_path.stem}.prep-check.spec"
    check_spec.write_text(
        "".join(original[: style.hook] + ["exit 0\n"] + original[style.hook :]),
        errors="surrogateescape",
    )

    local_names = {}
    for patch in package.patches:
        if not _SAFE_NAME.fullmatch(Path(patch.file).name):
            # The name goes into Patch tags, %patch lines and the kernel's ApplyPatch shell lines.
            raise PatchingError(
                f"{package.name}: patch file name {Path(patch.file).name!r} must be letters, digits "
                "and . _ + - only (it becomes part of the spec and of %prep's shell script)"
            )
        local_name = f"hpcos-{package.release_tag.lstrip('.')}-{Path(patch.file).name}"
        shutil.copyfile(spec_set.patch_path(package, patch), sources / local_name)
        local_names[patch.file] = local_name
    inputs = site_inputs_digest(spec_set, package)
    tag = build_tag(package.release_tag, counter)
    if style.name == "kernel":
        evr, kernel_numbers = _kernel_edits(
            spec_path, original, style, spec_set, package, base, local_names, tag, inputs, when, log
        )
        return evr, style.name, kernel_numbers, check_spec

    spec = Specfile(spec_path, sourcedir=sources, autosave=False)
    numbers: dict[str, int] = {}
    for patch in package.patches:
        spec.add_patch(
            local_names[patch.file],
            initial_number=9000,
            comment=f"hpcos site patch: {_rpm_literal(_one_line(patch.reason))}",
        )
        with spec.patches() as patches:
            numbers[patch.file] = max(p.number for p in patches)
    evr = Evr(base.evr.epoch, base.evr.version, base.evr.release + tag)
    # A literal Release: the build host's %{dist} may differ from the base build's (see release.py).
    spec.raw_release = evr.release
    author, address = email.utils.parseaddr(package.owner)
    spec.add_changelog_entry(
        _changelog_lines(spec_set, package, base, inputs),
        author=_rpm_literal(author or address or package.owner),
        email=_rpm_literal(address) if address else None,
        timestamp=(when or datetime.now(UTC)).date(),
        evr=str(evr),
    )
    spec.save()
    if style.name == "explicit" and package.patches:
        # The Patch tags moved the lines below them; %prep itself is unchanged, so look again.
        lines = spec_path.read_text(errors="surrogateescape").splitlines(keepends=True)
        hook = patch_style.detect(lines).hook
        # -P works on every rpm (el7's 4.11 through 4.19); "%patch N" only from 4.18.
        added = [
            f"%patch -P{numbers[p.file]} -p{strip_level(spec_set.patch_path(package, p))}\n"
            for p in package.patches
        ]
        spec_path.write_text("".join(lines[:hook] + added + lines[hook:]), errors="surrogateescape")
    return evr, style.name, numbers, check_spec


def _changelog_lines(spec_set: SpecSet, package: Package, base: Srpm, inputs: str) -> list[str]:
    lines = [
        f"- Rebuild of {base.name}-{base.evr} for site {spec_set.site.name} ({package.overlay})"
    ]
    lines += [
        _rpm_literal(
            f"- {patch.file}: {_one_line(patch.reason)}"
            + (f" ({patch.upstream})" if patch.upstream else "")
        )
        for patch in package.patches
    ]
    lines.append(f"- {INPUTS_LINE}{inputs}")
    return lines


_BUILDID = re.compile(r"^\s*(?:#\s*|%)(?:define|global)\s+buildid\b.*$")
_PATCH_TAG = re.compile(r"^Patch(\d+)\s*:", re.IGNORECASE)


def _kernel_edits(
    spec_path: Path,
    lines: list[str],
    style: patch_style.PatchStyle,
    spec_set: SpecSet,
    package: Package,
    base: Srpm,
    local_names: dict[str, str],
    tag: str,
    inputs: str,
    when: datetime | None,
    log: Path | None,
) -> tuple[Evr, dict[str, int]]:
    """The kernel spec, edited the way Lustre's lbuild and ELRepo edit it: Patch tags before the
    empty ``linux-kernel-test.patch``, ``ApplyPatch`` lines before its application, the release
    through ``%define buildid``.  Text edits: the kernel spec is too macro-heavy to re-render."""
    dist = _base_dist(spec_path, base, log)
    used = {int(m.group(1)) for line in lines if (m := _PATCH_TAG.match(line))}
    numbers: dict[str, int] = {}
    number = 9000
    for patch in package.patches:
        while number in used:
            number += 1
        numbers[patch.file] = number
        used.add(number)
    # ApplyPatch greps the spec for "^PatchN: NAME$": exactly one space, nothing after the name.
    tags = [f"Patch{numbers[p.file]}: {local_names[p.file]}\n" for p in package.patches]
    applies = []
    for p in package.patches:
        level = strip_level(spec_set.patch_path(package, p))
        applies.append(
            f"ApplyPatch {local_names[p.file]}" + ("" if level == 1 else f" -p{level}") + "\n"
        )
    edited = lines[: style.hook] + applies + lines[style.hook :]

    test_tag = next(
        (
            i
            for i, line in enumerate(edited)
            if re.match(r"^Patch\d+:\s*linux-kernel-test\.patch", line)
        ),
        None,
    )
    if test_tag is not None and test_tag > 0 and edited[test_tag - 1].lstrip().startswith("#"):
        test_tag -= 1  # keep "# empty final patch to facilitate testing..." with its tag
    if test_tag is None:
        test_tag = max(
            (i + 1 for i, line in enumerate(edited) if _PATCH_TAG.match(line)), default=None
        )
    if test_tag is None:
        raise PatchingError(
            f"{spec_path.name}: kernel spec without Patch tags; nowhere to declare site patches"
        )
    edited = edited[:test_tag] + tags + edited[test_tag:]

    buildid = f"%define buildid {tag}\n"
    at = next((i for i, line in enumerate(edited) if _BUILDID.match(line)), None)
    if at is None:
        edited.insert(0, buildid)
    else:
        edited[at] = buildid
    if dist is not None:
        # As for every overlay build, the base's dist stays: the build host's may be .el9 for .el9_4.
        edited.insert(0, f"%define dist {dist}\n")

    release = (
        (base.evr.release[: len(base.evr.release) - len(dist)] + tag + dist)
        if dist
        else base.evr.release + tag
    )
    evr = Evr(base.evr.epoch, base.evr.version, release)
    changelog = next((i for i, line in enumerate(edited) if re.match(r"^%changelog\b", line)), None)
    if changelog is None:
        edited += ["\n%changelog\n"]
        changelog = len(edited) - 1
    author, address = email.utils.parseaddr(package.owner)
    who = _rpm_literal(
        f"{author or address or package.owner}" + (f" <{address}>" if address and author else "")
    )
    day = (when or datetime.now(UTC)).strftime("%a %b %d %Y")
    entry = [
        f"* {day} {who} - {evr}\n",
        *(line + "\n" for line in _changelog_lines(spec_set, package, base, inputs)),
        "\n",
    ]
    edited = edited[: changelog + 1] + entry + edited[changelog + 1 :]
    spec_path.write_text("".join(edited), errors="surrogateescape")
    return evr, numbers


def _base_dist(spec_path: Path, base: Srpm, log: Path | None) -> str | None:
    """The dist tag the base SRPM was built with (``.el9_4``): its Release minus what the spec gives
    with an empty ``%{dist}``.  None when the spec's Release does not use ``%{dist}``."""
    out = rpmtool.check(
        [
            "rpmspec",
            "-q",
            "--srpm",
            "--qf",
            "%{release}\n",
            "--define",
            "dist %{nil}",
            "--define",
            "buildid %{nil}",
            str(spec_path),
        ],
        log,
        what=f"rpmspec -q {spec_path.name}",
        timeout=PATCH_TIMEOUT,
    )
    bare = out.strip().splitlines()[-1].strip() if out.strip() else ""
    if bare and base.evr.release.startswith(bare) and base.evr.release != bare:
        return base.evr.release[len(bare) :]
    return None


def build_srpm(spec_path: Path, topdir: Path, log: Path) -> Path:
    before = set((topdir / "SRPMS").glob("*.src.rpm"))
    proc = rpmtool.run(
        ["rpmbuild", "--define", f"_topdir {topdir}", "-bs", str(spec_path)],
        log,
        timeout=PATCH_TIMEOUT,
    )
    made = sorted(set((topdir / "SRPMS").glob("*.src.rpm")) - before)
    if proc.exit_code != 0 or not made:
        last = next((line for line in reversed(proc.stdout.splitlines()) if line.strip()), "")
        raise PatchingError(f"rpmbuild -bs {spec_path.name} failed: {last.strip()}; see {log}")
    return made[-1]


def prepare(
    spec_set: SpecSet,
    package: Package,
    base: Srpm,
    topdir: Path,
    log: Path,
    existing: set[Evr] | None = None,
) -> PatchedSource:
    """The overlay SRPM.  ``existing``: every overlay build of the package already published
    anywhere (publish.existing_builds); the build counter goes one past them."""
    spec_path = unpack(base.path, topdir, log)
    counter = next_counter(base.evr, package.release_tag, existing or set())
    evr, style, numbers, check_spec = apply_site_changes(
        spec_path, spec_set, package, base, counter=counter, log=log
    )
    srpm = build_srpm(spec_path, topdir, log)
    built = rpmtool.evr(rpmtool.header(srpm))
    if built != evr:
        # The kernel's Release must carry %{?buildid}; anything else would publish an unmarked build.
        raise PatchingError(
            f"{spec_path.name}: the overlay SRPM has {base.name}-{built}, expected {evr} "
            f"({'its Release does not use %{?buildid}' if style == 'kernel' else 'Release changed'})"
        )
    return PatchedSource(
        srpm, evr, style, numbers, site_inputs_digest(spec_set, package), check_spec, counter
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _rpm_literal(text: str) -> str:
    """``text`` as rpm reads it back verbatim: rpm expands macros everywhere in a spec, comments and
    %changelog included, so ``%(cmd)`` in a reason would run on the build host; ``%%`` is a literal %."""
    return text.replace("%", "%%")
