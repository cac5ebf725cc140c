"""No spec or profile value reaches a shell, JJB or rpm as syntax.

Each test plants a value that, if it were ever interpreted, would create a marker file; it then renders
or runs the real thing (the Jenkins job's shell step, rpmbuild, the node command line) and shows that
the marker never appears and the value arrives as the literal text it was.  The models refuse such
values in the first place (``hpcos specs check`` / profile loading: one line, exit 2); the quoting
tests bypass the model on purpose, so that each layer is shown to hold on its own.
"""

from __future__ import annotations

import shlex
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from conftest import require_tool
from support.jobs_site import PACKAGES, write_site

from hpcos.cli import main
from hpcos.cluster.launchers.base import with_env
from hpcos.cluster.profiles import load_profile
from hpcos.core.sourced_yaml import InvalidInput
from hpcos.probes import ib_checks
from hpcos.site.specs import Harness, SpecSet, load_specs
from jobs.job_definitions import project
from jobs.render import render


def _site(
    tmp_path: Path, site_changes: dict | None = None, package_changes: dict | None = None
) -> Path:
    root = write_site(tmp_path / "specs", [{**PACKAGES[0], **(package_changes or {})}])
    if site_changes:
        site = yaml.safe_load((root / "site.yaml").read_text())
        for dotted, value in site_changes.items():
            *parents, last = dotted.split(".")
            node = site
            for key in parents:
                node = node[key]
            node[last] = value
        (root / "site.yaml").write_text(yaml.safe_dump(site, sort_keys=False))
    return root


def _job(jobs, suffix: str) -> ET.Element:
    return ET.fromstring(next(j for j in jobs if j.name.endswith(suffix)).xml)


def _shell_step(jobs, suffix: str) -> str:
    return _job(jobs, suffix).find(".//hudson.tasks.Shell/command").text


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("harness.profile", "x.yaml; touch PWNED #", "harness.profile: expected a path"),
        ("harness.profile", "{folder}.yaml", "harness.profile: expected a path"),
        ("jenkins.test_label", "lab{folder}", "jenkins.test_label: expected a Jenkins label"),
        (
            "jenkins.build_label",
            "rpm'; touch PWNED",
            "jenkins.build_label: expected a Jenkins label",
        ),
        (
            "environments.daily.schedule",
            "H 1 * * * {folder}",
            "environments.daily.schedule: expected a Jenkins cron",
        ),
        (
            "environments.daily.schedule",
            "H 1 * * *\nH 2 * * *",
            "environments.daily.schedule: expected a Jenkins cron",
        ),
        (
            "environments.testing.schedule",
            "every day",
            "environments.testing.schedule: expected a Jenkins cron",
        ),
        ("targets.el9-x86_64.mock_config", "rocky-9; touch PWNED", "mock_config: expected a path"),
    ],
)
def test_specs_check_refuses_shell_and_template_syntax_in_site_fields(
    tmp_path, capsys, field, value, expected
):
    root = _site(tmp_path, {field: value})
    assert main(["--specs", str(root), "specs", "check"]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert any(
        line.startswith("specs/site.yaml:") and expected in line for line in err.splitlines()
    )


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (
            "owner",
            "Admin\x07 <a@example.org>",
            "owner: expected printable text without control characters",
        ),
        ("poll", "H 3 * * *; touch PWNED", "poll: expected a Jenkins cron spec"),
        ("poll", "{folder} 3 * * *", "poll: expected a Jenkins cron spec"),
    ],
)
def test_specs_check_refuses_bad_package_fields(tmp_path, capsys, field, value, expected):
    root = _site(tmp_path, package_changes={field: value})
    assert main(["--specs", str(root), "specs", "check"]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_jjb_braces_in_free_text_stay_literal_and_a_lone_brace_renders(tmp_path):
    """JJB formats every substituted value again: `{folder}` in an owner would become the folder name."""
    owner = "Ops {folder} team {{x}} { <ops@example.org>"
    root = _site(tmp_path, package_changes={"owner": owner})
    jobs = render(project(load_specs(root)))
    description = _job(jobs, "rebuild-openmpi-el9-x86_64").find("description").text
    assert f"Owner: {owner};" in description


def test_the_nightly_shell_step_passes_a_hostile_profile_as_one_word(tmp_path):
    """Even a profile path the model would refuse (model bypassed here) runs nothing in the job's shell."""
    root = _site(tmp_path)
    specs = load_specs(root)
    hostile = "x.yaml; touch PWNED #"
    site = specs.site.model_copy(
        update={"harness": Harness.model_construct(profile=hostile, results_db="results.sqlite")}
    )
    jobs = render(project(SpecSet(specs.root, site, specs.packages)))
    script = _shell_step(jobs, "nightly-integration-tests")

    # The job's own shell step, run by bash as Jenkins would, with an `hpcos` that records its arguments.
    work = tmp_path / "workspace"
    bin_dir = work / "bin"
    bin_dir.mkdir(parents=True)
    fake = bin_dir / "hpcos"
    fake.write_text(
        '#!/bin/bash\nprintf "%s\\n" "$*" >> "$(dirname "$0")/../calls"\n'
        '[ "$1 $2" = "repo status" ] && echo snap-1\nexit 0\n'
    )
    fake.chmod(0o755)
    step = work / "step.sh"
    step.write_text(script)
    proc = subprocess.run(
        ["bash", str(step)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert not (work / "PWNED").exists()
    calls = (work / "calls").read_text().splitlines()
    assert f"test --cluster {hostile} --junitxml junit.xml --results results.json" in calls


def test_a_lone_brace_in_owner_renders(tmp_path):
    root = _site(tmp_path, package_changes={"owner": "ops { <ops@example.org>"})
    assert main(["--specs", str(root), "jobs", "render", "-o", str(tmp_path / "out")]) == 0


PROFILE = """\
name: tiny
launcher: local
nodes: localhost
mpi:
  openmpi: {mpicc: mpicc, mpirun: [mpirun], env: {OMPI_MCA_x: "1"}}
infiniband:
  devices: [mlx5_0]
  perftest: {peer: node01, device: mlx5_0, extra_args: [-F, --iters=100]}
"""


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("  openmpi: {", "  'openmpi;touch PWNED': {", "mpi"),
        ("devices: [mlx5_0]", "devices: ['mlx5_0;touch PWNED']", "infiniband.devices[0]"),
        ("peer: node01", "peer: 'node01;touch PWNED'", "infiniband.perftest.peer"),
        ("peer: node01", "peer: -oProxyCommand=touch", "infiniband.perftest.peer"),
        ("device: mlx5_0,", "device: '$(touch PWNED)',", "infiniband.perftest.device"),
        (
            "extra_args: [-F,",
            "extra_args: ['-F; touch PWNED',",
            "infiniband.perftest.extra_args[0]",
        ),
        ("OMPI_MCA_x:", "'X=1; touch PWNED;':", "mpi.openmpi.env"),
        ("nodes: localhost", "nodes: '-oProxyCommand=touch_PWNED'", "nodes"),
    ],
)
def test_profile_refuses_shell_syntax_in_node_side_fields(tmp_path, old, new, field):
    assert old in PROFILE
    path = tmp_path / "p.yaml"
    path.write_text(PROFILE.replace(old, new))
    with pytest.raises(InvalidInput) as err:
        load_profile(path)
    message = str(err.value)
    assert message.startswith(f"{path}:") and f": {field}" in message and "\n" not in message


def test_the_good_profile_loads(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(PROFILE)
    profile = load_profile(path)
    assert profile.infiniband.perftest.extra_args == ["-F", "--iters=100"]


def test_perftest_command_quotes_every_profile_value(tmp_path):
    """Built from values the model would refuse (bypassed here): the shell sees each as one word."""
    hostile = f"$(touch {tmp_path}/PWNED)"
    tool = tmp_path / "ib_fake"
    tool.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    tool.chmod(0o755)
    line = ib_checks.perftest_command(
        str(tool),
        device=hostile,
        server=f"peer;touch {tmp_path}/PWNED2",
        extra=[f"`touch {tmp_path}/PWNED3`"],
        json=False,
    )
    proc = subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=30)
    assert proc.stdout.splitlines() == [
        "-d",
        hostile,
        f"`touch {tmp_path}/PWNED3`",
        f"peer;touch {tmp_path}/PWNED2",
    ]
    assert not list(tmp_path.glob("PWNED*"))


def test_with_env_refuses_a_variable_name_that_is_shell_syntax(tmp_path):
    with pytest.raises(ValueError, match="environment variable name"):
        with_env(["true"], {f"X=1; touch {tmp_path}/PWNED; Y": "1"})
    assert not list(tmp_path.glob("PWNED*"))
    assert with_env(["echo", "a b"], {"A": "$(x)"}) == f"export A={shlex.quote('$(x)')}; echo 'a b'"


# --- rpm macros -------------------------------------------------------------------------------------


@pytest.fixture
def rpm_tools():
    for tool, debian in (
        ("rpmbuild", "rpm"),
        ("createrepo_c", "createrepo-c"),
        ("gcc", "gcc"),
        ("make", "make"),
    ):
        require_tool(tool, debian)


def test_rpm_macros_in_reason_upstream_and_owner_are_literal_text(tmp_path, rpm_tools):
    """`%(cmd)` in a patch's reason would run on the build host during `rpmbuild -bs`, outside mock."""
    from support.rpm_fixtures import GOOD_PATCH, UpstreamPackage, make_site, rpm_query

    base = UpstreamPackage().build_srpm(tmp_path)
    marker = tmp_path / "PWNED"
    reason = f"Needed at 100% load: %(touch {marker}) and %{{?dist}} stay text."
    upstream = f"https://bugs.example.org/%(touch {marker}2)"
    make_site(
        tmp_path / "specs",
        {
            "name": "hello",
            "upstream": {"srpm_path": str(base)},
            "owner": "Ops%{_bindir} 100% <ops@example.org>",
            "patches": [{"file": "0001-greet.patch", "reason": reason, "upstream": upstream}],
        },
        {"0001-greet.patch": GOOD_PATCH},
    )
    store = tmp_path / "store"
    assert (
        main(
            [
                "--specs",
                str(tmp_path / "specs"),
                "--store",
                str(store),
                "build",
                "hello",
                "--target",
                "el9-x86_64",
                "--allow-foreign-host",
            ]
        )
        == 0
    )
    assert not list(tmp_path.glob("PWNED*"))
    srpm = next(store.rglob("hello-*.src.rpm"))
    changelog = rpm_query(srpm, "[%{changelogtext}\n]")
    assert f"- 0001-greet.patch: {reason} ({upstream})" in changelog
    assert rpm_query(srpm, "%{changelogname}").startswith("Ops%{_bindir} 100% <ops@example.org>")


def test_a_patch_file_name_with_rpm_or_shell_syntax_is_refused(tmp_path, capsys):
    root = _site(
        tmp_path,
        package_changes={
            "patches": [{"file": "%(touch PWNED).patch", "reason": "A reason long enough."}]
        },
    )
    assert main(["--specs", str(root), "specs", "check"]) == 2
    assert "patches[0].file: expected a patch file name" in capsys.readouterr().err


def test_the_shipped_specs_and_profiles_still_load(repo_root):
    assert load_specs(repo_root / "overlay_specs").site.harness.profile
    for path in (repo_root / "integration_tests" / "clusters").glob("*.yaml"):
        load_profile(path)


def test_plain_jenkins_jobs_reads_the_escaped_values_back_as_written(tmp_path, capsys):
    """`hpcos jobs yaml` feeds upstream `jenkins-jobs test` too: the doubled braces come out single."""
    import sys

    from jobs.render import JJB_CONFIG

    owner = "Ops {folder} { <ops@example.org>"
    root = _site(tmp_path, package_changes={"owner": owner})
    assert main(["--specs", str(root), "jobs", "yaml"]) == 0
    (tmp_path / "jobs.yaml").write_text(capsys.readouterr().out)
    jenkins_jobs = Path(sys.executable).parent / "jenkins-jobs"
    done = subprocess.run(
        [
            str(jenkins_jobs),
            "--conf",
            str(JJB_CONFIG),
            "-l",
            "error",
            "test",
            "--config-xml",
            "-o",
            str(tmp_path / "out"),
            str(tmp_path / "jobs.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    xml = next((tmp_path / "out").rglob("rebuild-openmpi-el9-x86_64/config.xml")).read_text()
    assert f"Owner: {owner.replace('<', '&lt;').replace('>', '&gt;')};" in xml
