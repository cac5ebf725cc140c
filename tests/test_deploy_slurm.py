"""``hpcos deploy`` through the Slurm launcher, on the shipped example test-cluster profile: a kernel fast
path onto the nodes, then its rollback, every node back in service.

Real parts: a Slurm with one slurmd per node name (support/slurm_nodes_fixture.py), whose ``srun``
reaches the nodes while the deployment has them out of service; RPMs built with rpmbuild and signed
with a real gpg key; overlays published with signed metadata; nodes that are dnf install roots
running dnf with ``gpgcheck=1`` and ``repo_gpgcheck=1``.  The profile is
``integration_tests/clusters/example-test-cluster.yaml`` with only its host names and paths
substituted (node names, the nodes' root, the repository and key URLs, the simulated boot's commands).
What cannot be real here: the reboot, a script that boots the node's boot default
(support/deploy_fixtures.py, with a grubby that keeps the default as EL9 does).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml
from conftest import REPO, require_tool
from support.deploy_fixtures import installed, node_commands, provision
from support.rpm_fixtures import gpg_signing_key, rpmsign
from support.rpm_repo_fixtures import Rpm, RpmFactory, make_site
from support.slurm_nodes_fixture import start_slurm_nodes, stop_slurm_nodes

from hpcos.cli import main
from hpcos.core.store_layout import StoreLayout
from hpcos.repo import deployments

KEY_ID = "deploy-signing@example.org"
NODES = ["node001", "node002", "node003", "node004"]
BASE = [Rpm("alpha", "1.0"), Rpm("beta", "1.0")]
HPC = [Rpm("openmpi", "4.1.1", "1.hpc1", "x86_64")]
KERNEL_1 = Rpm("kernel", "5.14.0", "1.hpc1", "x86_64")
KERNEL_2 = Rpm("kernel", "5.14.0", "2.hpc1", "x86_64")  # the security fix of the fast path
PACKAGES = ["alpha", "beta", "openmpi", "kernel"]


class SignedRpms(RpmFactory):
    """Every package signed by the site's key, as the site's own and its upstream's packages are."""

    def __init__(self, workdir, home):
        super().__init__(workdir)
        self.home = home

    def _build(self, rpm):
        path = super()._build(rpm)
        rpmsign([path], self.home, KEY_ID)
        return path


def hpcos(site, *args: str) -> int:
    return main(["--specs", str(site.specs), "--store", str(site.store), *args])


def example_profile(site, nodes_dir, public_key) -> str:
    """The shipped example test-cluster profile; only host names and paths substituted."""
    profile = yaml.safe_load(
        (REPO / "integration_tests" / "clusters" / "example-test-cluster.yaml").read_text()
    )
    profile["nodes"] = "node[001-004]"
    profile["inventory"]["classes"]["hdr-epyc-7763"]["nodes"] = "node[001-004]"
    profile["deploy"].update(
        {
            "root": f"{nodes_dir}/{{node}}",
            "snapshots_url": StoreLayout(site.store).snapshots.resolve().as_uri(),
            "gpgkey": public_key.resolve().as_uri(),
            **node_commands(nodes_dir),
        }
    )
    return yaml.safe_dump(profile)


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    for tool, package in (
        ("rpmbuild", "rpm"),
        ("rpmsign", "rpm"),
        ("createrepo_c", "createrepo-c"),
        ("dnf", "dnf"),
        ("gpg", "gnupg"),
        ("srun", "slurm-wlm"),
    ):
        require_tool(tool, package)
    home = tmp_path / "gnupg"
    public = gpg_signing_key(home, f"HPC Site <{KEY_ID}>")
    slurm = start_slurm_nodes(tmp_path / "slurm", NODES, partition="test")
    nodes_dir = tmp_path / "nodes"
    try:
        monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
        slurm.wait_idle()
        site = make_site(SignedRpms(tmp_path / "rpmbuild", home), tmp_path)
        data = yaml.safe_load((site.specs / "site.yaml").read_text())
        data["signing"] = {"gnupg_home": str(home), "key_id": KEY_ID}
        for mirror in data["mirrors"].values():
            mirror["gpgkey"] = public.resolve().as_uri()
        (site.specs / "site.yaml").write_text(yaml.safe_dump(data))
        site.set_upstream("base", BASE)
        site.set_overlay("hpc-overlay", HPC)
        site.set_overlay("kernel-overlay", [KERNEL_1])
        for step in (
            ["sync"],
            ["publish", "hpc-overlay"],
            ["publish", "kernel-overlay"],
            ["promote", "daily", "testing"],
            ["promote", "testing", "production", "--force", "--reason", "first deployment"],
        ):
            assert hpcos(site, "repo", *step) == 0, step
        nodes_dir.mkdir()
        site.profile = tmp_path / "example-test-cluster.yaml"
        site.profile.write_text(example_profile(site, nodes_dir, public))
        site.nodes_dir, site.slurm, site.public = nodes_dir, slurm, public
        yield site
    finally:
        stop_slurm_nodes(slurm)
        # dnf's repo_gpgcheck leaves one gpg-agent per repository and node behind (RECIPES section 4).
        for pubring in [*nodes_dir.glob("*/var/cache/dnf/*/pubring"), home]:
            subprocess.run(
                ["gpgconf", "--homedir", str(pubring), "--kill", "all"],
                capture_output=True,
                timeout=60,
            )


def provision_nodes(site) -> None:
    """The nodes installed from production's snapshot with the .repo file hpcos writes for them."""
    repo = site.nodes_dir / "production.repo"
    assert (
        hpcos(
            site,
            "repo",
            "client-config",
            "production",
            "--pin",
            "--gpgkey",
            site.public.resolve().as_uri(),
            "-o",
            str(repo),
        )
        == 0
    )
    text = repo.read_text()
    # The overlays' metadata is signed by publish: the nodes check it (and dnf below accepts it).
    overlay_sections = [
        block for block in text.split("\n\n") if "-overlay-" in block.splitlines()[0]
    ]
    assert len(overlay_sections) == 2 and all(
        "repo_gpgcheck=1" in block for block in overlay_sections
    ), text
    for node in NODES:
        provision(site.nodes_dir / node, text, PACKAGES)


def states(site) -> dict[str, str]:
    return {node: state for node, (state, _reason) in site.slurm.sinfo().items()}


def kernels(site, node: str) -> tuple[set[str], str, str]:
    root = site.nodes_dir / node
    return (
        {p for p in installed(root) if p.startswith("kernel-")},
        (root / "run" / "running-kernel").read_text().strip(),
        (root / "boot" / "sim-default").read_text().strip(),
    )


def test_kernel_fast_path_then_rollback_through_slurm_with_every_node_back_in_service(
    cluster, capsys
):
    provision_nodes(cluster)
    production_a = StoreLayout(cluster.store).environments.joinpath("production").resolve().name

    # The fixed kernel is built and published; the fast path moves the pointers and deploys production
    # through srun, on nodes that Slurm has out of service the whole time.
    cluster.set_overlay("kernel-overlay", [KERNEL_1, KERNEL_2])
    assert hpcos(cluster, "repo", "publish", "kernel-overlay") == 0
    assert (
        hpcos(
            cluster,
            "repo",
            "fastpath",
            "kernel-overlay",
            "--reason",
            "CVE-2026-0001",
            "--deploy",
            str(cluster.profile),
        )
        == 0
    )
    shown = capsys.readouterr().err
    [record] = deployments.records(StoreLayout(cluster.store))
    assert record.environment == "production" and record.verified_nodes == NODES, shown
    for node in NODES:
        assert kernels(cluster, node) == (
            {KERNEL_1.nevra, KERNEL_2.nevra},
            "5.14.0-2.hpc1.x86_64",
            "5.14.0-2.hpc1.x86_64",
        ), node
        [reboot] = (cluster.nodes_dir / node / "var" / "log" / "reboots").read_text().splitlines()
        # Rebooted through srun while in the deployment's maintenance reservation, not drained.
        assert "drained: ;" in reboot and "reserved: Nodes=node[001-004] Flags=MAINT" in reboot, (
            reboot
        )
    assert set(states(cluster).values()) <= {"idle", "idle*"}, states(cluster)
    assert "in maintenance reservation hpcos-deploy-" in shown
    assert not _reservations(cluster), "the reservation ended with the batch"

    # Nothing new in the overlay (the next build failed): the fast path refuses, pointers unchanged.
    production_b = StoreLayout(cluster.store).environments.joinpath("production").resolve().name
    assert hpcos(cluster, "repo", "fastpath", "kernel-overlay", "--reason", "again") == 2
    assert "nothing new in kernel-overlay" in capsys.readouterr().err
    assert (
        StoreLayout(cluster.store).environments.joinpath("production").resolve().name
        == production_b
    )

    # The rollback: production points at A again, and the deploy takes every node back to kernel 1.
    assert (
        hpcos(
            cluster, "repo", "rollback", "production", "--reason", "the fix breaks the HCA driver"
        )
        == 0
    )
    assert (
        StoreLayout(cluster.store).environments.joinpath("production").resolve().name
        == production_a
    )
    assert hpcos(cluster, "deploy", "production", "--cluster", str(cluster.profile)) == 0
    shown = capsys.readouterr().err
    rollback = deployments.records(StoreLayout(cluster.store))[-1]
    assert rollback.snapshot == production_a and rollback.verified_nodes == NODES, shown
    for node in NODES:
        assert kernels(cluster, node) == (
            {KERNEL_1.nevra},
            "5.14.0-1.hpc1.x86_64",
            "5.14.0-1.hpc1.x86_64",
        ), node
        assert (
            rollback.nodes[node].kernel == "5.14.0-1.hpc1.x86_64" and rollback.nodes[node].rebooted
        )
    assert "boot default 5.14.0-2.hpc1.x86_64 -> 5.14.0-1.hpc1.x86_64" in shown
    assert "removing kernel-0:5.14.0-2.hpc1.x86_64" in shown
    assert set(states(cluster).values()) <= {"idle", "idle*"}, states(cluster)
    assert not _reservations(cluster)


def test_a_node_that_slurm_cannot_reach_after_its_reboot_is_named_with_the_step_and_slurms_reason(
    cluster, capsys
):
    """node004 comes back from its reboot drained by the site's health check (as NHC does when a check
    fails at boot): srun cannot start there, so the wait for its boot id ends at the reboot's bound, and
    the reason says which step could not reach the node and Slurm's own reason.  The node stays out of
    service with a ticket."""
    provision_nodes(cluster)
    cluster.set_overlay("kernel-overlay", [KERNEL_1, KERNEL_2])
    assert hpcos(cluster, "repo", "publish", "kernel-overlay") == 0
    assert hpcos(cluster, "repo", "fastpath", "kernel-overlay", "--reason", "CVE-2026-0001") == 0
    assert (
        "next, to put it on the nodes: hpcos deploy production --cluster PROFILE"
        in capsys.readouterr().err
    ), "without --deploy the fast path names the next command"
    data = yaml.safe_load(cluster.profile.read_text())
    data["deploy"]["reboot"] += (
        " && scontrol update nodename={node} state=drain reason='NHC: ib0 down'"
    )
    data["deploy"]["reboot_timeout"] = 5
    stuck = cluster.profile.with_name("stuck.yaml")
    stuck.write_text(yaml.safe_dump(data))
    assert (
        hpcos(cluster, "deploy", "production", "--cluster", str(stuck), "--nodes", "node004") == 1
    )
    [record] = deployments.records(StoreLayout(cluster.store))
    reason = record.nodes["node004"].reason
    assert reason.startswith(
        "did not come back within 5 s of the reboot (reading its boot id: srun never started "
        "there within "
    ), reason
    assert "node004 is drained: NHC: ib0 down" in reason, reason
    state, slurm_reason = cluster.slurm.sinfo()["node004"]
    assert not state.startswith("idle") and slurm_reason.startswith(
        "hpcos deploy: did not come back"
    ), state
    assert not _reservations(cluster)
    capsys.readouterr()
    assert hpcos(cluster, "tickets", "list", "--json") == 0
    tickets = json.loads(capsys.readouterr().out)["tickets"]
    assert len(tickets) == 1 and "node004" in tickets[0]["summary"], tickets


def _reservations(site) -> str:
    return (
        subprocess.run(
            ["scontrol", "-o", "show", "reservation"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, **site.slurm.env},
        )
        .stdout.strip()
        .replace("No reservations in the system", "")
    )
