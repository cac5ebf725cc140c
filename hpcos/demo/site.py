"""The simulated site, made from the repository's own files.

``upstream``: a small upstream distribution built here for the shipped ``overlay_specs/``: for each
package spec an SRPM whose sources are the pre-image of the spec's site patches (the kernel with the
RHEL 9 kernel.spec layout), its binary packages, and a few base packages; signed by an "upstream"
key and published as the mirrors ``site.yaml`` names (baseos, appstream, epel), sources beside them.

``specs``: the shipped ``overlay_specs/`` copied with only host names and paths substituted (store,
mirror URLs and keys, the cluster profiles), and ``builder: mock`` turned into ``rpmbuild``: Fedora's
mock is not packaged for Debian, so the demo builds with the rpmbuild builder (docs/rebuild.md).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from hpcos.demo.upstream import (
    KernelPackage,
    TreePackage,
    UpstreamPackage,
    gpg_signing_key,
    make_repo,
    pre_image,
    rebuild_binaries,
    rpmsign,
)

TARGET = "el9-x86_64"
UPSTREAM_KEY = "Demo Upstream <upstream@demo.invalid>"
# Upstream versions of the stand-ins (Rocky 9.4's, so the demo's NEVRAs read like a site's).
VERSIONS = {"openmpi": "4.1.1", "mpich": "4.1.1", "ucx": "1.15.0", "rdma-core": "48.0"}
KERNEL_MAKEFILE = "vmlinuz:\n\tcat $$(find drivers -type f | sort) > vmlinuz\n"
RELEASES, ARCHES = (8, 9), ("x86_64", "aarch64")


@dataclass
class Upstream:
    root: Path
    key: Path  # the upstream signing key (public), what the mirrors' gpgkey names

    def url(self, mirror: str) -> str:
        return f"file://localhost{self.root}/{mirror}/{{release}}/{{arch}}/"

    def source_url(self, mirror: str) -> str:
        return f"file://localhost{self.root}/{mirror}/source/{{release}}/"


def build_upstream(specs: Path, root: Path) -> Upstream:
    """The upstream distribution for the package specs in ``specs``, under ``root``."""
    work = root / "build"
    key = gpg_signing_key(root / "gnupg", UPSTREAM_KEY)
    site = yaml.safe_load((specs / "site.yaml").read_text())
    binaries: dict[str, list[Path]] = {mirror: [] for mirror in site["mirrors"]}
    sources: dict[str, list[Path]] = {mirror: [] for mirror in site["mirrors"]}
    for path in sorted(specs.glob("*.yaml")):
        if path.name == "site.yaml":
            continue
        spec = yaml.safe_load(path.read_text())
        patches = [(specs / "patches" / spec["name"] / p["file"]).read_text() for p in spec.get("patches", [])]
        files = pre_image(patches)
        if spec["name"] == "kernel":
            package, dist = KernelPackage(files={"Makefile": KERNEL_MAKEFILE, **files}), ".el9_4"
        else:
            package, dist = TreePackage(spec["name"], VERSIONS.get(spec["name"], "1.0"), files), ".el9"
        srpm = package.build_srpm(work)
        built = rebuild_binaries(srpm, work, dist)
        mirror = spec["upstream"]["mirror"]
        sources[mirror].append(srpm)
        binaries[mirror].extend(built)
    # What the mirror carries besides the overlaid packages: the daily sync keeps these.
    base = UpstreamPackage(name="hello", autoreq=False).build_srpm(work)
    binaries[next(iter(binaries))].extend(rebuild_binaries(base, work, ".el9"))
    rpmsign([*(p for ps in binaries.values() for p in ps), *(p for ps in sources.values() for p in ps)],
            root / "gnupg", UPSTREAM_KEY)
    for mirror in site["mirrors"]:
        for release in RELEASES:
            for arch in ARCHES:
                here = release == 9 and arch == "x86_64"
                make_repo(root / mirror / str(release) / arch, *(binaries[mirror] if here else []))
            make_repo(root / mirror / "source" / str(release), *(sources[mirror] if release == 9 else []))
    shutil.rmtree(work)
    return Upstream(root, key)


def write_specs(shipped: Path, dest: Path, upstream: Upstream, store: Path, profiles: dict[str, Path],
                tracker: dict) -> Path:
    """``shipped`` copied to ``dest`` with only host names and paths substituted."""
    shutil.copytree(shipped, dest)
    site_file = dest / "site.yaml"
    site = yaml.safe_load(site_file.read_text())
    site["store"]["root"] = str(store)
    key = f"file://localhost{upstream.key}"
    for name, mirror in site["mirrors"].items():
        mirror["url"] = upstream.url(name)
        if "source_url" in mirror:
            mirror["source_url"] = upstream.source_url(name)
        if "gpgkey" in mirror:
            mirror["gpgkey"] = key
    site["tracker"] = {**site["tracker"], **tracker}
    site["harness"]["profile"] = str(profiles["test"])
    site["harness"]["production_profile"] = str(profiles["production"])
    site.pop("config", None)  # the configuration repositories live on git.example.org: not part of this demo
    site_file.write_text(yaml.safe_dump(site, sort_keys=False))
    for path in dest.glob("*.yaml"):
        text = path.read_text()
        text = re.sub(r"(?m)^builder: mock$", "builder: rpmbuild", text)
        text = re.sub(r"(?m)^mock_config:\n(  .*\n)+", "", text)
        path.write_text(text)
    return dest
