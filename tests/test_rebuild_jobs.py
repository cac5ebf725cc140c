"""Per-architecture builders in the generated jobs: each rebuild job runs on agents of its target's
architecture (targets.*.build_label, jenkins.build_labels per arch, else '<build_label> && <arch>'), and
mails the package owner through Jenkins' standard mailer."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from support.rpm_fixtures import SITE, make_site

from hpcos.core.sourced_yaml import InvalidInput
from jobs.job_definitions import project
from jobs.render import render


def rendered(
    tmp_path, site_changes: dict, owner: str = "HPC Admins <hpc@example.org>"
) -> dict[str, ET.Element]:
    spec_set = make_site(
        tmp_path / "specs",
        {
            "name": "hello",
            "upstream": {"srpm_path": "/x.src.rpm"},
            "targets": ["el9-x86_64", "el9-aarch64", "el8-aarch64"],
            "owner": owner,
        },
        {},
        site_changes,
    )
    return {job.name: ET.fromstring(job.xml) for job in render(project(spec_set))}


def test_each_rebuild_job_is_routed_to_agents_of_its_architecture(tmp_path):
    targets = {
        **SITE["targets"],
        "el8-aarch64": {**SITE["targets"]["el8-aarch64"], "build_label": "old-arm-box"},
    }
    jenkins = {**SITE["jenkins"], "build_labels": {"aarch64": "rpm-arm64 && !slow"}}
    jobs = rendered(tmp_path, {"targets": targets, "jenkins": jenkins})
    labels = {
        name: job.findtext("assignedNode") for name, job in jobs.items() if "/rebuild-" in name
    }
    assert labels == {
        "hpcos/rebuild-hello-el9-x86_64": "rpm && x86_64",  # default: build_label && arch
        "hpcos/rebuild-hello-el9-aarch64": "rpm-arm64 && !slow",  # jenkins.build_labels
        "hpcos/rebuild-hello-el8-aarch64": "old-arm-box",
    }  # the target's own
    poll = jobs["hpcos/rebuild-hello-el9-aarch64"].find(
        "triggers/org.jenkinsci.plugins.scripttrigger.ScriptTrigger"
    )
    assert poll.findtext("triggerLabel") == "rpm-arm64 && !slow", "the upstream poll runs there too"
    mailer = jobs["hpcos/rebuild-hello-el9-x86_64"].find("publishers/hudson.tasks.Mailer")
    assert mailer.findtext("recipients") == "hpc@example.org"
    assert mailer.findtext("dontNotifyEveryUnstableBuild") == "false"


def test_an_owner_without_an_address_mails_nobody(tmp_path):
    jobs = rendered(tmp_path, {}, owner="the HPC team")
    assert jobs["hpcos/rebuild-hello-el9-x86_64"].findtext(
        "publishers/hudson.tasks.Mailer/recipients"
    ) in ("", None)


def test_a_label_with_jjb_braces_is_refused(tmp_path):
    targets = {
        **SITE["targets"],
        "el9-x86_64": {**SITE["targets"]["el9-x86_64"], "build_label": "rpm-{arch}"},
    }
    with pytest.raises(InvalidInput) as raised:
        rendered(tmp_path, {"targets": targets})
    assert "targets.el9-x86_64.build_label" in str(raised.value)
    assert "a Jenkins label or label expression" in str(raised.value)
