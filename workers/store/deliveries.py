"""Starts of messages being handled (``message_deliveries``): what the poison guards count.

A row is written (committed) before a message is handled and removed when it is done; a row
found at the next start means the process died with the message (``workers/poison.py`` for the
stage workers, ``IntakeBridge`` for the intake).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from workers.store.schema import message_deliveries
from workers.store.sql import dialect_insert

_STARTED_PG = sa.text(
    "INSERT INTO message_deliveries (queue, message_id, deliveries, first_at, last_at) "
    "VALUES (:queue, :message_id, 1, :now, :now) "
    "ON CONFLICT (queue, message_id) DO UPDATE "
    "SET deliveries = message_deliveries.deliveries + 1, last_at = excluded.last_at "
    "RETURNING deliveries"
)
_FINISHED_PG = sa.text(
    "DELETE FROM message_deliveries WHERE queue = :queue AND message_id = :message_id"
)
"""PostgreSQL: the two statements every stage message runs, as fixed SQL (built and compiled
once, not per message: about half of the guard's CPU per message)."""


def started(conn: sa.Connection, queue: str, message_id: str) -> int:
    """Count one more start of a message; returns how many starts there have been."""
    now = dt.datetime.now(dt.UTC)
    if conn.dialect.name == "postgresql":
        found = conn.execute(
            _STARTED_PG, {"queue": queue[:128], "message_id": message_id[:128], "now": now}
        )
        return int(found.scalar_one())
    statement = dialect_insert(conn, message_deliveries).values(
        queue=queue[:128], message_id=message_id[:128], deliveries=1, first_at=now, last_at=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=["queue", "message_id"],
        set_={"deliveries": message_deliveries.c.deliveries + 1, "last_at": now},
    ).returning(message_deliveries.c.deliveries)
    return int(conn.execute(statement).scalar_one())


def finished(conn: sa.Connection, queue: str, message_id: str) -> None:
    """The message is done (whatever came of it): forget its starts."""
    if conn.dialect.name == "postgresql":
        conn.execute(_FINISHED_PG, {"queue": queue[:128], "message_id": message_id[:128]})
        return
    conn.execute(
        message_deliveries.delete().where(
            message_deliveries.c.queue == queue[:128],
            message_deliveries.c.message_id == message_id[:128],
        )
    )


def purge(conn: sa.Connection, *, older_than: dt.datetime) -> int:
    """Forget starts of messages last started before ``older_than`` (they never came back)."""
    result = conn.execute(
        message_deliveries.delete().where(message_deliveries.c.last_at < older_than)
    )
    return int(result.rowcount or 0)
