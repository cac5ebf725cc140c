"""`hpcos check kernel|packages` on a monitoring host that has the store: the expected versions are the
snapshot the profile's os_update.environment points at, as the nightly run's os-update tests read them.
Real snapshots made by hpcos (rpmbuild, createrepo_c); the node is this machine, its running kernel and
packages given by the profile's deploy commands over a dnf install root."""

from __future__ import annotations

import yaml
from support.deploy_fixtures import installed, provision
from support.rpm_repo_fixtures import Rpm, RpmFactory, make_site

from hpcos.cli import main

KERNEL = [Rpm("kernel", "5.14.0", "2.hpc1", "x86_64")]
HPC = [Rpm("openmpi", "4.1.2", "1.hpc1", "x86_64")]


def test_kernel_and_packages_against_the_environments_snapshot(tmp_path, capsys):
    site = make_site(RpmFactory(tmp_path / "rpmbuild"), tmp_path)
    site.set_overlay("hpc-overlay", HPC)
    site.set_overlay("kernel-overlay", KERNEL)
    base = ["--specs", str(site.specs), "--store", str(site.store)]
    for step in (
        ["sync"],
        ["publish", "hpc-overlay"],
        ["publish", "kernel-overlay"],
        ["promote", "daily", "testing"],
    ):
        assert main([*base, "repo", *step]) == 0
    repo = tmp_path / "node.repo"
    assert main([*base, "repo", "client-config", "testing", "--no-gpgcheck", "-o", str(repo)]) == 0
    root = tmp_path / "nodes" / "node1"
    provision(root, repo.read_text(), ["openmpi", "kernel"])
    assert "openmpi-0:4.1.2-1.hpc1.x86_64" in installed(root)
    profile = tmp_path / "prod.yaml"
    for running, state in (("5.14.0-2.hpc1.x86_64", 0), ("5.14.0-1.el9.x86_64", 2)):
        profile.write_text(
            yaml.safe_dump(
                {
                    "name": "prod",
                    "launcher": "local",
                    "nodes": "node1",
                    "os_update": {
                        "environment": "testing",
                        "kernel_package": "kernel",
                        "packages": ["openmpi"],
                    },
                    "deploy": {
                        "root": f"{tmp_path}/nodes/{{node}}",
                        "running_kernel": f"echo {running}",
                    },
                }
            )
        )
        capsys.readouterr()
        code = _plugin(
            capsys, [*base, "check", "kernel", "--cluster", str(profile), "--node", "node1"]
        )
        assert code == state
    assert (
        _plugin(capsys, [*base, "check", "packages", "--cluster", str(profile), "--node", "node1"])
        == 0
    )


def _plugin(capsys, argv) -> int:
    """A Nagios plugin exits: the exit code is its state."""
    try:
        main(argv)
    except SystemExit as exc:
        print(capsys.readouterr().out)
        return int(exc.code)
    raise AssertionError("a plugin always exits")
