"""The residents' answers to question templates, sealed (``workers.answer_seal``), and how
each clinic wants to be alerted of them (``clinic_settings``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from workers.store.cases import utcnow
from workers.store.schema import case_answers, clinic_settings
from workers.store.sql import aware_utc

ALERTS = ("none", "email")
"""How a clinic is told of answers: not at all, or by e-mail to a functional mailbox."""


@dataclass(frozen=True)
class StoredAnswer:
    """One case's answer as stored: the kind in clear, the rest sealed."""

    case_id: str
    clinic_hsa_id: str
    kind: str
    sealed: str
    answered_at: dt.datetime
    alert: str | None
    alerted_at: dt.datetime | None


@dataclass(frozen=True)
class AnswerAlert:
    """A clinic's (or a question template's) answer alert setting."""

    alert: str
    mailbox: str | None = None


def add(
    conn: sa.Connection,
    *,
    case_id: str,
    clinic_hsa_id: str,
    kind: str,
    sealed: str,
    answered_at: dt.datetime,
) -> bool:
    """Keep a case's first answer; returns whether this one was new (a redelivered or later
    event for an answered case changes nothing)."""
    exists = conn.execute(
        sa.select(case_answers.c.case_id).where(case_answers.c.case_id == case_id)
    ).first()
    if exists is not None:
        return False
    conn.execute(
        case_answers.insert().values(
            case_id=case_id,
            clinic_hsa_id=clinic_hsa_id,
            kind=kind,
            sealed=sealed,
            answered_at=answered_at,
        )
    )
    return True


def get(conn: sa.Connection, clinic_hsa_id: str, case_id: str) -> StoredAnswer | None:
    """The clinic's case's answer, or ``None`` (none yet, or another clinic's case)."""
    row = conn.execute(
        sa.select(case_answers).where(
            case_answers.c.case_id == case_id, case_answers.c.clinic_hsa_id == clinic_hsa_id
        )
    ).first()
    if row is None:
        return None
    return StoredAnswer(
        case_id=row.case_id,
        clinic_hsa_id=row.clinic_hsa_id,
        kind=row.kind,
        sealed=row.sealed,
        answered_at=aware_utc(row.answered_at),
        alert=row.alert,
        alerted_at=aware_utc(row.alerted_at) if row.alerted_at else None,
    )


def unalerted(conn: sa.Connection, case_ids: Iterable[str]) -> list[str]:
    """Of ``case_ids``, the answers no alert decision has been recorded for yet."""
    ids = list(case_ids)
    if not ids:
        return []
    rows = conn.execute(
        sa.select(case_answers.c.case_id).where(
            case_answers.c.case_id.in_(ids), case_answers.c.alert.is_(None)
        )
    )
    return [row.case_id for row in rows]


def mark_alerted(conn: sa.Connection, case_id: str, alert: str) -> None:
    """Record what was done about alerting the clinic (``none``, ``email``, ``failed``)."""
    conn.execute(
        case_answers.update()
        .where(case_answers.c.case_id == case_id)
        .values(alert=alert, alerted_at=utcnow())
    )


def clinic_alert(conn: sa.Connection, clinic_hsa_id: str) -> AnswerAlert:
    """The clinic's answer alert setting (``none`` until the clinic sets one)."""
    row = conn.execute(
        sa.select(clinic_settings).where(clinic_settings.c.clinic_hsa_id == clinic_hsa_id)
    ).first()
    if row is None:
        return AnswerAlert("none")
    return AnswerAlert(row.answer_alert, row.mailbox)


def set_clinic_alert(conn: sa.Connection, clinic_hsa_id: str, setting: AnswerAlert) -> None:
    """Set the clinic's default answer alert (a question template may override it)."""
    if setting.alert not in ALERTS:
        raise ValueError(f"an answer alert is one of {', '.join(ALERTS)}")
    values = {"answer_alert": setting.alert, "mailbox": setting.mailbox, "updated_at": utcnow()}
    done = conn.execute(
        clinic_settings.update()
        .where(clinic_settings.c.clinic_hsa_id == clinic_hsa_id)
        .values(**values)
    )
    if done.rowcount == 0:
        conn.execute(clinic_settings.insert().values(clinic_hsa_id=clinic_hsa_id, **values))
