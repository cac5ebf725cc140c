"""Nightly run records: which testing snapshot a nightly run tested, where, and with what outcome.

Two writers, told apart by ``provenance``:

- ``harness``: the harness records the run itself as it finishes (``record_harness_run``), right after
  writing the results file, bound to what produced it -- run id, profile (name and sha256), snapshot,
  the results file's sha256, the nodes it selected, every test it collected before ``-k``/``-m``
  deselection -- and signed with the run-signing key (``hpcos.repo.provenance``).  Only these can open the
  production gate.
- ``imported``: ``hpcos repo record-run RESULTS.json`` of a file the harness did not record (no signed
  record of that run id, or a file whose sha256 differs from the one the harness recorded).  Kept
  under its own name, so it never replaces the harness's record of the same run id; it still feeds
  reports and tickets, and ``imported_why`` says why the gate will not count it.

``record-run`` of the very file the harness recorded confirms the record and adds the configuration
commits the test cluster ran.  A record keeps what the gate needs and no more.  Records are small
JSON files written by rename.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

from ClusterShell.NodeSet import NodeSet, NodeSetParseError

from hpcos.core.budgets import RESULTS_FILE_BUDGET, node_set_problem
from hpcos.core.errors import UserError
from hpcos.core.files import file_digest, write_text_atomically
from hpcos.core.sourced_yaml import InvalidInput
from hpcos.core.store_files import (
    BadStoreFile,
    dataclass_from,
    move_aside,
    read_bytes_limited,
    read_json,
)
from hpcos.core.store_layout import StoreLayout
from hpcos.repo import provenance
from hpcos.repo.environments import is_snapshot_id
from hpcos.results.model import Outcome, RunResults

HARNESS, IMPORTED = "harness", "imported"


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
    results: list[list] = field(default_factory=list)  # [test_id, node, outcome, mpi] per result
    # Configuration repository -> the commit of its testing branch the test cluster ran (the config
    # promotion gate merges exactly that commit into production).
    config_commits: dict[str, str] = field(default_factory=dict)
    provenance: str = IMPORTED  # HARNESS or IMPORTED; a record older than provenance is imported
    imported_why: str = ""  # why record-run could not match the file to a run the harness recorded
    results_sha256: str = ""  # the results file as written (harness) or as handed in (imported)
    nodes: str = ""  # the node set the run selected (--nodes, else the profile's nodes)
    # [test_id, node, mpi] of every test the run collected, deselected ones included (harness only).
    collected: list[list] = field(default_factory=list)
    narrowed: str = ""  # why the collection was not the whole suite (test paths, --ignore, --lf)
    signature: str = ""  # HMAC-SHA256 of signed_payload() under the run-signing key

    def signed_payload(self) -> dict:
        """Everything the gate reads, so that editing any of it in the store breaks the signature."""
        return {"v": 1, **{name: getattr(self, name) for name in SIGNED_FIELDS}}

    @property
    def from_harness(self) -> bool:
        return self.provenance == HARNESS

    def tested_nodes(self) -> NodeSet:
        """Every node a result names (a job-level result names a node set)."""
        nodes = NodeSet()
        for _test, node, _outcome, *_mpi in self.results:
            if node and node_set_problem(node) is None:
                try:
                    nodes.update(NodeSet(node))
                except NodeSetParseError:
                    continue
        return nodes

    @property
    def verdict(self) -> str:
        return self.outcome + ("" if self.from_harness else f", imported ({self.imported_why})")

    @property
    def outcome(self) -> str:
        if self.invalid:
            return f"invalid results ({self.invalid})"
        if self.passed:
            return f"passed ({self.tests} results)"
        if self.failures:
            return f"failed ({self.failures} of {self.tests} results failed)"
        return (
            f"failed (nothing ran: {self.tests} results, all skipped)"
            if self.tests
            else "failed (no results)"
        )


SIGNED_FIELDS = (
    "run_id",
    "testing_snapshot",
    "passed",
    "failures",
    "tests",
    "finished",
    "build_url",
    "cluster",
    "profile_sha256",
    "started",
    "invalid",
    "results",
    "provenance",
    "results_sha256",
    "nodes",
    "collected",
    "narrowed",
)


def _record_from(run: RunResults, now: str) -> NightlyRecord:
    failures = len(run.failures())
    return NightlyRecord(
        run_id=run.run_id,
        testing_snapshot=run.testing_snapshot or "",
        # A run in which nothing passed (no results, or every test skipped) proves nothing about the snapshot.
        passed=failures == 0 and any(r.outcome == "passed" for r in run.results),
        failures=failures,
        tests=len(run.results),
        finished=run.finished or run.started,
        recorded=now,
        build_url=run.build_url,
        cluster=run.cluster,
        profile_sha256=run.profile_sha256 or "",
        started=run.started,
        results=[[r.test_id, r.node, r.outcome, r.mpi] for r in run.results],
    )


def record_harness_run(
    layout: StoreLayout, results_path: Path, nodes: str, collected: list[list], narrowed: str
) -> NightlyRecord:
    """The harness's own record of the run it just wrote to ``results_path``, signed.  Read back from
    the file, so the record says exactly what the file says."""
    run = RunResults.read(results_path)
    key = provenance.signing_key(layout.run_signing_key, create=True)
    record = replace(
        _record_from(run, _now()),
        provenance=HARNESS,
        results_sha256=file_digest(results_path),
        nodes=nodes,
        collected=[list(c) for c in collected],
        narrowed=narrowed,
    )
    record = replace(record, signature=provenance.sign(key, record.signed_payload()))
    _write(layout, record, _path(layout, record))
    return record


def signature_problem(layout: StoreLayout, record: NightlyRecord) -> str:
    """Why a record that says the harness made it cannot be trusted; empty when its signature verifies."""
    try:
        key = provenance.signing_key(layout.run_signing_key)
    except provenance.KeyProblem as exc:
        return str(exc)
    if not provenance.verify(key, record.signed_payload(), record.signature):
        return f"its record in {layout.nightly_records} does not verify against the run-signing key (edited?)"
    return ""


def record_run(
    layout: StoreLayout, results_path: Path, config_commits: dict[str, str] | None = None
) -> NightlyRecord:
    """Record a results file handed in by hand or by a job.  The very file the harness recorded (same
    run id, same sha256, a record whose signature verifies) confirms that record and adds the
    configuration commits; any other file is recorded as imported, with why.  A results file that does
    not validate is recorded too, as invalid with the reason, so the gate names it."""
    try:
        raw = read_bytes_limited(results_path, RESULTS_FILE_BUDGET, "results file", follow=True)
        data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise UserError(f"{results_path}: no such results file") from None
    except RecursionError:
        raise UserError(f"{results_path}: not an hpcos results file: nested too deeply") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{results_path}: not an hpcos results file: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("run_id"), str):
        raise UserError(f"{results_path}: not an hpcos results file: no run_id")
    if not data["run_id"].strip() or not data["run_id"].isprintable() or len(data["run_id"]) > 200:
        raise UserError(
            f"{results_path}: run_id must be a non-empty printable line of at most 200 characters"
        )
    if not data.get("testing_snapshot"):
        raise UserError(
            f"{results_path}: testing_snapshot is empty; the nightly job must export "
            f"HPCOS_TESTING_SNAPSHOT=$(hpcos repo status testing --id) before `hpcos test`"
        )
    if not is_snapshot_id(data["testing_snapshot"]):
        raise UserError(
            f"{results_path}: testing_snapshot {str(data['testing_snapshot'])[:80]!r} is not a "
            "snapshot id (`hpcos repo status testing --id` prints one)"
        )
    digest = hashlib.sha256(raw).hexdigest()
    harness = _harness_record(layout, data["run_id"])
    why = _mismatch(layout, harness, digest)
    if harness is not None and not why:
        record = replace(
            harness, config_commits=dict(config_commits or {}) or harness.config_commits
        )
        _write(layout, record, _path(layout, record))
        return record
    invalid = validation_problem(data)
    run = None
    if not invalid:
        try:
            # The results model's own validation (schema version, fields, types).
            run = RunResults.from_dict(data)
        except (ValueError, TypeError, KeyError, InvalidInput) as exc:
            invalid = " ".join(str(exc).split())[:300] or type(exc).__name__
    now = _now()
    if run is None:
        record = NightlyRecord(
            run_id=data["run_id"],
            testing_snapshot=str(data["testing_snapshot"]),
            passed=False,
            failures=0,
            tests=0,
            finished=str(data.get("finished") or data.get("started") or ""),
            recorded=now,
            invalid=invalid,
            cluster=str(data.get("cluster", "")),
        )
    else:
        record = _record_from(run, now)
    record = replace(
        record,
        provenance=IMPORTED,
        imported_why=why,
        results_sha256=digest,
        config_commits=dict(config_commits or {}),
    )
    _write(
        layout,
        record,
        layout.nightly_records / f"{_safe(record.run_id)}.imported-{digest[:12]}.json",
    )
    return record


def _mismatch(layout: StoreLayout, harness: NightlyRecord | None, digest: str) -> str:
    if harness is None:
        return "the harness recorded no run with this id"
    if harness.results_sha256 != digest:
        return (
            f"the file's sha256 {digest[:12]} is not the {harness.results_sha256[:12]} the harness recorded "
            f"(edited after the run?)"
        )
    return signature_problem(layout, harness)


def _harness_record(layout: StoreLayout, run_id: str) -> NightlyRecord | None:
    path = layout.nightly_records / f"{_safe(run_id)}.json"
    try:
        record = NightlyRecord(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    return record if record.from_harness and record.run_id == run_id else None


def _path(layout: StoreLayout, record: NightlyRecord) -> Path:
    return layout.nightly_records / f"{_safe(record.run_id)}.json"


def _write(layout: StoreLayout, record: NightlyRecord, path: Path) -> None:
    layout.nightly_records.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(asdict(record), indent=2, sort_keys=True))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


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
            return (
                f"results[{index}] ({test}) has outcome {outcome!r}, expected one of "
                f"{', '.join(sorted(OUTCOMES))}"
            )
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
            found.append(
                dataclass_from(NightlyRecord, read_json(path, what="nightly run record"), str(path))
            )
        except BadStoreFile as exc:
            # A record the gate cannot trust is no record: moved aside, never counted as a run.
            move_aside(path, layout.quarantine, f"nightly records: {exc}")
        except FileNotFoundError:
            continue
    # Times are compared as times, not strings; the harness writes whole seconds, so two short runs can
    # finish in the same second, and the moment each was recorded (to the microsecond) orders them.
    return sorted(found, key=lambda r: (_moment(r.finished), _moment(r.recorded)))


def _moment(text: str) -> datetime:
    """An ISO 8601 time as a UTC datetime; what does not parse (an imported file's) sorts first."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def runs_on(layout: StoreLayout, snapshot_id: str) -> list[NightlyRecord]:
    """Every run recorded on ``snapshot_id``, oldest first."""
    return [r for r in records(layout) if r.testing_snapshot == snapshot_id]


def last_run_on(layout: StoreLayout, snapshot_id: str) -> NightlyRecord | None:
    runs = runs_on(layout, snapshot_id)
    return runs[-1] if runs else None
