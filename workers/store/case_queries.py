"""The clinic's view of its cases ("sent by care": read / unread / ...), one clinic at a time.

Every function takes the clinic's HSA-id and filters by it in SQL: a clinic can neither list,
show nor count another clinic's cases, whatever else it asks. Callers log each read in the
access log (``workers.store.access_log``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from workers.case_states import CaseState
from workers.store import notifications
from workers.store.schema import (
    case_events,
    cases,
    notification_ledger,
    template_versions,
    unread_follow_ups,
)
from workers.store.sql import aware_utc

UNREAD = (CaseState.DELIVERED.value, CaseState.NOTIFIED.value)
IN_PROGRESS = tuple(
    s.value
    for s in (CaseState.RECEIVED, CaseState.VALIDATED, CaseState.COMPOSED, CaseState.CLEARED)
)
STATUSES = (
    "read",
    "unread",
    "overdue",
    "answered",
    "unanswered",
    "rejected",
    "failed",
    "in-progress",
)
"""What ``--status`` takes: read/unread by the resident, overdue (unread past the template's
follow-up time), answered (the resident replied) and unanswered (question templates' cases in
the inbox that the resident has not yet answered), rejected and failed (with reason codes),
in-progress (not yet in the inbox)."""
CASE_TYPES = ("sent-by-care",)
"""Every case Omvänt carries is sent by care; the filter exists because staff filter by it."""


class UnknownStatus(ValueError):
    """A status filter that is none of ``STATUSES``."""


@dataclass(frozen=True)
class CaseFilter:
    """What the clinic asks for; every field narrows the list."""

    status: str | None = None
    template_id: str | None = None
    batch_id: str | None = None
    since: dt.datetime | None = None
    limit: int = 1000
    until: dt.datetime | None = None
    """Received before this time."""
    personnummer: str | None = None
    """One resident (12 digits, as the system of record keeps them)."""
    offset: int = 0
    """Cases to skip (paging)."""
    reference: str | None = None
    """The producer's own id of the case (the ``case_id`` it sent)."""


@dataclass(frozen=True)
class CaseRow:
    """One case as the clinic's list shows it."""

    case_id: str
    clinic_hsa_id: str
    template_id: str
    batch_id: str | None
    personnummer: str
    state: str
    status: str
    overdue: bool
    reason: str | None
    received_at: dt.datetime
    delivered_at: dt.datetime | None
    read_at: dt.datetime | None
    answered_at: dt.datetime | None
    answer_kind: str | None
    channels_notified: tuple[str, ...] = ()
    reference: str | None = None
    """The producer's own id of the case (the ``case_id`` it sent), if it gave one."""


@dataclass(frozen=True)
class CaseEvent:
    """One step of a case's history."""

    at: dt.datetime
    state: str
    stage: str
    reason: str | None
    detail: str | None


@dataclass(frozen=True)
class CaseDetail:
    """One case with its history, notifications and follow-up."""

    case: CaseRow
    events: list[CaseEvent]
    notifications: list[notifications.Entry]
    follow_up: dict[str, object] | None = field(default=None)


def status_of(state: str) -> str:
    """The clinic's word for a state."""
    if state == CaseState.READ.value:
        return "read"
    if state in UNREAD:
        return "unread"
    if state in (CaseState.REJECTED.value, CaseState.FAILED.value):
        return state
    return "in-progress"


def shown_status(row: CaseRow) -> str:
    """The one status word the CLI shows for a case (table, JSON, CSV): ``answered`` once the
    resident has answered, as the web console's badge says, else :func:`status_of`. An answered
    case was read first, so ``--status read`` lists it too (with ``read_at``)."""
    return "answered" if row.answered_at is not None else row.status


def _overdue(now: dt.datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        cases.c.state.in_(UNREAD),
        unread_follow_ups.c.due_at.is_not(None),
        unread_follow_ups.c.due_at <= now,
    )


def _query(clinic_hsa_id: str, f: CaseFilter, now: dt.datetime) -> sa.Select[tuple[object, ...]]:
    query = (
        sa.select(cases, unread_follow_ups.c.due_at.label("follow_up_due_at"))
        .outerjoin(unread_follow_ups, unread_follow_ups.c.case_id == cases.c.id)
        .where(cases.c.clinic_hsa_id == clinic_hsa_id)
    )
    if f.status is not None:
        if f.status not in STATUSES:
            raise UnknownStatus(f"unknown status {f.status!r}; one of {', '.join(STATUSES)}")
        conditions: dict[str, sa.ColumnElement[bool]] = {
            "read": cases.c.state == CaseState.READ.value,
            "unread": cases.c.state.in_(UNREAD),
            "overdue": _overdue(now),
            "answered": cases.c.answered_at.is_not(None),
            "rejected": cases.c.state == CaseState.REJECTED.value,
            "failed": cases.c.state == CaseState.FAILED.value,
            "in-progress": cases.c.state.in_(IN_PROGRESS),
            "unanswered": sa.and_(
                cases.c.answered_at.is_(None),
                cases.c.state.in_((*UNREAD, CaseState.READ.value)),
                sa.exists().where(
                    template_versions.c.template_id == cases.c.template_id,
                    template_versions.c.version == cases.c.template_version,
                    template_versions.c.kind == "questions",
                ),
            ),
        }
        query = query.where(conditions[f.status])
    if f.template_id is not None:
        query = query.where(cases.c.template_id == f.template_id)
    if f.batch_id is not None:
        query = query.where(cases.c.batch_id == f.batch_id)
    if f.since is not None:
        query = query.where(cases.c.received_at >= f.since)
    if f.until is not None:
        query = query.where(cases.c.received_at < f.until)
    if f.personnummer is not None:
        query = query.where(cases.c.personnummer == f.personnummer)
    if f.reference is not None:
        query = query.where(cases.c.producer_reference == f.reference)
    return query


def _row(r: sa.Row[tuple[object, ...]], now: dt.datetime, channels: Sequence[str]) -> CaseRow:
    m = r._mapping
    due = aware_utc(m["follow_up_due_at"])
    return CaseRow(
        case_id=m["id"],
        clinic_hsa_id=m["clinic_hsa_id"],
        template_id=m["template_id"],
        batch_id=m["batch_id"],
        personnummer=m["personnummer"],
        state=m["state"],
        status=status_of(m["state"]),
        overdue=m["state"] in UNREAD and due is not None and due <= now,
        reason=m["reason"],
        received_at=aware_utc(m["received_at"]) or now,
        delivered_at=aware_utc(m["delivered_at"]),
        read_at=aware_utc(m["read_at"]),
        answered_at=aware_utc(m["answered_at"]),
        answer_kind=m["answer_kind"],
        channels_notified=tuple(sorted(set(channels))),
        reference=m["producer_reference"],
    )


def _sent_channels(conn: sa.Connection, case_ids: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for start in range(0, len(case_ids), 500):
        rows = conn.execute(
            sa.select(notification_ledger.c.case_id, notification_ledger.c.channel).where(
                notification_ledger.c.case_id.in_(case_ids[start : start + 500]),
                notification_ledger.c.status == notifications.SENT,
            )
        )
        for case_id, channel in rows:
            found[case_id].append(channel)
    return found


def list_cases(
    conn: sa.Connection, clinic_hsa_id: str, f: CaseFilter, *, now: dt.datetime
) -> list[CaseRow]:
    """The clinic's cases matching ``f``, newest first (at most ``f.limit``).

    Raises
    ------
    UnknownStatus
        ``f.status`` is none of ``STATUSES``.
    """
    query = _query(clinic_hsa_id, f, now).order_by(cases.c.received_at.desc(), cases.c.id)
    rows = list(conn.execute(query.limit(f.limit).offset(f.offset or None)))
    channels = _sent_channels(conn, [r._mapping["id"] for r in rows])
    return [_row(r, now, channels.get(r._mapping["id"], [])) for r in rows]


def count_cases(conn: sa.Connection, clinic_hsa_id: str, f: CaseFilter, *, now: dt.datetime) -> int:
    """How many of the clinic's cases match ``f`` (ignoring the limit)."""
    inner = _query(clinic_hsa_id, f, now).subquery()
    return int(conn.execute(sa.select(sa.func.count()).select_from(inner)).scalar_one())


def show_case(
    conn: sa.Connection, clinic_hsa_id: str, case_id: str, *, now: dt.datetime
) -> CaseDetail | None:
    """One of the clinic's cases with its history; None if the clinic has no such case."""
    row = conn.execute(
        _query(clinic_hsa_id, CaseFilter(), now).where(cases.c.id == case_id)
    ).one_or_none()
    if row is None:
        return None
    events = [
        CaseEvent(aware_utc(e.at) or now, e.state, e.stage, e.reason, e.detail)
        for e in conn.execute(
            sa.select(case_events)
            .where(case_events.c.case_id == case_id)
            .order_by(case_events.c.at, case_events.c.id)
        )
    ]
    ledger = sorted(
        notifications.entries_for(conn, [case_id]).values(), key=lambda e: (e.round, e.channel)
    )
    follow = conn.execute(
        sa.select(unread_follow_ups).where(unread_follow_ups.c.case_id == case_id)
    ).one_or_none()
    follow_up = (
        {
            "action": follow.action,
            "due_at": aware_utc(follow.due_at),
            "done_at": aware_utc(follow.done_at),
            "outcome": follow.outcome,
        }
        if follow is not None
        else None
    )
    channels = [e.channel for e in ledger if e.status == notifications.SENT]
    return CaseDetail(_row(row, now, channels), events, ledger, follow_up)
