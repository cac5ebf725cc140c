"""``hpcos build PKG --export-patches DIR``: each site patch with its reason and upstream link, still
applicable by the tools upstream uses (``git am`` for a format-patch mail, ``patch -p1`` for a diff)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import require_tool
from support.rpm_fixtures import GOOD_PATCH, GREETING_C, make_site, site_patch

from hpcos.cli import main

PLAIN_DIFF = GOOD_PATCH[GOOD_PATCH.index("--- a/hello.c") : GOOD_PATCH.rindex("--\n2.43.0")]


def export(tmp_path: Path, capsys) -> Path:
    make_site(
        tmp_path / "specs",
        {
            "name": "hello",
            "upstream": {"srpm_path": "/srv/srpms/hello-1.0-1.el9.src.rpm"},
            "patches": [
                site_patch(
                    "0001-greet.patch",
                    "The site greets its users in the site's own words.",
                    "https://github.com/example/hello/issues/7",
                ),
                site_patch(
                    "0002-plain.patch",
                    "A plain diff without mail headers, never sent upstream.",
                    None,
                ),
            ],
        },
        {"0001-greet.patch": GOOD_PATCH, "0002-plain.patch": PLAIN_DIFF},
    )
    out = tmp_path / "export"
    assert (
        main(["--specs", str(tmp_path / "specs"), "build", "hello", "--export-patches", str(out)])
        == 0
    )
    assert capsys.readouterr().out.split() == [
        str(out / "0001-greet.patch"),
        str(out / "0002-plain.patch"),
    ]
    return out


def upstream_tree(path: Path) -> Path:
    path.mkdir()
    (path / "hello.c").write_text(GREETING_C)
    git = ["git", "-C", str(path), "-c", "user.name=Upstream", "-c", "user.email=up@example.org"]
    subprocess.run(git[:3] + ["init", "-q"], check=True, timeout=60)
    subprocess.run(git + ["add", "hello.c"], check=True, timeout=60)
    subprocess.run(git + ["commit", "-qm", "upstream"], check=True, timeout=60)
    return path


def test_format_patch_keeps_its_mail_form_and_carries_reason_and_link(tmp_path, capsys):
    require_tool("git", "git")
    out = export(tmp_path, capsys)
    tree = upstream_tree(tmp_path / "upstream")
    git = ["git", "-C", str(tree), "-c", "user.name=Maintainer", "-c", "user.email=m@example.org"]
    subprocess.run(
        git + ["am", "-q", str(out / "0001-greet.patch")],
        check=True,
        timeout=60,
        capture_output=True,
    )
    message = subprocess.run(
        git + ["log", "-1", "--format=%B"], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    assert "Reason: The site greets its users in the site's own words." in message
    assert "Link: https://github.com/example/hello/issues/7" in message
    assert "hello from the site overlay" in (tree / "hello.c").read_text()


def test_plain_diff_gets_a_dep3_header_and_still_applies(tmp_path, capsys):
    require_tool("patch", "patch")
    out = export(tmp_path, capsys)
    text = (out / "0002-plain.patch").read_text()
    assert text.splitlines()[:2] == [
        "Description: A plain diff without mail headers, never sent upstream.",
        "Forwarded: no",
    ]
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "hello.c").write_text(GREETING_C)
    subprocess.run(
        ["patch", "-p1", "-s", "-i", str(out / "0002-plain.patch")],
        cwd=tree,
        check=True,
        timeout=60,
    )
    assert "hello from the site overlay" in (tree / "hello.c").read_text()
