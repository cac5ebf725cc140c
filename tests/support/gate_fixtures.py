"""What the production gate needs to see before it opens: the site's test-cluster profile and its
required suite, a verified deployment of the snapshot on it (tests/test_deploy.py runs the real
deploy), and a nightly run the harness recorded itself (``harness_night`` runs the real `hpcos test`)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from hpcos.core.store_layout import StoreLayout
from hpcos.repo import deployments

CLUSTER = "test"
NODE = "node001"
REQUIRED = "test_hostname"  # the required suite of these sites: cheap, and real


def write_test_cluster(specs: Path) -> str:
    """site.yaml's harness.profile (profile.yaml beside the specs), with a required suite the nightly runs
    here select (``REQUIRED``, also every package's ``tests:``); returns the profile's sha256."""
    profile = specs.parent / "profile.yaml"
    profile.write_text(f"name: {CLUSTER}\nlauncher: local\nnodes: {NODE}\n")
    require_suite(specs)
    return hashlib.sha256(profile.read_bytes()).hexdigest()


def require_suite(specs: Path) -> None:
    """site.yaml's required suite, and every package's ``tests:``, become ``REQUIRED``."""
    site_yaml = specs / "site.yaml"
    text = site_yaml.read_text()
    if "required_tests" not in text:
        site_yaml.write_text(
            text.replace(
                "harness: {profile: profile.yaml}",
                f"harness: {{profile: profile.yaml, required_tests: [{REQUIRED}]}}",
            )
        )
    for package in specs.glob("*.yaml"):
        if package.name != "site.yaml":
            package.write_text(
                package.read_text().replace('tests: ["mpi"]', f"tests: [{REQUIRED}]")
            )


def deployed(store: Path, snapshot: str, profile_sha256: str) -> None:
    """What `hpcos deploy` records when it verified ``snapshot`` on node001."""
    deployments.write(
        StoreLayout(store),
        deployments.DeploymentRecord(
            deploy_id=f"d-{snapshot}",
            environment="testing",
            snapshot=snapshot,
            cluster=CLUSTER,
            profile_sha256=profile_sha256,
            started="2026-11-01T01:00:00+00:00",
            finished="2026-11-01T01:10:00+00:00",
            batch_size=1,
            nodes={NODE: deployments.NodeDeployment(NODE, verified=True)},
        ),
    )


def test_cluster_night(specs: Path, store: Path, snapshot: str, results: Path, passed: bool = True):
    """The nightly tests on the test cluster ``write_test_cluster`` wrote, really run: the required suite
    passes, or (``passed=False``) test_tmp_writable fails, with TMPDIR pointing nowhere."""
    select = REQUIRED if passed else f"{REQUIRED} or test_tmp_writable"
    return harness_night(
        specs,
        store,
        specs.parent / "profile.yaml",
        snapshot,
        results,
        "-k",
        select,
        env=None if passed else {"TMPDIR": str(results.parent / "no-such-directory")},
    )


def harness_night(
    specs: Path,
    store: Path,
    profile: Path,
    snapshot: str,
    results: Path,
    *pytest_args: str,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """The nightly tests, really run: `hpcos test` on ``profile`` with HPCOS_TESTING_SNAPSHOT set, as the
    nightly job runs it.  The harness writes ``results`` and records the run, signed, into ``store``."""
    argv = [
        sys.executable,
        "-m",
        "hpcos.cli",
        "--specs",
        str(specs),
        "--store",
        str(store),
        "test",
        "--cluster",
        str(profile),
        "--results",
        str(results),
        "--tickets",
        "off",
        "-q",
        "-p",
        "no:cacheprovider",
        *pytest_args,
    ]
    environ = {**os.environ, "HPCOS_TESTING_SNAPSHOT": snapshot, **(env or {})}
    environ.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run(
        argv, env=environ, capture_output=True, text=True, timeout=600, check=False
    )
    assert results.is_file(), done.stdout + done.stderr
    assert "recorded for the production gate" in done.stdout, done.stdout + done.stderr
    return done
