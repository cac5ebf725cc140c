"""One night and the next morning of the process, through the real ``hpcos`` command and the
Jenkins jobs hpcos generates for the site.

Build -> test -> production as the seed describes it, with every real part this machine has:
rpmbuild builds the upstream packages and the site's overlay rebuild, createrepo_c makes the
upstream binary and source repositories, dnf mirrors and queries them, Open MPI runs the MPI test.
Each step is the shell script of the site's rendered Jenkins job (``hpcos jobs render``), run with
bash in an empty workspace as Jenkins would run it; what an administrator does by hand (status,
tickets, diff, report) is a separate ``hpcos`` process:

  mirror-sync -> rebuild-hello (site patch) -> publish -> promote-daily-testing
  -> the test cluster's node (a dnf install root, provisioned from testing by kickstart-like install)
  -> nightly: deploy testing onto the node (distro-sync, verify), test (an os_update check fails: the
     node was provisioned without hello), record-run, report with the package changes
  -> promote-testing-production is refused
  -> a ticket names the node -> a second nightly run that passes -> promote-testing-production
  -> dnf sees the overlay build through the production pointer -> kernel fast path, recorded
  -> a third night deploys the fixed kernel (the node reboots into it) and Open MPI falls back to TCP:
     a performance regression, a ticket, no promotion.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from conftest import REPO, require_tool
from support.deploy_fixtures import deploy_settings, installed, provision
from support.rpm_fixtures import GOOD_PATCH, UpstreamPackage, el_host, file_url, rpm_query
from support.rpm_fixtures import make_repo as make_srpm_repo
from support.rpm_repo_fixtures import Rpm, RpmFactory, make_repo, repoquery_many

TARGET = "el9-x86_64"
OVERLAY_NEVRA = "hello-0:1.0-1.el9.hpc1.x86_64"
BASE_HELLO = Rpm("hello", "1.0", "1.el9", "x86_64")
BASE = [Rpm("alpha", "1.0"), BASE_HELLO, Rpm("kernel", "5.14.0", "1.el9", "x86_64")]
KERNEL_V1 = Rpm("kernel", "5.14.0", "1.el9.hpc1", "x86_64")
KERNEL_V2 = Rpm("kernel", "5.14.0", "2.el9.hpc1", "x86_64")  # the security fix

# Fast tests that pass here, and the os_update check that cannot: the node has no hello installed.
PASSING = "test_hostname or test_rank_count"
FAILING = "test_overlay_packages_are_installed"
# site.yaml's harness.profile: relative to the site's repository, which the nightly job's workspace is not.
PROFILE = "clusters/e2e-cluster.yaml"


def site_yaml(store: Path, upstream: Path) -> dict:
    return {
        "name": "e2e-site",
        "store": {"root": str(store), "keep_snapshots": 20},
        "targets": {TARGET: {"release": 9, "arch": "x86_64", "mock_config": "rocky+epel-9-x86_64"}},
        "mirrors": {
            "baseos": {
                "url": file_url(upstream / "base") + "/{release}/{arch}/",
                "source_url": file_url(upstream / "source") + "/{release}/",
            }
        },
        "overlays": {
            "kernel-overlay": {"description": "site kernel", "fastpath": True},
            "hpc-overlay": {"description": "MPI stacks and friends"},
        },
        "environments": {
            "daily": {"schedule": "H 1 * * *"},
            "testing": {"source": "daily"},
            "production": {"source": "testing", "gate": "nightly"},
        },
        "jenkins": {
            "url": "https://jenkins.example.org/",
            "folder": "hpcos",
            "build_label": "rpm",
            "test_label": "cluster",
        },
        "tracker": {"backend": "local"},
        # The nightly runs here select these (and the required suite must pass for the gate to open).
        "harness": {"profile": PROFILE, "required_tests": ["test_hostname", "test_rank_count"]},
    }


def package_yaml(name: str, overlay: str, patches: list[dict]) -> dict:
    return {
        "name": name,
        "overlay": overlay,
        "upstream": {"mirror": "baseos"},
        "release_tag": ".hpc1",
        "targets": [TARGET],
        "builder": "rpmbuild",
        "owner": "HPC Admins <hpc@example.org>",
        "patches": patches,
        "tests": ["test_rank_count"],
    }


class Site:
    """A site on disk and the ``hpcos`` command run against it, one process per step like Jenkins."""

    def __init__(self, root: Path):
        self.root = root
        self.specs = root / "specs"
        self.store = root / "store"
        self.upstream = root / "upstream"
        self.profile = root / PROFILE  # the specs are root/specs: root is the site's repository
        self.work = root / "workspace"  # the Jenkins job's workspace: results, JUnit, report
        self.work.mkdir(parents=True)
        self.factory = RpmFactory(root / "rpmbuild")

    def set_kernel_build(self, rpm: Rpm) -> None:
        """The kernel overlay's working repository, as ``hpcos build kernel`` leaves it."""
        make_repo(self.factory, self.store / "overlays" / "kernel-overlay" / TARGET, [rpm])

    def hpcos(
        self, *args: str, env: dict | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess:
        # Only what this test gives: the site comes from --specs/--store alone, and a variable from the
        # outer environment would leak into the results.
        environ = {
            k: v
            for k, v in os.environ.items()
            if k not in ("BUILD_URL", "HPCOS_TESTING_SNAPSHOT", "HPCOS_SPECS", "HPCOS_STORE")
        }
        environ.update(env or {})
        argv = [
            sys.executable,
            "-m",
            "hpcos.cli",
            "--specs",
            str(self.specs),
            "--store",
            str(self.store),
            *args,
        ]
        return subprocess.run(
            argv, cwd=self.work, env=environ, capture_output=True, text=True, timeout=timeout
        )

    def ok(self, *args: str, env: dict | None = None) -> str:
        done = self.hpcos(*args, env=env)
        assert done.returncode == 0, (
            f"hpcos {' '.join(args)} exited {done.returncode}:\n{done.stderr}{done.stdout}"
        )
        return done.stdout

    def job(
        self, name: str, workspace: Path, part: str = ".//builders//command", **variables: str
    ) -> subprocess.CompletedProcess:
        """The shell script of the rendered Jenkins job ``name``, run as Jenkins runs it: in an empty
        workspace, the site given through the agent's environment, ``hpcos`` on PATH, the job's
        parameters as environment variables.  ``part``: which script of the job's XML."""
        jobs = self.root / "jobs"
        if not jobs.exists():
            self.ok("jobs", "render", "-o", str(jobs))
        script = ET.parse(jobs / "hpcos" / name / "config.xml").getroot().findtext(part)
        workspace.mkdir()
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("HPCOS_TESTING_SNAPSHOT", "PYTEST_ADDOPTS")
        }
        env.update(
            {
                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                "HPCOS_SPECS": str(self.specs),
                "HPCOS_STORE": str(self.store),
                **variables,
            }
        )
        return subprocess.run(
            ["bash", "-c", script],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def job_ok(self, name: str, **variables: str) -> Path:
        workspace = self.work / f"{name}-{len(list(self.work.iterdir()))}"
        done = self.job(name, workspace, **variables)
        assert done.returncode == 0, (
            f"job {name} exited {done.returncode}:\n{done.stderr}{done.stdout}"
        )
        return workspace

    def env_url(self, env: str, repo: str) -> str:
        return (self.store / "environments" / env / repo).as_uri()


@pytest.fixture
def site(tmp_path: Path) -> Site:
    for tool, package in (
        ("rpmbuild", "rpm"),
        ("createrepo_c", "createrepo-c"),
        ("dnf", "dnf"),
        ("mpicc.openmpi", "libopenmpi-dev"),
        ("mpirun.openmpi", "openmpi-bin"),
    ):
        require_tool(tool, package)
    site = Site(tmp_path)
    make_repo(site.factory, site.upstream / "base" / "9" / "x86_64", BASE)
    srpm = UpstreamPackage(name="hello").build_srpm(tmp_path / "srpm")
    make_srpm_repo(site.upstream / "source" / "9", srpm)

    site.specs.mkdir()
    (site.specs / "site.yaml").write_text(yaml.safe_dump(site_yaml(site.store, site.upstream)))
    patch = {
        "file": "0001-greet-the-site.patch",
        "reason": "Users must see which build they run.",
        "upstream": "https://bugs.example.org/42",
    }
    (site.specs / "hello.yaml").write_text(
        yaml.safe_dump(package_yaml("hello", "hpc-overlay", [patch]))
    )
    (site.specs / "kernel.yaml").write_text(
        yaml.safe_dump(package_yaml("kernel", "kernel-overlay", []))
    )
    (site.specs / "patches" / "hello").mkdir(parents=True)
    (site.specs / "patches" / "hello" / patch["file"]).write_text(GOOD_PATCH)

    profile = yaml.safe_load((REPO / "integration_tests" / "clusters" / "local.yaml").read_text())
    profile["name"] = "e2e-cluster"
    profile["mpi"] = {
        "openmpi": profile["mpi"]["openmpi"]
    }  # the nightly runs here are `--mpi openmpi`
    profile["os_update"] = {
        "environment": "testing",
        "kernel_package": "kernel",
        "packages": ["hello"],
    }
    # The test cluster's one node, "localhost", is a dnf install root (no Slurm on it: drain none).
    site.nodes = tmp_path / "nodes"
    site.nodes.mkdir()
    profile["deploy"] = deploy_settings(site.nodes, drain="none")
    site.profile.parent.mkdir()
    site.profile.write_text(yaml.safe_dump(profile))
    return site


def nightly(
    site: Site, name: str, selection: str, **variables: str
) -> tuple[subprocess.CompletedProcess, dict, Path]:
    """The rendered nightly job; only the test selection is added (through PYTEST_ADDOPTS), to keep this fast."""
    workspace = site.work / name
    done = site.job(
        "nightly-integration-tests",
        workspace,
        BUILD_URL=f"https://jenkins.example.org/{name}/",
        PYTEST_ADDOPTS=f"--mpi openmpi -k '{selection}' -p no:cacheprovider",
        **variables,
    )
    run = json.loads((workspace / "results.json").read_text())
    assert run["testing_snapshot"] == site.ok("repo", "status", "testing", "--id").strip()
    assert run["build_url"] == f"https://jenkins.example.org/{name}/"
    cases = list(ET.parse(workspace / "junit.xml").getroot().iter("testcase"))
    assert len(cases) == len(run["results"]), "one JUnit test case per (test, node) result"
    return done, run, workspace


def test_one_night_and_the_next_morning(site: Site):
    # The day before: production runs the plain mirror (its first deployment, forced with a reason).
    site.job_ok("mirror-sync")
    daily = repoquery_many({"base": site.env_url("daily", f"baseos-{TARGET}")}, site.root / "dnf")[
        "base"
    ]
    assert daily == {"alpha-0:1.0-1.noarch"}, "the mirror leaves out what the overlays replace"
    site.job_ok("promote-daily-testing")
    unforced = site.job(
        "promote-testing-production", site.work / "unforced", FORCE="false", REASON=""
    )
    assert unforced.returncode != 0 and "nightly" in unforced.stderr, unforced.stderr
    site.job_ok("promote-testing-production", FORCE="true", REASON="first deployment")

    # Build phase: rebuild the overlay package with the site patch, publish it, compose testing.

    # The rebuild job's ScriptTrigger starts a build when its script exits 3.
    trigger = ".//triggers//script"
    # The build agent is an EL9 host (rpmbuild builds only for its own distribution): rpm_fixtures.el_host.
    agent = el_host(site.root / "el9-agent")
    due = site.job(f"rebuild-hello-{TARGET}", site.work / "poll-1", part=trigger, **agent)
    assert due.returncode == 3, f"no overlay build yet: a rebuild is due\n{due.stderr}"
    build = site.job_ok(f"rebuild-hello-{TARGET}", **agent)
    junit = ET.parse(build / "build-junit.xml").getroot()
    assert [c.get("name") for c in junit.iter("testcase")] == [
        "source",
        "patch",
        "build",
        "publish",
    ]
    assert junit.get("failures") == "0" and junit.get("errors") == "0"
    current = site.job(f"rebuild-hello-{TARGET}", site.work / "poll-2", part=trigger, **agent)
    assert current.returncode == 0, f"the overlay is current once built\n{current.stderr}"
    site.job_ok("publish-hpc-overlay")
    site.set_kernel_build(KERNEL_V1)
    site.job_ok("publish-kernel-overlay")
    site.job_ok("promote-daily-testing")
    testing = repoquery_many(
        {"o": site.env_url("testing", f"hpc-overlay-{TARGET}")}, site.root / "dnf"
    )["o"]
    assert OVERLAY_NEVRA in testing
    # The node is installed from testing as a provisioning system would (the kickstart's repositories),
    # with the kernel and without hello.
    repo = site.work / "testing.repo"
    site.ok("repo", "client-config", "testing", "--no-gpgcheck", "-o", str(repo))
    provision(site.nodes / "localhost", repo.read_text(), ["alpha", "kernel"])

    # Test phase, night one: the job deploys testing onto the node (nothing to change, verified), then
    # the os_update check fails (hello is not installed on the node).
    done, run, night1 = nightly(site, "night1", f"{PASSING} or {FAILING}")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"localhost: verified on {run['testing_snapshot']}" in done.stderr, done.stderr
    outcomes = {(r["test_id"].split("::")[-1], r["node"]): r["outcome"] for r in run["results"]}
    failed = [key for key, outcome in outcomes.items() if outcome == "failed"]
    assert failed == [(FAILING, "localhost")], outcomes
    assert outcomes[("test_rank_count", "localhost")] == "passed", outcomes
    failure = next(r for r in run["results"] if r["outcome"] == "failed")
    assert (
        "localhost: hello is not installed (testing has 1.0-1.el9.hpc1.x86_64)"
        in failure["message"]
    )

    # The job recorded the run: the gate refuses this testing snapshot, naming it.
    refused = site.hpcos("repo", "promote", "testing", "production")
    assert refused.returncode != 0
    assert run["testing_snapshot"] in refused.stderr and "fail" in refused.stderr.lower(), (
        refused.stderr
    )
    assert "Traceback" not in refused.stderr

    [listed] = json.loads(site.ok("tickets", "list", "--json"))["tickets"]
    assert FAILING in listed["summary"] and listed["status"] == "new", listed
    ticket = site.ok("tickets", "show", "1")
    assert "Nodes (1): localhost" in ticket and run["testing_snapshot"] in ticket, ticket
    assert "localhost: hello is not installed (testing has 1.0-1.el9.hpc1.x86_64)" in ticket, ticket
    assert f"--cluster {site.profile}" in ticket, (
        "the ticket's rerun command must work where the run's did"
    )
    # What the harness found on the node, under a heading that says so (not "in the testing repositories").
    assert (
        f"kernel: {os.uname().release}" in ticket
        and "Versions under test (kernel and MPI launchers" in ticket
    )

    # The job's report: the failing run and what the testing snapshot changes against production.
    changes = json.loads((night1 / "package-changes.json").read_text())
    assert changes["repositories"][f"hpc-overlay-{TARGET}"]["added"] == [OVERLAY_NEVRA]
    html = "\n".join(p.read_text() for p in (night1 / "report").rglob("*.html"))
    assert FAILING in html and "localhost" in html
    assert OVERLAY_NEVRA in html, "the report lists the package changes under test"
    # The same report by run id, as an administrator would ask for it the next morning.
    site.ok("report", run["run_id"], "-o", str(site.work / "report-by-id"))

    # Night two: only tests that pass here; the gate opens for that same testing snapshot.
    done, run2, _ = nightly(site, "night2", PASSING)
    assert done.returncode == 0, done.stdout + done.stderr
    assert run2["testing_snapshot"] == run["testing_snapshot"]
    assert {r["outcome"] for r in run2["results"]} == {"passed"}
    site.job_ok("promote-testing-production", FORCE="false", REASON="")

    # Production: dnf, through the production pointer, sees the site's build and not the base one.
    seen = repoquery_many(
        {
            "base": site.env_url("production", f"baseos-{TARGET}"),
            "overlay": site.env_url("production", f"hpc-overlay-{TARGET}"),
        },
        site.root / "dnf2",
    )
    hellos = {n for repo in seen.values() for n in repo if n.startswith("hello-")}
    assert hellos == {OVERLAY_NEVRA}, seen
    served = next(
        (site.store / "environments" / "production" / f"hpc-overlay-{TARGET}").rglob(
            "hello-*.x86_64.rpm"
        )
    )
    changelog = rpm_query(served, "[%{CHANGELOGTEXT}\n]")
    assert (
        "0001-greet-the-site.patch" in changelog and "https://bugs.example.org/42" in changelog
    ), changelog

    # Security fast path: the fixed kernel goes to testing and production the same day, reason on record.
    site.set_kernel_build(KERNEL_V2)
    site.job_ok("publish-kernel-overlay")
    site.job_ok("fastpath-kernel-overlay", REASON="CVE-2026-0001 in the kernel")
    status = site.ok("repo", "status", "production", env={"COLUMNS": "250"})
    assert "fastpath" in status and "kernel-overlay: CVE-2026-0001 in the kernel" in status, status
    kernels = repoquery_many(
        {env: site.env_url(env, f"kernel-overlay-{TARGET}") for env in ("testing", "production")},
        site.root / "dnf3",
    )
    assert kernels == {"testing": {KERNEL_V2.nevra}, "production": {KERNEL_V2.nevra}}
    assert site.ok("repo", "status", "production", "--id").strip() != run2["testing_snapshot"]

    # Night three: Open MPI falls back to TCP (a realistic fault).  The profile's latency reference
    # catches it, a ticket with the measurement is filed, the gate stays shut.
    done, run3, _ = nightly(site, "night3", "test_pingpong", OMPI_MCA_btl="self,tcp")
    assert done.returncode == 1, done.stdout + done.stderr
    # The deployment put the fixed kernel on the node and rebooted it into it.
    assert "kernel-0:5.14.0-2.el9.hpc1.x86_64" in installed(site.nodes / "localhost")
    assert (
        site.nodes / "localhost" / "run" / "running-kernel"
    ).read_text().strip() == "5.14.0-2.el9.hpc1.x86_64"
    assert len((site.nodes / "localhost" / "var" / "log" / "reboots").read_text().splitlines()) == 1
    [slow] = run3["results"]
    assert (slow["test_id"], slow["mpi"], slow["outcome"], slow["failure_class"]) == (
        "integration_tests/test_mpi.py::test_pingpong",
        "openmpi",
        "failed",
        "performance regression",
    ), slow
    assert "pingpong_latency at 8 B" in slow["message"]
    assert site.hpcos("repo", "promote", "testing", "production").returncode != 0
    ticket = site.ok("tickets", "show", "2")
    assert (
        "performance regression" in ticket
        and "pingpong_latency" in ticket
        and "Nodes (1): localhost" in ticket
    )
