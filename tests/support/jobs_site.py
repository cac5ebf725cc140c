"""A small site frozen for the Jenkins job tests, so that they do not move when the sample site grows."""

from __future__ import annotations

from pathlib import Path

import yaml

SITE = {
    "name": "emsl-cascade",
    "store": {"root": "/var/lib/hpcos"},
    "targets": {
        "el8-x86_64": {"release": 8, "arch": "x86_64", "mock_config": "rocky+epel-8-x86_64"},
        "el9-x86_64": {"release": 9, "arch": "x86_64", "mock_config": "rocky+epel-9-x86_64"},
        "el9-aarch64": {"release": 9, "arch": "aarch64", "mock_config": "rocky+epel-9-aarch64"},
    },
    "mirrors": {
        "baseos": {"url": "https://dl.rockylinux.org/pub/rocky/{release}/BaseOS/{arch}/os/"},
        "appstream": {"url": "https://dl.rockylinux.org/pub/rocky/{release}/AppStream/{arch}/os/"},
    },
    "overlays": {
        "kernel-overlay": {"description": "Site kernel.", "fastpath": True},
        "hpc-overlay": {"description": "OFED and MPI."},
    },
    "environments": {
        "daily": {"schedule": "H 1 * * *"},
        "testing": {"source": "daily", "schedule": "H 2 * * *"},
        "production": {"source": "testing", "gate": "nightly"},
    },
    "jenkins": {
        "url": "https://jenkins.example.org/",
        "folder": "hpcos",
        "build_label": "rpm-build",
        "test_label": "test-cluster",
    },
    "harness": {"profile": "integration_tests/clusters/example-test-cluster.yaml"},
}


def package(name: str, overlay: str, targets: list[str], poll: str = "H 3 * * *") -> dict:
    return {
        "name": name,
        "overlay": overlay,
        "upstream": {"mirror": "appstream"},
        "release_tag": ".hpc1",
        "targets": targets,
        "owner": "hpc-sysadmin@example.org",
        "tests": ["mpi"],
        "poll": poll,
    }


PACKAGES = [package("openmpi", "hpc-overlay", ["el8-x86_64", "el9-x86_64", "el9-aarch64"])]


def write_site(dest: Path, packages: list[dict] = PACKAGES) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "site.yaml").write_text(yaml.safe_dump(SITE, sort_keys=False))
    for spec in packages:
        (dest / f"{spec['name']}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return dest
