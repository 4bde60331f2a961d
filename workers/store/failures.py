"""The failure records and the on-call audit: rows in, rows out (no broker, no policy).

``workers/failures.py`` decides what a failure record holds; ``workers/replay.py`` moves them
through open -> replaying -> replayed (or settled, or purged).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from workers.store.cases import utcnow
from workers.store.schema import failures, oncall_audit, rejected_messages
from workers.store.sql import aware_utc


class FailureStatus(StrEnum):
    """Where a failure record is in its life."""

    OPEN = "open"
    REPLAYING = "replaying"
    """Marked for replay; the message may or may not be on its queue yet (a crash between
    mark and confirm leaves it here, and the next replay takes it again)."""
    REPLAYED = "replayed"
    SETTLED = "settled"
    """A replay found every case settled already: nothing was sent."""
    PURGED = "purged"


PENDING = (FailureStatus.OPEN.value, FailureStatus.REPLAYING.value)
"""Statuses of records that still need on-call: what ``dlq list`` shows by default."""


class FailureKind(StrEnum):
    """What the record is about."""

    DEAD_LETTER = "dead-letter"
    """dramatiq gave up on a message after its retries."""
    REJECTED_CASE = "rejected-case"
    """A stage rejected a case for a reason an operator can fix (e.g. ``template-unknown``)."""
    UNREADABLE = "unreadable"
    """A ``rejected_messages`` row: a message no stage could read (id ``R<n>``)."""


@dataclass(frozen=True)
class FailureRow:
    """One failure record, or one ``rejected_messages`` row seen as one."""

    id: str
    kind: FailureKind
    queue: str
    actor: str | None
    contract: str | None
    contract_version: int | None
    message_id: str | None
    broker_message_id: str | None
    case_ids: list[str]
    clinic_hsa_id: str | None
    reason: str
    detail: str | None
    exception_type: str | None
    traceback: str | None
    attempts: int
    first_failed_at: dt.datetime
    last_failed_at: dt.datetime
    body: str | None
    body_truncated: bool
    status: FailureStatus
    replays: int
    replayed_at: dt.datetime | None


def _failure(row: Any) -> FailureRow:
    return FailureRow(
        id=f"F{row.id}",
        kind=FailureKind(row.kind),
        queue=row.queue,
        actor=row.actor,
        contract=row.contract,
        contract_version=row.contract_version,
        message_id=row.message_id,
        broker_message_id=row.broker_message_id,
        case_ids=json.loads(row.case_ids),
        clinic_hsa_id=row.clinic_hsa_id,
        reason=row.reason,
        detail=row.detail,
        exception_type=row.exception_type,
        traceback=row.traceback,
        attempts=int(row.attempts),
        first_failed_at=aware_utc(row.first_failed_at) or utcnow(),
        last_failed_at=aware_utc(row.last_failed_at) or utcnow(),
        body=row.body,
        body_truncated=bool(row.body_truncated),
        status=FailureStatus(row.status),
        replays=int(row.replays),
        replayed_at=aware_utc(row.replayed_at),
    )


def _unreadable_body(row: Any) -> str | None:
    """A reject's body as the view shows it: a sealed one (``rejections.SEALED``, a message
    that can carry an answer) as its seal and redacted excerpt, never opened here."""
    if row.body_encoding == "sealed":
        return json.dumps({"sealed": row.body, "excerpt": row.excerpt})
    return str(row.body) if row.body is not None else None


def _unreadable(row: Any, prefix: str = "") -> FailureRow:
    at = aware_utc(row.at) or utcnow()
    return FailureRow(
        id=f"R{row.id}",
        kind=FailureKind.UNREADABLE,
        queue=shown_queue(row.queue, prefix),
        actor=None,
        contract=None,
        contract_version=None,
        message_id=None,
        broker_message_id=None,
        case_ids=[],
        clinic_hsa_id=None,
        reason=row.reason,
        detail=row.detail,
        exception_type=None,
        traceback=None,
        attempts=1,
        first_failed_at=at,
        last_failed_at=at,
        body=_unreadable_body(row),
        body_truncated=False,
        status=FailureStatus.OPEN,
        replays=0,
        replayed_at=None,
    )


def insert(conn: sa.Connection, records: Sequence[Mapping[str, Any]]) -> None:
    """Write new failure records (open)."""
    if records:
        conn.execute(
            failures.insert(), [{"status": FailureStatus.OPEN.value, **r} for r in records]
        )


@dataclass(frozen=True)
class Selection:
    """Which records an on-call command acts on; empty means every pending one."""

    ids: tuple[str, ...] = ()
    queue: str | None = None
    reason: str | None = None
    since: dt.datetime | None = None
    statuses: tuple[str, ...] = PENDING
    prefix: str = ""
    """The deployment's queue prefix: ``rejected_messages`` keep the broker's full queue name
    (``<prefix>recipient-validation``), failure records the name without it. The view shows
    and filters both by the name without it."""

    def describe(self) -> dict[str, Any]:
        """The selection as the audit stores it."""
        return {
            "ids": list(self.ids),
            "queue": self.queue,
            "reason": self.reason,
            "since": self.since.isoformat() if self.since else None,
            "statuses": list(self.statuses),
        }


MAX_ID = 2**31 - 1
"""The largest id a row can have (the tables' integer keys): a larger one names no record."""

_ID = re.compile(r"([FR]?)([0-9]{1,30})", re.ASCII)


def canonical_id(raw: str) -> str:
    """``F12`` for ``F12``, ``f12`` or ``12``; ``R7`` for ``r7``. Only ASCII digits: ``F١`` is
    not ``F1``. ``ValueError`` for anything else."""
    match = _ID.fullmatch(raw.strip().upper())
    if not match:
        raise ValueError(f"not a failure id: {raw!r} (ids look like F12 or R7)")
    return f"{match[1] or 'F'}{int(match[2])}"


def _split_ids(ids: Iterable[str]) -> tuple[list[int], list[int]]:
    """Failure ids (``F12`` or ``12``) and rejected-message ids (``R7``); ids beyond
    ``MAX_ID`` are left out (no row has them)."""
    own: list[int] = []
    unreadable: list[int] = []
    for raw in ids:
        text = canonical_id(raw)
        number = int(text[1:])
        if number <= MAX_ID:
            (unreadable if text.startswith("R") else own).append(number)
    return own, unreadable


def _queue_filter(column: Any, queue: str) -> Any:
    """A queue matches itself and its lanes: ``message-composition`` takes
    ``message-composition.bulk-1`` too."""
    return sa.or_(column == queue, column.like(f"{queue}.%"))


def _unreadable_queue_filter(column: Any, selection: Selection) -> Any:
    """``--queue recipient-validation`` takes the rejects of ``<prefix>recipient-validation``."""
    queue = str(selection.queue)
    if not selection.prefix or queue.startswith(selection.prefix):
        return _queue_filter(column, queue)
    return sa.or_(_queue_filter(column, queue), _queue_filter(column, selection.prefix + queue))


def shown_queue(name: str, prefix: str) -> str:
    """A queue name as the on-call view shows it: without the deployment's prefix."""
    return name[len(prefix) :] if prefix and name.startswith(prefix) else name


def select(
    conn: sa.Connection, selection: Selection, *, limit: int | None = None
) -> list[FailureRow]:
    """The records (failures and rejected messages) a selection names, oldest first."""
    own_ids, unreadable_ids = _split_ids(selection.ids)
    rows: list[FailureRow] = []
    query = sa.select(failures)
    if selection.ids:
        query = query.where(failures.c.id.in_(own_ids))
    else:
        query = query.where(failures.c.status.in_(selection.statuses))
    if selection.queue:
        query = query.where(_queue_filter(failures.c.queue, selection.queue))
    if selection.reason:
        query = query.where(failures.c.reason == selection.reason)
    if selection.since:
        query = query.where(failures.c.last_failed_at >= selection.since)
    if not selection.ids or own_ids:
        rows.extend(_failure(r) for r in conn.execute(query.order_by(failures.c.id).limit(limit)))
    wanted = selection.ids or FailureStatus.OPEN.value in selection.statuses
    if (not selection.ids or unreadable_ids) and wanted:
        rows.extend(_select_unreadable(conn, selection, unreadable_ids, limit))
    rows.sort(key=lambda r: r.first_failed_at)
    return rows[:limit] if limit else rows


def _select_unreadable(
    conn: sa.Connection, selection: Selection, ids: list[int], limit: int | None
) -> list[FailureRow]:
    query = sa.select(rejected_messages)
    if selection.ids:
        query = query.where(rejected_messages.c.id.in_(ids))
    if selection.queue:
        query = query.where(_unreadable_queue_filter(rejected_messages.c.queue, selection))
    if selection.reason:
        query = query.where(rejected_messages.c.reason == selection.reason)
    if selection.since:
        query = query.where(rejected_messages.c.at >= selection.since)
    return [
        _unreadable(r, selection.prefix)
        for r in conn.execute(query.order_by(rejected_messages.c.id).limit(limit))
    ]


def groups(conn: sa.Connection, selection: Selection) -> list[dict[str, Any]]:
    """Pending records grouped by queue, reason and kind, with counts and the oldest time."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    query = (
        sa.select(
            failures.c.queue,
            failures.c.reason,
            failures.c.kind,
            sa.func.count(),
            sa.func.sum(failures.c.case_count),
            sa.func.min(failures.c.first_failed_at),
        )
        .where(failures.c.status.in_(selection.statuses))
        .group_by(failures.c.queue, failures.c.reason, failures.c.kind)
    )
    unread = sa.select(
        rejected_messages.c.queue,
        rejected_messages.c.reason,
        sa.literal(FailureKind.UNREADABLE.value),
        sa.func.count(),
        sa.literal(0),
        sa.func.min(rejected_messages.c.at),
    ).group_by(rejected_messages.c.queue, rejected_messages.c.reason)
    if selection.queue:
        query = query.where(_queue_filter(failures.c.queue, selection.queue))
        unread = unread.where(_unreadable_queue_filter(rejected_messages.c.queue, selection))
    if selection.reason:
        query = query.where(failures.c.reason == selection.reason)
        unread = unread.where(rejected_messages.c.reason == selection.reason)
    if selection.since:
        query = query.where(failures.c.last_failed_at >= selection.since)
        unread = unread.where(rejected_messages.c.at >= selection.since)
    statements = [query]
    if FailureStatus.OPEN.value in selection.statuses:
        statements.append(unread)
    for statement in statements:
        for name, reason, kind, count, cases_, oldest in conn.execute(statement):
            queue = shown_queue(name, selection.prefix)
            group = found.setdefault(
                (queue, reason, kind),
                {"queue": queue, "reason": reason, "kind": kind, "count": 0, "cases": 0,
                 "oldest": None},
            )  # fmt: skip
            group["count"] += int(count)
            group["cases"] += int(cases_ or 0)
            when = aware_utc(oldest)
            if when is not None and (group["oldest"] is None or when < group["oldest"]):
                group["oldest"] = when
    return sorted(found.values(), key=lambda g: (g["queue"], g["reason"], g["kind"]))


def oldest_pending(conn: sa.Connection, prefix: str = "") -> dict[str, dt.datetime]:
    """The oldest pending failure's first failure time, per queue (failures and rejects)."""
    out: dict[str, dt.datetime] = {}
    for group in groups(conn, Selection(prefix=prefix)):
        when = group["oldest"]
        if when is not None and (group["queue"] not in out or when < out[group["queue"]]):
            out[group["queue"]] = when
    return out


def set_status(
    conn: sa.Connection,
    failure_id: str,
    status: FailureStatus,
    *,
    expect: Sequence[str] | None = None,
    replay: bool = False,
) -> bool:
    """Move one failure record to ``status`` (only from ``expect``); return whether it moved.
    ``replay`` counts a replay and stamps its time."""
    own, _ = _split_ids([failure_id])
    values: dict[str, Any] = {"status": status.value}
    now = utcnow()
    if replay:
        values.update(replays=failures.c.replays + 1)
    if status == FailureStatus.REPLAYING:
        values.update(replayed_at=now)  # the mark's time: its lease runs from here
    if status == FailureStatus.REPLAYED:
        values.update(replayed_at=now, closed_at=now)
    if status in (FailureStatus.SETTLED, FailureStatus.PURGED):
        values.update(closed_at=now)
    if status == FailureStatus.PURGED:
        values.update(body=None, traceback=None)
    statement = failures.update().where(failures.c.id == own[0]).values(**values)
    if expect is not None:
        statement = statement.where(failures.c.status.in_(list(expect)))
    return bool(conn.execute(statement).rowcount)


REPLAY_LEASE_SECONDS = 60.0
"""How long a replay's mark holds a record: another replay skips it meanwhile (no second
enqueue); after it (the marking run died between mark and confirm) the next replay takes it."""


def lock_one(conn: sa.Connection, failure_id: str) -> FailureRow | None:
    """The failure record as it is now, locked until the transaction ends (PostgreSQL: FOR
    UPDATE, so two replays take turns on it), or None."""
    own, _ = _split_ids([failure_id])
    if not own:
        return None
    row = conn.execute(sa.select(failures).where(failures.c.id == own[0]).with_for_update()).first()
    return None if row is None else _failure(row)


def takeable(
    row: FailureRow, now: dt.datetime, lease_seconds: float = REPLAY_LEASE_SECONDS
) -> bool:
    """Whether a replay may take ``row``: open, or marked by a replay whose lease ran out (or
    that gave it back, ``release``)."""
    if row.status == FailureStatus.OPEN:
        return True
    if row.status != FailureStatus.REPLAYING:
        return False
    return row.replayed_at is None or row.replayed_at <= now - dt.timedelta(seconds=lease_seconds)


def release(conn: sa.Connection, failure_id: str) -> None:
    """Give a mark back at once (its enqueue failed, so nothing is on the queue): the record
    stays replaying, and the next replay takes it without waiting for the lease."""
    own, _ = _split_ids([failure_id])
    conn.execute(
        failures.update()
        .where(failures.c.id == own[0], failures.c.status == FailureStatus.REPLAYING.value)
        .values(replayed_at=None)
    )


def delete_unreadable(conn: sa.Connection, failure_id: str) -> bool:
    """Remove one ``rejected_messages`` row (purge); return whether it was there."""
    _, ids = _split_ids([failure_id])
    return bool(
        conn.execute(rejected_messages.delete().where(rejected_messages.c.id == ids[0])).rowcount
    )


def audit(
    conn: sa.Connection,
    *,
    who: str,
    action: str,
    selection: Mapping[str, Any],
    count: int,
    outcome: Mapping[str, Any],
    dry_run: bool = False,
) -> int:
    """Write one on-call action to the audit; returns its id (for ``audit_update``)."""
    result = conn.execute(
        oncall_audit.insert().values(
            at=utcnow(),
            who=who[:80],
            action=action,
            selection=json.dumps(dict(selection), default=str),
            dry_run=dry_run,
            count=count,
            outcome=json.dumps(dict(outcome), default=str),
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def audit_update(
    conn: sa.Connection, audit_id: int, *, count: int, outcome: Mapping[str, Any]
) -> None:
    """Bring an audit entry written when an action began up to date with what it did."""
    conn.execute(
        oncall_audit.update()
        .where(oncall_audit.c.id == audit_id)
        .values(count=count, outcome=json.dumps(dict(outcome), default=str))
    )


def audit_entries(conn: sa.Connection, *, limit: int = 100) -> list[dict[str, Any]]:
    """The newest audit entries first."""
    rows = conn.execute(sa.select(oncall_audit).order_by(oncall_audit.c.id.desc()).limit(limit))
    return [
        {
            "at": aware_utc(r.at),
            "who": r.who,
            "action": r.action,
            "selection": json.loads(r.selection),
            "dry_run": bool(r.dry_run),
            "count": int(r._mapping["count"]),
            "outcome": json.loads(r.outcome),
        }
        for r in rows
    ]
