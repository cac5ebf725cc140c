"""How a spec applies its patches, read from its ``%prep``, and where the site patches go.

Site patches must be applied where the spec applies its own, in the directory its own patches see:

* ``kernel``: the RHEL/Fedora kernel spec (and ELRepo's, and Lustre's patched kernels) unpack with
  ``%setup -c``, ``mv linux-... linux-%{KVERREL}``, ``cd linux-%{KVERREL}`` and apply every patch with
  the shell functions ``ApplyPatch``/``ApplyOptionalPatch``; the last one is the empty
  ``linux-kernel-test.patch``, kept as the documented hook for extra patches.  Site patches go right
  before it, as ``ApplyPatch NAME`` (``ApplyOptionalPatch`` silently skips a patch under ten lines).
* ``autosetup``: ``%autosetup`` (without ``-N``) or ``%autopatch`` applies every ``Patch`` tag, so the
  tags are enough.
* ``explicit``: ``%patch`` lines (or ``%autosetup -N`` / ``%setup`` and no patch yet): one
  ``%patch -P N -pX`` line per site patch after the last ``%patch`` line, else after the ``%setup`` and
  the ``cd`` into the tree that follows it.

Anything else (no ``%setup``, a shell loop over the patches, ``git am``) is refused with the reason:
a site patch applied in the wrong directory fails with "can't find file to patch", or worse, applies
somewhere nobody looks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hpcos.core.errors import UserError


class UnknownPatchStyle(UserError):
    pass


@dataclass(frozen=True)
class PatchStyle:
    name: str  # "kernel", "autosetup" or "explicit"
    # Index into the spec's lines where the site patches' application lines go (kernel, explicit),
    # or where applying stops for the pre-check (autosetup: after the macro that applies them all).
    hook: int
    why: str  # what was found, for the build log


_KERNEL_APPLY = re.compile(r"^\s*Apply(?:Optional)?Patch\s+(\S+)")
_KERNEL_TEST_PATCH = re.compile(r"^\s*Apply(?:Optional)?Patch\s+linux-kernel-test\.patch\b")
_PATCH_MACRO = re.compile(r"^\s*%\{?patch(?:\d+)?\b")
_SETUP = re.compile(r"^\s*%\{?setup\b")
_AUTOSETUP = re.compile(r"^\s*%\{?autosetup\b(.*)$")
_AUTOPATCH = re.compile(r"^\s*%\{?autopatch\b")
_CD = re.compile(r"^\s*cd\s+\S+")
_SECTION = re.compile(
    r"^%(?:package|description|prep|build|install|check|clean|files|changelog|pre|post|"
    r"preun|postun|pretrans|posttrans|triggerin|triggerun|triggerpostun|verifyscript|"
    r"generate_buildrequires|conf)\b"
)
# Ways of applying patches that hpcos cannot place its own patches beside.
_OWN_LOOP = re.compile(r"(%\{?patches\}?|\$RPM_SOURCE_DIR/\*\.patch|\bgit\s+am\b|%\{?__scm_apply)")


def prep_range(lines: list[str]) -> tuple[int, int]:
    """(first line after ``%prep``, index of the next section) in the spec's lines."""
    start = next((i for i, line in enumerate(lines) if re.match(r"^%prep\b", line)), None)
    if start is None:
        raise UnknownPatchStyle("the spec has no %prep section to apply site patches in")
    end = next((i for i in range(start + 1, len(lines)) if _SECTION.match(lines[i])), len(lines))
    return start + 1, end


def detect(lines: list[str]) -> PatchStyle:
    start, end = prep_range(lines)
    prep = list(range(start, end))
    kernel = [i for i in prep if _KERNEL_APPLY.match(lines[i])]
    if kernel:
        test_patch = next((i for i in kernel if _KERNEL_TEST_PATCH.match(lines[i])), None)
        if test_patch is not None:
            return PatchStyle(
                "kernel",
                test_patch,
                "kernel spec: before ApplyOptionalPatch linux-kernel-test.patch",
            )
        return PatchStyle("kernel", kernel[-1] + 1, "kernel spec: after its last ApplyPatch")

    autosetup = [(i, _AUTOSETUP.match(lines[i])) for i in prep if _AUTOSETUP.match(lines[i])]
    autopatch = [i for i in prep if _AUTOPATCH.match(lines[i])]
    patch_lines = [i for i in prep if _PATCH_MACRO.match(lines[i])]
    setup = [i for i in prep if _SETUP.match(lines[i])]
    own = next((lines[i].strip() for i in prep if _OWN_LOOP.search(lines[i])), None)
    if own and not patch_lines and not autopatch:
        raise UnknownPatchStyle(
            f"%prep applies patches its own way ({own!r}); hpcos cannot tell where a site "
            "patch belongs: apply it from the spec's own hook or convert the spec to "
            "%autosetup or %patch lines"
        )
    if autopatch:
        return PatchStyle("autosetup", autopatch[-1] + 1, "%autopatch applies every Patch tag")
    if autosetup and not re.search(r"(^|\s)-N\b", autosetup[-1][1].group(1)):
        return PatchStyle("autosetup", autosetup[-1][0] + 1, "%autosetup applies every Patch tag")
    if patch_lines:
        return PatchStyle("explicit", patch_lines[-1] + 1, "after the spec's last %patch line")
    unpack = setup + [i for i, _ in autosetup]
    if not unpack:
        raise UnknownPatchStyle(
            "%prep has no %setup, %autosetup or kernel ApplyPatch: hpcos does not know "
            "which directory the sources are unpacked into"
        )
    hook = max(unpack) + 1
    # A spec that unpacks and then changes into the tree (``cd linux-%{KVERREL}``) patches there.
    for i in range(hook, end):
        text = lines[i].strip()
        if _CD.match(text):
            hook = i + 1
            continue
        if not text or text.startswith("#") or re.match(r"^(mv|cp|ln|mkdir|chmod)\s", text):
            continue
        break
    return PatchStyle(
        "explicit",
        hook,
        "after %setup" + (" and the cd into the tree" if hook > max(unpack) + 1 else ""),
    )
