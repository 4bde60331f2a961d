"""What a simulated inbox has taken, by delivery key: the part of the inbox that must be
idempotent, shared by the in-process simulator and the HTTP simulator.

A real inbox API stores a message once per idempotency key, whichever process or restart
delivers it. ``MemoryInboxRecords`` does that inside one process (the HTTP simulator, which is
one process however many workers call it); ``SqliteInboxRecords`` across processes on one
machine (the in-process simulator when ``OMVANT_SIM_OUTBOX`` names a folder: every worker
process shares its ``inbox.sqlite3``).
"""

from __future__ import annotations

import abc
import sqlite3
import threading
import time
import uuid
from pathlib import Path

from workers.adapters.keyed_records import KeyReused, Taken, TakenStats

_INBOX_NAMESPACE = uuid.UUID("6f6d7661-6e74-4000-8000-696e626f7831")


def inbox_id_for(key: str) -> str:
    """The inbox message id of the message taken under ``key`` (stable, like the key)."""
    return str(uuid.uuid5(_INBOX_NAMESPACE, key))


class InboxRecords(abc.ABC):
    """Messages taken by key; ``take`` is idempotent on the key."""

    @abc.abstractmethod
    def take(self, key: str, case_id: str) -> Taken:
        """Store the message of ``case_id`` under ``key`` unless the key is known.

        Raises
        ------
        KeyReused
            ``key`` is known for another case.
        """

    @abc.abstractmethod
    def find(self, key: str) -> dict[str, object] | None:
        """The message taken under ``key`` (id, key, case id, when), or None."""

    @abc.abstractmethod
    def stats(self) -> TakenStats:
        """The counts so far."""

    @abc.abstractmethod
    def taken_keys(self) -> list[str]:
        """Every key taken, in the order taken."""


class MemoryInboxRecords(InboxRecords):
    """In one process's memory, shared by its threads."""

    def __init__(self) -> None:
        self._by_key: dict[str, dict[str, object]] = {}
        self._attempts = 0
        self._lock = threading.Lock()

    def take(self, key: str, case_id: str) -> Taken:
        with self._lock:
            found = self._by_key.get(key)
            if found is not None and found["case_id"] != case_id:
                raise KeyReused(f"delivery key {key[:40]!r} names another case")
            self._attempts += 1
            if found is not None:
                return Taken(str(found["id"]), new=False)
            inbox_id = inbox_id_for(key)
            self._by_key[key] = {"id": inbox_id, "key": key, "case_id": case_id, "at": time.time()}
            return Taken(inbox_id, new=True)

    def find(self, key: str) -> dict[str, object] | None:
        with self._lock:
            found = self._by_key.get(key)
            return dict(found) if found else None

    def stats(self) -> TakenStats:
        with self._lock:
            distinct = len(self._by_key)
            return TakenStats(self._attempts, distinct, self._attempts - distinct)

    def taken_keys(self) -> list[str]:
        with self._lock:
            return list(self._by_key)


_SCHEMA = (
    (
        "CREATE TABLE IF NOT EXISTS messages (key TEXT PRIMARY KEY, id TEXT NOT NULL, "
        "case_id TEXT NOT NULL, at REAL NOT NULL, seq INTEGER)"
    ),
    "CREATE TABLE IF NOT EXISTS counts (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO counts VALUES ('attempts', 0)",
)


class SqliteInboxRecords(InboxRecords):
    """In a SQLite file that every process on the machine shares (WAL, one transaction per
    delivery), so a delivery retried by another worker process is recognised."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                conn.execute(statement)

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._local.conn = conn
        return conn

    def take(self, key: str, case_id: str) -> Taken:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT id, case_id FROM messages WHERE key = ?", (key,)).fetchone()
            if row is not None and row[1] != case_id:
                raise KeyReused(f"delivery key {key[:40]!r} names another case")
            conn.execute("UPDATE counts SET value = value + 1 WHERE name = 'attempts'")
            if row is None:
                inbox_id = inbox_id_for(key)
                conn.execute(
                    "INSERT INTO messages VALUES (?, ?, ?, ?, "
                    "(SELECT COALESCE(MAX(seq), 0) + 1 FROM messages))",
                    (key, inbox_id, case_id, time.time()),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return Taken(row[0], new=False) if row is not None else Taken(inbox_id, new=True)

    def find(self, key: str) -> dict[str, object] | None:
        row = (
            self._connect()
            .execute("SELECT id, key, case_id, at FROM messages WHERE key = ?", (key,))
            .fetchone()
        )
        return None if row is None else dict(zip(("id", "key", "case_id", "at"), row, strict=True))

    def stats(self) -> TakenStats:
        conn = self._connect()
        attempts = conn.execute("SELECT value FROM counts WHERE name = 'attempts'").fetchone()[0]
        distinct = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        return TakenStats(int(attempts), int(distinct), int(attempts) - int(distinct))

    def taken_keys(self) -> list[str]:
        rows = self._connect().execute("SELECT key FROM messages ORDER BY seq").fetchall()
        return [str(r[0]) for r in rows]
