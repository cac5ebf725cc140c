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

from hpcos.demo.cluster import node_commands
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
    key = gpg_signing_key(root / "gnupg", UPSTREAM_KEY)
    upstream = Upstream(root, key)
    site = yaml.safe_load((specs / "site.yaml").read_text())
    binaries: dict[str, list[Path]] = {mirror: [] for mirror in site["mirrors"]}
    sources: dict[str, list[Path]] = {mirror: [] for mirror in site["mirrors"]}
    for path in sorted(specs.glob("*.yaml")):
        if path.name != "site.yaml":
            mirror, srpm, built = _package(specs, path.stem, root / "build")
            sources[mirror].append(srpm)
            binaries[mirror].extend(built)
    # What the mirror carries besides the overlaid packages: the daily sync keeps these.
    base = UpstreamPackage(name="hello", autoreq=False).build_srpm(root / "build")
    binaries[next(iter(binaries))].extend(rebuild_binaries(base, root / "build", ".el9"))
    rpmsign(
        [*(p for ps in binaries.values() for p in ps), *(p for ps in sources.values() for p in ps)],
        root / "gnupg",
        UPSTREAM_KEY,
    )
    for mirror in site["mirrors"]:
        for release in RELEASES:
            for arch in ARCHES:
                here = release == 9 and arch == "x86_64"
                make_repo(root / mirror / str(release) / arch, *(binaries[mirror] if here else []))
            make_repo(
                root / mirror / "source" / str(release), *(sources[mirror] if release == 9 else [])
            )
    shutil.rmtree(root / "build")
    return upstream


def release_update(upstream: Upstream, specs: Path, name: str, release: str) -> str:
    """Upstream publishes a new release of package ``name`` (a kernel release such as 427.18.1, or a
    package release number): built, signed and added to its mirror beside the old one."""
    mirror, srpm, built = _package(specs, name, upstream.root / "build", release)
    rpmsign([srpm, *built], upstream.root / "gnupg", UPSTREAM_KEY)
    make_repo(upstream.root / mirror / "9" / "x86_64", *built)
    make_repo(upstream.root / mirror / "source" / "9", srpm)
    shutil.rmtree(upstream.root / "build")
    return srpm.name.removesuffix(".src.rpm")


def _package(
    specs: Path, name: str, work: Path, release: str | None = None
) -> tuple[str, Path, list[Path]]:
    """(mirror, SRPM, binary packages) of upstream's package for the spec ``specs/NAME.yaml``."""
    spec = yaml.safe_load((specs / f"{name}.yaml").read_text())
    patches = [(specs / "patches" / name / p["file"]).read_text() for p in spec.get("patches", [])]
    files = pre_image(patches)
    package: KernelPackage | TreePackage
    if name == "kernel":
        package = KernelPackage(
            files={"Makefile": KERNEL_MAKEFILE, **files}, release=release or "427.13.1"
        )
        dist = package.dist
    else:
        package = TreePackage(name, VERSIONS.get(name, "1.0"), files, release=int(release or 1))
        dist = package.dist
    srpm = package.build_srpm(work)
    return spec["upstream"]["mirror"], srpm, rebuild_binaries(srpm, work, dist)


def write_specs(
    shipped: Path,
    dest: Path,
    upstream: Upstream,
    store: Path,
    profiles: dict[str, Path],
    tracker: dict,
) -> Path:
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
    site.pop(
        "config", None
    )  # the configuration repositories live on git.example.org: not part of this demo
    site_file.write_text(yaml.safe_dump(site, sort_keys=False))
    for path in dest.glob("*.yaml"):
        text = path.read_text()
        text = re.sub(r"(?m)^builder: mock$", "builder: rpmbuild", text)
        text = re.sub(r"(?m)^mock_config:\n(  .*\n)+", "", text)
        path.write_text(text)
    return dest


# The simulated clusters' host names, in place of the shipped profiles' (16 and 1,062 nodes).
TEST_NODES = "node[001-004]"
PRODUCTION_NODES = {
    "hdr-epyc-7763": "cn[0001-0004]",
    "gpu-a100": "gpu01",
    "login": "login01",
    "mgmt": "mgmt01",
}
# Debian's names for the MPI wrappers the shipped profiles call by their EL9 names (paths).
MPI_PATHS = {
    "openmpi": {"mpicc": "mpicc.openmpi", "mpirun": ["mpirun.openmpi"]},
    "mpich": {"mpicc": "mpicc.mpich", "mpirun": ["mpiexec.mpich"]},
}


def deploy_settings(nodes_dir: Path, signing_key: Path, store: Path, shipped: dict) -> dict:
    """The shipped ``deploy:`` section with its paths pointing at the simulated nodes and their boot
    (reboot, boot id, running kernel, grubby: ``node_commands``)."""
    # file:///PATH: dnf reads file://localhost/PATH as a relative path.
    return {
        **shipped,
        "root": f"{nodes_dir}/{{node}}",
        "snapshots_url": (store / "snapshots").as_uri(),
        "gpgkey": signing_key.as_uri(),
        **node_commands(nodes_dir),
    }


def write_profiles(
    shipped: Path, dest: Path, nodes_dir: Path, signing_key: Path, store: Path
) -> dict[str, Path]:
    """The shipped example profiles with only host names and paths substituted: node names, the MPI
    wrappers' Debian names (environment modules do not exist here: none is loaded), the deploy
    section's paths.  The production profile ships without a deploy section: it gets the test
    cluster's, as the outage runs the procedure the test cluster practised."""
    dest.mkdir(parents=True, exist_ok=True)
    test = yaml.safe_load((shipped / "example-test-cluster.yaml").read_text())
    production = yaml.safe_load((shipped / "example-production.yaml").read_text())
    test["nodes"] = TEST_NODES
    test["inventory"]["classes"]["hdr-epyc-7763"]["nodes"] = TEST_NODES
    production["nodes"] = ",".join(PRODUCTION_NODES.values())
    for name, nodes in PRODUCTION_NODES.items():
        production["inventory"]["classes"][name]["nodes"] = nodes
    for profile in (test, production):
        for stack, wrappers in MPI_PATHS.items():
            profile["mpi"][stack].update(wrappers)
            profile["mpi"][stack]["module"] = None
    # The shipped references are HDR figures, and this machine's own (the local profile's) do not hold
    # either: its cores are shared with whatever else runs here (pingpong measured 105 us against 0.5 us
    # at load 9).  The simulated cluster measures and records, and judges no fixed figure.
    test["references"] = {}
    # With nothing to judge, one run of each benchmark is the figure recorded (the shipped default
    # of 3 exists to judge a median).  And Open MPI yields the core when it waits: the simulated
    # nodes share this machine's two cores, and four ranks spinning on them made every 8-byte
    # allreduce take 10 ms (the nightly run's 40 s of 100).  MPICH over UCX has no such setting
    # that helps (MPIR_CVAR_POLLS_BEFORE_YIELD made it slower still).
    test["repeat"] = 1
    test["mpi"]["openmpi"].setdefault("env", {})["OMPI_MCA_mpi_yield_when_idle"] = "1"
    shipped_deploy = test["deploy"]
    test["deploy"] = deploy_settings(nodes_dir, signing_key, store, shipped_deploy)
    production["deploy"] = deploy_settings(nodes_dir, signing_key, store, shipped_deploy)
    paths: dict[str, Path] = {}
    for kind, profile in (("test", test), ("production", production)):
        path = dest / f"{profile['name']}.yaml"
        path.write_text(yaml.safe_dump(profile, sort_keys=False))
        paths[kind] = path
    return paths
