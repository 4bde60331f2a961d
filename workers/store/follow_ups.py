"""Unread follow-ups: a template's "if unread after N hours, notify again / flag to staff"."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from workers.case_states import CaseState
from workers.store.cases import utcnow
from workers.store.schema import cases, unread_follow_ups
from workers.store.sql import dialect_insert

UNREAD_STATES = (CaseState.DELIVERED.value, CaseState.NOTIFIED.value)
"""In the inbox and not yet opened."""


@dataclass(frozen=True)
class FollowUp:
    """A follow-up to set for one delivered case."""

    case_id: str
    clinic_hsa_id: str
    action: str
    due_at: dt.datetime


@dataclass(frozen=True)
class DueFollowUp:
    """A follow-up whose time has come for a case still unread."""

    case_id: str
    clinic_hsa_id: str
    action: str
    personnummer: str
    due_at: dt.datetime


def schedule(conn: sa.Connection, follow_ups: Sequence[FollowUp]) -> None:
    """Set follow-ups; a case that has one already keeps it (redelivery changes nothing)."""
    if not follow_ups:
        return
    conn.execute(
        dialect_insert(conn, unread_follow_ups).on_conflict_do_nothing(),
        [
            {
                "case_id": f.case_id,
                "clinic_hsa_id": f.clinic_hsa_id,
                "action": f.action,
                "due_at": f.due_at,
            }
            for f in follow_ups
        ],
    )


def due(conn: sa.Connection, now: dt.datetime, *, limit: int = 1000) -> list[DueFollowUp]:
    """Follow-ups not yet done whose time has come, of cases still unread."""
    query = (
        sa.select(
            unread_follow_ups.c.case_id,
            unread_follow_ups.c.clinic_hsa_id,
            unread_follow_ups.c.action,
            unread_follow_ups.c.due_at,
            cases.c.personnummer,
        )
        .join(cases, cases.c.id == unread_follow_ups.c.case_id)
        .where(
            unread_follow_ups.c.done_at.is_(None),
            unread_follow_ups.c.due_at <= now,
            cases.c.state.in_(UNREAD_STATES),
        )
        .order_by(unread_follow_ups.c.due_at)
        .limit(limit)
    )
    return [
        DueFollowUp(r.case_id, r.clinic_hsa_id, r.action, r.personnummer, r.due_at)
        for r in conn.execute(query)
    ]


def mark_done(conn: sa.Connection, case_id: str, outcome: str) -> None:
    """The follow-up of ``case_id`` has been carried out."""
    conn.execute(
        sa.update(unread_follow_ups)
        .where(unread_follow_ups.c.case_id == case_id, unread_follow_ups.c.done_at.is_(None))
        .values(done_at=utcnow(), outcome=outcome[:64])
    )
