"""What hpcos remembers between runs (SQLite under the store): tracked fingerprints, passing streaks,
which tickets were touched in which run (one comment per run), and how many tickets each day created.

The tracker stays the truth about tickets; this only holds what the tracker cannot answer cheaply.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from ClusterShell.NodeSet import NodeSet

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tracked (
    key TEXT PRIMARY KEY, test_id TEXT NOT NULL, ticket TEXT NOT NULL, open INTEGER NOT NULL,
    passing_runs INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS touched (key TEXT NOT NULL, run_id TEXT NOT NULL, PRIMARY KEY (key, run_id));
CREATE TABLE IF NOT EXISTS created (day TEXT NOT NULL, key TEXT NOT NULL, ticket TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counted (run_id TEXT PRIMARY KEY);
"""
# Columns added since the first schema, each by its own statement (a store is migrated column by column).
# tests: a ticket may cover several tests (one root cause, fingerprint version 2); newline-separated.
# grouping, stack, failure_class, nodes: what a later night needs to file a failure whose MPI library lost its
# explanation under the open ticket of the cause it showed before ("cause" or "lost", ``lifecycle.plan``);
# nodes as a folded ClusterShell node set, the union of every night's.
_MIGRATIONS = {
    "tests": "ALTER TABLE tracked ADD COLUMN tests TEXT NOT NULL DEFAULT ''",
    "grouping": "ALTER TABLE tracked ADD COLUMN grouping TEXT NOT NULL DEFAULT ''",
    "stack": "ALTER TABLE tracked ADD COLUMN stack TEXT NOT NULL DEFAULT ''",
    "failure_class": "ALTER TABLE tracked ADD COLUMN failure_class TEXT NOT NULL DEFAULT ''",
    "nodes": "ALTER TABLE tracked ADD COLUMN nodes TEXT NOT NULL DEFAULT ''",
}


class TicketState:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.executescript(_SCHEMA)
        with closing(self.db.execute("PRAGMA table_info(tracked)")) as cur:
            columns = {row[1] for row in cur}
        for column, statement in _MIGRATIONS.items():
            if column not in columns:
                self.db.execute(statement)

    def close(self) -> None:
        self.db.close()

    def _one(self, sql: str, *args):
        with closing(self.db.execute(sql, args)) as cur:
            return cur.fetchone()

    def tracked(self, key: str) -> tuple[str, bool, int] | None:
        """(ticket, open, passing_runs) for a fingerprint hpcos has filed or found before."""
        row = self._one("SELECT ticket, open, passing_runs FROM tracked WHERE key = ?", key)
        return (row[0], bool(row[1]), row[2]) if row else None

    def open_tickets(self) -> list[tuple[str, str, str, int]]:
        """(key, test_id, ticket, passing_runs) of every ticket hpcos believes open."""
        with closing(
            self.db.execute(
                "SELECT key, test_id, ticket, passing_runs FROM tracked WHERE open = 1 ORDER BY key"
            )
        ) as cur:
            return cur.fetchall()

    def tests(self, key: str) -> list[str]:
        """Every test a tracked fingerprint was seen failing in (its test id when none were recorded)."""
        row = self._one("SELECT test_id, tests FROM tracked WHERE key = ?", key)
        if row is None:
            return []
        return sorted(set(filter(None, row[1].split("\n")))) or [row[0]]

    def open_grouped(
        self, grouping: str, stack: str, failure_class: str
    ) -> list[tuple[str, str, str, int]]:
        """(key, ticket, nodes, passing_runs) of the open tickets recorded as ``grouping`` ("cause",
        "lost") for one MPI stack and failure class."""
        with closing(
            self.db.execute(
                "SELECT key, ticket, nodes, passing_runs FROM tracked WHERE open = 1 AND grouping = ? "
                "AND stack = ? AND failure_class = ? ORDER BY key",
                (grouping, stack, failure_class),
            )
        ) as cur:
            return cur.fetchall()

    def track(
        self,
        key: str,
        test_id: str,
        ticket: str,
        is_open: bool,
        tests: list[str] | None = None,
        failing: bool = False,
        grouping: str = "",
        stack: str = "",
        failure_class: str = "",
        nodes: str = "",
    ) -> None:
        """Remember ``key``'s ticket.  ``failing``: the failure was seen now, so the passing streak
        starts again from zero (a reopened ticket closes after N clean runs again).  ``grouping``,
        ``stack``, ``failure_class``, ``nodes``: what the failure was seen as, when it was (kept
        otherwise; the nodes add up over nights)."""
        joined = "\n".join(sorted(set(tests or [])))
        self.db.execute(
            "INSERT INTO tracked (key, test_id, ticket, open, tests) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET ticket = excluded.ticket, open = excluded.open, "
            "passing_runs = CASE WHEN ? THEN 0 ELSE passing_runs END",
            (key, test_id, ticket, int(is_open), joined, int(failing)),
        )
        if tests:  # the union of every night's tests
            known = set(self.tests(key)) | set(tests)
            self.db.execute(
                "UPDATE tracked SET tests = ? WHERE key = ?", ("\n".join(sorted(known)), key)
            )
        if grouping:
            before = self._one("SELECT nodes FROM tracked WHERE key = ?", key)[0]
            union = str(NodeSet(before) | NodeSet(nodes)) if before else nodes
            self.db.execute(
                "UPDATE tracked SET grouping = ?, stack = ?, failure_class = ?, nodes = ? WHERE key = ?",
                (grouping, stack, failure_class, union, key),
            )

    def forget(self, key: str) -> None:
        """A fingerprint carried over to a newer key (``lifecycle.apply``): the new key is tracked."""
        self.db.execute("DELETE FROM tracked WHERE key = ?", (key,))

    def touched(self, key: str, run_id: str) -> bool:
        return (
            self._one("SELECT 1 FROM touched WHERE key = ? AND run_id = ?", key, run_id) is not None
        )

    def touch(self, key: str, run_id: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO touched (key, run_id) VALUES (?, ?)", (key, run_id))

    def record_created(self, day: str, key: str, ticket: str) -> None:
        self.db.execute(
            "INSERT INTO created (day, key, ticket) VALUES (?, ?, ?)", (day, key, ticket)
        )

    def created_on(self, day: str) -> int:
        return self._one("SELECT COUNT(*) FROM created WHERE day = ?", day)[0]

    def counted(self, run_id: str) -> bool:
        return self._one("SELECT 1 FROM counted WHERE run_id = ?", run_id) is not None

    def record_streaks(self, run_id: str, streaks: dict[str, int]) -> None:
        """Store each tracked fingerprint's passing streak after ``run_id``, once per run."""
        if self.counted(run_id):
            return
        self.db.execute("BEGIN")
        for key, runs in streaks.items():
            self.db.execute("UPDATE tracked SET passing_runs = ? WHERE key = ?", (runs, key))
        self.db.execute("INSERT INTO counted (run_id) VALUES (?)", (run_id,))
        self.db.execute("COMMIT")
