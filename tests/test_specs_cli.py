"""``hpcos specs check`` and ``hpcos specs schema``: what an administrator runs before committing specs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from hpcos.cli import main
from hpcos.core import sourced_yaml


@pytest.fixture
def broken_specs(repo_root, tmp_path) -> Path:
    """The sample site with five mistakes in four files."""
    root = tmp_path / "overlay_specs"
    # A frozen copy of the sample site: these tests pin exact line numbers, which must not move
    # whenever the shipped sample is edited.
    shutil.copytree(repo_root / "tests" / "data" / "specs_site", root)
    for file, old, new in [
        ("site.yaml", "  folder: hpcos\n", "  folder: hpcos\n  token: 5ecr3t-t0ken\n"),
        ("site.yaml", "testing: {source: daily,", "testing: {source: dialy,"),
        ("mpich.yaml", "builder: rpmbuild", "builder: make"),
        ("ucx.yaml", "release_tag: .hpc1", "release_tag: hpc1"),
        ("kernel.yaml", "overlay: kernel-overlay", "overlay: kernel"),
    ]:
        path = root / file
        path.write_text(path.read_text().replace(old, new, 1))
    return root


def test_check_on_a_broken_tree_reports_every_error_one_line_each(broken_specs):
    """Run as the real command: exit 2, one `file:line: field: message` line per error, no traceback."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    proc = subprocess.run(
        [sys.executable, "-m", "hpcos.cli", "--specs", str(broken_specs), "specs", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=broken_specs.parent,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines == [
        "overlay_specs/kernel.yaml:4: overlay: expected one of: hpc-overlay, kernel-overlay; found 'kernel'; "
        "did you mean 'kernel-overlay'?",
        "overlay_specs/mpich.yaml:9: builder: expected one of 'mock', 'rpmbuild'; found 'make'",
        "overlay_specs/site.yaml:42: environments.testing.source: expected one of: daily, production, testing; "
        "found 'dialy'; did you mean 'daily'?",
        "overlay_specs/site.yaml:48: jenkins.token: credentials do not belong in overlay_specs/site.yaml; give "
        "them as HPCOS_JENKINS_USER and HPCOS_JENKINS_TOKEN in the environment, or as a `machine` entry for the "
        "Jenkins host in ~/.netrc",
        "overlay_specs/ucx.yaml:6: release_tag: expected a release tag: a dot, a letter, then letters, digits "
        "or _ (e.g. '.hpc1'); found 'hpc1'",
        f"hpcos: 5 errors in {broken_specs}",
    ]
    assert "5ecr3t-t0ken" not in proc.stderr


def test_check_on_the_sample_site_passes(repo_root, capsys):
    assert main(["--specs", str(repo_root / "overlay_specs"), "specs", "check"]) == 0
    assert "site 'emsl-cascade' and 5 overlay packages are valid" in capsys.readouterr().err


def schema_of(kind: str, capsys) -> dict:
    assert main(["specs", "schema", kind]) == 0
    return json.loads(capsys.readouterr().out)


def sample(repo_root: Path, name: str):
    return sourced_yaml.load(repo_root / "overlay_specs" / name).data


@pytest.mark.parametrize(
    "name", ["kernel.yaml", "rdma-core.yaml", "ucx.yaml", "openmpi.yaml", "mpich.yaml"]
)
def test_sample_packages_validate_against_the_package_schema(repo_root, capsys, name):
    schema = schema_of("package", capsys)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(sample(repo_root, name))


def test_sample_site_validates_against_the_site_schema(repo_root, capsys):
    schema = schema_of("site", capsys)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(sample(repo_root, "site.yaml"))


def test_schema_rejects_a_typo_key_like_the_model_does(repo_root, capsys):
    validator = jsonschema.Draft202012Validator(schema_of("package", capsys))
    package = sample(repo_root, "mpich.yaml")
    package["ownr"] = package.pop("owner")
    messages = sorted(e.message for e in validator.iter_errors(package))
    assert messages == [
        "'owner' is a required property",
        "Additional properties are not allowed ('ownr' was unexpected)",
    ]

    site_validator = jsonschema.Draft202012Validator(schema_of("site", capsys))
    site = sample(repo_root, "site.yaml")
    site["mirrors"]["epel"]["excludes"] = site["mirrors"]["epel"].pop("exclude")
    [error] = site_validator.iter_errors(site)
    assert list(error.absolute_path) == ["mirrors", "epel"]
    assert "'excludes' was unexpected" in error.message


def test_schema_carries_the_rules_an_editor_can_check(capsys):
    """Patterns and choices reach the schema, so an editor flags them while typing."""
    schema = schema_of("package", capsys)
    validator = jsonschema.Draft202012Validator(schema)
    base = {
        "name": "mpich",
        "overlay": "hpc-overlay",
        "upstream": {"mirror": "appstream"},
        "release_tag": ".hpc1",
        "targets": ["el9-x86_64"],
        "owner": "me",
        "tests": ["mpi"],
    }
    validator.validate(base)
    for key, bad in [
        ("release_tag", "hpc1"),
        ("name", "-mpich"),
        ("builder", "make"),
        ("tests", []),
    ]:
        assert list(validator.iter_errors(dict(base, **{key: bad}))), key
    assert schema["properties"]["tests"]["description"].startswith(
        "Integration tests (pytest -k expressions)"
    )


def test_check_refuses_a_tests_expression_that_selects_no_test_of_the_suite(repo_root, tmp_path):
    """The suite is collected with pytest on the site's test-cluster profile, parameters included:
    `rank_count and mpich` selects test_rank_count[mpich]; `mpi_rank_count` (what the sample once
    said) selects nothing, and the gate would refuse every MPICH update for want of it."""
    root = tmp_path / "overlay_specs"
    shutil.copytree(repo_root / "overlay_specs", root)
    env = dict(os.environ, PYTHONPATH=str(repo_root), XDG_CACHE_HOME=str(tmp_path / "cache"))
    argv = [sys.executable, "-m", "hpcos.cli", "--specs", str(root), "specs", "check"]
    good = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, cwd=repo_root)
    assert good.returncode == 0, good.stderr
    mpich = root / "mpich.yaml"
    mpich.write_text(mpich.read_text().replace('"rank_count and mpich"', '"mpi_rank_count"'))
    bad = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, cwd=repo_root)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    [line] = [x for x in bad.stderr.splitlines() if "mpich.yaml" in x]
    assert line.startswith(f"{root / 'mpich.yaml'}:") or line.startswith(
        "overlay_specs/mpich.yaml:"
    ), line
    assert (
        "tests[1]: expected an expression that selects a test of the suite; 'mpi_rank_count' selects none of "
        "the"
        in line
        and "collected on profile example-test-cluster.yaml" in line
    ), line
    # jobs render checks the same, so no job is rendered for a package the gate could never pass.
    render = subprocess.run(
        [*argv[:-2], "jobs", "render", "-o", str(tmp_path / "jobs")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=repo_root,
    )
    assert render.returncode == 2 and "'mpi_rank_count' selects none" in render.stderr, (
        render.stderr
    )
    assert not (tmp_path / "jobs").exists()
