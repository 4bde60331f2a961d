"""Where the urgent probe's time goes, hop by hop, for ``omvant bench --details``.

Two views of the same cases:

- ``hops``: from the ``case_events`` history (each row's ``at`` is taken in the stage's
  transaction): sent (the probe's clock, before its publish) -> received -> validated ->
  composed -> cleared -> delivered -> notified. A hop is the rest of one stage (commit,
  publish) plus the queue and the next stage's work up to its state change.
- ``stages``: from the urgent lanes' workers' own trace (``workers/hop_trace.py``), per stage:
  the wait before a worker thread took the message, the run, its CPU, its PostgreSQL time and
  round trips, and its publishes (with confirms).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from workers.queues import URGENT, lane_queue, queue_name
from workers.routes import STAGES
from workers.store.schema import case_events
from workers.store.sql import aware_utc

HOPS = ("received", "validated", "composed", "cleared", "delivered", "notified")
"""The states an urgent case passes, in order (a case without attachments is cleared by
composition: its composed -> cleared hop is short)."""

TRACED = ("wait_ms", "run_ms", "cpu_ms", "db_ms", "publish_ms")
COUNTED = ("db_calls", "publishes")


def _nearest_rank(ordered: list[float], share: float) -> float:
    return ordered[max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))]


def summary(values: Iterable[float]) -> dict[str, float | int | None]:
    """Count, mean, p50 and p99 (nearest rank) of ``values``, rounded to 0.1."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "mean": None, "p50": None, "p99": None}
    return {
        "n": len(ordered),
        "mean": round(sum(ordered) / len(ordered), 1),
        "p50": round(_nearest_rank(ordered, 0.50), 1),
        "p99": round(_nearest_rank(ordered, 0.99), 1),
    }


def hops_from_events(engine: sa.Engine, sent: Mapping[str, float]) -> dict[str, Any]:
    """Per hop (``sent->received`` .. ``delivered->notified``) milliseconds of the urgent
    probe's cases, from their ``case_events`` (only cases that reached ``notified``)."""
    if not sent:
        return {}
    at: dict[str, dict[str, float]] = {}
    ids = list(sent)
    with engine.connect() as conn:
        for start in range(0, len(ids), 1000):
            rows = conn.execute(
                sa.select(case_events.c.case_id, case_events.c.state, case_events.c.at).where(
                    case_events.c.case_id.in_(ids[start : start + 1000])
                )
            )
            for row in rows:
                at.setdefault(row.case_id, {})[row.state] = aware_utc(row.at).timestamp()
    spans: dict[str, list[float]] = {}
    for case_id, states in at.items():
        if "notified" not in states:
            continue
        times = [sent[case_id], *(states.get(s) for s in HOPS)]
        names = ["sent", *HOPS]
        previous = 0
        for index in range(1, len(times)):
            here = times[index]
            if here is None:
                continue
            before = times[previous]
            assert before is not None
            spans.setdefault(f"{names[previous]}->{names[index]}", []).append(
                (here - before) * 1000
            )
            previous = index
    return {hop: summary(values) for hop, values in spans.items()}


def stage_of_queue(prefix: str) -> dict[str, str]:
    """Urgent lane queue (with prefix) -> stage name."""
    return {
        queue_name(lane_queue(route.queue, URGENT), prefix): stage
        for stage, route in STAGES.items()
        if URGENT in route.lanes()
    }


def stages_from_trace(folder: Path, prefix: str, since: float = 0.0) -> dict[str, Any]:
    """Per stage, the urgent lanes' messages as the workers timed them (after ``since``,
    epoch seconds: the warm-up is left out)."""
    stages = stage_of_queue(prefix)
    lines: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(folder.glob("hop-*.jsonl")):
        for text in path.read_text(encoding="utf-8").splitlines():
            try:
                line = json.loads(text)
            except ValueError:
                continue
            stage = stages.get(str(line.get("queue")))
            if stage is None or float(line.get("at") or 0) < since:
                continue
            lines.setdefault(stage, []).append(line)
    figures: dict[str, Any] = {}
    for stage in stages.values():
        chosen = lines.get(stage, [])
        if not chosen:
            continue
        entry: dict[str, Any] = {k: summary(float(x[k]) for x in chosen) for k in TRACED}
        for key in COUNTED:
            entry[f"{key}_mean"] = round(sum(int(x[key]) for x in chosen) / len(chosen), 2)
        entry["messages"] = len(chosen)
        figures[stage] = entry
    return figures


def trace_dir(log_dir: Path, prefix: str) -> Path:
    """Where the urgent lanes' workers of the run with queue prefix ``prefix`` write their
    trace (``workers/hop_trace.py``)."""
    return log_dir / f"hop-trace-{prefix.rstrip('.')}"


def breakdown(
    engine: sa.Engine, sent: Mapping[str, float], log_dir: Path, prefix: str, since: float
) -> dict[str, Any]:
    """Both views of the urgent probe's cases (the module's docstring)."""
    return {
        "hops": hops_from_events(engine, sent),
        "stages": stages_from_trace(trace_dir(log_dir, prefix), prefix, since=since),
        "how": HOW,
    }


HOW = (
    "hops: from case_events (at = the stage's transaction), probe's send -> notified, ms. "
    "stages: the urgent lanes' worker's trace per message: wait_ms (message created, before "
    "its publish -> a worker thread takes it), run_ms (the actor), cpu_ms (its thread), db_ms "
    "and db_calls (statements and commits), publish_ms and publishes (enqueue, confirms)."
)
