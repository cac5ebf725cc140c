"""The mock builder.  Fedora's mock is not packaged for Debian, so these tests check its exact command
lines for the four targets and run it through tests/support/fake_mock/mock: a stand-in on PATH that takes
mock's documented command line (``-r``, ``--rebuild``, ``--resultdir``, ``--addrepo``) and writes a
result directory in mock 5's real formats (build.log, root.log with "DEBUG util.py:NNN:" prefixes and
dnf builddep's messages, state.log with timestamped Start:/Finish: phases), building with the real
rpmbuild.  Failure classification is then read from those mock-format logs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import require_tool
from support.rpm_fixtures import (
    BROKEN_PATCH,
    GOOD_PATCH,
    STALE_PATCH,
    UpstreamPackage,
    make_site,
    repoquery,
    site_patch,
)

from hpcos.cli import main
from hpcos.core.store_layout import StoreLayout
from hpcos.rebuild.builders import MockBuilder, make_builder
from hpcos.rebuild.failures import FailureKind, classify

FAKE_MOCK_DIR = Path(__file__).parent / "support" / "fake_mock"
TARGETS = ["el8-x86_64", "el8-aarch64", "el9-x86_64", "el9-aarch64"]


def spec_set_for(tmp_path: Path, **package):
    return make_site(
        tmp_path / "specs",
        {
            "name": "openmpi",
            "upstream": {"mirror": "appstream"},
            "targets": TARGETS,
            "builder": "mock",
            **package,
        },
        {},
    )


@pytest.mark.parametrize(
    "target, config",
    [
        ("el8-x86_64", "rocky+epel-8-x86_64"),
        ("el8-aarch64", "rocky+epel-8-aarch64"),
        ("el9-x86_64", "rocky+epel-9-x86_64"),
        ("el9-aarch64", "rocky+epel-9-aarch64"),
    ],
)
def test_mock_command_line_adds_the_overlay_repository(tmp_path, target, config):
    spec_set = spec_set_for(tmp_path)
    layout = StoreLayout(tmp_path / "store")
    srpm = tmp_path / "openmpi-4.1.1-2.el9.hpc1.src.rpm"
    result = tmp_path / "result"

    # No overlay metadata yet (first build of the overlay): nothing to add.
    assert make_builder("mock", spec_set, spec_set.packages["openmpi"], target, layout).command(
        srpm, result
    ) == ["mock", "-r", config, "--rebuild", str(srpm), "--resultdir", str(result)]

    overlay = layout.overlay_repo("hpc-overlay", target)
    (overlay / "repodata").mkdir(parents=True)
    (overlay / "repodata" / "repomd.xml").write_text("<repomd/>")
    assert make_builder("mock", spec_set, spec_set.packages["openmpi"], target, layout).command(
        srpm, result
    ) == [
        "mock",
        "-r",
        config,
        "--rebuild",
        str(srpm),
        "--resultdir",
        str(result),
        "--addrepo",
        f"file://{tmp_path}/store/overlays/hpc-overlay/{target}",
    ]


def test_a_package_mock_config_overrides_the_site_one(tmp_path):
    spec_set = spec_set_for(tmp_path, mock_config={"el9-aarch64": "site-el9-aarch64-with-devel"})
    builder = make_builder(
        "mock", spec_set, spec_set.packages["openmpi"], "el9-aarch64", StoreLayout(tmp_path)
    )
    assert isinstance(builder, MockBuilder) and builder.config == "site-el9-aarch64-with-devel"


@pytest.fixture
def fake_mock(tmp_path, monkeypatch):
    require_tool("rpmbuild", "rpm")
    require_tool("createrepo_c", "createrepo-c")
    record = tmp_path / "mock-calls.jsonl"
    monkeypatch.setenv("PATH", f"{FAKE_MOCK_DIR}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_MOCK_RECORD", str(record))
    return record


def build_with_mock(tmp_path: Path, patches: dict[str, str], build_requires=()) -> tuple[int, Path]:
    base = UpstreamPackage(build_requires=list(build_requires)).build_srpm(tmp_path)
    make_site(
        tmp_path / "specs",
        {
            "name": "hello",
            "upstream": {"srpm_path": str(base)},
            "builder": "mock",
            "patches": [site_patch(name) for name in patches],
        },
        patches,
    )
    store = tmp_path / "store"
    return main(
        [
            "--specs",
            str(tmp_path / "specs"),
            "--store",
            str(store),
            "build",
            "hello",
            "--target",
            "el9-x86_64",
        ]
    ), store


def result_dir(store: Path) -> Path:
    return sorted(StoreLayout(store).build_dir("hello", "el9-x86_64").iterdir())[-1] / "result"


def test_mock_build_publishes_and_the_next_build_sees_the_overlay(tmp_path, fake_mock):
    rc, store = build_with_mock(tmp_path, {"0001-greet.patch": GOOD_PATCH})
    assert rc == 0
    overlay = StoreLayout(store).overlay_repo("hpc-overlay", "el9-x86_64")
    assert repoquery(overlay, "--qf", "%{name}-%{version}-%{release}.%{arch}") == [
        "hello-1.0-1.el9.hpc1.src",
        "hello-1.0-1.el9.hpc1.x86_64",
    ]
    first = result_dir(store)
    assert {p.name for p in first.iterdir()} >= {"build.log", "root.log", "state.log"}

    assert (
        main(
            [
                "--specs",
                str(tmp_path / "specs"),
                "--store",
                str(store),
                "build",
                "hello",
                "--target",
                "el9-x86_64",
            ]
        )
        == 0
    )
    calls = [json.loads(line) for line in fake_mock.read_text().splitlines()]
    srpm = str(first.parent / "rpmbuild" / "SRPMS" / "hello-1.0-1.el9.hpc1.src.rpm")
    assert calls[0] == ["-r", "rocky+epel-9-x86_64", "--rebuild", srpm, "--resultdir", str(first)]
    assert calls[1][-2:] == ["--addrepo", overlay.resolve().as_uri()]


@pytest.mark.parametrize(
    "patches, build_requires, kind, summary",
    [
        (
            {"0001-greet.patch": STALE_PATCH},
            (),
            FailureKind.PATCH,
            "patch hpcos-hpc1-0001-greet.patch does not apply to hello.c: Hunk #1 FAILED at 1.",
        ),
        (
            {},
            ("ucx-devel >= 1.15", "rdma-core-devel"),
            FailureKind.BUILD_REQUIRES,
            "missing BuildRequires: rdma-core-devel, ucx-devel >= 1.15",
        ),
        (
            {"0001-broken.patch": BROKEN_PATCH},
            (),
            FailureKind.COMPILE,
            "compile failure in %build: hello.c:4:36: error: expected ';' before 'return'",
        ),
    ],
)
def test_failures_are_classified_from_mock_logs(
    tmp_path, fake_mock, patches, build_requires, kind, summary
):
    rc, store = build_with_mock(tmp_path, patches, build_requires)
    assert rc == 1
    assert not StoreLayout(store).overlay_repo("hpc-overlay", "el9-x86_64").exists()
    result = result_dir(store)
    failure = classify((result / "build.log").read_text(), (result / "root.log").read_text())
    assert (failure.kind, failure.summary) == (kind, summary)
    record = json.loads((result.parent / "build.json").read_text())
    assert record["failure"]["kind"] == kind.value
