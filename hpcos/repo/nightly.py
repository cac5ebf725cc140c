"""Nightly run records: which testing snapshot a nightly run tested, where, and with what outcome.

``hpcos repo record-run RESULTS.json`` writes one record per run under ``StoreLayout.nightly_records``;
the production gate (``hpcos.repo.gate``) reads them.  A record keeps what the gate needs and no
more: the cluster profile (name and content hash), each (test, node, outcome), and -- when the results
file did not validate -- why, so the gate can refuse naming it.  Records are small JSON files written
by rename, never edited.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

from ClusterShell.NodeSet import NodeSet, NodeSetParseError

from hpcos.core.errors import UserError
from hpcos.core.files import write_text_atomically
from hpcos.core.sourced_yaml import InvalidInput
from hpcos.core.store_layout import StoreLayout
from hpcos.results.model import Outcome, RunResults


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
    cluster: str = ""  # the profile's name
    profile_sha256: str = ""  # the profile file's sha256, as the harness recorded it
    started: str = ""
    invalid: str = ""  # why the results file did not validate; empty when it did
    results: list[list] = field(default_factory=list)  # [full node id, node, outcome] per result
    # Configuration repository -> the commit of its testing branch the test cluster ran (the config
    # promotion gate merges exactly that commit into production).
    config_commits: dict[str, str] = field(default_factory=dict)

    def tested_nodes(self) -> NodeSet:
        """Every node a result names (a job-level result names a node set)."""
        nodes = NodeSet()
        for _test, node, _outcome in self.results:
            if node:
                try:
                    nodes.update(NodeSet(node))
                except NodeSetParseError:
                    continue
        return nodes

    @property
    def verdict(self) -> str:
        if self.invalid:
            return f"invalid results ({self.invalid})"
        if self.passed:
            return f"passed ({self.tests} results)"
        if self.failures:
            return f"failed ({self.failures} of {self.tests} results failed)"
        return f"failed (nothing ran: {self.tests} results, all skipped)" if self.tests else "failed (no results)"


def record_run(layout: StoreLayout, results_path: Path,
               config_commits: dict[str, str] | None = None) -> NightlyRecord:
    """Record one run.  A results file that does not validate is recorded too, as invalid with the
    reason, so the gate refuses its snapshot naming why (rather than "no run recorded")."""
    try:
        data = json.loads(results_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{results_path}: no such results file") from None
    except RecursionError:
        raise UserError(f"{results_path}: not an hpcos results file: nested too deeply") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{results_path}: not an hpcos results file: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("run_id"), str):
        raise UserError(f"{results_path}: not an hpcos results file: no run_id")
    if not data.get("testing_snapshot"):
        raise UserError(f"{results_path}: testing_snapshot is empty; the nightly job must export "
                        f"HPCOS_TESTING_SNAPSHOT=$(hpcos repo status testing --id) before `hpcos test`")
    invalid = validation_problem(data)
    run = None
    if not invalid:
        try:
            # The results model's own validation (schema version, fields, types).
            run = RunResults.from_dict(data)
        except (ValueError, TypeError, KeyError, InvalidInput) as exc:
            invalid = " ".join(str(exc).split())[:300] or type(exc).__name__
    now = datetime.now(UTC).isoformat(timespec="seconds")
    if run is None:
        record = NightlyRecord(run_id=data["run_id"], testing_snapshot=str(data["testing_snapshot"]), passed=False,
                               failures=0, tests=0, finished=str(data.get("finished") or data.get("started") or ""),
                               recorded=now, invalid=invalid, cluster=str(data.get("cluster", "")))
    else:
        failures = len(run.failures())
        record = NightlyRecord(
            run_id=run.run_id, testing_snapshot=run.testing_snapshot or "",
            # A run in which nothing passed (no results, or every test skipped) proves nothing about the snapshot.
            passed=failures == 0 and any(r.outcome == "passed" for r in run.results), failures=failures,
            tests=len(run.results),
            finished=run.finished or run.started, recorded=now, build_url=run.build_url, cluster=run.cluster,
            profile_sha256=run.profile_sha256 or "", started=run.started,
            results=[[r.nodeid or r.test_id, r.node, r.outcome] for r in run.results],
            config_commits=dict(config_commits or {}),
        )
    layout.nightly_records.mkdir(parents=True, exist_ok=True)
    path = layout.nightly_records / f"{_safe(record.run_id)}.json"
    write_text_atomically(path, json.dumps(asdict(record), indent=2, sort_keys=True))
    return record


OUTCOMES = frozenset(get_args(Outcome))


def validation_problem(data: dict) -> str:
    """Why a results document does not validate, in one line; empty when it does.

    ``RunResults.from_dict`` validates the rest; this check refuses what the gate must never take for
    a pass even where the model would load it: a result whose outcome is outside ``Outcome``
    (``"FAILED"``, ``"ok"``) or missing."""
    if not isinstance(data, dict) or not isinstance(data.get("results", []), list):
        return "not a results document"
    for index, result in enumerate(data.get("results", [])):
        outcome = result.get("outcome") if isinstance(result, dict) else None
        if outcome not in OUTCOMES:
            test = result.get("test_id", "?") if isinstance(result, dict) else "?"
            return (f"results[{index}] ({test}) has outcome {outcome!r}, expected one of "
                    f"{', '.join(sorted(OUTCOMES))}")
    return ""


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
