"""Stage 5, read-receipt collection: the inbox says a resident opened (or answered) a message.

Consumes ``ReadReceipt`` (forwarded from the inbox's AMQP events by
``workers.inbox_events_bridge``). The first read time is kept, even when an older event comes
late; duplicates and reordering are harmless;
an event for a case the system does not know is kept as an unreadable message (``unknown-case``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa

from contracts.read_receipt import ReadReceiptV1
from contracts.registry import Parsed
from workers.bootstrap import Context
from workers.case_states import CaseState
from workers.queues import Queues, queue_name
from workers.reasons import Reason
from workers.stage import Advance, Decision, settle
from workers.store import cases
from workers.store.cases import Transition
from workers.store.schema import cases as cases_table

STAGE = "read-receipts"
READABLE = frozenset({CaseState.DELIVERED, CaseState.NOTIFIED, CaseState.READ})
"""States in which a message is in the inbox, so can be read."""


def handle(items: Sequence[ReadReceiptV1]) -> list[Decision]:
    """Every event reads the case; the earliest event time wins as the first read."""
    first: dict[str, ReadReceiptV1] = {}
    for item in items:
        seen = first.get(item.case_id)
        if seen is None or item.occurred_at < seen.occurred_at:
            first[item.case_id] = item
    return [
        Advance(case_id, (Transition(case_id, CaseState.READ, {"read_at": item.occurred_at}),))
        for case_id, item in first.items()
    ]


def _keep_earliest_read(ctx: Context, items: Sequence[ReadReceiptV1]) -> None:
    """An event older than the recorded first read (it came late) moves the read time back."""
    earliest: dict[str, ReadReceiptV1] = {}
    for item in items:
        seen = earliest.get(item.case_id)
        if seen is None or item.occurred_at < seen.occurred_at:
            earliest[item.case_id] = item
    if not earliest:
        return
    with ctx.engine.begin() as conn:
        for case_id, item in earliest.items():
            conn.execute(
                sa.update(cases_table)
                .where(cases_table.c.id == case_id, cases_table.c.read_at > item.occurred_at)
                .values(read_at=item.occurred_at)
            )


def _record_answers(ctx: Context, items: Sequence[ReadReceiptV1]) -> None:
    answers = [item for item in items if item.event == "answered"]
    if not answers:
        return
    with ctx.engine.begin() as conn:
        for item in answers:
            conn.execute(
                sa.update(cases_table)
                .where(cases_table.c.id == item.case_id, cases_table.c.answered_at.is_(None))
                .values(answered_at=item.occurred_at, answer_kind=item.answer_kind)
            )


def process(parsed: Parsed, ctx: Context) -> None:
    """Record reads (and answers); keep events for unknown cases as unreadable messages."""
    items = [item for item in parsed.items if isinstance(item, ReadReceiptV1)]
    with ctx.engine.begin() as conn:
        known = cases.states_of(conn, (item.case_id for item in items))
        for item in items:
            state = known.get(item.case_id)
            if state in READABLE:
                continue
            reason = Reason.UNKNOWN_CASE if state is None else Reason.CASE_NOT_DELIVERED
            cases.record_unreadable(
                conn,
                queue=queue_name(Queues.READ_RECEIPTS, ctx.settings.queue_prefix),
                reason=reason,
                detail=f"case {item.case_id} is {state or 'unknown'}",
                body=json.dumps(item.model_dump(mode="json")),
            )
    items = [item for item in items if known.get(item.case_id) in READABLE]
    settle(ctx, stage=STAGE, decisions=handle(items), correlation_id=parsed.envelope.correlation_id)
    _keep_earliest_read(ctx, items)
    _record_answers(ctx, items)
