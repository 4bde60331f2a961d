"""What stages read and note about cases beside their transitions (``cases.apply``): when a
case arrived and the template version it is pinned to (composition), and the read receipts'
notes: the state and delivery time a receipt is checked against, the earliest read time, the
first answer's mark and history entry, whose case it is (``headers``: the clinic and the
arrival, for the actor shell)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import sqlalchemy as sa

from workers.case_states import CaseState
from workers.store.arrays import among
from workers.store.schema import case_events, cases

ANSWERED = "answered"
"""The history entry of a case's first answer (the case itself stays read: answering is not a
state of the case machine); it carries no part of the answer."""


class Arrival(NamedTuple):
    """When a case arrived, and the template version it is pinned to (None: the current)."""

    received_at: dt.datetime
    template_version: int | None


def arrivals(conn: sa.Connection, case_ids: Sequence[str]) -> dict[str, Arrival]:
    """The arrival of each case (cases unknown are left out)."""
    if not case_ids:
        return {}
    query = sa.select(cases.c.id, cases.c.received_at, cases.c.template_version).where(
        among(conn, cases.c.id, case_ids)
    )
    rows = conn.execute(query).all()  # all at once: psycopg's fetchone per row costs more
    return {row.id: Arrival(row.received_at, row.template_version) for row in rows}


class Header(NamedTuple):
    """A case's clinic and its arrival: what the actor shell reads of a chunk's cases."""

    clinic_hsa_id: str
    arrival: Arrival


def headers(conn: sa.Connection, case_ids: Sequence[str]) -> dict[str, Header]:
    """The clinic and the arrival of each case (cases unknown are left out), in one query: the
    ownership check of every stage message and composition's pins read the same rows."""
    if not case_ids:
        return {}
    query = sa.select(
        cases.c.id, cases.c.clinic_hsa_id, cases.c.received_at, cases.c.template_version
    ).where(among(conn, cases.c.id, case_ids))
    return {
        row.id: Header(row.clinic_hsa_id, Arrival(row.received_at, row.template_version))
        for row in conn.execute(query).all()
    }


class Delivery(NamedTuple):
    """A case's state, and when it reached the inbox (None: not delivered, or not recorded)."""

    state: CaseState
    delivered_at: dt.datetime | None


def deliveries(conn: sa.Connection, case_ids: Sequence[str]) -> dict[str, Delivery]:
    """The state and delivery time of each case (cases unknown are left out), in one query:
    what the read-receipt stage checks a chunk of events against."""
    ids = list(dict.fromkeys(case_ids))
    if not ids:
        return {}
    query = sa.select(cases.c.id, cases.c.state, cases.c.delivered_at).where(
        among(conn, cases.c.id, ids)
    )
    return {
        row.id: Delivery(CaseState(row.state), row.delivered_at)
        for row in conn.execute(query).all()
    }


def keep_earliest_read(conn: sa.Connection, earliest: Mapping[str, dt.datetime]) -> None:
    """Move each case's read time back to ``earliest[case]`` where that is older (a receipt
    that came late), in one statement run for all of them."""
    if not earliest:
        return
    conn.execute(
        sa.update(cases)
        .where(cases.c.id == sa.bindparam("b_id"), cases.c.read_at > sa.bindparam("b_at"))
        .values(read_at=sa.bindparam("b_at")),
        [{"b_id": case_id, "b_at": at} for case_id, at in earliest.items()],
    )


def clinics_of(conn: sa.Connection, case_ids: Sequence[str]) -> dict[str, str]:
    """The clinic of each case."""
    if not case_ids:
        return {}
    query = sa.select(cases.c.id, cases.c.clinic_hsa_id).where(among(conn, cases.c.id, case_ids))
    return {row.id: row.clinic_hsa_id for row in conn.execute(query).all()}


def note_answered(
    conn: sa.Connection, case_id: str, *, kind: str, at: dt.datetime, stage: str, first: bool
) -> None:
    """Mark a case answered (the first answer's time and kind stay); ``first``: its first
    answer, also written to its history (content-free)."""
    if first:
        conn.execute(
            case_events.insert().values(case_id=case_id, state=ANSWERED, stage=stage, at=at)
        )
    conn.execute(
        sa.update(cases)
        .where(cases.c.id == case_id, cases.c.answered_at.is_(None))
        .values(answered_at=at, answer_kind=kind)
    )


class TemplateOfCase(NamedTuple):
    """The clinic of a case and the template (and version) it was composed with."""

    clinic_hsa_id: str
    template_id: str
    template_version: int | None


def template_of(conn: sa.Connection, case_id: str) -> TemplateOfCase:
    """The clinic and template of a case (it must exist)."""
    row = conn.execute(
        sa.select(cases.c.clinic_hsa_id, cases.c.template_id, cases.c.template_version).where(
            cases.c.id == case_id
        )
    ).one()
    return TemplateOfCase(row.clinic_hsa_id, row.template_id, row.template_version)
