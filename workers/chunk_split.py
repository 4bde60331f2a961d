"""A chunk put back on its stage as single-record messages, each on its case's lane.

Two callers need it: an envelope whose records do not all validate (the valid ones still run,
``workers.actors.split_unreadable_chunk``), and a chunk whose processes died under it too often
(``workers.poison``: one case that kills its process is then set aside alone, and its
chunk-mates run). Each part is named ``<origin>/<index>`` (``contracts.envelope.split_message_id``),
so putting the same chunk back twice (a crash right after) sends the same parts, which every
stage takes as the duplicates they are.
"""

from __future__ import annotations

from typing import Any

from contracts.envelope import split_message_id
from workers.bootstrap import Context
from workers.enqueue import enqueue
from workers.routes import Route
from workers.stage import lanes_for


def records_of(raw: object) -> list[Any]:
    """The records of an envelope as it came off the queue (a dict with a ``payload`` list),
    or none."""
    payload = raw.get("payload") if isinstance(raw, dict) else None
    return payload if isinstance(payload, list) else []


def put_back_one_by_one(route: Route, ctx: Context, raw: dict[str, Any]) -> int:
    """Enqueue each record of the envelope ``raw`` as a message of its own, on the lane its
    case belongs to; returns how many (0: a single record or none, nothing enqueued)."""
    payload = records_of(raw)
    if len(payload) <= 1:
        return 0
    case_ids = raw.get("case_ids")
    aligned = isinstance(case_ids, list) and len(case_ids) == len(payload)
    parent = str(raw.get("message_id") or "unnamed")
    records = [r if isinstance(r, dict) else {} for r in payload]
    lanes = lanes_for(ctx, [(r.get("priority"), r.get("batch_id")) for r in records])
    for index, (record, lane) in enumerate(zip(payload, lanes, strict=True)):
        single = {
            **raw,
            "message_id": split_message_id(parent, index),
            "payload": [record],
            "case_ids": [case_ids[index]] if aligned and case_ids else [],
        }
        enqueue(ctx.broker, *route.lane(lane), single, prefix=ctx.settings.queue_prefix)
    return len(payload)
