"""A site with as many overlay packages as a benchmark needs, written from the sample site."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

SAMPLE_SPECS = Path(__file__).resolve().parent.parent / "overlay_specs"


def write_site(dest: Path, packages: int) -> Path:
    """Copy the sample site.yaml into ``dest`` and add ``packages`` packages built for every target."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLE_SPECS / "site.yaml", dest / "site.yaml")
    site = yaml.safe_load((dest / "site.yaml").read_text())
    targets = sorted(site["targets"])
    overlays = sorted(site["overlays"])
    for i in range(packages):
        name = f"bench-pkg{i:04d}"
        (dest / f"{name}.yaml").write_text(
            yaml.safe_dump(
                {
                    "name": name,
                    "overlay": overlays[i % len(overlays)],
                    "upstream": {"mirror": sorted(site["mirrors"])[0]},
                    "release_tag": ".hpc1",
                    "targets": targets,
                    "owner": "hpc-sysadmin@example.org",
                    "tests": ["mpi"],
                }
            )
        )
    return dest
