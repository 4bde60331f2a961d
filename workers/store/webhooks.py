"""The webhook outbox: status callbacks to integrations, written from the cases' history.

Each case event of an integration's case (its cases came in through the intake or the HTTP
API, so ``intake_keys`` names the integration) in a state worth calling back becomes one
outbox row whose ``event_id`` is stable (the same event gives the same row, and is the
callback's idempotency key). ``collect`` re-reads the last ``SETTLE_SECONDS`` of history every
round so that an event committed late with a lower id is not missed; the durable cursor only
passes events older than that.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from workers.store.cases import _insert, utcnow
from workers.store.schema import (
    api_keys,
    case_events,
    cases,
    intake_keys,
    webhook_cursor,
    webhook_outbox,
)

EVENTS = ("delivered", "notified", "read", "answered", "rejected", "failed")
"""Case states an integration is told of."""
PENDING, SENT, GAVE_UP = "pending", "sent", "gave-up"
SETTLE_SECONDS = 30.0
CURSOR = "case-events"
_NAMESPACE = uuid.UUID("6f6d7661-6e74-4000-8000-776562686f6f")


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


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _cursor(conn: sa.Connection) -> int:
    value = conn.execute(
        sa.select(webhook_cursor.c.last_event_id).where(webhook_cursor.c.name == CURSOR)
    ).scalar()
    return int(value or 0)


def collect(conn: sa.Connection, *, settle_seconds: float = SETTLE_SECONDS) -> int:
    """Write an outbox row for every new case event an integration with a webhook is to hear
    of; returns how many rows were new."""
    now = utcnow()
    start = _cursor(conn)
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
            case_events.c.id > start,
            case_events.c.state.in_(EVENTS),
            api_keys.c.webhook_url.is_not(None),
            api_keys.c.revoked_at.is_(None),
        )
        .order_by(case_events.c.id)
    )
    rows = [
        {
            "event_id": event_id_for(r.integration, int(r.id)),
            "key_id": r.integration,
            "case_id": r.case_id,
            "event": r.state,
            "payload": json.dumps(
                {
                    "id": event_id_for(r.integration, int(r.id)),
                    "type": f"case.{r.state}",
                    "occurred_at": _aware(r.at).isoformat(),
                    "case": {
                        "id": r.case_id,
                        "clinic_hsa_id": r.clinic_hsa_id,
                        "batch_id": r.batch_id,
                        "state": r.state,
                        "reason": r.reason,
                    },
                }
            ),
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for r in conn.execute(query)
    ]
    added = 0
    if rows:
        statement = _insert(conn, webhook_outbox).on_conflict_do_nothing(
            index_elements=["event_id"]
        )
        for begin in range(0, len(rows), 500):
            result = conn.execute(statement, rows[begin : begin + 500])
            added += max(0, int(result.rowcount or 0))
    settled = conn.execute(
        sa.select(sa.func.max(case_events.c.id)).where(
            case_events.c.id > start,
            case_events.c.at < now - dt.timedelta(seconds=settle_seconds),
        )
    ).scalar()
    if settled is not None:
        statement = _insert(conn, webhook_cursor)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["name"], set_={"last_event_id": statement.excluded.last_event_id}
            ),
            {"name": CURSOR, "last_event_id": int(settled)},
        )
    return added


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
