"""The repository modules one by one: package diffs, pointer records, metadata reading, content store."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import subprocess

import pytest
from conftest import require_tool
from support.rpm_repo_fixtures import Rpm, make_repo
from test_repo_lifecycle import rpm_factory  # noqa: F401

from hpcos.core.errors import UserError
from hpcos.core.files import file_digest
from hpcos.core.store_layout import StoreLayout
from hpcos.repo import nightly, repodata
from hpcos.repo.diff import diff_packages
from hpcos.repo.environments import Environments
from hpcos.repo.mirror import verified_sha256
from hpcos.results.model import RunResults
from hpcos.rpms.content_store import ContentStore


def record(name, version, release="1", arch="noarch"):
    return repodata.PackageRecord(name, "0", version, release, arch)


def test_diff_pairs_updates_per_name_and_arch():
    old = [
        record("a", "1"),
        record("b", "1"),
        record("k", "5.14", "1", "x86_64"),
        record("k", "5.14", "2", "x86_64"),
    ]
    new = [
        record("a", "2"),
        record("c", "1"),
        record("k", "5.14", "2", "x86_64"),
        record("k", "5.14", "3", "x86_64"),
    ]
    result = diff_packages(old, new)
    assert result.added == ["c-0:1-1.noarch"]
    assert result.removed == ["b-0:1-1.noarch"]
    assert result.updated == [("a.noarch", "0:1-1", "0:2-1"), ("k.x86_64", "0:5.14-1", "0:5.14-3")]


def test_pointer_history_rollback_and_recovery(tmp_path):
    layout = StoreLayout(tmp_path)
    for snapshot in ("s1", "s2", "s3"):
        (layout.snapshots / snapshot).mkdir(parents=True)
    pointer = Environments(layout).environment("testing")
    pointer.switch("s1", "promote")
    pointer.switch("s2", "promote")
    pointer.switch("s3", "promote")
    assert pointer.previous() == "s2"
    pointer.switch("s2", "rollback")
    assert pointer.previous() == "s1"  # a second rollback walks further back, not back to s3
    assert os.readlink(pointer.path) == "../snapshots/s2"
    # A run killed after its switch and mid-way through its record: the next run records the switch.
    tmp = pointer.directory / "x"
    os.symlink("../snapshots/s3", tmp)
    os.replace(tmp, pointer.path)
    with open(pointer.log_path, "a") as log:
        log.write('{"action": "prom')
    Environments(layout).clean_leftovers()
    records = pointer.records()
    assert (
        records[-1].action == "recovered"
        and records[-1].snapshot == "s3"
        and records[-1].previous == "s2"
    )
    assert pointer.history() == ["s1", "s2", "s3"]


@pytest.mark.parametrize("suffix", [".gz", ".xz", ".bz2", ".zst"])
def test_primary_metadata_in_any_compression(rpm_factory, tmp_path, suffix):  # noqa: F811
    repo = make_repo(
        rpm_factory, tmp_path / "repo", [Rpm("alpha", "1.0"), Rpm("gamma", "1.0", arch="x86_64")]
    )
    gz_path = repodata.primary_location(repo)
    raw = gzip.decompress(gz_path.read_bytes())
    new_path = gz_path.with_name(gz_path.name.removesuffix(".gz") + suffix)
    if suffix == ".zst":
        zstd = require_tool("zstd", "zstd")
        subprocess.run([zstd, "-q", "-o", str(new_path), "-"], input=raw, check=True, timeout=60)
    else:
        new_path.write_bytes(
            {".gz": gzip.compress, ".xz": lzma.compress, ".bz2": bz2.compress}[suffix](raw)
        )
    repomd = repo / "repodata" / "repomd.xml"
    repomd.write_text(repomd.read_text().replace(gz_path.name, new_path.name))
    packages = repodata.read_packages(repo)
    assert {p.nevra for p in packages} == {"alpha-0:1.0-1.noarch", "gamma-0:1.0-1.x86_64"}
    alpha = next(p for p in packages if p.name == "alpha")
    assert alpha.checksum == file_digest(repo / alpha.location) and alpha.checksum_type == "sha256"


def test_checksum_verification_and_content_store(rpm_factory, tmp_path):  # noqa: F811
    repo = make_repo(rpm_factory, tmp_path / "repo", [Rpm("alpha", "1.0")])
    (alpha,) = repodata.read_packages(repo)
    path = repo / alpha.location
    sha = verified_sha256(path, alpha)
    store = ContentStore(tmp_path / "content")
    store.link_into(path, sha, tmp_path / "a.rpm")
    store.link_into(path, sha, tmp_path / "b.rpm")
    assert store.path(sha).stat().st_nlink == 3  # one stored copy, two snapshot links
    assert store.path(sha).stat().st_ino != path.stat().st_ino  # never the caller's inode
    assert store.collect_garbage() == 0
    (tmp_path / "a.rpm").unlink()
    (tmp_path / "b.rpm").unlink()
    assert store.collect_garbage() == 1 and not store.path(sha).exists()
    with pytest.raises(UserError, match="checksum mismatch"):
        verified_sha256(path, repodata.PackageRecord(**{**alpha.__dict__, "checksum": "0" * 64}))


def test_a_run_without_results_does_not_open_the_gate(tmp_path):
    path = tmp_path / "results.json"
    RunResults(
        run_id="empty", cluster="c", started="2026-11-26T02:00:00+00:00", testing_snapshot="s1"
    ).write(path)
    layout = StoreLayout(tmp_path / "store")
    recorded = nightly.record_run(layout, path)
    assert not recorded.passed and recorded.outcome == "failed (no results)"
    assert (
        recorded.provenance == "imported"
        and "the harness recorded no run with this id" in recorded.verdict
    )
    assert nightly.last_run_on(layout, "s1") == recorded


def test_two_runs_that_finish_in_the_same_second_keep_the_order_they_were_recorded_in(tmp_path):
    """The harness writes whole seconds: two short runs (a rerun right after a fix) can share the
    second they finished in; the later one recorded is the newest, whatever order the files list in."""
    layout = StoreLayout(tmp_path / "store")
    ids = []
    for n in range(6):
        path = tmp_path / f"results-{n}.json"
        RunResults(
            run_id=f"run-{n}",
            cluster="c",
            started="2026-11-26T02:00:00+00:00",
            finished="2026-11-26T02:00:01+00:00",
            testing_snapshot="s1",
        ).write(path)
        ids.append(nightly.record_run(layout, path).run_id)
    assert [r.run_id for r in nightly.runs_on(layout, "s1")] == ids
    assert nightly.last_run_on(layout, "s1").run_id == "run-5"
