"""The ``config:`` section of site.yaml: mistakes are one line naming file, line and field (exit 2)."""

from __future__ import annotations

import re

from support.config_repos import write_site

from hpcos.cli import main


def check(tmp_path, repos: dict, capsys) -> tuple[int, str]:
    specs = write_site(tmp_path / "specs", tmp_path / "store", repos)
    code = main(["specs", "check", "--specs", str(specs)])
    return code, capsys.readouterr().err


def test_a_valid_section(tmp_path, capsys):
    code, _ = check(
        tmp_path,
        {
            "control": {
                "url": "git@git.example.org:hpc/control.git",
                "kind": "puppet",
                "testing": "pre-prod",
                "entry": "manifests/site.pp",
            }
        },
        capsys,
    )
    assert code == 0


def test_mistakes_name_file_line_and_field(tmp_path, capsys):
    code, err = check(
        tmp_path,
        {
            "a": {"url": "https://git.example.org/x.git", "kind": "chef"},
            "b": {"url": "-oProxyCommand=touch /tmp/x", "kind": "generic"},
            "c": {
                "url": "/srv/git/c.git",
                "kind": "generic",
                "testing": "main",
                "production": "main",
            },
            "d": {"url": "/srv/git/d.git", "kind": "ansible", "entry": "../../etc/shadow"},
            "e": {"url": "https://git.example.org/{folder}.git", "kind": "generic"},
            "f": {"url": "/srv/git/f.git", "kind": "generic", "testing": "a..b"},
        },
        capsys,
    )
    assert code == 2
    lines = [line for line in err.splitlines() if "site.yaml:" in line]
    assert len(lines) == 6, err
    assert any("config.repositories.a.kind" in line and "puppet" in line for line in lines)
    assert any("config.repositories.b.url" in line and "git URL" in line for line in lines)
    assert any(
        "config.repositories.c" in line and "different testing and production" in line
        for line in lines
    )
    assert any("config.repositories.d.entry" in line and "no '..'" in line for line in lines)
    assert any("config.repositories.e.url" in line for line in lines)
    assert any("config.repositories.f.testing" in line for line in lines)
    assert all(re.match(r"^\s*\S*site\.yaml:\d+: ", line) for line in lines), lines
