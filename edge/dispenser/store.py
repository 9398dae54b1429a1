"""The offline number store: leased numbers, offline-issued tickets and deferred commands (SQLite)."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ offline store
@dataclass(frozen=True)
class OfflineTicket:
    day: str
    service: str
    prefix: str
    number: int
    issued_at: float
    priority: bool
    state: str

    @property
    def label(self) -> str:
        return f"{self.prefix}{self.number:03d}"


class OfflineStore:
    """Leases, offline-issued numbers and deferred commands in SQLite (WAL, synchronous=FULL).

    A number is recorded as ``issued`` before it is printed; ``void`` when printing failed (never reused,
    never reported), ``printed``, then ``reported`` once the controller has it.
    """

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS lease (day TEXT, service TEXT, prefix TEXT, first INTEGER, count INTEGER,
                                      PRIMARY KEY (day, prefix, first));
    CREATE TABLE IF NOT EXISTS offline_ticket (day TEXT, service TEXT, prefix TEXT, number INTEGER,
                                               issued_at REAL, priority INTEGER, state TEXT,
                                               PRIMARY KEY (day, prefix, number));
    CREATE TABLE IF NOT EXISTS deferred (key TEXT PRIMARY KEY, kind TEXT, payload TEXT, created REAL);
    """

    MEMORY = ":memory:"

    def __init__(self, path: str | Path):
        """Open (or create) the file; raises OSError or sqlite3.Error when it cannot be used (a read-only or
        full data directory). ``OfflineStore(OfflineStore.MEMORY)`` is a store that does not survive a
        restart (``durable`` is False): no offline number may be given from it."""
        self.path = Path(path)
        self.durable = str(path) != self.MEMORY
        if self.durable:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(self.SCHEMA)
        except BaseException:
            self.db.close()
            raise
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            self.db.close()

    @contextlib.contextmanager
    def _tx(self) -> Any:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:  # SQLite rolls back itself on some errors (a full disk)
                    self.db.execute("ROLLBACK")
                raise

    def add_lease(self, day: str, service: str, prefix: str, first: int, count: int) -> None:
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO lease VALUES (?,?,?,?,?)", (day, service, prefix, first, count))

    def _free(self, db: sqlite3.Connection, day: str, service: str) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for prefix, first, count in db.execute(
            "SELECT prefix, first, count FROM lease WHERE day=? AND service=? ORDER BY first", (day, service)
        ):
            used = {
                r[0]
                for r in db.execute(
                    "SELECT number FROM offline_ticket WHERE day=? AND prefix=? AND number BETWEEN ? AND ?",
                    (day, prefix, first, first + count - 1),
                )
            }
            out += [(prefix, n) for n in range(first, first + count) if n not in used]
        return out

    def remaining(self, day: str, service: str) -> int:
        with self.lock:
            return len(self._free(self.db, day, service))

    def take(self, day: str, service: str, issued_at: float, priority: bool) -> OfflineTicket | None:
        """Reserve the next free leased number (committed before the ticket is printed)."""
        with self._tx() as db:
            free = self._free(db, day, service)
            if not free:
                return None
            prefix, number = free[0]
            db.execute(
                "INSERT INTO offline_ticket VALUES (?,?,?,?,?,?,?)",
                (day, service, prefix, number, issued_at, int(priority), "issued"),
            )
        return OfflineTicket(day, service, prefix, number, issued_at, priority, "issued")

    def mark(self, t: OfflineTicket, state: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE offline_ticket SET state=? WHERE day=? AND prefix=? AND number=?",
                (state, t.day, t.prefix, t.number),
            )

    def unreported(self, day: str) -> list[OfflineTicket]:
        """Tickets the controller does not know yet (``issued`` too: after a crash it may be in a hand)."""
        with self.lock:
            rows = self.db.execute(
                "SELECT day, service, prefix, number, issued_at, priority, state FROM "
                "offline_ticket WHERE day=? AND state IN ('issued', 'printed') "
                "ORDER BY issued_at",
                (day,),
            ).fetchall()
        return [OfflineTicket(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]

    def tickets(self, day: str | None = None) -> list[OfflineTicket]:
        with self.lock:
            rows = self.db.execute(
                "SELECT day, service, prefix, number, issued_at, priority, state FROM "
                "offline_ticket WHERE ? IS NULL OR day=? ORDER BY issued_at",
                (day, day),
            ).fetchall()
        return [OfflineTicket(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]

    def stale_unreported(self, today: str) -> list[OfflineTicket]:
        with self.lock:
            rows = self.db.execute(
                "SELECT day, service, prefix, number, issued_at, priority, state FROM "
                "offline_ticket WHERE day<>? AND state IN ('issued', 'printed')",
                (today,),
            ).fetchall()
        return [OfflineTicket(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]

    def defer(self, key: str, kind: str, payload: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO deferred VALUES (?,?,?,?)",
                (key, kind, json.dumps(payload), time.time()),
            )

    def deferred(self) -> list[tuple[str, str, dict[str, Any]]]:
        with self.lock:
            rows = self.db.execute("SELECT key, kind, payload FROM deferred ORDER BY created").fetchall()
        return [(k, kind, json.loads(p)) for k, kind, p in rows]

    def done(self, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM deferred WHERE key=?", (key,))
