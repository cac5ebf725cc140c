"""One overlay build, start to finish: source -> patch -> build -> publish.

Every stage's output is kept in the build directory (``StoreLayout.build_dir(package, target)/<id>/``,
archived by Jenkins), progress goes to the console, and a failed stage stops the build before
anything is published.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hpcos.core.errors import HpcosError, UserError
from hpcos.core.store_layout import StoreLayout
from hpcos.rebuild import patch_check, patching, publish, source
from hpcos.rebuild.builders import Builder
from hpcos.rebuild.failures import FIRST_LINES, Failure, FailureKind, classify
from hpcos.rebuild.junit import StageResult
from hpcos.site.specs import Package, SpecSet

STAGES = ("source", "patch", "build", "publish")

log = logging.getLogger("hpcos.rebuild")


@dataclass
class BuildReport:
    package: str
    target: str
    build_dir: Path
    stages: list[StageResult] = field(default_factory=list)
    failure: Failure | None = None
    error: UserError | None = None
    base: source.Srpm | None = None
    patched: patching.PatchedSource | None = None
    published: publish.Published | None = None
    # Built by rpmbuild on a host of another distribution (--allow-foreign-host): never published.
    test_build: bool = False

    @property
    def ok(self) -> bool:
        return self.failure is None and self.error is None


class BuildFailed(HpcosError):
    """A step of the build failed; ``failure`` says which and why (the report records it)."""

    family = "build"

    def __init__(self, failure: Failure):
        super().__init__(failure.summary)
        self.failure = failure


def new_build_dir(layout: StoreLayout, package: str, target: str) -> Path:
    """``<UTC time>`` or, under Jenkins, ``<UTC time>-jenkins<BUILD_NUMBER>``, so both sort by time."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    number = os.environ.get("BUILD_NUMBER")
    path = layout.build_dir(package, target) / (f"{stamp}-jenkins{number}" if number else stamp)
    path.mkdir(parents=True)
    return path


def run_build(
    spec_set: SpecSet,
    package: Package,
    target: str,
    layout: StoreLayout,
    builder: Builder,
    source_repo: str | None = None,
    signer: publish.Signer | None = None,
) -> BuildReport:
    build_dir = new_build_dir(layout, package.name, target)
    report = BuildReport(package.name, target, build_dir)
    _say(f"hpcos build {package.name} for {target} with {builder.name}; logs in {build_dir}")

    def stage(name: str, log: Path | None, work: Callable[[], object]) -> object:
        number = len(report.stages) + 1
        _say(f"[{number}/{len(STAGES)}] {name} ...")
        start = time.monotonic()
        try:
            value = work()
        except UserError as exc:
            report.error = exc
            failure = ("error", str(exc), str(exc))
        except BuildFailed as exc:
            report.failure = exc.failure
            failure = (exc.failure.kind.value, exc.failure.summary, "\n".join(exc.failure.details))
        else:
            report.stages.append(StageResult(name, time.monotonic() - start, log=log))
            _say(f"[{number}/{len(STAGES)}] {name} done in {time.monotonic() - start:.1f} s")
            return value
        report.stages.append(StageResult(name, time.monotonic() - start, failure, log=log))
        _say(f"[{number}/{len(STAGES)}] {name} FAILED: {failure[1]}")
        for line in report.failure.details[:FIRST_LINES] if report.failure else []:
            _say(f"      {line}")
        return None

    def build():
        result = builder.build(report.patched.srpm, build_dir / "result")
        if not result.ok:
            # mock that dies before building (a bad -r config) leaves only its console output.
            build_log = result.log("build.log") or result.log("mock-output.log")
            failure = classify(build_log, result.log("root.log"), result.log("state.log"))
            in_prep = failure.kind == FailureKind.PATCH or failure.section == "%prep"
            if in_prep and package.patches and report.patched.check_spec:
                # Which site patch, and why: dry runs in the tree as far as the site patches.
                _say("      a patch failed in %prep: checking each site patch with patch --dry-run")
                verdicts = patch_check.check(
                    spec_set,
                    package,
                    report.patched.check_spec,
                    build_dir / "rpmbuild",
                    logs / "patch-check.log",
                )
                failure = patch_check.explain(verdicts, failure, package)
            raise BuildFailed(failure)
        return result

    def existing():
        return publish.existing_builds(
            layout, package.overlay, target, package.upstream.srpm_name or package.name
        )

    logs = build_dir / "logs"
    report.base = stage(
        "source",
        logs / "source.log",
        lambda: source.fetch(
            spec_set,
            package,
            target,
            layout,
            build_dir / "upstream",
            logs / "source.log",
            source_repo,
        ),
    )
    if report.ok:
        _say(f"      upstream {report.base.name}-{report.base.evr} from {report.base.origin}")
        report.patched = stage(
            "patch",
            logs / "patch.log",
            lambda: patching.prepare(
                spec_set,
                package,
                report.base,
                build_dir / "rpmbuild",
                logs / "patch.log",
                existing(),
            ),
        )
    if report.ok:
        _say(
            f"      overlay {report.base.name}-{report.patched.evr} ({len(package.patches)} site patches, "
            f"{report.patched.style}; build {report.patched.counter} of this base)"
        )
        result = stage("build", build_dir / "result" / "build.log", build)
    if report.ok and builder.test_build:
        report.test_build = True
        _say(f"test build on a foreign host: not published; RPMs in {build_dir / 'result'}")
    elif report.ok:
        report.published = stage(
            "publish",
            logs / "publish.log",
            lambda: publish.publish(
                [*result.rpms, report.patched.srpm],
                layout,
                package.overlay,
                target,
                spec_set.site.store.keep_builds,
                logs / "publish.log",
                signer,
            ),
        )
    if report.ok and report.published:
        _say(
            f"published {len(report.published.added)} RPMs to {report.published.repo}"
            + (f", removed {len(report.published.removed)} old" if report.published.removed else "")
        )
    for name in STAGES[len(report.stages) :]:
        report.stages.append(
            StageResult(
                name,
                0.0,
                skipped=True,
                reason="test build: never published" if report.test_build else None,
            )
        )
    _write_record(report)
    prune_build_dirs(layout, package.name, target, spec_set.site.store.keep_builds)
    return report


def prune_build_dirs(layout: StoreLayout, package: str, target: str, keep: int) -> list[Path]:
    """Keep the newest ``keep`` build directories of a package and target: a kernel build leaves a
    gigabyte of sources and RPMs behind, and Jenkins has archived what it needs by then."""
    dirs = sorted(p for p in layout.build_dir(package, target).iterdir() if p.is_dir())
    old = dirs[:-keep]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    return old


def _say(text: str) -> None:
    log.info("%s", text)


def _write_record(report: BuildReport) -> None:
    """``build.json`` beside the logs: what was built from what, and how it ended."""
    record = {
        "package": report.package,
        "target": report.target,
        "ok": report.ok,
        "base": {
            "name": report.base.name,
            "evr": str(report.base.evr),
            "sha256": report.base.sha256,
            "origin": report.base.origin,
        }
        if report.base
        else None,
        "overlay_evr": str(report.patched.evr) if report.patched else None,
        "test_build": report.test_build,
        "site_inputs": report.patched.inputs if report.patched else None,
        "patch_style": report.patched.style if report.patched else None,
        # Site patch file -> its Patch number in the overlay spec, to read rpmbuild's "Patch #N" lines.
        "site_patches": report.patched.patch_numbers if report.patched else {},
        "failure": {
            "kind": report.failure.kind.value,
            "summary": report.failure.summary,
            "details": report.failure.details,
            "patch": report.failure.patch,
            "file": report.failure.file,
            "hunks": report.failure.hunks,
            "reversed": report.failure.reversed,
        }
        if report.failure
        else None,
        "error": str(report.error) if report.error else None,
        "published": [p.name for p in report.published.added] if report.published else [],
        "stages": [
            {
                "name": s.name,
                "seconds": round(s.seconds, 3),
                "ok": s.failure is None and not s.skipped,
            }
            for s in report.stages
        ],
    }
    (report.build_dir / "build.json").write_text(json.dumps(record, indent=2) + "\n")
