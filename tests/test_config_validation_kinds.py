"""Validation of the other kinds with the real tools: Ansible 2.14 (``--syntax-check``, then ``--check``
with its changed count) and Nagios 4 (``nagios4 -v``: errors fail it), through ``hpcos config validate``."""

from __future__ import annotations

import json

import pytest
from conftest import require_tool
from support.config_repos import SiteRepo, write_site

from hpcos.cli import main

NAGIOS_MAIN = (
    "cfg_file=timeperiods.cfg\ncfg_file=hosts.cfg\nnagios_user=root\nnagios_group=root\n"
    "illegal_macro_output_chars=`~$&|'\"<>\n"
)
TIMEPERIODS = """\
define timeperiod {
    timeperiod_name 24x7
    alias always
    monday 00:00-24:00
}
define command {
    command_name true
    command_line /bin/true
}
define contact {
    contact_name nobody
    host_notifications_enabled 0
    service_notifications_enabled 0
    host_notification_period 24x7
    service_notification_period 24x7
    host_notification_options n
    service_notification_options n
    host_notification_commands true
    service_notification_commands true
}
"""


def hosts(service_host: str) -> str:
    return f"""\
define host {{
    host_name n1
    address 127.0.0.1
    check_command true
    max_check_attempts 1
    check_period 24x7
    contacts nobody
    notification_period 24x7
}}
define service {{
    host_name {service_host}
    service_description ping
    check_command true
    max_check_attempts 1
    check_interval 5
    retry_interval 1
    check_period 24x7
    contacts nobody
    notification_period 24x7
}}
"""


def playbook(target, content: str) -> str:
    return (
        f"- hosts: all\n  gather_facts: false\n  tasks:\n    - name: motd\n      ansible.builtin.copy:\n"
        f'        dest: {target}\n        content: "{content}\\n"\n'
    )


def site_with(tmp_path, monkeypatch, kind: str, files: dict[str, str]) -> SiteRepo:
    repo = SiteRepo(tmp_path / "git", files)
    specs = write_site(
        tmp_path / "specs", tmp_path / "store", {"r": {"url": str(repo.remote), "kind": kind}}
    )
    monkeypatch.setenv("HPCOS_SPECS", str(specs))
    monkeypatch.setenv("HPCOS_STORE", str(tmp_path / "store"))
    return repo


def validation(capsys) -> dict:
    capsys.readouterr()
    assert main(["config", "status", "--json"]) == 0
    return json.loads(capsys.readouterr().out)["repositories"][0]["validation"]


def test_ansible_check_counts_changes_and_syntax_errors_fail(tmp_path, monkeypatch, capsys):
    require_tool("ansible-playbook", "ansible-core")
    motd = tmp_path / "motd"
    motd.write_text("release 1\n")
    repo = site_with(tmp_path, monkeypatch, "ansible", {"site.yml": playbook(motd, "release 1")})
    repo.commit("testing", {"site.yml": playbook(motd, "release 2")}, "motd release 2")
    assert main(["config", "validate", "--no-tickets"]) == 0
    result = validation(capsys)
    assert result["ok"] is True and result["changes"] == 1
    assert motd.read_text() == "release 1\n"  # --check changes nothing

    repo.commit(
        "testing",
        {"site.yml": "- hosts: all\n  tasks:\n    - name: x\n      bogus_module_xyz: {}\n"},
        "a task with no module",
    )
    assert main(["config", "validate", "--no-tickets"]) == 1
    assert "ansible-syntax-check" in capsys.readouterr().err
    assert validation(capsys)["ok"] is False


def test_nagios_configuration_errors_fail_validation(tmp_path, monkeypatch, capsys):
    require_tool("nagios4", "nagios4-core")
    repo = site_with(
        tmp_path,
        monkeypatch,
        "nagios",
        {"nagios.cfg": NAGIOS_MAIN, "timeperiods.cfg": TIMEPERIODS, "hosts.cfg": hosts("n1")},
    )
    assert main(["config", "validate", "--no-tickets"]) == 0
    assert validation(capsys)["ok"] is True
    repo.commit("testing", {"hosts.cfg": hosts("n2")}, "ping service on a host that does not exist")
    assert main(["config", "validate", "--no-tickets"]) == 1
    err = capsys.readouterr().err
    assert "nagios-verify" in err and "n2" in err
    assert validation(capsys)["ok"] is False


@pytest.mark.parametrize("kind", ["salt", "cfengine", "generic"])
def test_kinds_without_a_validator_say_so(tmp_path, monkeypatch, capsys, kind):
    site_with(tmp_path, monkeypatch, kind, {"top.sls": "base: {}\n"})
    assert main(["config", "validate", "--no-tickets"]) == 0
    assert "no validator runs here" in capsys.readouterr().err
