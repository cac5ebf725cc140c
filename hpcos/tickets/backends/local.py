"""The embedded default tracker: a SQLite file under the store, listed by ``hpcos tickets list``."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from hpcos.tickets.backends import Ticket, TrackerBackend, pick

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT, fingerprint TEXT NOT NULL, summary TEXT NOT NULL,
    description TEXT NOT NULL, status TEXT NOT NULL, resolution TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tickets_fingerprint ON tickets (fingerprint);
CREATE TABLE IF NOT EXISTS comments (
    ticket INTEGER NOT NULL REFERENCES tickets (id), time TEXT NOT NULL, text TEXT NOT NULL);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class LocalTracker(TrackerBackend):
    name = "local"

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.executescript(_SCHEMA)

    @classmethod
    def from_spec(cls, spec, store_root: Path, credentials) -> LocalTracker:
        path = Path(spec.path)
        return cls(path if path.is_absolute() else store_root / path)

    def _ticket(self, row) -> Ticket:
        return Ticket(
            id=str(row[0]), key=row[1], status=row[2], resolution=row[3], closed=row[2] == "closed"
        )

    def find(self, key: str) -> Ticket | None:
        with closing(
            self.db.execute(
                "SELECT id, fingerprint, status, resolution FROM tickets WHERE fingerprint = ? ORDER BY id DESC",
                (key,),
            )
        ) as cur:
            return pick([self._ticket(row) for row in cur])

    def create(self, summary: str, description: str, key: str) -> Ticket:
        now = _now()
        cur = self.db.execute(
            "INSERT INTO tickets (fingerprint, summary, description, status, created, updated) "
            "VALUES (?, ?, ?, 'new', ?, ?)",
            (key, summary, description, now, now),
        )
        return Ticket(id=str(cur.lastrowid), key=key, status="new", closed=False)

    def _update(
        self, ticket: Ticket, text: str, status: str | None = None, resolution: str = ""
    ) -> None:
        now = _now()
        self.db.execute("BEGIN")
        self.db.execute(
            "INSERT INTO comments (ticket, time, text) VALUES (?, ?, ?)",
            (int(ticket.id), now, text),
        )
        if status:
            self.db.execute(
                "UPDATE tickets SET status = ?, resolution = ?, updated = ? WHERE id = ?",
                (status, resolution, now, int(ticket.id)),
            )
        else:
            self.db.execute("UPDATE tickets SET updated = ? WHERE id = ?", (now, int(ticket.id)))
        self.db.execute("COMMIT")

    def comment(self, ticket: Ticket, text: str) -> None:
        self._update(ticket, text)

    def reopen(self, ticket: Ticket, text: str) -> None:
        self._update(ticket, text, "reopened")

    def close(self, ticket: Ticket, text: str) -> None:
        self._update(ticket, text, "closed", "fixed")

    def has_marker(self, ticket: Ticket, marker: str) -> bool:
        summary, description, _ = self.ticket(ticket.id)
        return marker in description or any(
            marker in text for text in self.comments(ticket.id)[-20:]
        )

    def rekey(self, ticket: Ticket, key: str) -> bool:
        self.db.execute("UPDATE tickets SET fingerprint = ? WHERE id = ?", (key, int(ticket.id)))
        return True

    def tickets(self, include_closed: bool = False) -> list[tuple]:
        """(id, status, resolution, comments, updated, summary) for ``hpcos tickets list``."""
        where = "" if include_closed else "WHERE status != 'closed'"
        with closing(
            self.db.execute(
                "SELECT t.id, t.status, t.resolution, (SELECT COUNT(*) FROM comments c WHERE c.ticket = t.id), "
                f"t.updated, t.summary FROM tickets t {where} ORDER BY t.id"
            )
        ) as cur:
            return cur.fetchall()

    def comments(self, ticket_id: str) -> list[str]:
        with closing(
            self.db.execute(
                "SELECT text FROM comments WHERE ticket = ? ORDER BY rowid", (int(ticket_id),)
            )
        ) as cur:
            return [row[0] for row in cur]

    def ticket(self, ticket_id: str) -> tuple[str, str, str]:
        """(summary, description, status) of one ticket."""
        with closing(
            self.db.execute(
                "SELECT summary, description, status FROM tickets WHERE id = ?", (int(ticket_id),)
            )
        ) as cur:
            return cur.fetchone()
