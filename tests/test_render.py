"""Specs -> JJB YAML -> Jenkins XML: the job set, and byte-identity with upstream `jenkins-jobs test`."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from jenkins_jobs.xml_config import XmlJob
from support.jobs_site import PACKAGES, package, write_site

from hpcos.cli import main
from hpcos.site.specs import load_specs
from jobs.job_definitions import jjb_yaml, marker, project
from jobs.render import (
    JJB_CONFIG,
    PARALLEL_MIN_ENTRIES,
    RenderError,
    _render_part,
    render,
    render_pool,
    render_yaml,
)
from jobs.xml_normalise import normalised_digest
from jobs.xml_pretty import job_xml_bytes

JENKINS_JOBS = Path(sys.executable).parent / "jenkins-jobs"


@pytest.fixture
def small_site(tmp_path) -> Path:
    return write_site(tmp_path / "small")


@pytest.fixture
def bigger_site(tmp_path) -> Path:
    """The small site plus a kernel in kernel-overlay and MPICH on two targets."""
    return write_site(
        tmp_path / "specs",
        PACKAGES
        + [
            package("kernel", "kernel-overlay", ["el9-x86_64", "el9-aarch64"], poll="H */4 * * *"),
            package("mpich", "hpc-overlay", ["el8-x86_64", "el9-x86_64"]),
        ],
    )


@pytest.fixture
def many_site(tmp_path) -> Path:
    """Enough packages that `render` splits the project over worker processes."""
    return write_site(
        tmp_path / "many",
        [
            package(f"pkg{i:02d}", ["hpc-overlay", "kernel-overlay"][i % 2], ["el8-x86_64"])
            for i in range(PARALLEL_MIN_ENTRIES)
        ],
    )


def files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("site", ["sample", "bigger", "many"])
def test_render_is_byte_identical_to_jenkins_jobs_test(site, repo_root, request, tmp_path, capsys):
    specs = (
        repo_root / "overlay_specs" if site == "sample" else request.getfixturevalue(f"{site}_site")
    )
    assert main(["--specs", str(specs), "jobs", "yaml"]) == 0
    jjb_input = tmp_path / "hpcos-jobs.yaml"
    jjb_input.write_text(capsys.readouterr().out)
    upstream = subprocess.run(
        [
            str(JENKINS_JOBS),
            "--conf",
            str(JJB_CONFIG),
            "-l",
            "error",
            "test",
            "--config-xml",
            "-o",
            str(tmp_path / "upstream"),
            str(jjb_input),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upstream.returncode == 0, upstream.stderr
    assert main(["--specs", str(specs), "jobs", "render", "-o", str(tmp_path / "hpcos")]) == 0

    ours, theirs = files(tmp_path / "hpcos"), files(tmp_path / "upstream")
    assert sorted(ours) == sorted(theirs)
    for name in theirs:
        assert ours[name] == theirs[name], name
    assert len(ours) >= 10


def names(spec_set) -> list[str]:
    return [job.name for job in render(project(spec_set))]


def test_job_set_of_the_bigger_site(bigger_site):
    assert names(load_specs(bigger_site)) == [
        "hpcos",
        "hpcos/fastpath-kernel-overlay",
        "hpcos/mirror-sync",
        "hpcos/nightly-integration-tests",
        "hpcos/promote-daily-testing",
        "hpcos/promote-testing-production",
        "hpcos/publish-hpc-overlay",
        "hpcos/publish-kernel-overlay",
        "hpcos/rebuild-kernel-el9-aarch64",
        "hpcos/rebuild-kernel-el9-x86_64",
        "hpcos/rebuild-mpich-el8-x86_64",
        "hpcos/rebuild-mpich-el9-x86_64",
        "hpcos/rebuild-openmpi-el8-x86_64",
        "hpcos/rebuild-openmpi-el9-aarch64",
        "hpcos/rebuild-openmpi-el9-x86_64",
    ]


@pytest.fixture
def sample_xml(small_site) -> dict[str, ET.Element]:
    spec_set = load_specs(small_site)
    return {job.name: ET.fromstring(job.xml) for job in render(project(spec_set))}


def command(job: ET.Element) -> str:
    return job.find("builders/hudson.tasks.Shell/command").text


def test_rebuild_job_polls_upstream_and_builds_on_the_build_label(sample_xml):
    job = sample_xml["hpcos/rebuild-openmpi-el9-aarch64"]
    # Routed to agents of the target's architecture: the site's build label and the arch.
    assert job.findtext("assignedNode") == "rpm-build && aarch64"
    assert (
        sample_xml["hpcos/rebuild-openmpi-el9-x86_64"].findtext("assignedNode")
        == "rpm-build && x86_64"
    )
    # Jenkins' standard mailer tells the package's owner.
    assert job.findtext("publishers/hudson.tasks.Mailer/recipients") == "hpc-sysadmin@example.org"
    assert "hpcos build openmpi --target el9-aarch64 --junit build-junit.xml" in command(job)
    poll = job.find("triggers/org.jenkinsci.plugins.scripttrigger.ScriptTrigger")
    assert poll.findtext("script") == "hpcos build openmpi --target el9-aarch64 --check-upstream"
    assert poll.findtext("exitCode") == "3"  # `--check-upstream` exits 3 when a rebuild is due
    assert poll.findtext("spec") == "H 3 * * *"
    assert poll.findtext("triggerLabel") == "rpm-build && aarch64"
    publish = sample_xml["hpcos/publish-hpc-overlay"]
    assert "hpcos repo publish hpc-overlay" in command(publish)
    assert publish.findtext("triggers/jenkins.triggers.ReverseBuildTrigger/upstreamProjects") == (
        "rebuild-openmpi-el8-x86_64, rebuild-openmpi-el9-x86_64, rebuild-openmpi-el9-aarch64"
    )


def test_promotion_chain_and_nightly(sample_xml):
    sync = sample_xml["hpcos/mirror-sync"]
    assert "hpcos repo sync" in command(sync)
    assert sync.findtext("triggers/hudson.triggers.TimerTrigger/spec") == "H 1 * * *"
    to_testing = sample_xml["hpcos/promote-daily-testing"]
    assert "hpcos repo promote daily testing" in command(to_testing)
    assert to_testing.findtext("triggers/hudson.triggers.TimerTrigger/spec") == "H 2 * * *"

    nightly = sample_xml["hpcos/nightly-integration-tests"]
    assert nightly.findtext("assignedNode") == "test-cluster"
    # After each change of testing: a promotion into it, or the kernel fast path.
    assert (
        nightly.findtext("triggers/jenkins.triggers.ReverseBuildTrigger/upstreamProjects")
        == "promote-daily-testing, fastpath-kernel-overlay"
    )
    script = command(nightly)
    steps = [
        "HPCOS_TESTING_SNAPSHOT=$(hpcos repo status testing --id)",
        "hpcos test --cluster integration_tests/clusters/example-test-cluster.yaml --junitxml junit.xml "
        "--results results.json",
        "hpcos repo record-run results.json",
        "hpcos report ",
    ]
    positions = [script.index(step) for step in steps]
    assert positions == sorted(positions)
    assert (
        nightly.findtext("publishers/hudson.tasks.junit.JUnitResultArchiver/testResults")
        == "junit.xml"
    )
    assert "results.json" in nightly.findtext("publishers/hudson.tasks.ArtifactArchiver/artifacts")

    to_production = sample_xml["hpcos/promote-testing-production"]
    assert to_production.find("triggers") is None  # manual only
    params = to_production.findall(
        "properties/hudson.model.ParametersDefinitionProperty/parameterDefinitions/*"
    )
    assert [(p.tag.rsplit(".", 1)[-1], p.findtext("name")) for p in params] == [
        ("BooleanParameterDefinition", "FORCE"),
        ("StringParameterDefinition", "REASON"),
    ]
    assert 'hpcos repo promote testing production --force --reason "$REASON"' in command(
        to_production
    )

    fastpath = sample_xml["hpcos/fastpath-kernel-overlay"]
    assert 'hpcos repo fastpath kernel-overlay --reason "$REASON"' in command(fastpath)
    assert not any(name.startswith("hpcos/fastpath-hpc") for name in sample_xml)


def test_every_job_of_the_sample_site_carries_the_marker_and_lives_in_the_folder(repo_root):
    spec_set = load_specs(repo_root / "overlay_specs")
    sample = {job.name: ET.fromstring(job.xml) for job in render(project(spec_set))}
    assert sample["hpcos"].tag == "com.cloudbees.hudson.plugins.folder.Folder"
    assert {
        f"hpcos/rebuild-{p.name}-{t}" for p in spec_set.packages.values() for t in p.targets
    } <= set(sample)
    for name, job in sample.items():
        assert marker("emsl-cascade") in job.findtext("description"), name
        assert name == "hpcos" or name.startswith("hpcos/")


def test_no_secret_reaches_yaml_or_xml(repo_root, tmp_path, monkeypatch, capsys):
    secret = "s3cr3t-token-4c9e"
    monkeypatch.setenv("HPCOS_JENKINS_USER", "deployer")
    monkeypatch.setenv("HPCOS_JENKINS_TOKEN", secret)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".netrc").write_text(
        f"machine jenkins.example.org login deployer password {secret}\n"
    )
    assert main(["--specs", str(repo_root / "overlay_specs"), "jobs", "yaml"]) == 0
    assert (
        main(
            [
                "--specs",
                str(repo_root / "overlay_specs"),
                "jobs",
                "render",
                "-o",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    assert secret not in out.out + out.err
    assert all(secret.encode() not in data for data in files(tmp_path / "out").values())


def test_yaml_is_templates_plus_the_generated_project(repo_root):
    spec_set = load_specs(repo_root / "overlay_specs")
    data = yaml.safe_load(jjb_yaml(spec_set))
    kinds = [next(iter(item)) for item in data]
    assert kinds.count("job-template") == 13 and kinds[-1] == "project"
    assert data[-1] == project(spec_set)


def test_split_render_equals_one_process_and_refuses_duplicates(many_site):
    spec_set = load_specs(many_site)
    data = project(spec_set)
    with render_pool(data, workers=2) as pool:
        split = render(data, pool=pool)
        # One process, through the YAML text that plain jenkins-jobs would read.
        assert split == render_yaml(jjb_yaml(spec_set))
        twice = {
            "project": {
                **data["project"],
                "jobs": data["project"]["jobs"] + data["project"]["jobs"][-1:],
            }
        }
        with pytest.raises(RenderError, match="duplicate job name 'hpcos/fastpath-kernel-overlay'"):
            render(twice, pool=pool)


def test_the_workers_digests_are_the_digests_of_the_jobs_they_render(many_site):
    """`jobs update` takes each job's normalised digest from the worker that rendered it; it must
    be the digest the update would compute itself, split over the pool or not."""
    data = project(load_specs(many_site))
    with render_pool(data, workers=2) as pool:
        split = render(data, pool=pool, digests=True)
    alone = _render_part(data, "hpcos-jobs.yaml", None, digests=True)
    assert [(j.name, j.xml) for j in split] == [(j.name, j.xml) for j in alone]
    for job in (*split, *alone):
        assert job.digest is not None and job.digest == normalised_digest(job.xml), job.name
    assert all(job.digest is None for job in render(data))  # not asked for: not computed


def test_jjb_errors_become_one_line_user_errors():
    with pytest.raises(RenderError, match="Unrecognized project-type: nonesuch"):
        render_yaml("- job:\n    name: x\n    project-type: nonesuch\n")
    with pytest.raises(RenderError, match=r"^jobs.yaml:\d+: .*missing"):
        render_yaml(
            "- job-template:\n    name: '{missing}-x'\n- project:\n    name: p\n    jobs: ['{missing}-x']\n",
            "jobs.yaml",
        )


def tree(text: str) -> ET.Element:
    return ET.fromstring(text)


@pytest.mark.parametrize(
    "xml_text",
    [
        (
            '<project><a x="q&quot;uote" y="new&#10;line&#09;tab">'
            "text &amp; &lt;tag&gt; \"q\" 'a'</a><b/><c></c></project>"
        ),
        "<project>lead<a>one</a>tail<b>two</b>  \n  </project>",
        "<project><command>line\r\nline\rend  </command><e>é ü 中 \U0001f600</e></project>",
        "<project><x>   </x><y>\n</y><z a='1' b='2'/></project>",
    ],
)
def test_fast_xml_writer_matches_jjbs_minidom_writer(xml_text):
    root = tree(xml_text)
    if "\r" in xml_text:  # ET's parser already normalised line ends; put raw CRs in the tree
        root.find("command").text = "line\r\nline\rend  "
    assert job_xml_bytes(root, "j") == XmlJob(root, "j").output()


def test_fast_xml_writer_leaves_what_xml_forbids_to_jjb():
    root = tree("<project><a/></project>")
    root.find("a").text = "bell \x07"
    with pytest.raises(Exception) as ours:
        job_xml_bytes(root, "j")
    with pytest.raises(Exception) as theirs:
        XmlJob(root, "j").output()
    assert type(ours.value) is type(theirs.value)
    comment_tree = tree("<project><a/></project>")
    comment_tree.append(ET.Comment(" c "))
    assert job_xml_bytes(comment_tree, "j") == XmlJob(comment_tree, "j").output()


def test_render_cache_returns_the_same_jobs_and_any_input_change_misses(small_site, tmp_path):
    from jobs.rendered import RenderCache, render_key

    data = project(load_specs(small_site))
    jobs = render(data)
    cache = RenderCache(tmp_path / "cache" / "render.json.gz")
    key = render_key(data)
    assert cache.load(key) is None
    cache.save(key, jobs)
    assert cache.load(key) == jobs
    changed = {"project": {**data["project"], "jobs": data["project"]["jobs"][:-1]}}
    assert render_key(changed) != key and cache.load(render_key(changed)) is None
    (tmp_path / "cache" / "render.json.gz").write_bytes(b"damaged")
    assert cache.load(key) is None
