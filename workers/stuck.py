"""Cases stuck: not moved for longer than the limit of the state they are in.

When the sweep (``workers.sweep``, issue 11) is there, its own definition is used (its
``stalled_cases`` with its limits, ``OMVANT_SWEEP_LIMITS`` on top of its defaults), so that
on-call's "stuck" and the sweep's "stalled" are the same cases; until then the same defaults
(15 minutes in each state before delivery). A case of a paused dispatch waits on purpose and is
not stuck.
"""

from __future__ import annotations

import datetime as dt
import importlib
from typing import Any

import sqlalchemy as sa

from workers.case_states import CaseState
from workers.store.schema import batches, cases
from workers.store.sql import aware_utc

BEFORE_DELIVERY = (CaseState.RECEIVED, CaseState.VALIDATED, CaseState.COMPOSED, CaseState.CLEARED)

_FALLBACK_LIMITS: dict[str, float] = {state.value: 900.0 for state in BEFORE_DELIVERY}


def _sweep() -> Any:
    try:
        return importlib.import_module("workers.sweep")
    except ImportError:
        return None


def limits() -> dict[str, float]:
    """Seconds each state may last before its cases count as stuck."""
    sweep = _sweep()
    found: dict[str, float] = dict(getattr(sweep, "DEFAULT_LIMITS", None) or _FALLBACK_LIMITS)
    try:
        from workers.settings import Settings

        found.update(getattr(Settings(), "sweep_limits", None) or {})
    except ValueError:  # a broken setting stops the workers, not the on-call view
        pass
    states = {state.value for state in CaseState}
    return {state: float(limit) for state, limit in found.items() if state in states}


def count_stuck(
    conn: sa.Connection, now: dt.datetime, seconds: dict[str, float] | None = None
) -> dict[str, int]:
    """Stuck cases per state (every state the limits name, zeros included)."""
    seconds = seconds or limits()
    sweep = _sweep()
    counts = dict.fromkeys(seconds, 0)
    if sweep is not None and hasattr(sweep, "stalled_cases") and hasattr(sweep, "Limits"):
        stalled = sweep.stalled_cases(conn, now, sweep.Limits(seconds), limit=1_000_000)
        counts.update({state: len(ids) for state, ids in stalled.items()})
        return counts
    paused = sa.select(batches.c.id).where(batches.c.status == "paused")
    for state, limit in seconds.items():
        query = (
            sa.select(sa.func.count())
            .select_from(cases)
            .where(
                cases.c.state == state,
                cases.c.updated_at < now - dt.timedelta(seconds=limit),
                sa.or_(cases.c.batch_id.is_(None), cases.c.batch_id.not_in(paused)),
            )
        )
        counts[state] = int(conn.execute(query).scalar_one())
    return counts


WAITING_FOR = {
    CaseState.RECEIVED.value: "recipient-validation",
    CaseState.VALIDATED.value: "message-composition",
    CaseState.COMPOSED.value: "attachment-check",
    CaseState.CLEARED.value: "notification-dispatch",
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


def stuck_cases(conn: sa.Connection, now: dt.datetime, *, limit: int = 100) -> list[dict[str, Any]]:
    """The longest-stuck cases (oldest first; the sweep's ``stalled_cases``, the same cases
    ``count_stuck`` counts): id, clinic, state, dispatch and how long, with no resident and
    no content (what on-call may see)."""
    sweep = _sweep()
    if sweep is None or not hasattr(sweep, "stalled_cases"):
        return []
    stalled = sweep.stalled_cases(conn, now, sweep.Limits(limits()), limit=limit)
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
