"""Where site patches go, read from the spec's %prep (hpcos/rebuild/patch_style.py).  The kernel layout
and the explicit and autosetup styles are also built for real in test_rebuild_kernel.py and
test_rebuild_build.py; these cover every rule, including the refusals, on spec text alone."""

from __future__ import annotations

import pytest

from hpcos.rebuild.patch_style import UnknownPatchStyle, detect

HEAD = "Name: x\nVersion: 1\nRelease: 1\nSummary: x\nLicense: MIT\nPatch0: up.patch\n\n%description\nx\n\n"
TAIL = "\n%build\nmake\n\n%files\n/x\n"


def where(prep: str) -> tuple[str, str]:
    """(style, the line the site patches follow)."""
    lines = (HEAD + "%prep\n" + prep + TAIL).splitlines(keepends=True)
    style = detect(lines)
    return style.name, lines[style.hook - 1].rstrip("\n")


@pytest.mark.parametrize(
    "prep, style, after",
    [
        ("%autosetup -p1\n", "autosetup", "%autosetup -p1"),
        ("%autosetup -N\n%autopatch -p1\n", "autosetup", "%autopatch -p1"),
        ("%setup -q\n%patch -P0 -p1\n", "explicit", "%patch -P0 -p1"),
        ("%setup -q\n%patch0 -p1\n", "explicit", "%patch0 -p1"),
        ("%autosetup -N\n", "explicit", "%autosetup -N"),
        # Unpacks, then changes into the tree: the site patches go after the cd, where paths resolve.
        ("%setup -q -c\nmv x-1 x-tree\n\ncd x-tree\ncp -a %{SOURCE1} .\n", "explicit", "cd x-tree"),
        ("%setup -q\n./configure\ncd sub\n", "explicit", "%setup -q"),
        (
            "%setup -q -c\ncd linux\nApplyOptionalPatch patch-5.14-redhat.patch\n"
            "ApplyOptionalPatch linux-kernel-test.patch\n",
            "kernel",
            "ApplyOptionalPatch patch-5.14-redhat.patch",
        ),
        (
            "%setup -q -c\ncd linux\nApplyPatch one.patch\nApplyPatch two.patch\n",
            "kernel",
            "ApplyPatch two.patch",
        ),
    ],
)
def test_site_patches_follow_the_specs_own(prep, style, after):
    assert where(prep) == (style, after)


@pytest.mark.parametrize(
    "prep, reason",
    [
        ("tar xf %{SOURCE0}\ncd x\n", "%prep has no %setup, %autosetup or kernel ApplyPatch"),
        (
            "%setup -q\nfor p in %{patches}; do patch -p1 < $p; done\n",
            "%prep applies patches its own way",
        ),
        ("%setup -q\ngit am %{_sourcedir}/*.patch\n", "%prep applies patches its own way"),
    ],
)
def test_an_unknown_style_is_refused_with_the_reason(prep, reason):
    with pytest.raises(UnknownPatchStyle) as refused:
        where(prep)
    assert str(refused.value).startswith(reason)


def test_a_spec_without_prep_is_refused():
    with pytest.raises(UnknownPatchStyle, match="no %prep section"):
        detect((HEAD + TAIL).splitlines(keepends=True))
