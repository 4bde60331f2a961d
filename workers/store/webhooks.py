"""The webhook outbox: status callbacks to integrations, written from the cases' history.

Each case event of an integration's case (its cases came in through the intake or the HTTP
API, so ``intake_keys`` names the integration) in a state worth calling back becomes one
outbox row whose ``event_id`` is stable (the same event gives the same row, and is the
callback's idempotency key). ``collect`` reads each event exactly once (see there).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from contracts.status_callback import CallbackCase, StatusCallback
from workers.store.cases import utcnow
from workers.store.schema import (
    api_keys,
    case_events,
    cases,
    intake_keys,
    webhook_cursor,
    webhook_outbox,
)
from workers.store.sql import aware_utc, dialect_insert

EVENTS = ("delivered", "notified", "read", "answered", "rejected", "failed")
"""Case states an integration is told of."""
PENDING, SENT, GAVE_UP = "pending", "sent", "gave-up"
CURSOR = "case-events"
_NAMESPACE = uuid.UUID("6f6d7661-6e74-4000-8000-776562686f6f")


class _PgSnapshot(sa.types.UserDefinedType):  # type: ignore[type-arg]
    """PostgreSQL's ``pg_snapshot`` (its text form ``xmin:xmax:xip,...``)."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "pg_snapshot"


_PG_SNAPSHOT = _PgSnapshot()


@dataclass(frozen=True)
class Callback:
    """One status callback to deliver."""

    event_id: str
    key_id: str
    case_id: str
    event: str
    payload: dict[str, Any]
    attempts: int


def event_id_for(key_id: str, case_event_id: int) -> str:
    """The stable id (and idempotency key) of the callback for one case event."""
    return str(uuid.uuid5(_NAMESPACE, f"{key_id}\x1f{case_event_id}"))


@dataclass(frozen=True)
class Collected:
    """One collecting round: case events read past the cursor, outbox rows new of them."""

    read: int
    added: int


def _horizon(conn: sa.Connection) -> tuple[int, str | None, int | None, str | None]:
    """The cursor (locked against another sender on PostgreSQL), then how far this round
    reads: ``(last_id, last_snapshot, top_id, snapshot)``.

    The horizon is taken before the events are read, so every event of it is committed when
    they are: on SQLite (one writer at a time, ids in commit order) every id up to the largest
    now; on PostgreSQL every transaction this snapshot sees as done.
    """
    row = conn.execute(
        sa.select(webhook_cursor.c.last_event_id, webhook_cursor.c.snapshot)
        .where(webhook_cursor.c.name == CURSOR)
        .with_for_update()
    ).first()
    last_id = int(row.last_event_id) if row is not None else 0
    last_snapshot = row.snapshot if row is not None else None
    if conn.dialect.name == "postgresql":
        snapshot = conn.execute(sa.text("SELECT pg_current_snapshot()::text")).scalar_one()
        return last_id, last_snapshot, None, str(snapshot)
    top = conn.execute(sa.select(sa.func.max(case_events.c.id))).scalar()
    return last_id, last_snapshot, int(top or 0), None


def _past_the_cursor(
    last_id: int,
    last_snapshot: str | None,
    top: int | None,
    snapshot: str | None,
) -> sa.ColumnElement[bool]:
    """The case events of this round: after the cursor, up to the horizon."""
    if snapshot is None:
        return sa.and_(case_events.c.id > last_id, case_events.c.id <= (top or 0))
    xact: sa.ColumnElement[Any] = sa.literal_column("case_events.xact_id")
    now = sa.func.pg_visible_in_snapshot(xact, sa.cast(snapshot, _PG_SNAPSHOT))
    if last_snapshot is None:  # the first round, or the first since migration 0016
        return sa.and_(case_events.c.id > last_id, sa.or_(xact.is_(None), now))
    before = sa.cast(last_snapshot, _PG_SNAPSHOT)
    return sa.and_(
        xact >= sa.func.pg_snapshot_xmin(before),
        xact < sa.func.pg_snapshot_xmax(sa.cast(snapshot, _PG_SNAPSHOT)),
        sa.not_(sa.func.pg_visible_in_snapshot(xact, before)),
        now,
    )


def collect(conn: sa.Connection) -> Collected:
    """Write an outbox row for every case event since the last round that an integration
    with a webhook is to hear of.

    The cursor is exact: each event is read once, however its transaction's commit raced
    others'. On PostgreSQL an event's id is handed out at insert, so a transaction that
    commits late can leave a lower id behind a higher one already read; the cursor is
    therefore a snapshot, and an event is this round's when its transaction is done in this
    round's snapshot and was not in the last one's (``case_events.xact_id``, migration
    0016). A transaction still open waits for a later round; none is missed or read twice.
    """
    now = utcnow()
    last_id, last_snapshot, top, snapshot = _horizon(conn)
    query = (
        sa.select(
            case_events.c.id,
            case_events.c.case_id,
            case_events.c.state,
            case_events.c.reason,
            case_events.c.at,
            intake_keys.c.integration,
            cases.c.clinic_hsa_id,
            cases.c.batch_id,
        )
        .join(intake_keys, intake_keys.c.case_id == case_events.c.case_id)
        .join(
            cases,
            sa.and_(
                cases.c.id == case_events.c.case_id,
                cases.c.clinic_hsa_id == intake_keys.c.clinic_hsa_id,
            ),
        )
        .join(api_keys, api_keys.c.key_id == intake_keys.c.integration)
        .where(
            _past_the_cursor(last_id, last_snapshot, top, snapshot),
            case_events.c.state.in_(EVENTS),
            api_keys.c.webhook_url.is_not(None),
            api_keys.c.revoked_at.is_(None),
        )
        .order_by(case_events.c.id)
    )
    read = list(conn.execute(query))
    rows = [
        {
            "event_id": event_id_for(r.integration, int(r.id)),
            "key_id": r.integration,
            "case_id": r.case_id,
            "event": r.state,
            "payload": json.dumps(payload(r)),
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for r in read
    ]
    added = 0
    if rows:
        statement = (
            dialect_insert(conn, webhook_outbox)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(webhook_outbox.c.event_id)
        )
        for begin in range(0, len(rows), 500):
            # counted by RETURNING: an executemany's rowcount is not one on every driver
            added += len(conn.execute(statement, rows[begin : begin + 500]).all())
    if snapshot is not None:
        top = max([last_id, *(int(r.id) for r in read)])
    statement = dialect_insert(conn, webhook_cursor)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "last_event_id": statement.excluded.last_event_id,
                "snapshot": statement.excluded.snapshot,
            },
        ),
        {"name": CURSOR, "last_event_id": int(top or 0), "snapshot": snapshot},
    )
    return Collected(len(read), added)


def payload(event: Any) -> dict[str, Any]:
    """The callback's body (``contracts.status_callback``): ids, clinic, event, reason code
    and time; never a personnummer, message content or an answer."""
    return StatusCallback(
        id=event_id_for(event.integration, int(event.id)),
        type=f"case.{event.state}",
        occurred_at=aware_utc(event.at),
        case=CallbackCase(
            id=event.case_id,
            clinic_hsa_id=event.clinic_hsa_id,
            batch_id=event.batch_id,
            state=event.state,
            reason=event.reason,
        ),
    ).model_dump(mode="json") | {"occurred_at": aware_utc(event.at).isoformat()}  # as first sent


def due(conn: sa.Connection, *, limit: int = 200) -> list[Callback]:
    """Pending callbacks whose time has come, oldest first."""
    rows = conn.execute(
        sa.select(webhook_outbox)
        .where(webhook_outbox.c.status == PENDING, webhook_outbox.c.next_attempt_at <= utcnow())
        .order_by(webhook_outbox.c.next_attempt_at, webhook_outbox.c.created_at)
        .limit(limit)
    )
    return [
        Callback(r.event_id, r.key_id, r.case_id, r.event, json.loads(r.payload), int(r.attempts))
        for r in rows
    ]


def mark_sent(conn: sa.Connection, event_id: str) -> None:
    """The receiver took the callback (2xx)."""
    now = utcnow()
    conn.execute(
        webhook_outbox.update()
        .where(webhook_outbox.c.event_id == event_id)
        .values(status=SENT, sent_at=now, attempts=webhook_outbox.c.attempts + 1, last_error=None)
    )


def mark_failed(
    conn: sa.Connection, event_id: str, *, error: str, retry_at: dt.datetime | None
) -> None:
    """The attempt failed: try again at ``retry_at``, or give up (None)."""
    values: dict[str, Any] = {
        "attempts": webhook_outbox.c.attempts + 1,
        "last_error": error[:300],
        "status": PENDING if retry_at is not None else GAVE_UP,
    }
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    conn.execute(
        webhook_outbox.update().where(webhook_outbox.c.event_id == event_id).values(**values)
    )


def counts(conn: sa.Connection) -> dict[str, int]:
    """Callbacks by status."""
    rows = conn.execute(
        sa.select(webhook_outbox.c.status, sa.func.count()).group_by(webhook_outbox.c.status)
    )
    return {str(status): int(n) for status, n in rows}
