"""The results store: every measurement of every run, every sample, in one SQLite file.

Runs are appended and never rewritten, except the two things that are decided after the fact:
whether a run was accepted as a baseline (``hpcos perf accept``) and each measurement's verdict.
Versions are copied onto every measurement row so a trend query never needs a join to say which
kernel, OFED and MPI produced a point.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hpcos.core.errors import UserError
from hpcos.results.model import RunResults

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    cluster TEXT NOT NULL,
    node_class TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    testing_snapshot TEXT,
    build_url TEXT,
    versions TEXT NOT NULL,          -- JSON object
    accepted INTEGER NOT NULL DEFAULT 0,
    accepted_at TEXT,
    recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (  -- one row per (test, node): the report's pass/fail matrix
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    test_id TEXT NOT NULL,
    node TEXT,
    mpi TEXT,
    outcome TEXT NOT NULL,
    failure_class TEXT,
    message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    cluster TEXT NOT NULL,
    node_class TEXT NOT NULL,
    test_id TEXT NOT NULL,
    node TEXT,
    mpi TEXT,
    metric TEXT NOT NULL,
    size INTEGER,                    -- NULL where no message size applies
    value REAL NOT NULL,
    unit TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('lower', 'higher')),
    time TEXT NOT NULL,
    testing_snapshot TEXT,
    kernel TEXT,
    ofed TEXT,
    mpi_version TEXT,
    verdict TEXT,
    detail TEXT                      -- the decision in words: effect size, interval, noise floor
);
CREATE INDEX IF NOT EXISTS measurements_key
    ON measurements (cluster, node_class, test_id, metric, size);
CREATE TABLE IF NOT EXISTS samples (
    measurement_id INTEGER NOT NULL REFERENCES measurements(id),
    idx INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (measurement_id, idx)
);
"""


class UnknownRun(UserError, LookupError):
    """No run of that id in the results database (the CLI names the database)."""


@dataclass(frozen=True)
class SeriesKey:
    """What a baseline and a trend are kept for."""

    cluster: str
    node_class: str
    test_id: str
    metric: str
    size: int | None


@dataclass(frozen=True)
class StoredMeasurement:
    id: int
    run_id: str
    test_id: str
    node: str | None
    mpi: str | None
    metric: str
    size: int | None
    value: float
    unit: str
    direction: str
    time: str
    accepted: bool
    verdict: str | None
    detail: str | None
    kernel: str | None
    ofed: str | None
    mpi_version: str | None
    samples: tuple[float, ...]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _version(versions: dict[str, str], *names: str) -> str | None:
    return next((versions[n] for n in names if versions.get(n)), None)


class ResultsStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and not self.path.is_file():
            # --db naming a device, a FIFO or a directory (through a symlink too): SQLite would open
            # it and leave its journal beside the target (/dev/zero-journal).
            raise UserError(f"{self.path}: not a regular file, not an hpcos results database")
        # The nightly job and an admin's `hpcos perf accept` may meet: wait for the lock, don't fail.
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            try:
                db.execute("PRAGMA foreign_keys = ON")
                db.executescript(SCHEMA)
            except sqlite3.DatabaseError as exc:
                # --db naming another file (a typo, /etc/passwd) is the user's to fix.
                if "not a database" not in str(exc):
                    raise
                raise UserError(f"{self.path}: not an hpcos results database") from None
            with db:
                yield db

    def record(self, run: RunResults, node_class: str) -> dict[tuple, int]:
        """Store a run's measurements (idempotent: recording a run again replaces it).

        Returns measurement ids keyed by (test_id, node, metric, size, mpi), for setting verdicts.
        """
        ids: dict[tuple, int] = {}
        with self._db() as db:
            previous = db.execute(
                "SELECT accepted, accepted_at FROM runs WHERE run_id = ?", (run.run_id,)
            ).fetchone()
            self._delete(db, run.run_id)
            db.execute(
                "INSERT INTO runs (run_id, cluster, node_class, started, finished, testing_snapshot, build_url,"
                " versions, accepted, accepted_at, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.run_id,
                    run.cluster,
                    node_class,
                    run.started,
                    run.finished or None,
                    run.testing_snapshot,
                    run.build_url,
                    json.dumps(run.versions, sort_keys=True),
                    previous[0] if previous else 0,
                    previous[1] if previous else None,
                    _now(),
                ),
            )
            when = run.finished or run.started
            self._insert_results(db, run)
            for result in run.results:
                mpi_version = _version(run.versions, result.mpi) if result.mpi else None
                for m in result.measurements:
                    cur = db.execute(
                        "INSERT INTO measurements (run_id, cluster, node_class, test_id, node, mpi, metric, size,"
                        " value, unit, direction, time, testing_snapshot, kernel, ofed, mpi_version)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            run.run_id,
                            run.cluster,
                            node_class,
                            result.test_id,
                            result.node,
                            result.mpi,
                            m.metric,
                            m.size,
                            m.value,
                            m.unit,
                            m.direction,
                            when,
                            run.testing_snapshot,
                            _version(run.versions, "kernel"),
                            _version(run.versions, "ofed", "rdma-core"),
                            mpi_version,
                        ),
                    )
                    ids[(result.test_id, result.node, m.metric, m.size, result.mpi)] = cur.lastrowid
                    db.executemany(
                        "INSERT INTO samples (measurement_id, idx, value) VALUES (?, ?, ?)",
                        [(cur.lastrowid, i, v) for i, v in enumerate(m.samples)],
                    )
        return ids

    def update_outcomes(self, run: RunResults) -> None:
        """Store the run's outcomes again after the decision failed some of them."""
        with self._db() as db:
            db.execute("DELETE FROM results WHERE run_id = ?", (run.run_id,))
            self._insert_results(db, run)

    @staticmethod
    def _insert_results(db: sqlite3.Connection, run: RunResults) -> None:
        db.executemany(
            "INSERT INTO results (run_id, test_id, node, mpi, outcome, failure_class, message)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (run.run_id, r.test_id, r.node, r.mpi, r.outcome, r.failure_class, r.message)
                for r in run.results
            ],
        )

    @staticmethod
    def _delete(db: sqlite3.Connection, run_id: str) -> None:
        db.execute(
            "DELETE FROM samples WHERE measurement_id IN (SELECT id FROM measurements WHERE run_id = ?)",
            (run_id,),
        )
        db.execute("DELETE FROM measurements WHERE run_id = ?", (run_id,))
        db.execute("DELETE FROM results WHERE run_id = ?", (run_id,))
        db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

    def set_verdicts(self, verdicts: dict[int, tuple[str, str]]) -> None:
        """Record each measurement's (verdict, detail) once the decision is made."""
        with self._db() as db:
            db.executemany(
                "UPDATE measurements SET verdict = ?, detail = ? WHERE id = ?",
                [(v, d, i) for i, (v, d) in verdicts.items()],
            )

    def results(self, run_id: str) -> list[dict]:
        """The run's (test, node) outcomes as recorded, in run order."""
        with self._db() as db:
            db.row_factory = sqlite3.Row
            return [
                dict(r)
                for r in db.execute(
                    "SELECT * FROM results WHERE run_id = ? ORDER BY rowid", (run_id,)
                )
            ]

    def accept(self, run_id: str) -> int:
        """Make a run part of the baselines; returns how many measurements it brings."""
        with self._db() as db:
            if (
                db.execute(
                    "UPDATE runs SET accepted = 1, accepted_at = ? WHERE run_id = ?",
                    (_now(), run_id),
                ).rowcount
                == 0
            ):
                raise UnknownRun(run_id)
            return db.execute(
                "SELECT count(*) FROM measurements WHERE run_id = ?", (run_id,)
            ).fetchone()[0]

    def run(self, run_id: str) -> dict:
        with self._db() as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise UnknownRun(run_id)
        return {
            **dict(row),
            "versions": json.loads(row["versions"]),
            "accepted": bool(row["accepted"]),
        }

    def series(
        self,
        key: SeriesKey,
        *,
        mpi: str | None = None,
        accepted_only: bool = False,
        before: str | None = None,
        limit: int | None = None,
    ) -> list[StoredMeasurement]:
        """Measurements of one series, oldest first; ``limit`` keeps the newest ones.

        ``before`` excludes a run (and everything recorded after it started), so a run is never its
        own baseline.
        """
        sql = (
            "SELECT m.*, r.accepted FROM measurements m JOIN runs r USING (run_id)"
            " WHERE m.cluster = ? AND m.node_class = ? AND m.test_id = ? AND m.metric = ? AND m.size IS ?"
        )
        params: list = [key.cluster, key.node_class, key.test_id, key.metric, key.size]
        if mpi is not None:
            sql += " AND m.mpi = ?"
            params.append(mpi)
        if accepted_only:
            sql += " AND r.accepted = 1"
        if before is not None:
            sql += " AND r.started < (SELECT started FROM runs WHERE run_id = ?) AND m.run_id != ?"
            params += [before, before]
        sql += " ORDER BY r.started DESC, m.id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._db() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(sql, params).fetchall()
            samples = self._samples(db, [r["id"] for r in rows])
        return [_stored(r, samples.get(r["id"], ())) for r in reversed(rows)]

    def series_of_test(
        self,
        test: str,
        *,
        metric: str | None = None,
        size: int | None = None,
        node_class: str | None = None,
    ) -> list[StoredMeasurement]:
        """Every measurement of the tests whose id is ``test`` or contains it, oldest first."""
        sql = (
            "SELECT m.*, r.accepted FROM measurements m JOIN runs r USING (run_id)"
            " WHERE (m.test_id = ? OR instr(m.test_id, ?) > 0)"
        )
        params: list = [test, test]
        for column, value in (("metric", metric), ("size", size), ("node_class", node_class)):
            if value is not None:
                sql += f" AND m.{column} = ?"
                params.append(value)
        with self._db() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(sql + " ORDER BY r.started, m.id", params).fetchall()
            samples = self._samples(db, [r["id"] for r in rows])
        return [_stored(r, samples.get(r["id"], ())) for r in rows]

    def run_measurements(self, run_id: str) -> list[StoredMeasurement]:
        with self._db() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(
                "SELECT m.*, r.accepted FROM measurements m JOIN runs r USING (run_id)"
                " WHERE m.run_id = ? ORDER BY m.id",
                (run_id,),
            ).fetchall()
            samples = self._samples(db, [r["id"] for r in rows])
        return [_stored(r, samples.get(r["id"], ())) for r in rows]

    @staticmethod
    def _samples(db: sqlite3.Connection, ids: list[int]) -> dict[int, tuple[float, ...]]:
        out: dict[int, list[float]] = {}
        for chunk in range(0, len(ids), 500):
            part = ids[chunk : chunk + 500]
            marks = ",".join("?" * len(part))
            for mid, value in db.execute(
                f"SELECT measurement_id, value FROM samples WHERE measurement_id IN ({marks})"
                " ORDER BY measurement_id, idx",
                part,
            ):
                out.setdefault(mid, []).append(value)
        return {k: tuple(v) for k, v in out.items()}


def _stored(row: sqlite3.Row, samples: tuple[float, ...]) -> StoredMeasurement:
    return StoredMeasurement(
        id=row["id"],
        run_id=row["run_id"],
        test_id=row["test_id"],
        node=row["node"],
        mpi=row["mpi"],
        metric=row["metric"],
        size=row["size"],
        value=row["value"],
        unit=row["unit"],
        direction=row["direction"],
        time=row["time"],
        accepted=bool(row["accepted"]),
        verdict=row["verdict"],
        detail=row["detail"],
        kernel=row["kernel"],
        ofed=row["ofed"],
        mpi_version=row["mpi_version"],
        samples=samples,
    )
