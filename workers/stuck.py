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
