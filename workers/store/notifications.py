"""The notification ledger: one row per case and channel, so a redelivery never sends twice."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from workers.store.cases import _insert, utcnow
from workers.store.schema import cases, notifications

SENT = "sent"
PENDING = "pending"
REFUSED = "refused"


def sent_channels(conn: sa.Connection, case_ids: Iterable[str]) -> set[tuple[str, str]]:
    """The (case, channel) pairs already notified."""
    ids = list(case_ids)
    if not ids:
        return set()
    rows = conn.execute(
        sa.select(notifications.c.case_id, notifications.c.channel).where(
            notifications.c.case_id.in_(ids), notifications.c.status == SENT
        )
    )
    return {(row.case_id, row.channel) for row in rows}


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
    now = utcnow()
    statement = _insert(conn, notifications).values(
        case_id=case_id,
        channel=channel,
        status=status,
        provider_ref=provider_ref,
        reason=reason,
        attempts=1,
        updated_at=now,
    )
    statement = statement.on_conflict_do_update(
        index_elements=["case_id", "channel"],
        set_={
            "status": status,
            "provider_ref": provider_ref,
            "reason": reason,
            "attempts": notifications.c.attempts + 1,
            "updated_at": now,
        },
    )
    conn.execute(statement)


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
