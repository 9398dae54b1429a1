"""The controller's durable event log: SQLite in WAL mode, one row per event, plus the reply of every command.

The events and replies of a batch of commands are written in one transaction (group commit), committed
(synchronous=FULL) before any reply or event of the batch is published. Replaying ``events`` rebuilds the
state; ``replies`` makes commands idempotent.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from waitroom.contract import encode

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq   INTEGER PRIMARY KEY,
    ts    REAL NOT NULL,
    type  TEXT NOT NULL,
    data  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_type ON events(type);
CREATE TABLE IF NOT EXISTS replies (
    node   TEXT NOT NULL,
    rid    TEXT NOT NULL,
    digest TEXT NOT NULL,
    reply  TEXT NOT NULL,
    ts     REAL NOT NULL,
    PRIMARY KEY (node, rid)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
SCHEMA_VERSION = "1"


class EventStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        # The log's identity, made once when the log is created (or first opened by this version) and kept by
        # backups, restores and salvages: the controller records it in its data directory's status, so a
        # different log put in this one's place is noticed at the next start (waitroom.dbsafe). One statement:
        # one transaction, one fsync.
        self.db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema', ?), ('log_id', ?), ('created', ?)",
            (SCHEMA_VERSION, uuid.uuid4().hex, f"{time.time():.3f}"),
        )
        # Called once, with the last seq, after the first commit that writes events (then cleared): the
        # controller notes in its status that a new log holds events (not per command: one check of None).
        self.on_first_events: Callable[[int], None] | None = None

    @classmethod
    def reader(cls, path: str | Path) -> EventStore:
        """A read-only connection to an existing log, for readers beside the engine (background jobs): it
        writes nothing, so it never waits for the engine's write transaction nor makes it wait."""
        store = cls.__new__(cls)
        store.path = Path(path)
        uri = f"{store.path.resolve().as_uri()}?mode=ro"
        store.db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        store.on_first_events = None
        return store

    def close(self) -> None:
        self.db.close()

    def meta(self, key: str) -> str | None:
        """A value of the log's ``meta`` table: ``schema``; ``recovered_from`` in a log that ``waitroom db
        recover`` salvaged."""
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def identity(self) -> dict[str, Any]:
        """The log's ``log_id`` and ``created`` (epoch seconds), made once when the log was created."""
        created = self.meta("created")
        try:
            when: float | None = float(created) if created is not None else None
        except ValueError:
            when = None
        return {"log_id": self.meta("log_id"), "created": when}

    def last_seq(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]

    def commit(
        self,
        events: list[dict[str, Any]],
        reply: tuple[str, str, str, dict[str, Any]] | None,
        now: float | None = None,
    ) -> None:
        """Append events (which carry their ``seq``) and a command's reply (stored at ``now``) in one
        transaction."""
        self.commit_batch(events, [reply] if reply is not None else [], now)

    def commit_batch(
        self,
        events: list[dict[str, Any]],
        replies: list[tuple[str, str, str, dict[str, Any]]],
        now: float | None = None,
    ) -> None:
        """Group commit: the events and replies of many commands in one transaction (one fsync)."""
        ts = time.time() if now is None else now
        with self._tx():
            if events:
                self.db.executemany(
                    "INSERT INTO events (seq, ts, type, data) VALUES (?, ?, ?, ?)",
                    [(e["seq"], e["ts"], e["type"], encode(e).decode()) for e in events],
                )
            if replies:
                self.db.executemany(
                    "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?)",
                    [(node, rid, digest, encode(body).decode(), ts) for node, rid, digest, body in replies],
                )
        if events and self.on_first_events is not None:
            note, self.on_first_events = self.on_first_events, None
            note(events[-1]["seq"])

    def reply_for(self, node: str, rid: str) -> tuple[str, dict[str, Any]] | None:
        row = self.db.execute(
            "SELECT digest, reply FROM replies WHERE node=? AND rid=?", (node, rid)
        ).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def reply_keys(self) -> set[tuple[str, str]]:
        """Every stored (node, request id): the controller looks a request up only when it is one of them."""
        return {(node, rid) for node, rid in self.db.execute("SELECT node, rid FROM replies")}

    def prune_replies(self, older_than: float) -> int:
        with self._tx():
            return self.db.execute("DELETE FROM replies WHERE ts < ?", (older_than,)).rowcount

    def events_since_day_start(self) -> Iterator[dict[str, Any]]:
        """Events from the last ``day_started`` on: enough to rebuild today's state."""
        row = self.db.execute("SELECT MAX(seq) FROM events WHERE type='day_started'").fetchone()
        start = row[0] or 0
        for (data,) in self.db.execute("SELECT data FROM events WHERE seq >= ? ORDER BY seq", (start,)):
            yield json.loads(data)

    def events(
        self, since_ts: float = 0.0, until_ts: float = float("inf"), types: tuple[str, ...] | None = None
    ) -> Iterator[dict[str, Any]]:
        q = "SELECT data FROM events WHERE ts >= ? AND ts < ?"
        args: list[Any] = [since_ts, until_ts if until_ts != float("inf") else 1e18]
        if types:
            q += f" AND type IN ({','.join('?' * len(types))})"
            args += list(types)
        for (data,) in self.db.execute(q + " ORDER BY seq", args):
            yield json.loads(data)

    def _tx(self) -> _Tx:
        return _Tx(self.db)


class _Tx:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if not exc_type:
            self.db.execute("COMMIT")
        elif self.db.in_transaction:  # SQLite itself rolls back on some errors (a full disk): then the
            self.db.execute("ROLLBACK")  # error to raise is that one, not "cannot rollback"
