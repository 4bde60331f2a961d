"""One picture of the system for on-call (``omvant status``, the web console's operations page).

Each queue and lane with its depth and consumers, the age of the oldest case waiting for each
stage, dead letters by reason with the oldest age,
dispatches in flight with their progress, stuck cases, and the last sweep when one is recorded.
Plain data, so the CLI and the web console show the same.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Mapping
from typing import Any

import dramatiq
import sqlalchemy as sa

from workers import failures, queue_depth, stuck
from workers.broker import broker_kind
from workers.store import batches as batch_store
from workers.store.cases import utcnow


def last_sweep(conn: sa.Connection) -> dict[str, Any] | None:
    """The last sweep's time and counts, if the sweep (issue 11) records them."""
    try:
        sweep: Any = importlib.import_module("workers.sweep")
    except ImportError:
        return None
    reader = getattr(sweep, "last_run", None)
    if reader is None:
        return None
    found = reader(conn)
    return dict(found) if found else None


_BATCH_KEYS = (
    "id", "name", "clinic", "status", "total", "enqueued", "settled", "in_flight", "failed",
    "created_at",
)  # fmt: skip


def batches_in_flight(conn: sa.Connection) -> list[dict[str, Any]]:
    """Dispatches not finished (and not cancelled), newest first, with their progress."""
    out = []
    for batch in batch_store.list_all(conn, limit=200):
        if batch.status == batch_store.BatchStatus.CANCELLED:
            continue
        progress = batch_store.progress(conn, batch)
        if not progress["finished"]:
            out.append({key: progress[key] for key in _BATCH_KEYS})
    return out


def snapshot(
    broker: dramatiq.Broker,
    engine: sa.Engine,
    prefix: str = "",
    now: dt.datetime | None = None,
    *,
    sweep_limits: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Everything ``omvant status`` shows (``sweep_limits``: the settings' own)."""
    now = now or utcnow()
    limits = stuck.limits(sweep_limits)
    lanes = [lane.as_dict() for lane in queue_depth.snapshot(broker, prefix)]
    with engine.connect() as conn:
        in_flight = batches_in_flight(conn)
        stuck_cases = stuck.count_stuck(conn, now, limits)
        waiting = stuck.oldest_waiting(conn, now)
        sweep = last_sweep(conn)
    return {
        "at": now.isoformat(),
        "broker": broker_kind(broker),
        "workers": queue_depth.redis_workers(broker),
        "queues": lanes,
        "oldest_waiting_seconds": waiting,
        "dead_letters": failures.summary(engine, now=now, prefix=prefix),
        "batches": in_flight,
        "stuck": {"limits_seconds": limits, "cases": stuck_cases},
        "last_sweep": sweep,
    }
