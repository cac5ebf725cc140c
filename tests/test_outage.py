"""The production phase end to end: plan the outage from what the test cluster measured, put the plan
on a real Trac wiki, roll it out on simulated production nodes (one of which fails), append the actuals.

Real parts: packages built with rpmbuild (with changelogs), repositories and snapshots made by hpcos
itself (dnf reposync, createrepo_c), an updateinfo.xml added to the upstream mirror with modifyrepo_c,
nodes that are dnf install roots (real ``dnf distro-sync``), a real Slurm with four node names for
drain and resume, a stock Trac 1.6 on loopback for the wiki page, the local tracker for tickets.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
import yaml
from conftest import require_tool
from support.deploy_fixtures import deploy_settings, installed, profile_yaml, provision
from support.gate_fixtures import harness_night
from support.rpm_repo_fixtures import Rpm, RpmFactory, make_site
from support.slurm_nodes_fixture import slurm_nodes  # noqa: F401  (fixture)

from hpcos.cli import main
from hpcos.cluster.profiles import load_profile
from hpcos.core.environment import launch_environment
from hpcos.core.store_layout import StoreLayout
from hpcos.outage import rollout
from hpcos.outage.plan import OutagePlan, jobs_lines
from hpcos.repo import deployments
from hpcos.results.model import RunResults, TestResult
from hpcos.site import Site

BASE = [Rpm("alpha", "1.0"), Rpm("beta", "1.0")]
HPC_A = [Rpm("openmpi", "4.1.1", "1.hpc1", "x86_64", changelog="site build of 4.1.1")]
HPC_B = [
    Rpm(
        "openmpi",
        "4.1.2",
        "1.hpc1",
        "x86_64",
        changelog="btl/tcp: fix a hang on connection refused",
    )
]
KERNEL_A = [
    Rpm("kernel", "5.14.0", "1.hpc1", "x86_64", changelog="site kernel with the ucma backlog patch")
]
KERNEL_B = [
    Rpm("kernel", "5.14.0", "2.hpc1", "x86_64", changelog="CVE-2026-0001: net/sched use-after-free")
]
BLOCKER = Rpm("site-blocker", "1.0", conflicts="openmpi >= 4.1.2")
PACKAGES = ["alpha", "beta", "openmpi", "kernel"]
ADVISORY = "RLSA-2026:0101"

UPDATEINFO = f"""<?xml version="1.0" encoding="UTF-8"?>
<updates>
  <update from="errata@example.org" status="final" type="security" version="2">
    <id>{ADVISORY}</id>
    <title>Important: kernel security update</title>
    <issued date="2026-11-29 00:00:00"/>
    <severity>Important</severity>
    <references><reference href="https://cve.example.org/CVE-2026-0001" id="CVE-2026-0001" type="cve"/></references>
    <pkglist><collection short="el9">
      <package name="kernel" version="5.14.0" release="2" epoch="0" arch="x86_64" src="kernel-5.14.0-2.src.rpm">
        <filename>kernel-5.14.0-2.x86_64.rpm</filename></package>
    </collection></pkglist>
  </update>
  <update from="errata@example.org" status="final" type="bugfix" version="2">
    <id>RLBA-2026:0999</id><title>beta bug fix</title><issued date="2026-11-29 00:00:00"/>
    <pkglist><collection short="el9">
      <package name="beta" version="9.0" release="1" epoch="0" arch="noarch" src="beta-9.0-1.src.rpm">
        <filename>beta-9.0-1.noarch.rpm</filename></package>
    </collection></pkglist>
  </update>
</updates>
"""


def hpcos(site, *args: str) -> int:
    return main(["--specs", str(site.specs), "--store", str(site.store), *args])


def profile(path, name: str, nodes_dir, nodes: str, inventory: dict, batch_size: int) -> str:
    path.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "launcher": "local",
                "nodes": nodes,
                "node_class": "simulated",
                "os_update": {"kernel_package": "kernel", "packages": ["openmpi"]},
                "deploy": deploy_settings(nodes_dir, batch_size=batch_size),
                "inventory": inventory,
            }
        )
    )
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def site(tmp_path, slurm_nodes, monkeypatch, tracd):  # noqa: F811
    for tool, package in (
        ("rpmbuild", "rpm"),
        ("createrepo_c", "createrepo-c"),
        ("modifyrepo_c", "createrepo-c"),
        ("dnf", "dnf"),
    ):
        require_tool(tool, package)
    monkeypatch.setenv("SLURM_CONF", str(slurm_nodes.conf))
    monkeypatch.setenv("HPCOS_TRACKER_USER", tracd.user)
    monkeypatch.setenv("HPCOS_TRACKER_PASSWORD", tracd.password)
    slurm_nodes.resume_all()
    site = make_site(RpmFactory(tmp_path / "rpmbuild"), tmp_path)
    with open(site.specs / "site.yaml", "a") as site_yaml:
        site_yaml.write(
            f"wiki: {{backend: trac, url: '{tracd.url}', page: 'Outages/{{snapshot}}'}}\n"
        )
    text = (
        (site.specs / "site.yaml")
        .read_text()
        .replace(
            "harness: {profile: profile.yaml}",
            "harness: {profile: test.yaml, production_profile: prod.yaml, required_tests: [test_hostname]}",
        )
    )
    (site.specs / "site.yaml").write_text(text)
    for package in (
        "openmpi.yaml",
        "kernel.yaml",
    ):  # the required suite: what the nightly run below selects
        (site.specs / package).write_text(
            (site.specs / package).read_text().replace('["mpi"]', "[test_hostname]")
        )
    # Snapshot A everywhere: testing, then production.
    site.set_upstream("base", BASE)
    site.set_overlay("hpc-overlay", HPC_A)
    site.set_overlay("kernel-overlay", KERNEL_A)
    for step in (
        ["sync"],
        ["publish", "hpc-overlay"],
        ["publish", "kernel-overlay"],
        ["promote", "daily", "testing"],
        ["promote", "testing", "production", "--force", "--reason", "first production snapshot"],
    ):
        assert hpcos(site, "repo", *step) == 0
    # The clusters: the test cluster has two compute nodes; production has more, a GPU class and newer
    # HCA firmware -- deviations planted on purpose.
    site.test_nodes, site.prod_nodes = tmp_path / "test-nodes", tmp_path / "prod-nodes"
    site.test_nodes.mkdir()
    site.prod_nodes.mkdir()
    hca = {"model": "MT_0000000223", "rate": 200}
    site.test_sha = profile(
        site.specs.parent / "test.yaml",
        "test-cluster",
        site.test_nodes,
        "node[1-2]",
        {
            "classes": {
                "compute": {
                    "nodes": "node[1-2]",
                    "cpu_model": "AMD EPYC 7763 64-Core Processor",
                    "hca": {**hca, "firmware": "20.35.1012"},
                }
            }
        },
        batch_size=2,
    )
    profile(
        site.specs.parent / "prod.yaml",
        "production-cluster",
        site.prod_nodes,
        "node[1-4]",
        {
            "classes": {
                "compute": {
                    "nodes": "node[1-3]",
                    "cpu_model": "AMD EPYC 7763 64-Core Processor",
                    "hca": {**hca, "firmware": "20.37.1014"},
                },
                "gpu-a100": {
                    "nodes": "node4",
                    "cpu_model": "AMD EPYC 7763 64-Core Processor",
                    "hca": {**hca, "firmware": "20.37.1014"},
                    "gpus": ["NVIDIA A100-SXM4-80GB"],
                    "roles": ["compute", "gpu"],
                },
            }
        },
        batch_size=2,
    )
    repo = tmp_path / "a.repo"
    assert hpcos(site, "repo", "client-config", "testing", "--no-gpgcheck", "-o", str(repo)) == 0
    for node in ("node1", "node2"):
        provision(site.test_nodes / node, repo.read_text(), PACKAGES)
    for node in ("node1", "node2", "node3", "node4"):
        provision(site.prod_nodes / node, repo.read_text(), PACKAGES)
    # node3 of production carries a package that conflicts with the new Open MPI: it will fail.
    blocker = site.factory.path(BLOCKER)
    subprocess.run(
        ["rpm", "--root", str(site.prod_nodes / "node3"), "-i", "--nodeps", str(blocker)],
        check=True,
        capture_output=True,
        timeout=60,
        env=launch_environment(),
    )  # the launcher's HOME: ~/.rpmdb
    # Snapshot B: a new kernel (with a security advisory upstream) and a new Open MPI, the older build
    # kept beside it in the overlay (production's 4.1.1 is updated, not "added" beside itself).
    site.set_overlay("hpc-overlay", HPC_A + HPC_B)
    site.set_overlay("kernel-overlay", KERNEL_B)
    base_dir = site.upstream / "base" / "9" / "x86_64"
    (tmp_path / "updateinfo.xml").write_text(UPDATEINFO)
    subprocess.run(
        [
            "modifyrepo_c",
            "--mdtype=updateinfo",
            str(tmp_path / "updateinfo.xml"),
            str(base_dir / "repodata"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    for step in (
        ["sync"],
        ["publish", "hpc-overlay"],
        ["publish", "kernel-overlay"],
        ["promote", "daily", "testing"],
    ):
        assert hpcos(site, "repo", *step) == 0
    site.snapshot_b = StoreLayout(site.store).environments.joinpath("testing").resolve().name
    site.tracd = tracd
    yield site
    slurm_nodes.resume_all()


def nightly_run(site, tmp_path) -> None:
    """The night after the test cluster got snapshot B: every required test passed on both nodes, one
    other test failed earlier and left a ticket open."""
    failing = RunResults(
        run_id="night-0",
        cluster="test-cluster",
        started="2026-11-30T02:00:00+00:00",
        finished="2026-11-30T02:40:00+00:00",
        testing_snapshot=site.snapshot_b,
        profile_sha256=site.test_sha,
        results=[
            TestResult(
                "integration_tests/test_infiniband.py::test_port_rate",
                "node2",
                "failed",
                message="AssertionError: mlx5_0 port 1 rate 100 Gb/s, expected 200",
            )
        ],
    )
    failing.write(tmp_path / "night0.json")
    assert hpcos(site, "tickets", "file", str(tmp_path / "night0.json"), "--backend", "local") == 0
    # The run starts after the deployment it relies on (the gate checks the order).
    start = datetime.now(UTC) + timedelta(seconds=1)
    passing = RunResults(
        run_id="night-1",
        cluster="test-cluster",
        started=start.isoformat(),
        finished=(start + timedelta(minutes=42)).isoformat(),
        testing_snapshot=site.snapshot_b,
        profile_sha256=site.test_sha,
        results=[
            TestResult(f"integration_tests/test_mpi.py::{name}", node, "passed")
            for name in ("test_rank_count", "test_pingpong")
            for node in ("node1", "node2")
        ],
    )
    passing.write(tmp_path / "night1.json")
    # Recorded by hand, it feeds the plan's durations (its 42 minutes) but cannot open the gate ...
    assert hpcos(site, "repo", "record-run", str(tmp_path / "night1.json")) == 0
    # ... which the harness's own run of the required suite on the test cluster does.
    harness_night(
        site.specs,
        site.store,
        site.specs.parent / "test.yaml",
        site.snapshot_b,
        tmp_path / "night2.json",
        "-k",
        "test_hostname",
    )


def wiki_versions(tracd, page: str) -> int:
    history = requests.get(
        f"{tracd.url}/wiki/{page}", params={"action": "history"}, timeout=30
    ).text
    return len(set(re.findall(r"version=(\d+)", history)))


def test_plan_rollout_and_report(site, tmp_path, capsys):
    # The test phase practises the procedure on snapshot B: that is where the durations come from.
    assert hpcos(site, "deploy", "testing", "--cluster", str(site.specs.parent / "test.yaml")) == 0
    nightly_run(site, tmp_path)

    assert (
        hpcos(site, "outage", "plan", "--window", "2026-12-08T08:00", "-o", str(tmp_path / "plan"))
        == 0
    )
    markdown = capsys.readouterr().out
    plan = OutagePlan.from_json((tmp_path / "plan" / "plan.json").read_text())
    assert (
        plan.testing_snapshot == site.snapshot_b
        and plan.production_nodes == 4
        and plan.batch_size == 2
    )
    changed = {c.package: c for c in plan.changes}
    kernel, openmpi = changed["kernel.x86_64"], changed["openmpi.x86_64"]
    assert (kernel.old, kernel.new) == ("0:5.14.0-1.hpc1", "0:5.14.0-2.hpc1")
    assert (openmpi.old, openmpi.new) == ("0:4.1.1-1.hpc1", "0:4.1.2-1.hpc1")
    assert kernel.changelog[0].text == "- CVE-2026-0001: net/sched use-after-free"
    assert openmpi.changelog[0].text == "- btl/tcp: fix a hang on connection refused"
    assert [a.id for a in kernel.advisories] == [ADVISORY] and kernel.advisories[0].references == (
        "CVE-2026-0001",
    )
    assert not openmpi.advisories and "RLBA-2026:0999" not in markdown  # beta did not change
    assert (
        ADVISORY in markdown and "CVE-2026-0001" in markdown and "btl/tcp: fix a hang" in markdown
    )
    # The rollback section says what the rollback deploy does with the kernel this outage installs
    # (tests/test_deploy_slurm.py does it on nodes that keep their boot default as EL9 does).
    assert plan.rollback[0].startswith("hpcos repo rollback production")
    [kernel_step] = [line for line in plan.rollback if line.startswith("#   kernel ")]
    assert kernel_step.startswith("#   kernel 0:5.14.0-2.hpc1 -> 0:5.14.0-1.hpc1:"), kernel_step
    assert (
        "sets the boot default back" in kernel_step
        and "removes kernel 0:5.14.0-2.hpc1" in kernel_step
    )
    assert "#   kernel 0:5.14.0-2.hpc1 -> 0:5.14.0-1.hpc1" in markdown
    # Every planted deviation is a risk, and so is the open ticket.
    risks = [f"{r.kind}: {r.text}" for r in plan.risks]
    assert any(r.startswith("node class never tested: gpu-a100") for r in risks), risks
    assert any("hca firmware: test 20.35.1012, production 20.37.1014" in r for r in risks), risks
    assert any(r.startswith("scale: cluster: nodes: test 2, production 4") for r in risks), risks
    assert any(
        r.startswith(
            "ticket: open ticket #1 (integration_tests/test_infiniband.py::test_port_rate)"
        )
        for r in risks
    ), risks
    # Durations: the test deploy's slowest node per task, once per production batch (4 nodes, 2 at a time).
    [record] = [
        r for r in deployments.records(StoreLayout(site.store)) if r.cluster == "test-cluster"
    ]
    for task in plan.tasks[:-1]:
        seconds = [
            n.durations[task.task] for n in record.nodes.values() if task.task in n.durations
        ]
        assert task.production_seconds == pytest.approx(max(seconds) * 2), task
    assert plan.tasks[-1].production_seconds == pytest.approx(
        42 * 60
    )  # the nightly run's 42 minutes
    assert plan.window_end is not None and plan.window_start == "2026-12-08T08:00"
    # The window holds what happens out of service; the .repo file and the download come before it.
    before = {
        t.task: t.production_seconds for t in plan.tasks if t.task in deployments.IN_SERVICE_TASKS
    }
    assert plan.before_window_seconds == pytest.approx(sum(before.values()))
    assert plan.window_seconds == pytest.approx(
        sum(t.production_seconds for t in plan.tasks if t.task not in before)
    )
    # The cost line: node-hours as an outage (4 nodes for the window); rolling not measured on this site.
    assert (
        plan.cost[0].startswith("outage: 4 nodes x ")
        and "node-hours out of service" in plan.cost[0]
    ), plan.cost
    assert plan.cost[1].startswith("rolling: not measured (test-cluster has no verified"), plan.cost
    assert plan.cost[2] == "jobs: none running on production-cluster's nodes now", plan.cost

    # The page on Trac; a second plan (the outage moved a day) updates it in place: one new version,
    # no second page.
    page = f"Outages/{site.snapshot_b}"
    assert "Outage plan" in requests.get(f"{site.tracd.url}/wiki/{page}", timeout=30).text
    before = wiki_versions(site.tracd, page)
    assert hpcos(site, "outage", "plan", "--window", "2026-12-09T08:00") == 0
    assert wiki_versions(site.tracd, page) == before + 1
    index = requests.get(f"{site.tracd.url}/wiki/TitleIndex", timeout=30).text
    assert index.count(f'/wiki/{page}"') == 1

    # Production takes snapshot B through the gate, then the rollout: node3 cannot install.
    assert hpcos(site, "repo", "promote", "testing", "production") == 0
    capsys.readouterr()
    plan_file = site.store / "outages" / site.snapshot_b / "plan.json"
    # Nobody accepted the plan's risks yet: the rollout is refused, nothing is touched.
    assert hpcos(site, "outage", "run", "--plan", str(plan_file), "--no-tests") == 2
    assert "risk(s) of the plan were not accepted by a named person" in capsys.readouterr().err
    assert not [
        r for r in deployments.records(StoreLayout(site.store)) if r.cluster == "production-cluster"
    ]
    assert hpcos(site, "outage", "accept", "--plan", str(plan_file), "--by", "Dana Manager") == 0
    accepted = OutagePlan.from_json(plan_file.read_text())
    assert accepted.acceptance["by"] == "Dana Manager" and not accepted.unaccepted_risks()
    assert len(accepted.acceptance["risks"]) == len(plan.risks)
    text = requests.get(f"{site.tracd.url}/wiki/{page}", params={"format": "txt"}, timeout=30).text
    assert "Accepted by Dana Manager on " in text, text
    capsys.readouterr()
    assert hpcos(site, "outage", "run", "--plan", str(plan_file), "--no-tests") == 1
    shown = capsys.readouterr()
    for node in ("node1", "node2", "node4"):
        assert "openmpi-0:4.1.2-1.hpc1.x86_64" in installed(site.prod_nodes / node)
    assert "openmpi-0:4.1.1-1.hpc1.x86_64" in installed(site.prod_nodes / "node3")
    assert "1 node(s) failed" in shown.err
    actuals = rollout.latest(Site.from_options(site.specs, site.store), site.snapshot_b)
    # The plan agreed with the rollout: the nodes it counted are the nodes deployed, and every package
    # row's new version is what the verified nodes run.
    [prod] = [
        r for r in deployments.records(StoreLayout(site.store)) if r.cluster == "production-cluster"
    ]
    assert len(prod.nodes) == plan.production_nodes
    for change in (c for c in plan.changes if c.new):
        name, arch = change.package.rsplit(".", 1)
        for node in prod.verified_nodes:
            assert f"{name}-{change.new}.{arch}" in installed(site.prod_nodes / node), (
                change,
                node,
            )
    assert set(actuals.failed) == {"node3"} and "distro_sync" in actuals.tasks
    assert len(actuals.tickets) == 1 and actuals.tickets[0].endswith("created"), actuals.tickets
    capsys.readouterr()
    assert hpcos(site, "tickets", "list", "--json") == 0
    tickets = json.loads(capsys.readouterr().out)["tickets"]
    assert any("node3" in t["summary"] for t in tickets), tickets

    # The actuals go under the plan on the wiki page, as a new version of the same page.
    before = wiki_versions(site.tracd, page)
    assert hpcos(site, "outage", "report", "--plan", str(plan_file)) == 0
    text = requests.get(f"{site.tracd.url}/wiki/{page}", params={"format": "txt"}, timeout=30).text
    assert wiki_versions(site.tracd, page) == before + 1
    assert "planned against actual" in text and "node3" in text and "Outage plan" in text


def test_a_plan_is_refused_for_a_rollout_when_production_points_elsewhere(site, tmp_path, capsys):
    assert hpcos(site, "outage", "plan", "--no-wiki", "-o", str(tmp_path / "plan")) == 0
    capsys.readouterr()
    assert (
        hpcos(site, "outage", "run", "--plan", str(tmp_path / "plan" / "plan.json"), "--no-tests")
        == 2
    )
    err = capsys.readouterr().err
    assert (
        f"the plan installs {site.snapshot_b} but production points at" in err
        and "promote first" in err
    )
    # Never deployed on the test cluster: the plan says the durations are unknown, as a risk.
    plan = OutagePlan.from_json((tmp_path / "plan" / "plan.json").read_text())
    assert plan.window_seconds is None and plan.risks[0].kind == "measurement"


def _sbatch(slurm_env: dict, *args: str) -> str:
    return subprocess.run(
        ["sbatch", "--parsable", "-o", "/dev/null", *args, "--wrap", "sleep 600"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env=slurm_env,
    ).stdout.strip()


def test_the_cost_counts_the_jobs_an_outage_would_stop(slurm_nodes, tmp_path, monkeypatch):  # noqa: F811
    # Users' jobs on a real Slurm, read through squeue as the plan reads production's.
    require_tool("sbatch", "slurm-wlm")
    monkeypatch.setenv("SLURM_CONF", str(slurm_nodes.conf))
    slurm_env = {**os.environ, "SLURM_CONF": str(slurm_nodes.conf)}
    slurm_nodes.resume_all()
    profile = tmp_path / "prod.yaml"
    profile.write_text(profile_yaml(tmp_path, "node[1-4]", extra={"name": "prod"}))
    production = load_profile(profile)
    assert jobs_lines(production, None) == ["jobs: none running on prod's nodes now"]
    short = _sbatch(slurm_env, "-w", "node1", "-N1", "-t", "5")
    long = _sbatch(slurm_env, "-w", "node[2-3]", "-N2", "-t", "60")
    try:
        deadline = time.monotonic() + 120
        while True:
            running = subprocess.run(
                ["squeue", "-h", "-t", "RUNNING", "-o", "%i"],
                capture_output=True,
                text=True,
                timeout=30,
                env=slurm_env,
            ).stdout.split()
            if {short, long} <= set(running):
                break
            assert time.monotonic() < deadline, f"jobs {short}, {long} did not start: {running}"
            time.sleep(0.5)
        # An outage 20 minutes from now: the 5-minute job is over by then, the hour-long one is not.
        window = datetime.now() + timedelta(minutes=20)
        at_window, rolling = jobs_lines(production, window)
        assert at_window == (
            f"jobs: 2 running on prod's nodes now; an outage at the window start "
            f"({window:%Y-%m-%d %H:%M}) stops 1 of them (2 nodes' work)"
        ), at_window
        assert rolling.startswith(
            "jobs: rolling stops none; the last running job's time limit ends "
        )
        now, _ = jobs_lines(production, None)
        assert now.endswith("an outage now stops 2 of them (3 nodes' work)"), now
    finally:
        subprocess.run(["scancel", short, long], timeout=30, env=slurm_env, check=False)
        deadline = time.monotonic() + 60
        while (
            time.monotonic() < deadline
            and subprocess.run(
                ["squeue", "-h", "-o", "%i"],
                capture_output=True,
                text=True,
                timeout=30,
                env=slurm_env,
            ).stdout.strip()
        ):
            time.sleep(0.5)
