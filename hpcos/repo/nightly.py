"""Nightly run records: which testing snapshot a nightly run tested and whether it passed.

``hpcos repo record-run RESULTS.json`` writes one record per run under ``StoreLayout.nightly_records``;
the production gate reads them.  Records are small JSON files written by rename, never edited.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from hpcos.core.errors import UserError
from hpcos.core.files import write_text_atomically
from hpcos.core.store_layout import StoreLayout
from hpcos.results.model import RunResults


@dataclass(frozen=True)
class NightlyRecord:
    run_id: str
    testing_snapshot: str
    passed: bool
    failures: int
    tests: int
    finished: str
    recorded: str
    build_url: str | None = None

    @property
    def verdict(self) -> str:
        if self.passed:
            return f"passed ({self.tests} results)"
        if self.failures:
            return f"failed ({self.failures} of {self.tests} results failed)"
        return f"failed (nothing ran: {self.tests} results, all skipped)" if self.tests else "failed (no results)"


def record_run(layout: StoreLayout, results_path: Path) -> NightlyRecord:
    # The results file must validate: an unknown outcome ("FAILED") must never count as a pass.
    run = RunResults.read(results_path)
    if not run.testing_snapshot:
        raise UserError(f"{results_path}: testing_snapshot is empty; the nightly job must export "
                        f"HPCOS_TESTING_SNAPSHOT=$(hpcos repo status testing --id) before `hpcos test`")
    failures = len(run.failures())
    record = NightlyRecord(
        run_id=run.run_id, testing_snapshot=run.testing_snapshot,
        # A run in which nothing passed (no results, or every test skipped) proves nothing about the snapshot.
        passed=failures == 0 and any(r.outcome == "passed" for r in run.results), failures=failures,
        tests=len(run.results),
        finished=run.finished or run.started, recorded=datetime.now(UTC).isoformat(timespec="seconds"),
        build_url=run.build_url,
    )
    layout.nightly_records.mkdir(parents=True, exist_ok=True)
    path = layout.nightly_records / f"{_safe(run.run_id)}.json"
    write_text_atomically(path, json.dumps(asdict(record), indent=2, sort_keys=True))
    return record


def _safe(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)


def records(layout: StoreLayout) -> list[NightlyRecord]:
    """Every recorded run, oldest first (by when it finished, then when it was recorded)."""
    if not layout.nightly_records.is_dir():
        return []
    found = []
    for path in layout.nightly_records.glob("*.json"):
        try:
            found.append(NightlyRecord(**json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(found, key=lambda r: (r.finished, r.recorded))


def last_run_on(layout: StoreLayout, snapshot_id: str) -> NightlyRecord | None:
    runs = [r for r in records(layout) if r.testing_snapshot == snapshot_id]
    return runs[-1] if runs else None
