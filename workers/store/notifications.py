"""The notification ledger: one row per case and channel, so a redelivery never sends twice.

Inside ``chunk_ledger`` (the actor shell opens one per chunk) the ledger is read with one
query for the whole chunk, and marks are kept until ``flush`` writes them in one statement,
in the same transaction as the chunk's state transitions (``workers.stage.settle``): a few
round trips per chunk instead of several per case. Outside it every call goes to the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from workers.store.cases import _insert, bulk_insert, utcnow
from workers.store.schema import cases, notifications

SENT = "sent"
PENDING = "pending"
REFUSED = "refused"


@dataclass
class _ChunkLedger:
    case_ids: set[str]
    sent: set[tuple[str, str]] | None = None
    marks: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


_chunk: ContextVar[_ChunkLedger | None] = ContextVar("omvant_chunk_ledger", default=None)


@contextmanager
def chunk_ledger(engine: sa.Engine, case_ids: Iterable[str]) -> Iterator[None]:
    """Batch the ledger's reads and writes for one chunk of cases; marks not flushed by the
    end of the block (the chunk failed part-way) are written then, so none is lost."""
    ledger = _ChunkLedger(set(case_ids))
    token = _chunk.set(ledger)
    try:
        yield
    finally:
        _chunk.reset(token)
        if ledger.marks:
            with engine.begin() as conn:
                _write(conn, list(ledger.marks.values()))


def _query_sent(conn: sa.Connection, ids: list[str]) -> set[tuple[str, str]]:
    rows = conn.execute(
        sa.select(notifications.c.case_id, notifications.c.channel).where(
            notifications.c.case_id.in_(ids), notifications.c.status == SENT
        )
    )
    return {(row.case_id, row.channel) for row in rows}


def sent_channels(conn: sa.Connection, case_ids: Iterable[str]) -> set[tuple[str, str]]:
    """The (case, channel) pairs already notified."""
    ids = list(case_ids)
    if not ids:
        return set()
    ledger = _chunk.get()
    if ledger is None or not set(ids) <= ledger.case_ids:
        return _query_sent(conn, ids)
    if ledger.sent is None:
        ledger.sent = _query_sent(conn, sorted(ledger.case_ids))
    wanted = set(ids)
    found = {pair for pair in ledger.sent if pair[0] in wanted}
    for case_id in wanted:
        for channel in ("sms", "email"):
            row = ledger.marks.get((case_id, channel))
            if row is not None and row["status"] == SENT:
                found.add((case_id, channel))
    return found


def mark(
    conn: sa.Connection,
    case_id: str,
    channel: str,
    status: str,
    *,
    provider_ref: str | None = None,
    reason: str | None = None,
) -> None:
    """Record the state of one case's notification on one channel."""
    row = {
        "case_id": case_id,
        "channel": channel,
        "status": status,
        "provider_ref": provider_ref,
        "reason": reason,
        "attempts": 1,
        "updated_at": utcnow(),
    }
    ledger = _chunk.get()
    if ledger is not None and case_id in ledger.case_ids:
        ledger.marks[(case_id, channel)] = row
        return
    _write(conn, [row])


def flush(conn: sa.Connection) -> None:
    """Write the open chunk's pending marks in ``conn``'s transaction (no-op outside one)."""
    ledger = _chunk.get()
    if ledger is None or not ledger.marks:
        return
    rows = list(ledger.marks.values())
    ledger.marks.clear()
    _write(conn, rows)


_UPSERT_SQL = (
    "ON CONFLICT (case_id, channel) DO UPDATE SET status = EXCLUDED.status, "
    "provider_ref = EXCLUDED.provider_ref, reason = EXCLUDED.reason, "
    "attempts = notifications.attempts + 1, updated_at = EXCLUDED.updated_at"
)


def _write(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    statement = _insert(conn, notifications)
    statement = statement.on_conflict_do_update(
        index_elements=["case_id", "channel"],
        set_={
            "status": statement.excluded.status,
            "provider_ref": statement.excluded.provider_ref,
            "reason": statement.excluded.reason,
            "attempts": notifications.c.attempts + 1,
            "updated_at": statement.excluded.updated_at,
        },
    )
    bulk_insert(conn, notifications, rows, upsert=statement, upsert_sql=_UPSERT_SQL)


def count_sent(conn: sa.Connection, *, batch_id: str | None = None) -> dict[str, int]:
    """How many notifications were sent per channel (for one batch's cases, or all)."""
    query = (
        sa.select(notifications.c.channel, sa.func.count())
        .where(notifications.c.status == SENT)
        .group_by(notifications.c.channel)
    )
    if batch_id is not None:
        query = query.join(cases, cases.c.id == notifications.c.case_id).where(
            cases.c.batch_id == batch_id
        )
    return {str(row[0]): int(row[1]) for row in conn.execute(query)}
