"""What the e-mail API simulator has taken, by idempotency key: the part that must dedupe.

A real e-mail provider API stores a message once per idempotency key, whichever client process
sends it and whether or not the provider restarted in between. ``EmailRecords`` does that in a
SQLite file (WAL, one ``BEGIN IMMEDIATE`` transaction per send), so every simulator process
pointed at the same file, and a simulator started again on it, agree; without a file it keeps
them in memory, for one process.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from workers.adapters.keyed_records import KeyReused, Taken, TakenStats
from workers.adapters.notifiers import reference

_SCHEMA = (
    (
        "CREATE TABLE IF NOT EXISTS messages (key TEXT PRIMARY KEY, id TEXT NOT NULL, "
        "recipient TEXT NOT NULL, message_id TEXT NOT NULL, at REAL NOT NULL, "
        "seq INTEGER NOT NULL)"
    ),
    "CREATE TABLE IF NOT EXISTS counts (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO counts VALUES ('attempts', 0)",
)
_FIELDS = ("id", "key", "to", "message_id", "at")


class EmailRecords:
    """Messages taken by idempotency key; ``take`` is idempotent on the key.

    Parameters
    ----------
    path:
        The SQLite file shared by every process (created if absent); ``None``: in memory.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # one connection per process, its threads taking turns: SQLite writes one at a time
        # anyway, and the file's own lock orders the processes
        self._conn = sqlite3.connect(
            str(path) if path else ":memory:",
            timeout=30,
            isolation_level=None,
            check_same_thread=False,
        )
        self._lock = threading.Lock()
        with self._lock:
            if path is not None:
                self._conn.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                self._conn.execute(statement)

    def take(self, key: str, to: str, message_id: str) -> Taken:
        """Store the e-mail to ``to`` under ``key`` unless the key is known.

        Raises
        ------
        KeyReused
            ``key`` is known for another recipient.
        """
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT id, recipient FROM messages WHERE key = ?", (key,)
                ).fetchone()
                if row is not None and row[1] != to:
                    raise KeyReused(f"idempotency key {key[:40]!r} names another recipient")
                conn.execute("UPDATE counts SET value = value + 1 WHERE name = 'attempts'")
                ref = reference("email", key)
                if row is None:
                    conn.execute(
                        "INSERT INTO messages VALUES (?, ?, ?, ?, ?, "
                        "(SELECT COALESCE(MAX(seq), 0) + 1 FROM messages))",
                        (key, ref, to, message_id, time.time()),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return Taken(ref, new=row is None)

    def find(self, key: str) -> dict[str, object] | None:
        """The message taken under ``key`` (id, key, to, message_id, at), or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id, key, recipient, message_id, at FROM messages WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else dict(zip(_FIELDS, row, strict=True))

    def messages(self) -> list[dict[str, object]]:
        """Every message taken, in the order taken."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, key, recipient, message_id, at FROM messages ORDER BY seq"
            ).fetchall()
        return [dict(zip(_FIELDS, row, strict=True)) for row in rows]

    def stats(self) -> TakenStats:
        """The counts so far."""
        with self._lock:
            attempts = self._conn.execute(
                "SELECT value FROM counts WHERE name = 'attempts'"
            ).fetchone()[0]
            distinct = self._conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        return TakenStats(int(attempts), int(distinct), int(attempts) - int(distinct))

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()
