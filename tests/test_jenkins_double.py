"""The Jenkins double answers as Jenkins' remote API is documented to, through python-jenkins and raw HTTP.

Jenkins itself cannot run here; these tests pin the behaviour the sync tests rely on.
"""

from __future__ import annotations

import jenkins
import pytest
import requests
from support.jenkins_double import CRUMB_FIELD, FOLDER_CLASS, JENKINS_VERSION, JenkinsDouble

JOB = (
    "<project><description>d</description><publishers><hudson.tasks.junit.JUnitResultArchiver "
    'plugin="junit"><testResults>j.xml</testResults></hudson.tasks.junit.JUnitResultArchiver></publishers>'
    '<triggers class="vector"/></project>'
)


@pytest.fixture
def double():
    server = JenkinsDouble(
        users={"admin": "token-a", "viewer": "token-v"}, read_only={"viewer"}
    ).start()
    yield server
    server.stop()


@pytest.fixture
def admin(double):
    return jenkins.Jenkins(double.url, "admin", "token-a")


def test_jobs_folders_and_configs(double, admin):
    admin.create_folder("f")
    admin.create_job("f/j", JOB)
    assert admin.job_exists("f/j") and not admin.job_exists("f/nope")
    listed = {job["fullname"]: job["_class"] for job in admin.get_all_jobs()}
    assert listed == {"f": FOLDER_CLASS, "f/j": "hudson.model.FreeStyleProject"}
    saved = admin.get_job_config("f/j")
    # Saved as Jenkins saves: its declaration, plugin versions, no legacy vector class.
    assert saved.startswith("<?xml version='1.1' encoding='UTF-8'?>")
    assert 'plugin="junit@' in saved and 'class="vector"' not in saved
    admin.reconfig_job("f/j", JOB.replace("<description>d", "<description>e"))
    assert "<description>e</description>" in admin.get_job_config("f/j")
    with pytest.raises(jenkins.JenkinsException, match="already exists"):
        admin.create_job("f/j", JOB)
    with pytest.raises(jenkins.JenkinsException, match="folder for the job does not exist"):
        admin.create_job("missing/j", JOB)
    with pytest.raises(jenkins.NotFoundException):
        admin.get_job_config("f/nope")
    admin.delete_job("f/j")
    assert double.all_names() == ["f"]


def test_tree_queries_nest_and_keep_class(double, admin):
    admin.create_folder("f")
    admin.create_job("f/j", JOB)
    info = admin.get_info(query="?tree=jobs[name,description,jobs[name,description]]")
    assert info == {
        "_class": "hudson.model.Hudson",
        "jobs": [
            {
                "_class": FOLDER_CLASS,
                "name": "f",
                "description": "",
                "jobs": [
                    {"_class": "hudson.model.FreeStyleProject", "name": "j", "description": "d"}
                ],
            }
        ],
    }
    shallow = admin.get_info(query="?tree=jobs[name,jobs]")
    assert shallow["jobs"][0]["jobs"] == [{"_class": "hudson.model.FreeStyleProject"}]


def test_builds_queue_items_and_build_info(double, admin):
    admin.create_job("j", JOB)
    queue_id = admin.build_job("j", {"REASON": "CVE-2024-1086"})
    item = admin.get_queue_item(queue_id)
    assert item["executable"]["number"] == 1
    build = admin.get_build_info("j", 1)
    assert build["result"] == "SUCCESS"
    assert build["actions"][0]["parameters"] == [{"name": "REASON", "value": "CVE-2024-1086"}]


def raw(double, user="admin", token="token-a"):
    session = requests.Session()
    session.auth = (user, token)
    return session


def test_http_level_behaviour(double):
    session = raw(double)
    root = session.get(double.url + "api/json", timeout=10)
    assert root.status_code == 200 and root.headers["X-Jenkins"] == JENKINS_VERSION
    # POST without a crumb: 403, as with Jenkins' default crumb issuer.
    refused = session.post(double.url + "createItem?name=x", data=JOB, timeout=10)
    assert refused.status_code == 403 and "No valid crumb" in refused.text
    crumb = session.get(double.url + "crumbIssuer/api/json", timeout=10).json()
    headers = {crumb["crumbRequestField"]: crumb["crumb"], "Content-Type": "application/xml"}
    assert crumb["crumbRequestField"] == CRUMB_FIELD
    assert (
        session.post(
            double.url + "createItem?name=x", data=JOB, headers=headers, timeout=10
        ).status_code
        == 200
    )
    again = session.post(double.url + "createItem?name=x", data=JOB, headers=headers, timeout=10)
    assert again.status_code == 400
    missing = session.post(
        double.url + "job/nofolder/createItem?name=y", data=JOB, headers=headers, timeout=10
    )
    assert missing.status_code == 404
    deleted = session.post(
        double.url + "job/x/doDelete", headers=headers, allow_redirects=False, timeout=10
    )
    assert deleted.status_code == 302 and deleted.headers["Location"] == double.url
    session.post(double.url + "createItem?name=x", data=JOB, headers=headers, timeout=10)
    build = session.post(double.url + "job/x/build", headers=headers, timeout=10)
    assert build.status_code == 201 and build.headers["Location"].startswith(
        double.url + "queue/item/"
    )
    assert double.writes()[-1] == ("POST", "/job/x/build")


def test_auth_errors(double):
    assert raw(double, "admin", "wrong").get(double.url + "api/json", timeout=10).status_code == 401
    assert (
        requests.get(double.url + "api/json", timeout=10).status_code == 403
    )  # anonymous, no read
    viewer = jenkins.Jenkins(double.url, "viewer", "token-v")
    assert viewer.get_all_jobs() == []
    with pytest.raises(jenkins.JenkinsException, match=r"\[403\]"):
        viewer.create_job("x", JOB)


def test_delay_applies_to_every_request():
    server = JenkinsDouble(delay=0.05).start()
    try:
        response = requests.get(server.url + "api/json", timeout=10)
        assert response.elapsed.total_seconds() >= 0.05
    finally:
        server.stop()
