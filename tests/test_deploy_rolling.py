"""``hpcos deploy ENV --rolling``: an update without an outage, through Slurm's own reboot machinery.

Real parts: a Slurm with one slurmd per node name whose ``RebootProgram`` reboots simulated nodes
(support/rolling_fixture.py: Slurm sees each reboot through a newer boot time), a user's batch job
running on one node, RPMs built with rpmbuild and composed into snapshots by hpcos, nodes that are
dnf install roots.  The packages are downloaded while the job runs; Slurm reboots each node when it
is idle, the RebootProgram running the update-at-reboot script hpcos left (the install from the
node's cache); hpcos verifies each node and resumes it.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest
import yaml
from conftest import require_tool
from support.deploy_fixtures import installed, profile_yaml, provision
from support.rolling_fixture import start_rolling_slurm
from support.rpm_repo_fixtures import Rpm, RpmFactory, make_site
from support.slurm_nodes_fixture import stop_slurm_nodes

from hpcos.cli import main
from hpcos.core.store_layout import StoreLayout
from hpcos.repo import deployments

NODES = ["node1", "node2", "node3"]
PACKAGES = ["alpha", "openmpi", "kernel"]
SNAPSHOT_B = {
    "alpha-0:1.1-1.noarch",
    "openmpi-0:4.1.2-1.hpc1.x86_64",
    "kernel-0:5.14.0-1.hpc1.x86_64",
    "kernel-0:5.14.0-2.hpc1.x86_64",
}


def hpcos(site, *args: str) -> int:
    return main(["--specs", str(site.specs), "--store", str(site.store), *args])


def _snapshot(site, alpha: str, openmpi: str, kernel: str) -> None:
    site.set_upstream("base", [Rpm("alpha", alpha)])
    site.set_overlay("hpc-overlay", [Rpm("openmpi", openmpi, "1.hpc1", "x86_64")])
    site.set_overlay("kernel-overlay", [Rpm("kernel", "5.14.0", kernel, "x86_64")])
    for step in (
        ["sync"],
        ["publish", "hpc-overlay"],
        ["publish", "kernel-overlay"],
        ["promote", "daily", "testing"],
    ):
        assert hpcos(site, "repo", *step) == 0, step


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    for tool, package in (
        ("rpmbuild", "rpm"),
        ("createrepo_c", "createrepo-c"),
        ("dnf", "dnf"),
        ("sbatch", "slurm-wlm"),
    ):
        require_tool(tool, package)
    site = make_site(RpmFactory(tmp_path / "rpmbuild"), tmp_path)
    _snapshot(site, "1.0", "4.1.1", "1.hpc1")
    nodes_dir = tmp_path / "nodes"
    nodes_dir.mkdir()
    repo = tmp_path / "a.repo"
    assert hpcos(site, "repo", "client-config", "testing", "--no-gpgcheck", "-o", str(repo)) == 0
    for node in NODES:
        provision(nodes_dir / node, repo.read_text(), PACKAGES)
    _snapshot(site, "1.1", "4.1.2", "2.hpc1")
    site.profile = tmp_path / "rolling.yaml"
    # As in the shipped production profile, the tests' launcher is srun; deploy reaches the nodes its
    # own way (deploy.launcher: ssh on a real site; the simulated nodes are directories here).
    profile = yaml.safe_load(profile_yaml(nodes_dir, "node[1-3]", batch_size=3, launcher="slurm"))
    profile["deploy"]["launcher"] = "local"
    site.profile.write_text(yaml.safe_dump(profile))
    site.nodes_dir = nodes_dir
    slurm = start_rolling_slurm(
        tmp_path / "slurm", NODES, nodes_dir, "/var/lib/hpcos/update-at-reboot"
    )
    try:
        monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
        slurm.wait_idle()
        site.slurm = slurm
        yield site
    finally:
        subprocess.run(
            ["scancel", "--full", "-u", "root"],
            capture_output=True,
            timeout=30,
            env={**os.environ, "SLURM_CONF": str(slurm.conf)},
        )
        stop_slurm_nodes(slurm)


def _reboot_time(root) -> float:
    [line] = (root / "var" / "log" / "reboots").read_text().splitlines()
    return float(line.split()[2].rstrip(";"))


def test_rolling_update_waits_for_the_running_job_and_verifies_every_node(cluster, tmp_path):
    # The user's job on node1 runs until the idle nodes were rebooted (whatever the host's load makes
    # of the download's time), so "node1 waited for its job" is cause and effect, not a race.
    ended, release = tmp_path / "job-ended", tmp_path / "release-job"
    job = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "-w",
            "node1",
            "-N1",
            "-t",
            "10",
            "-o",
            "/dev/null",
            "--wrap",
            f"while [ ! -e {release} ]; do sleep 0.2; done; date +%s.%N > {ended}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    deadline = time.monotonic() + 30
    while cluster.slurm.sinfo()["node1"][0] != "allocated":
        assert time.monotonic() < deadline, (
            f"job {job} did not start on node1: {cluster.slurm.sinfo()}"
        )
        time.sleep(0.2)

    def release_after_the_idle_nodes_rebooted() -> None:
        logs = [cluster.nodes_dir / n / "var" / "log" / "reboots" for n in ("node2", "node3")]
        give_up = time.monotonic() + 300  # the assertions below then say what did not happen
        while not all(p.exists() for p in logs) and time.monotonic() < give_up:
            time.sleep(0.2)
        time.sleep(1)  # node1 stays busy a little longer: its own wait is measurable
        release.touch()

    releaser = threading.Thread(target=release_after_the_idle_nodes_rebooted, daemon=True)
    releaser.start()
    try:
        assert (
            hpcos(cluster, "deploy", "testing", "--cluster", str(cluster.profile), "--rolling") == 0
        )
    finally:
        release.touch()
        releaser.join(timeout=310)

    assert ended.exists(), "the user's job was killed"
    job_end = float(ended.read_text())
    [record] = deployments.records(StoreLayout(cluster.store))
    assert record.mode == "rolling" and record.verified_nodes == NODES and not record.stopped
    for node in NODES:
        root = cluster.nodes_dir / node
        assert installed(root) == SNAPSHOT_B, node
        assert (root / "run" / "running-kernel").read_text().strip() == "5.14.0-2.hpc1.x86_64"
        assert not (root / "var" / "lib" / "hpcos" / "update-at-reboot").exists(), (
            "the hook ran once"
        )
        durations = record.nodes[node].durations
        assert set(durations) == set(deployments.ROLLING_TASKS), durations
        assert record.nodes[node].rebooted
    # node1 was updated (the hook runs just before the simulated boot) only after its job ended; the
    # idle nodes did not wait for it.
    assert _reboot_time(cluster.nodes_dir / "node1") > job_end
    assert all(_reboot_time(cluster.nodes_dir / n) < job_end for n in ("node2", "node3"))
    assert record.nodes["node1"].durations["jobs"] > max(
        record.nodes[n].durations["jobs"] for n in ("node2", "node3")
    )
    # Downloaded while in service, installed from the cache at the reboot (the hook's dnf -C).
    log = (cluster.nodes_dir / "node1" / "var" / "log" / "hpcos-update-at-reboot.log").read_text()
    assert "Complete!" in log, log
    # Back in service.  The simulated reboot is over in seconds, so slurmctld's reboot message can time
    # out after the node registered again and mark it not responding ("idle*") until its next ping
    # (SlurmdTimeout / 3, 10 s in the fixture); a real node is down for longer than MessageTimeout.
    cluster.slurm.wait_idle(timeout=90)
