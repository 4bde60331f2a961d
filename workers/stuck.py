"""Cases stuck: not moved for longer than the limit of the state they are in.

The limits are the sweep's (``workers.sweep``, issue 11: ``OMVANT_SWEEP_LIMITS``) when that
module is there, so that on-call's "stuck" and the sweep's "stalled" are the same thing; until
then the same defaults. A case of a paused dispatch is waiting on purpose and is not stuck.
"""

from __future__ import annotations

import datetime as dt
import importlib
from typing import Any

import sqlalchemy as sa

from workers.case_states import CaseState
from workers.store.schema import batches, cases

BEFORE_DELIVERY = (CaseState.RECEIVED, CaseState.VALIDATED, CaseState.COMPOSED, CaseState.CLEARED)

_FALLBACK_LIMITS: dict[str, float] = {
    "received": 900.0,
    "validated": 900.0,
    "composed": 900.0,
    "cleared": 900.0,
}


def limits() -> dict[str, float]:
    """Seconds each state may last before its cases count as stuck."""
    try:
        sweep: Any = importlib.import_module("workers.sweep")
        found = dict(getattr(sweep, "DEFAULT_LIMITS", {}))
    except ImportError:
        found = {}
    return {state: float(found.get(state, limit)) for state, limit in _FALLBACK_LIMITS.items()}


def count_stuck(
    conn: sa.Connection, now: dt.datetime, seconds: dict[str, float] | None = None
) -> dict[str, int]:
    """Stuck cases per state (every state before delivery, zeros included)."""
    seconds = seconds or limits()
    paused = sa.select(batches.c.id).where(batches.c.status == "paused")
    counts = {state.value: 0 for state in BEFORE_DELIVERY}
    for state in BEFORE_DELIVERY:
        cutoff = now - dt.timedelta(seconds=seconds.get(state.value, 900.0))
        query = (
            sa.select(sa.func.count())
            .select_from(cases)
            .where(
                cases.c.state == state.value,
                cases.c.updated_at < cutoff,
                sa.or_(cases.c.batch_id.is_(None), cases.c.batch_id.not_in(paused)),
            )
        )
        counts[state.value] = int(conn.execute(query).scalar_one())
    return counts
