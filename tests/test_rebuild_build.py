"""``hpcos build`` end to end with the real rpmbuild, createrepo_c and dnf: a small C package (spec and
tarball written by tests/rpm_fixtures.py, with a %check) goes SRPM -> patched -> rebuilt -> published,
and every failure class is recognised with nothing published."""

from __future__ import annotations

import json
import platform
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import rpm
from conftest import require_tool
from support.rpm_fixtures import (
    BROKEN_PATCH,
    CHECK_BREAKING_PATCH,
    GOOD_PATCH,
    STALE_PATCH,
    UpstreamPackage,
    el_host,
    file_url,
    make_repo,
    make_site,
    repoquery,
    rpm_query,
    site_patch,
)

from hpcos.cli import main
from hpcos.core.store_layout import StoreLayout

TARGET = "el9-x86_64"


@pytest.fixture(autouse=True)
def rpm_tools(tmp_path, monkeypatch):
    for tool, debian in (
        ("rpmbuild", "rpm"),
        ("createrepo_c", "createrepo-c"),
        ("dnf", "dnf"),
        ("gcc", "gcc"),
        ("make", "make"),
    ):
        require_tool(tool, debian)
    # rpmbuild builds only for its own host: this one presents itself as an EL9 build agent.
    for key, value in el_host(tmp_path / "home").items():
        monkeypatch.setenv(key, value)


def hpcos(specs: Path, store: Path, *args: str) -> int:
    return main(["--specs", str(specs), "--store", str(store), *args])


def site_for(tmp_path: Path, srpm: Path, patches: dict[str, str], **package) -> Path:
    entries = [site_patch(name) for name in patches]
    make_site(
        tmp_path / "specs",
        {"name": "hello", "upstream": {"srpm_path": str(srpm)}, "patches": entries, **package},
        patches,
    )
    return tmp_path / "specs"


def overlay_repo(store: Path) -> Path:
    return StoreLayout(store).overlay_repo("hpc-overlay", TARGET)


def build_dirs(store: Path) -> list[Path]:
    return sorted(StoreLayout(store).build_dir("hello", TARGET).iterdir())


def last_build(store: Path) -> dict:
    return json.loads((build_dirs(store)[-1] / "build.json").read_text())


def evr_of(path: Path) -> tuple[str, str, str]:
    epoch, version, release = rpm_query(path, "%{epochnum} %{version} %{release}").split()
    return epoch, version, release


@pytest.mark.parametrize("prep", ["setup", "autosetup"])
def test_package_goes_from_srpm_to_published_overlay(tmp_path, capsys, prep):
    upstream = UpstreamPackage(
        prep=prep,
        upstream_patches={
            "0001-upstream-fix.patch": (
                "--- a/Makefile\n+++ b/Makefile\n@@ -1,1 +1,1 @@\n-all: hello\n+all: hello\n"
            )
        },
    )
    base = upstream.build_srpm(tmp_path)
    specs = site_for(tmp_path, base, {"0001-greet.patch": GOOD_PATCH})
    store = tmp_path / "store"
    junit = tmp_path / "junit.xml"

    assert hpcos(specs, store, "build", "hello", "--target", TARGET, "--junit", str(junit)) == 0

    repo = overlay_repo(store)
    assert repoquery(repo, "--qf", "%{name}-%{epoch}:%{version}-%{release}.%{arch}") == [
        "hello-0:1.0-1.el9.hpc1.src",
        "hello-0:1.0-1.el9.hpc1.x86_64",
    ]
    binary = repo / "hello-1.0-1.el9.hpc1.x86_64.rpm"
    next_upstream = UpstreamPackage(release="2%{?dist}").build_srpm(tmp_path / "next")
    assert rpm.labelCompare(evr_of(binary), evr_of(base)) == 1, (
        "overlay must replace the base build"
    )
    assert rpm.labelCompare(evr_of(next_upstream), evr_of(binary)) == 1, (
        "next upstream must replace the overlay"
    )

    # The site patch really went in: the installed program greets from the overlay.
    root = tmp_path / "root"
    subprocess.run(
        [
            "rpm",
            "--root",
            str(root),
            "--dbpath",
            str(root / "rpmdb"),
            "-i",
            "--nodeps",
            "--noscripts",
            str(binary),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert (
        subprocess.run(
            [str(root / "usr/bin/hello")], capture_output=True, text=True, timeout=10
        ).stdout
        == "hello from the site overlay\n"
    )
    changelog = rpm_query(binary, "[%{changelogtext}\n]")
    assert (
        "0001-greet.patch: Site needs this behaviour on compute nodes. (https://bugs.example.org/1234)"
        in changelog
    )
    assert last_build(store)["ok"] is True
    assert last_build(store)["site_patches"] == {"0001-greet.patch": 9000}
    build_log = (build_dirs(store)[-1] / "result" / "build.log").read_text()
    assert "+ make check" in build_log, "%check ran"

    suite = ET.parse(junit).getroot()
    assert [c.get("name") for c in suite] == ["source", "patch", "build", "publish"]
    assert suite.get("failures") == "0" and suite.get("skipped") == "0"
    assert capsys.readouterr().out.split() == [
        str(repo / "hello-1.0-1.el9.hpc1.x86_64.rpm"),
        str(repo / "hello-1.0-1.el9.hpc1.src.rpm"),
    ]


@pytest.mark.parametrize(
    "patches, package, kind, expect",
    [
        (
            {"0001-greet.patch": STALE_PATCH},
            {},
            "patch-does-not-apply",
            {"patch": "0001-greet.patch", "file": "hello.c"},
        ),
        (
            {},
            {},
            "missing-buildrequires",
            {"missing": ["libfabric-devel >= 1.18", "pkgconfig(ucx)"]},
        ),
        ({"0001-broken.patch": BROKEN_PATCH}, {}, "compile-failure", {}),
        ({"0001-shout.patch": CHECK_BREAKING_PATCH}, {}, "test-failure", {}),
    ],
)
def test_failures_are_classified_and_publish_nothing(
    tmp_path, capsys, patches, package, kind, expect
):
    build_requires = (
        ["libfabric-devel >= 1.18", "pkgconfig(ucx)"] if kind == "missing-buildrequires" else []
    )
    base = UpstreamPackage(build_requires=build_requires).build_srpm(tmp_path)
    specs = site_for(tmp_path, base, patches, **package)
    store = tmp_path / "store"
    junit = tmp_path / "junit.xml"

    assert hpcos(specs, store, "build", "hello", "--target", TARGET, "--junit", str(junit)) == 1

    assert not overlay_repo(store).exists(), "a failed build publishes nothing"
    failure = last_build(store)["failure"]
    assert failure["kind"] == kind
    if kind == "patch-does-not-apply":
        assert failure["summary"] == (
            "site patch 0001-greet.patch no longer applies to hello.c: Hunk #1 FAILED at 1 "
            "(patch --dry-run in the unpacked tree); rebase it on the new upstream"
        )
        assert (failure["patch"], failure["file"], failure["reversed"]) == (
            "0001-greet.patch",
            "hello.c",
            False,
        )
    if kind == "missing-buildrequires":
        assert (
            failure["summary"] == "missing BuildRequires: libfabric-devel >= 1.18, pkgconfig(ucx)"
        )
    if kind == "compile-failure":
        assert failure["details"][0].startswith("hello.c:4:36: error:")
        assert "error: expected ';' before 'return'" in failure["details"][0]
        assert any("undeclared_site_variable" in line for line in failure["details"])
    if kind == "test-failure":
        assert failure["details"][0].startswith("make: *** [Makefile:")
        assert "check" in failure["details"][0]
    suite = ET.parse(junit).getroot()
    build_case = suite.find("testcase[@name='build']")
    assert build_case.find("failure").get("type") == kind
    assert suite.find("testcase[@name='publish']/skipped") is not None
    err = capsys.readouterr().err
    assert f"hpcos: hello {TARGET}: {failure['summary']}" in err


def test_only_the_last_n_builds_of_a_package_are_kept(tmp_path):
    """site.store.keep_builds is 2 in the test site: the third upstream release pushes out the first."""
    upstream_dir = tmp_path / "upstream"
    srpm_path = tmp_path / "current.src.rpm"
    specs = site_for(tmp_path, srpm_path, {"0001-greet.patch": GOOD_PATCH})
    store = tmp_path / "store"
    for release in ("1", "2", "3"):
        built = UpstreamPackage(release=f"{release}%{{?dist}}").build_srpm(upstream_dir / release)
        srpm_path.write_bytes(built.read_bytes())
        assert hpcos(specs, store, "build", "hello", "--target", TARGET) == 0
    assert repoquery(overlay_repo(store), "--qf", "%{version}-%{release}.%{arch}") == [
        "1.0-2.el9.hpc1.src",
        "1.0-2.el9.hpc1.x86_64",
        "1.0-3.el9.hpc1.src",
        "1.0-3.el9.hpc1.x86_64",
    ]
    assert sorted(p.name for p in overlay_repo(store).glob("*.rpm")) == [
        "hello-1.0-2.el9.hpc1.src.rpm",
        "hello-1.0-2.el9.hpc1.x86_64.rpm",
        "hello-1.0-3.el9.hpc1.src.rpm",
        "hello-1.0-3.el9.hpc1.x86_64.rpm",
    ]
    # The work directories follow the same rule: the first build's is gone.
    assert [
        json.loads((d / "build.json").read_text())["overlay_evr"] for d in build_dirs(store)
    ] == ["1.0-2.el9.hpc1", "1.0-3.el9.hpc1"]


def test_check_upstream_follows_the_daily_mirror(tmp_path, capsys):
    """The base SRPM comes from the daily environment's mirror with `dnf download --source`; the
    overlay is current after a build and due again when upstream publishes 1.0-2."""
    store = tmp_path / "store"
    daily_repo = StoreLayout(store).environments / "daily" / f"appstream-{TARGET}"
    make_repo(daily_repo, UpstreamPackage().build_srpm(tmp_path / "u1"))
    make_site(
        tmp_path / "specs",
        {
            "name": "hello",
            "upstream": {"mirror": "appstream"},
            "patches": [site_patch("0001-greet.patch")],
        },
        {"0001-greet.patch": GOOD_PATCH},
    )
    specs = tmp_path / "specs"

    assert hpcos(specs, store, "build", "hello", "--target", TARGET, "--check-upstream") == 3
    assert "no overlay build yet" in capsys.readouterr().out

    assert hpcos(specs, store, "build", "hello", "--target", TARGET) == 0
    assert last_build(store)["base"]["origin"] == daily_repo.resolve().as_uri()
    capsys.readouterr()
    assert hpcos(specs, store, "build", "hello", "--target", TARGET, "--check-upstream") == 0
    assert (
        capsys.readouterr().out == "hello: overlay 1.0-1.el9.hpc1 is current (upstream 1.0-1.el9)\n"
    )

    make_repo(daily_repo, UpstreamPackage(release="2%{?dist}").build_srpm(tmp_path / "u2"))
    assert hpcos(specs, store, "build", "hello", "--target", TARGET, "--check-upstream") == 3
    assert capsys.readouterr().out == (
        "hello: upstream 1.0-2.el9 is newer than the base of overlay 1.0-1.el9.hpc1: rebuild due\n"
    )


def test_an_overlaid_package_left_out_of_the_daily_mirror_comes_from_upstream(tmp_path, capsys):
    """`hpcos repo sync` leaves out what the overlays replace, so the daily entry lacks hello: the
    base SRPM and the upstream check then come from the mirror's upstream URL."""
    store = tmp_path / "store"
    make_repo(
        StoreLayout(store).environments / "daily" / f"appstream-{TARGET}",
        UpstreamPackage(name="other").build_srpm(tmp_path / "other"),
    )
    upstream_repo = make_repo(
        tmp_path / "upstream" / "9" / "x86_64", UpstreamPackage().build_srpm(tmp_path / "u1")
    )
    url = file_url(tmp_path / "upstream") + "/{release}/{arch}/"
    make_site(
        tmp_path / "specs",
        {"name": "hello", "upstream": {"mirror": "appstream"}},
        {},
        {"mirrors": {"appstream": {"url": url}}},
    )

    assert hpcos(tmp_path / "specs", store, "build", "hello", "--target", TARGET) == 0
    assert last_build(store)["base"]["origin"] == file_url(upstream_repo) + "/"
    capsys.readouterr()
    assert (
        hpcos(tmp_path / "specs", store, "build", "hello", "--target", TARGET, "--check-upstream")
        == 0
    )
    assert (
        capsys.readouterr().out == "hello: overlay 1.0-1.el9.hpc1 is current (upstream 1.0-1.el9)\n"
    )


def test_the_mirrors_source_repository_provides_the_base_srpm(tmp_path):
    """Upstream keeps SRPMs in a repository of their own (Rocky's .../source/tree/): `source_url`
    names it, and a file:/// URL with an empty host is accepted as dnf writes it."""
    binary = make_repo(
        tmp_path / "binary" / "9" / "x86_64",
        UpstreamPackage(name="other").build_srpm(tmp_path / "o"),
    )
    sources = make_repo(tmp_path / "sources" / "9", UpstreamPackage().build_srpm(tmp_path / "u1"))
    make_site(
        tmp_path / "specs",
        {"name": "hello", "upstream": {"mirror": "appstream"}},
        {},
        {
            "mirrors": {
                "appstream": {
                    "url": binary.resolve().as_uri().replace("/9/x86_64", "/{release}/{arch}"),
                    "source_url": (tmp_path / "sources").resolve().as_uri() + "/{release}/",
                }
            }
        },
    )
    assert (tmp_path / "specs" / "site.yaml").read_text().count("file:///") == 2
    store = tmp_path / "store"
    assert hpcos(tmp_path / "specs", store, "build", "hello", "--target", TARGET) == 0
    assert last_build(store)["base"]["origin"] == sources.resolve().as_uri() + "/"
    assert binary.is_dir()


def test_source_repo_option_names_the_base_repository(tmp_path):
    mirror = make_repo(tmp_path / "mirror", UpstreamPackage().build_srpm(tmp_path))
    make_site(tmp_path / "specs", {"name": "hello", "upstream": {"mirror": "appstream"}}, {})
    store = tmp_path / "store"
    assert (
        hpcos(
            tmp_path / "specs",
            store,
            "build",
            "hello",
            "--target",
            TARGET,
            "--source-repo",
            str(mirror),
        )
        == 0
    )
    assert last_build(store)["base"]["origin"] == mirror.resolve().as_uri()
    assert (overlay_repo(store) / "hello-1.0-1.el9.hpc1.x86_64.rpm").is_file()


def test_sha256_mismatch_is_a_one_line_error_and_publishes_nothing(tmp_path, capsys):
    base = UpstreamPackage().build_srpm(tmp_path)
    make_site(
        tmp_path / "specs",
        {"name": "hello", "upstream": {"srpm_path": str(base), "sha256": "0" * 64}},
        {},
    )
    store = tmp_path / "store"
    junit = tmp_path / "junit.xml"

    rc = hpcos(
        tmp_path / "specs", store, "build", "hello", "--target", TARGET, "--junit", str(junit)
    )

    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("hpcos: hello: hello-1.0-1.el9.src.rpm sha256 is ")
    assert err[-1].endswith("upstream.sha256 expects " + "0" * 64)
    assert not overlay_repo(store).exists()
    assert ET.parse(junit).getroot().find("testcase[@name='source']/failure").get("type") == "error"


def test_user_mistakes_are_one_line_errors(tmp_path, capsys):
    base = UpstreamPackage().build_srpm(tmp_path)
    specs = site_for(tmp_path, base, {})
    store = tmp_path / "store"
    assert hpcos(specs, store, "build", "nosuch", "--target", TARGET) == 2
    assert (
        capsys.readouterr().err == f"hpcos: unknown package 'nosuch'; known: hello (in {specs})\n"
    )
    assert hpcos(specs, store, "build", "hello", "--target", "el8-x86_64") == 2
    assert capsys.readouterr().err == (
        "hpcos: hello is not built for target 'el8-x86_64'; its targets: el9-x86_64\n"
    )
    assert hpcos(specs, store, "build", "hello") == 2
    assert capsys.readouterr().err == "hpcos: --target is required (one of: el9-x86_64)\n"


def test_rpmbuild_refuses_a_foreign_architecture_before_fetching_anything(tmp_path, capsys):
    foreign = "aarch64" if platform.machine() != "aarch64" else "x86_64"
    specs = site_for(tmp_path, tmp_path / "absent.src.rpm", {}, targets=[f"el9-{foreign}"])
    assert hpcos(specs, tmp_path / "store", "build", "hello", "--target", f"el9-{foreign}") == 2
    assert capsys.readouterr().err == (
        f"hpcos: the rpmbuild builder builds only for this host; not el9-{foreign}: its architecture is {foreign}, "
        f"this host's is {platform.machine()}. Build it with mock on a build host, or pass --allow-foreign-host "
        "for a test build that is never published\n"
    )
    assert not (tmp_path / "store").exists()


def test_rpmbuild_refuses_another_distribution_unless_asked_for_a_test_build(
    tmp_path, capsys, monkeypatch
):
    """This machine as it is (Debian: no .elN %{dist}) must not publish an el9 build; with
    --allow-foreign-host it builds, as a test build that is never published."""
    monkeypatch.delenv("SYSTEMD_OS_RELEASE")
    (Path(tmp_path / "home") / ".rpmmacros").unlink()
    host = subprocess.run(
        ["rpm", "--eval", "%{dist}"], capture_output=True, text=True, timeout=60
    ).stdout.strip()
    if host.startswith(".el"):
        pytest.skip(f"this host is an EL host ({host}); the refusal is for another distribution")
    base = UpstreamPackage().build_srpm(tmp_path)
    specs = site_for(tmp_path, base, {"0001-greet.patch": GOOD_PATCH})
    store = tmp_path / "store"

    assert hpcos(specs, store, "build", "hello", "--target", TARGET) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"hpcos: the rpmbuild builder builds only for this host; not {TARGET}: it is EL9, this "
        "host is "
    )
    assert "the RPMs would link against this host's libraries" in err
    assert not store.exists()

    junit = tmp_path / "junit.xml"
    assert (
        hpcos(
            specs,
            store,
            "build",
            "hello",
            "--target",
            TARGET,
            "--allow-foreign-host",
            "--junit",
            str(junit),
        )
        == 0
    )
    assert "test build on a foreign host, not published" in capsys.readouterr().err
    assert not overlay_repo(store).exists(), "a test build is never published"
    record = last_build(store)
    assert record["test_build"] is True and record["published"] == []
    assert (build_dirs(store)[-1] / "result" / "hello-1.0-1.el9.hpc1.x86_64.rpm").is_file()
    skipped = ET.parse(junit).getroot().find("testcase[@name='publish']/skipped")
    assert skipped.get("message") == "test build: never published"


def test_srpm_from_a_url_with_matching_sha256(tmp_path):
    base = UpstreamPackage().build_srpm(tmp_path)
    digest = subprocess.run(
        ["sha256sum", str(base)], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()[0]
    make_site(
        tmp_path / "specs",
        {"name": "hello", "upstream": {"srpm_url": file_url(base), "sha256": digest}},
        {},
    )
    store = tmp_path / "store"
    assert hpcos(tmp_path / "specs", store, "build", "hello", "--target", TARGET) == 0
    assert last_build(store)["base"] == {
        "name": "hello",
        "evr": "1.0-1.el9",
        "sha256": digest,
        "origin": file_url(base),
    }
    assert repoquery(
        overlay_repo(store), "--arch", "x86_64", "--qf", "%{name}-%{version}-%{release}"
    ) == ["hello-1.0-1.el9.hpc1"]


def test_autosetup_without_patches_gets_explicit_patch_lines(tmp_path):
    """`%autosetup -N` applies no patch: the site patch needs its own %patch line, or it is silently lost."""
    base = UpstreamPackage(prep="autosetup-N").build_srpm(tmp_path)
    specs = site_for(tmp_path, base, {"0001-greet.patch": GOOD_PATCH})
    store = tmp_path / "store"
    assert hpcos(specs, store, "build", "hello", "--target", TARGET) == 0
    spec = (build_dirs(store)[-1] / "rpmbuild" / "SPECS" / "hello.spec").read_text()
    assert "%autosetup -N\n%patch -P9000 -p1\n" in spec
    assert (
        "Patch #9000 (hpcos-hpc1-0001-greet.patch):"
        in (build_dirs(store)[-1] / "result" / "build.log").read_text()
    )
