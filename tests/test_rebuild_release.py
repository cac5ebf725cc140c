"""The release rule (hpcos/rebuild/release.py), checked with rpm's own comparison (rpm.labelCompare,
the code behind rpmdev-vercmp and dnf's upgrade decision)."""

from __future__ import annotations

import pytest
import rpm

from hpcos.rebuild.release import (
    Evr,
    base_of,
    next_counter,
    overlay_evr,
    overlay_release,
    site_build,
)


def vercmp(a: str, b: str) -> int:
    ea, eb = Evr.parse(a), Evr.parse(b)
    return rpm.labelCompare(
        (str(ea.epoch), ea.version, ea.release), (str(eb.epoch), eb.version, eb.release)
    )


@pytest.mark.parametrize(
    "base, tag, overlay",
    [
        ("1.el9", ".hpc1", "1.el9.hpc1"),
        ("1.el9_3.1", ".hpc1", "1.el9_3.1.hpc1"),
        ("5.module+el8.9.0+1234+abcd", ".hpc2", "5.module+el8.9.0+1234+abcd.hpc2"),
    ],
)
def test_overlay_release_appends_the_site_tag(base, tag, overlay):
    assert overlay_release(base, tag) == overlay


@pytest.mark.parametrize("base", ["1.el9", "1.el9_3.1", "0.rc1.el8", "5.module+el8.9.0+1234+abcd"])
def test_overlay_sorts_above_the_base_it_replaces(base):
    overlay = overlay_evr(Evr.parse(f"4.1.1-{base}"), ".hpc1")
    assert vercmp(str(overlay), f"4.1.1-{base}") == 1


@pytest.mark.parametrize(
    "update",
    [
        "4.1.1-2.el9",  # next upstream release
        "4.1.1-1.el9_3.1",  # z-stream update of the same release
        "4.1.1-1.el9.1",  # a rebuild that appends a numeric segment
        "4.1.2-1.el9",  # new upstream version
        "1:4.1.0-1.el9",  # epoch bump
    ],
)
def test_any_upstream_update_sorts_above_the_overlay(update):
    overlay = overlay_evr(Evr.parse("4.1.1-1.el9"), ".hpc1")
    assert vercmp(update, str(overlay)) == 1
    assert Evr.parse(update) > overlay


def test_a_raised_site_tag_supersedes_the_earlier_overlay_build():
    assert vercmp("4.1.1-1.el9.hpc2", "4.1.1-1.el9.hpc1") == 1


def test_an_alphabetic_tag_is_what_keeps_upstream_updates_on_top():
    # Why Package.release_tag must start with a letter: a numeric tag would hide upstream's .1 update.
    assert vercmp("4.1.1-1.el9.2", "4.1.1-1.el9.1") == 1
    assert vercmp("4.1.1-1.el9.1", "4.1.1-1.el9.hpc1") == 1


def test_base_of_strips_the_tag_and_refuses_another_tag():
    overlay = Evr.parse("2:4.1.1-1.el9_3.1.hpc1")
    assert base_of(overlay, ".hpc1") == Evr(2, "4.1.1", "1.el9_3.1")
    assert base_of(overlay, ".hpc2") is None


@pytest.mark.parametrize("text", ["4.1.1", "-1.el9", ""])
def test_evr_parse_rejects_text_without_version_and_release(text):
    with pytest.raises(ValueError):
        Evr.parse(text)


@pytest.mark.parametrize(
    "release, tag, found",
    [
        ("1.el9.hpc1", ".hpc1", ("1.el9", 1)),
        ("1.el9.hpc1.2", ".hpc1", ("1.el9", 2)),
        (
            "427.13.1.hpc1.el9_4",
            ".hpc1",
            ("427.13.1.el9_4", 1),
        ),  # the kernel's buildid, before dist
        ("427.13.1.hpc1.3.el9_4", ".hpc1", ("427.13.1.el9_4", 3)),
        ("1.el9.hpc10", ".hpc1", None),
        ("1.el9", ".hpc1", None),
    ],
)
def test_site_build_finds_base_and_counter_wherever_the_tag_is(release, tag, found):
    assert site_build(release, tag) == found


def test_each_build_of_one_base_sorts_above_the_last_and_below_the_next_upstream():
    base = Evr.parse("5.14.0-427.13.1.el9_4")
    builds = [Evr.parse("5.14.0-427.13.1.hpc1.el9_4"), Evr.parse("5.14.0-427.13.1.hpc1.2.el9_4")]
    assert next_counter(base, ".hpc1", set(builds)) == 3
    assert next_counter(Evr.parse("5.14.0-427.14.1.el9_4"), ".hpc1", set(builds)) == 1
    third = "5.14.0-427.13.1.hpc1.3.el9_4"
    assert vercmp(third, str(builds[1])) == 1 and vercmp(str(builds[1]), str(builds[0])) == 1
    assert vercmp("5.14.0-427.14.1.el9_4", third) == 1
    assert vercmp(str(overlay_evr(Evr.parse("4.1.1-1.el9"), ".hpc1", 2)), "4.1.1-1.el9.hpc1") == 1
    assert base_of(Evr.parse(third), ".hpc1") == base
