"""Builds are immutable: an NEVRA, once published, always names the same bytes.  A second build of
the same base gets a new release (the build counter: .hpc1, .hpc1.2, ...), `--check-upstream` sees
changed site patches through the digest recorded in the overlay SRPM, and `hpcos repo publish`
refuses a different package under an NEVRA that a snapshot already holds.  Real rpmbuild,
createrepo_c and dnf; the host check is satisfied with rpm_fixtures.el_host."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.rpm_fixtures import (  # noqa: F401 (el9_build_host is a fixture)
    GOOD_PATCH,
    UpstreamPackage,
    el9_build_host,
    el_host,
    make_repo,
    make_site,
    repoquery,
    rpm_query,
    site_patch,
)

from hpcos.cli import main
from hpcos.core.store_layout import StoreLayout
from hpcos.rebuild import publish

pytestmark = pytest.mark.usefixtures("el9_build_host")

TARGET = "el9-x86_64"
# The same change as GOOD_PATCH, worded differently: new patch content for the same base.
GOOD_PATCH_V2 = GOOD_PATCH.replace("hello from the site overlay", "hello from the site overlay, v2")


def write_site(root: Path, srpm: Path, patch_text: str) -> Path:
    make_site(
        root,
        {
            "name": "hello",
            "upstream": {"srpm_path": str(srpm)},
            "patches": [site_patch("0001-greet.patch")],
        },
        {"0001-greet.patch": patch_text},
    )
    return root


def hpcos(specs: Path, store: Path, *args: str) -> int:
    return main(["--specs", str(specs), "--store", str(store), *args])


def test_changed_patches_make_a_rebuild_due_with_a_new_release(tmp_path, capsys):
    srpm = UpstreamPackage().build_srpm(tmp_path / "upstream")
    source_repo = make_repo(tmp_path / "base", srpm)
    specs, store = write_site(tmp_path / "specs", srpm, GOOD_PATCH), tmp_path / "store"
    layout = StoreLayout(store)
    check = (
        "build",
        "hello",
        "--target",
        TARGET,
        "--check-upstream",
        "--source-repo",
        str(source_repo),
    )

    assert hpcos(specs, store, "build", "hello", "--target", TARGET) == 0
    assert hpcos(specs, store, "repo", "publish", "hpc-overlay") == 0
    capsys.readouterr()
    assert hpcos(specs, store, *check) == 0
    assert (
        capsys.readouterr().out == "hello: overlay 1.0-1.el9.hpc1 is current (upstream 1.0-1.el9)\n"
    )

    # Same upstream, new patch content: due, and the next build must not reuse 1.0-1.el9.hpc1.
    write_site(specs, srpm, GOOD_PATCH_V2)
    first_inputs = json.loads(
        next(layout.build_dir("hello", TARGET).glob("*/build.json")).read_text()
    )["site_inputs"]
    assert hpcos(specs, store, *check) == 3
    out = capsys.readouterr().out
    assert out.startswith(
        "hello: the site patches or spec edits changed since overlay 1.0-1.el9.hpc1 "
        f"(site inputs {first_inputs} -> "
    )
    assert out.endswith("): rebuild due\n")

    assert hpcos(specs, store, "build", "hello", "--target", TARGET) == 0
    repo = layout.overlay_repo("hpc-overlay", TARGET)
    assert repoquery(repo, "--arch", "x86_64", "--qf", "%{version}-%{release}") == [
        "1.0-1.el9.hpc1",
        "1.0-1.el9.hpc1.2",
    ]
    changelog = rpm_query(repo / "hello-1.0-1.el9.hpc1.2.x86_64.rpm", "[%{changelogtext}\n]")
    assert "hpcos site inputs: " in changelog
    capsys.readouterr()
    assert hpcos(specs, store, *check) == 0
    assert (
        capsys.readouterr().out
        == "hello: overlay 1.0-1.el9.hpc1.2 is current (upstream 1.0-1.el9)\n"
    )
    assert hpcos(specs, store, "repo", "publish", "hpc-overlay") == 0

    # keep_builds is 2: a third build drops .hpc1 from the working repository, but the snapshot still
    # holds it; the counter counts past both.
    assert hpcos(specs, store, "build", "hello", "--target", TARGET) == 0
    assert hpcos(specs, store, "build", "hello", "--target", TARGET) == 0
    assert repoquery(repo, "--arch", "x86_64", "--qf", "%{release}") == [
        "1.el9.hpc1.3",
        "1.el9.hpc1.4",
    ]


def test_a_different_build_under_a_published_nevra_is_refused(tmp_path, capsys):
    srpm = UpstreamPackage().build_srpm(tmp_path / "upstream")
    specs, store = write_site(tmp_path / "specs", srpm, GOOD_PATCH), tmp_path / "store"
    assert hpcos(specs, store, "build", "hello", "--target", TARGET) == 0
    assert hpcos(specs, store, "repo", "publish", "hpc-overlay") == 0

    # Another store's first build with other patch content is also 1.0-1.el9.hpc1, with other bytes.
    other_specs, other_store = (
        write_site(tmp_path / "other", srpm, GOOD_PATCH_V2),
        tmp_path / "other-store",
    )
    assert hpcos(other_specs, other_store, "build", "hello", "--target", TARGET) == 0
    name = "hello-1.0-1.el9.hpc1.x86_64.rpm"
    working = StoreLayout(store).overlay_repo("hpc-overlay", TARGET)
    other = StoreLayout(other_store).overlay_repo("hpc-overlay", TARGET) / name

    # hpcos build's own publish step refuses it too (the build counter keeps it from trying).
    with pytest.raises(publish.ImmutableBuild) as refused:
        publish.publish(
            [other], StoreLayout(store), "hpc-overlay", TARGET, 2, tmp_path / "publish.log"
        )
    assert str(refused.value).startswith(
        f"refusing to publish a different build under an existing name: {name} "
        f"(in {working}), {name} ("
    )

    shutil.copyfile(other, working / name)

    capsys.readouterr()
    assert hpcos(specs, store, "repo", "publish", "hpc-overlay") == 2
    snapshot = next(StoreLayout(store).snapshots.glob(f"*/hpc-overlay-{TARGET}")).parent.name
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"hpcos: refusing to publish a different build under an existing name: {name} "
        f"({snapshot}/hpc-overlay-{TARGET}); rebuild it (hpcos build gives a new build a new release) instead "
        "of replacing it"
    )
    assert len(list(StoreLayout(store).snapshots.glob(f"*/hpc-overlay-{TARGET}"))) == 1, (
        "no new snapshot"
    )
