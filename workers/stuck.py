"""Cases stuck: not moved for longer than the limit of the state they are in.

On-call's "stuck" is the sweep's "stalled" (``workers.sweep.stalled_cases`` with its limits:
``OMVANT_SWEEP_LIMITS`` on top of its defaults), so both name the same cases. A case of a
paused dispatch waits on purpose and is not stuck.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from contracts import attachments_cleared, message_composed, recipient_validated, send_case
from workers import sweep
from workers.case_states import CaseState
from workers.routes import ROUTES
from workers.store.schema import cases
from workers.store.sql import aware_utc


def limits(configured: Mapping[str, float] | None = None) -> dict[str, float]:
    """Seconds each state may last before its cases count as stuck: the sweep's defaults with
    ``configured`` (the settings' ``sweep_limits``, ``OMVANT_SWEEP_LIMITS``) on top."""
    found: dict[str, float] = {**sweep.DEFAULT_LIMITS, **(configured or {})}
    states = {state.value for state in CaseState}
    return {state: float(limit) for state, limit in found.items() if state in states}


def count_stuck(
    conn: sa.Connection, now: dt.datetime, seconds: dict[str, float] | None = None
) -> dict[str, int]:
    """Stuck cases per state (every state the limits name, zeros included)."""
    seconds = seconds or limits()
    counts = dict.fromkeys(seconds, 0)
    stalled = sweep.stalled_cases(conn, now, sweep.Limits(seconds), limit=1_000_000)
    counts.update({state: len(ids) for state, ids in stalled.items()})
    return counts


WAITING_FOR = {
    CaseState.RECEIVED.value: ROUTES[send_case.NAME].queue.value,
    CaseState.VALIDATED.value: ROUTES[recipient_validated.NAME].queue.value,
    CaseState.COMPOSED.value: ROUTES[message_composed.NAME].queue.value,
    CaseState.CLEARED.value: ROUTES[attachments_cleared.NAME].queue.value,
}
"""The stage whose queue a case in each state before delivery waits on."""


def oldest_waiting(conn: sa.Connection, now: dt.datetime) -> dict[str, float]:
    """Seconds the oldest case waiting for each stage has waited (stages with none left out).

    A broker-neutral "oldest message age": RabbitMQ cannot show a queue's head without taking
    it, so the age is read from the cases, by the state that stage moves them out of."""
    query = (
        sa.select(cases.c.state, sa.func.min(cases.c.updated_at))
        .where(cases.c.state.in_(list(WAITING_FOR)))
        .group_by(cases.c.state)
    )
    out: dict[str, float] = {}
    for state, oldest in conn.execute(query):
        if oldest is None:
            continue
        when = aware_utc(oldest)
        out[WAITING_FOR[state]] = max(0.0, (now - when).total_seconds())
    return out


def stuck_cases(
    conn: sa.Connection,
    now: dt.datetime,
    *,
    limit: int = 100,
    seconds: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """The longest-stuck cases (oldest first; the sweep's ``stalled_cases``, the same cases
    ``count_stuck`` counts): id, clinic, state, dispatch and how long, with no resident and
    no content (what on-call may see)."""
    stalled = sweep.stalled_cases(conn, now, sweep.Limits(seconds or limits()), limit=limit)
    ids = [case_id for found in stalled.values() for case_id in found]
    if not ids:
        return []
    rows = conn.execute(
        sa.select(
            cases.c.id, cases.c.clinic_hsa_id, cases.c.state, cases.c.batch_id, cases.c.updated_at
        )
        .where(cases.c.id.in_(ids))
        .order_by(cases.c.updated_at)
        .limit(limit)
    )
    out = []
    for r in rows:
        since = aware_utc(r.updated_at)
        out.append(
            {
                "case_id": r.id,
                "clinic": r.clinic_hsa_id,
                "state": r.state,
                "batch_id": r.batch_id,
                "since": since.isoformat(),
                "age_seconds": max(0.0, (now - since).total_seconds()),
            }
        )
    return out
