"""What every stage shares: per-case decisions, recording them, emitting the next contract."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from pydantic import BaseModel

from contracts.registry import contract_of, envelope_data
from workers import failures, metrics
from workers.bootstrap import Context
from workers.case_states import CaseState, ends_until
from workers.enqueue import enqueue
from workers.queues import NORMAL, is_bulk_lane
from workers.reasons import Reason
from workers.routes import ROUTES, lane_for
from workers.settings import Settings
from workers.store import cases
from workers.store.cases import Transition


@dataclass(frozen=True)
class Advance:
    """The case moves on: the transitions to record, and its record for the next stage."""

    case_id: str
    transitions: tuple[Transition, ...]
    next_item: BaseModel | None = None


@dataclass(frozen=True)
class Reject:
    """The case ends here with a stable reason code."""

    case_id: str
    reason: str
    detail: str | None = None
    values: dict[str, object] = field(default_factory=dict)


Decision = Advance | Reject


def settle(
    ctx: Context,
    *,
    stage: str,
    decisions: Sequence[Decision],
    correlation_id: str,
    within: Callable[[sa.Connection, set[str]], None] | None = None,
) -> list[BaseModel]:
    """Record the decisions in one transaction, then emit the next contract for the cases that
    moved on. ``within`` writes what belongs to the same transaction (it is given the cases
    whose transition holds). Returns the records emitted."""
    transitions: list[Transition] = []
    for decision in decisions:
        if isinstance(decision, Advance):
            transitions.extend(decision.transitions)
        else:
            transitions.extend(
                ending(
                    [decision.case_id],
                    CaseState.REJECTED,
                    decided_by=stage,
                    reason=decision.reason,
                    detail=decision.detail,
                    values=decision.values,
                )
            )
    rejects = [(d.case_id, d.reason, d.detail) for d in decisions if isinstance(d, Reject)]
    with ctx.engine.begin() as conn:
        holding = cases.apply(conn, transitions, stage=stage)
        record_unknown_cases(conn, {t.case_id for t in transitions} - holding, stage=stage)
        if rejects:
            rejects = [r for r in rejects if r[0] in holding]
            failures.record_rejections(conn, rejects, ctx.reading)
        if within is not None:
            within(conn, holding)
    if rejects:
        metrics.count_rejections(stage, [r[1] for r in rejects])
    onward = [
        d.next_item
        for d in decisions
        if isinstance(d, Advance) and d.next_item is not None and d.case_id in holding
    ]
    by_contract: dict[type[BaseModel], list[BaseModel]] = {}
    for item in onward:  # a stage may pass a case past a stage it does not need (composition)
        by_contract.setdefault(type(item), []).append(item)
    for records in by_contract.values():
        emit(ctx, records, correlation_id=correlation_id)
    return onward


def ending(
    case_ids: Sequence[str],
    state: CaseState,
    *,
    decided_by: str,
    reason: str,
    detail: str | None = None,
    values: dict[str, object] | None = None,
) -> list[Transition]:
    """The transitions that end cases (``state``: rejected or failed) for a decision or failure
    of the stage ``decided_by``: only cases that have not passed that stage are ended
    (``case_states.ends_until``), so a redelivered or dead-lettered message never overwrites a
    case that moved on, and nothing overwrites delivered, notified or read. Every caller that
    ends cases (stages, batch cancel, dead letters) builds its transitions here."""
    until = ends_until(decided_by)
    return [
        Transition(c, state, dict(values or {}), reason=reason, detail=detail, until=until)
        for c in case_ids
        if c
    ]


def record_unknown_cases(conn: sa.Connection, case_ids: set[str], *, stage: str) -> None:
    """Keep a trace of records about cases the system of record does not know (never a silent
    drop): they are stored as unreadable with ``unknown-case``."""
    if not case_ids:
        return
    known = cases.states_of(conn, case_ids)
    for case_id in sorted(case_ids - set(known)):
        cases.record_unreadable(
            conn, queue=stage, reason=Reason.UNKNOWN_CASE, detail=f"no case {case_id}", body=None
        )


def emit(
    ctx: Context,
    items: Sequence[BaseModel],
    *,
    correlation_id: str,
    delay_ms: int | None = None,
    message_id: str | None = None,
) -> None:
    """Put records of one contract on the queue its route names, in chunks, lane by lane.

    ``message_id`` names the message when ``items`` is a single record (a split chunk's part).

    Urgent cases go to the stage's urgent lane, a dispatch's cases to its bulk lane, the rest
    to the normal lane (``routes.lane_for``); a chunk never mixes lanes or batches. Chunks on
    bulk lanes hold up to ``bulk_chunk_size`` records, on the others up to ``chunk_size``.
    """
    if not items:
        return
    name, _ = contract_of(type(items[0]))
    route = ROUTES.get(name)
    if route is None:
        return
    lanes = lanes_for(
        ctx, [(getattr(i, "priority", None), getattr(i, "batch_id", None)) for i in items]
    )
    groups: dict[tuple[str, str], list[BaseModel]] = {}
    for item, lane in zip(items, lanes, strict=True):
        groups.setdefault((lane, getattr(item, "batch_id", None) or ""), []).append(item)
    for (lane, _batch), group in groups.items():
        size = max(1, chunk_size_of(ctx.settings, lane))
        for start in range(0, len(group), size):
            envelope = envelope_data(
                group[start : start + size],
                correlation_id=correlation_id,
                message_id=message_id if len(items) == 1 else None,
            )
            enqueue(
                ctx.broker,
                *route.lane(lane),
                envelope,
                prefix=ctx.settings.queue_prefix,
                delay_ms=delay_ms,
            )


def chunk_size_of(settings: Settings, lane: str) -> int:
    """Records per message on ``lane``: ``bulk_chunk_size`` on bulk lanes, else
    ``chunk_size``."""
    return settings.bulk_chunk_size if is_bulk_lane(lane) else settings.chunk_size


def lanes_for(ctx: Context, cases_: Sequence[tuple[object, object]]) -> list[str]:
    """The lane of each ``(priority, batch_id)``: urgent first, then the dispatch's bulk lane,
    else normal (``routes.lane_for``). Every enqueue of case records picks its lane here."""
    batch_ids = [b if isinstance(b, str) and b else None for _, b in cases_]
    views = ctx.batches.views(batch_ids)
    chosen: list[str] = []
    for (priority, _), batch_id in zip(cases_, batch_ids, strict=True):
        view = views.get(batch_id) if batch_id else None
        chosen.append(lane_for(str(priority or NORMAL), view.lane if view else None))
    return chosen
